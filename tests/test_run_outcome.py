"""The lines that close a sweep (``profiler.cli.run_outcome``): each point the time budget left out is named,
one line for each kind of point, in the form ``run`` has always printed it."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from profiler.cli.run_outcome import print_outcome
from profiler.measure.sweep import SweepOutcome


def _printed(outcome: SweepOutcome) -> list[str]:
    console = Console(record=True, width=10_000, force_terminal=True, file=io.StringIO())
    print_outcome(console, outcome, Path("out/gpt2"))
    return console.export_text().splitlines()


def test_each_kind_of_point_left_out_by_the_budget_is_one_line():
    outcome = SweepOutcome(
        lengths=[8, 16],
        skipped=[{"n_ctx": 64, "phase": "prefill", "reason": "time budget", "pass_s": 30.0, "budget_s": 20},
                 {"n_ctx": 128, "reason": "time budget"},  # a length dropped whole: no phase, a prefill
                 {"n_ctx": 63, "phase": "decode", "reason": "time budget"},
                 {"n_ctx": 32, "phase": "generate", "reason": "out of memory"}],
        batch_skipped=[{"phase": "prefill", "batch": 8, "n_ctx": 256, "reason": "time budget"},
                       {"phase": "prefill", "batch": 4, "n_ctx": 256, "reason": "time budget"},
                       {"phase": "decode", "batch": 8, "n_ctx": 255, "reason": "time budget"},
                       {"phase": "decode", "batch": 2, "n_ctx": 16, "reason": "out of memory"}],
        extend_skipped=[{"c": 768, "s": 256, "reason": "time budget"}, {"c": 1008, "s": 16, "reason": "time budget"},
                        {"c": 8, "s": 8, "reason": "out of memory"}],
        elapsed_s=12.34)
    assert _printed(outcome) == [
        "prefill not measured within the time budget: n = 64, 128 (--budget to include them)",
        "decode not measured within the time budget: n = 63 (--budget to include them)",
        "prefill batches not measured within the time budget: batch x n = 8 x 256, 4 x 256 (--budget to include them)",
        "decode batches not measured within the time budget: batch x n = 8 x 255 (--budget to include them)",
        "extend not measured within the time budget: cached + appended = 768 + 256, 1008 + 16 "
        "(--budget to include them)",
        "longer than the whole 20 s budget alone: one prefill of n = 64 (predicted 30.0 s)",
        "measured in 12.3 s; wrote out/gpt2/samples.csv, run.json, hardware.json",
    ]


def test_a_sweep_that_left_nothing_out_says_only_what_it_wrote():
    assert _printed(SweepOutcome(lengths=[8, 16], elapsed_s=1.0)) == [
        "measured in 1.0 s; wrote out/gpt2/samples.csv, run.json, hardware.json"]


def test_a_default_budget_raised_for_the_curves_is_said():
    lines = _printed(SweepOutcome(lengths=[8, 11, 16], budget_raised_to_s=46.0, elapsed_s=44.8))
    assert lines[0] == ("budget raised to 46 s: the default held fewer than the 3 lengths a curve is fitted from "
                        "(--budget to choose)")


def test_caches_built_by_prefills_are_said_with_why():
    why = "cache layer 0 is a DynamicIndexedLayer, which a fill cannot grow"
    lines = _printed(SweepOutcome(lengths=[8, 16], caches_prefilled=why, elapsed_s=3.0))
    assert lines[0] == f"decode and extend caches built by prefills, at their cost: {why}"
    assert not any("prefills" in line for line in _printed(SweepOutcome(lengths=[8, 16], elapsed_s=3.0)))


def test_how_much_the_machines_speed_varied_is_one_line_before_the_files():
    from dataclasses import replace

    from tests.test_disturbance import DISTURBED

    quiet = replace(DISTURBED, signs=[], points=[], pilot_off=[], brought_back=[], too_few_lengths=False,
                    reference_latencies_s=[0.10, 0.11, 0.09, 0.10, 0.12])
    assert _printed(SweepOutcome(lengths=[8, 16], disturbance=quiet, elapsed_s=12.34))[:2] == [
        "the machine's speed through the sweep: reference passes 8.0% off their median on average (a held-out error "
        "near it is the machine's, not the form's)",
        "measured in 12.3 s; wrote out/gpt2/samples.csv, run.json, hardware.json"]
    assert not any("reference passes" in line for line in _printed(SweepOutcome(lengths=[8, 16], elapsed_s=1.0)))
