"""The report's caveats (``profiler.report.caveats``): a fit's held-out error set against how much the machine's own
speed varied during the sweep, so a reader knows whether a quieter machine or another form would tighten it."""

from __future__ import annotations

import json
from dataclasses import replace

from profiler.costmodel.fit_file import load_cost_model
from profiler.costmodel.uncertainty import CallIntervals
from profiler.report.caveats import _fit_caveats, _held_out_caveat
from profiler.report.inputs import load_run
from tests.test_disturbance import DISTURBED, EXAMPLE_FIT, _example_copy


def test_a_held_out_error_within_the_machines_variation_is_said_to_be_the_machines():
    assert _held_out_caveat("prefill curve predicts a left-out length", 0.12, 0.09, "its form follows loosely") == (
        "The prefill curve predicts a left-out length 12% off on average, about as much as the machine's speed varied "
        "during the sweep (its reference passes were 9% off their median on average): a quieter machine, not another "
        "form, would tighten it.")


def test_a_held_out_error_beyond_the_machines_variation_blames_the_form():
    text = _held_out_caveat("prefill curve predicts a left-out length", 0.12, 0.03, "its form follows loosely")
    assert text.endswith("more than the machine's own variation during the sweep explains (its reference passes "
                         "were 3% off their median on average): its form follows loosely.")


def test_without_enough_reference_passes_the_form_is_blamed_as_before():
    assert _held_out_caveat("extend surface predicts a left-out point", 0.08, None, "priced loosely") == (
        "The extend surface predicts a left-out point 8% off on average: priced loosely.")


def test_the_fit_caveats_read_the_runs_reference_passes(tmp_path):
    """The example fit with its prefill curve's held-out error set to 12%, beside runs whose reference passes were 12%
    and 0.8% off their median on average."""
    document = json.loads(EXAMPLE_FIT.read_text())
    document["curves"]["prefill"]["latency_s"]["lolo_mape"] = 0.12
    fit = tmp_path / "fit.json"
    fit.write_text(json.dumps(document))
    cost_model = load_cost_model(fit)
    for spread, says in ((0.15, "a quieter machine, not another form"), (0.01, "its form follows the samples loosely")):
        references = [0.1, 0.1 * (1 + 2 * spread), 0.1 * (1 - 2 * spread), 0.1, 0.1]  # 0.8 * spread off on average
        disturbance = replace(DISTURBED, reference_latencies_s=references)
        data = load_run(_example_copy(tmp_path / str(spread), disturbance), cost_model=cost_model)
        (caveat,) = [item for item in _fit_caveats(data, CallIntervals(cost_model)) if "left-out length" in item]
        assert caveat.startswith("The prefill curve predicts a left-out length 12% off on average") and says in caveat


def test_flops_counted_off_the_formula_are_a_caveat(tmp_path):
    """The example run as written (its counts agree with the formula), then with one counted pass half as much again."""
    import pandas as pd

    from profiler.report.caveats import _run_caveats

    folder, cost_model = _example_copy(tmp_path, None), load_cost_model(EXAMPLE_FIT)
    assert not [item for item in _run_caveats(load_run(folder, cost_model=cost_model)) if "times the formula's" in item]
    samples = pd.read_csv(folder / "samples.csv")
    counted = samples.index[samples["flops_counted"].notna() & (samples["phase"] == "decode")][0]
    samples.loc[counted, "flops_counted"] = samples.loc[counted, "flops"] * 1.5
    samples.to_csv(folder / "samples.csv", index=False)
    (caveat,) = [item for item in _run_caveats(load_run(folder, cost_model=cost_model)) if "times the formula's" in item]
    assert "are 1 to 1.5 times the formula's (decode off by more than 2%)" in caveat and caveat.endswith("care.")
