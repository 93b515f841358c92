"""The disturbance watch: its signs on known timelines, and the sweep on a fake machine that other work
disturbs (a slow pilot, a slow spell at one length, bimodal passes, a loaded machine) and on a quiet one."""

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from profiler.costmodel.fit_file import load_cost_model
from profiler.measure.disturbance import (
    MIN_FIT_LENGTHS,
    AffectedPoint,
    Disturbance,
    DisturbanceWatch,
    PilotCheck,
    usable_cores,
)
from profiler.measure.grid import default_lengths
from profiler.measure.plan import REFERENCE_GAP
from profiler.measure.run_document import RunDocument
from profiler.report.caveats import _run_caveats
from profiler.report.inputs import load_run
from tests.clock import FakeClock, charge
from tests.conftest import TINY_MAX_POSITIONS
from tests.test_sweep import DECODE_STEP_S, FAST, _generate_s, _prefill_s, _sweep

EXAMPLE = Path(__file__).resolve().parent.parent / "reports" / "example" / "cpu-intel-xeon-processor-2t" / "gpt2"
EXAMPLE_FIT = EXAMPLE.parent.parent.parent.parent / "fits" / "example" / "gpt2--cpu-intel-xeon-processor-2t.json"
QUIET_LOAD = 0.5  # runnable tasks averaged over a minute: below any machine's core count


def _quiet():
    return QUIET_LOAD


# -- the watch on known timelines ---------------------------------------------------------------------------

def _watch(load=QUIET_LOAD, cores=2):
    return DisturbanceWatch(lambda: load, cores=cores)


def _finish(watch, pilot_s=None, medians_s=None, dropped=(), brought_back=()):
    return watch.finish(pilot_s or {}, medians_s or {}, list(dropped), list(brought_back))


def test_a_quiet_timeline_records_no_disturbance():
    watch = _watch()
    for n in (8, 16, 32):
        watch.reference(8, 0.010 * (1 + n / 1000))  # within a few percent of one another
        watch.measured(("prefill", n, n), [0.01 * n, 0.0105 * n, 0.0098 * n])
    watch.reference(8, 0.0101)
    record = _finish(watch, pilot_s={8: 0.09, 16: 0.16, 32: 0.33}, medians_s={8: 0.08, 16: 0.16, 32: 0.32})
    assert not record.disturbed and record.signs == [] and record.points == [] and record.pilot_off == []
    assert record.reference_n_ctx == 8 and len(record.reference_latencies_s) == 4 and not record.too_few_lengths


def test_a_slow_reference_names_the_points_on_either_side_of_it():
    watch = _watch()
    a, b, c = ("prefill", 8, 8), ("decode", 8, 1), ("prefill", 16, 16)
    watch.reference(8, 0.010)
    watch.measured(a, [0.01] * 3)
    watch.measured(b, [0.001] * 3)
    watch.reference(8, 0.015)  # 1.5 times the quickest: slow
    watch.measured(c, [0.02] * 3)
    watch.reference(8, 0.0101)
    watch.measured(("generate", 4, 16), [0.05] * 3)
    watch.reference(8, 0.0149)  # just under 1.5 times: not slow
    record = _finish(watch)
    assert record.signs == ["reference"]
    assert [(p.phase, p.n_ctx, p.seen) for p in record.points] == [
        ("prefill", 8, ["slow reference"]), ("prefill", 16, ["slow reference"]), ("decode", 8, ["slow reference"])]


def test_the_last_items_are_affected_by_a_slow_last_reference():
    watch = _watch()
    watch.reference(8, 0.010)
    watch.measured(("forward", 8, 8), [0.01] * 3)
    watch.reference(8, 0.100)
    assert [p.n_ctx for p in _finish(watch).points] == [8]


def test_repeats_half_off_their_median_are_far():
    watch = _watch()
    watch.measured(("prefill", 8, 8), [0.04, 0.04, 0.69, 0.04])  # bimodal, as in the issue
    watch.measured(("prefill", 16, 16), [0.10, 0.10, 0.05])  # one half the median: far
    watch.measured(("prefill", 32, 32), [0.10, 0.11, 0.149, 0.10])  # 49% off: near enough
    watch.measured(("decode", 8, 1), [0.01] * 39 + [0.02])  # one stray repeat in forty: moves nothing
    watch.measured(("decode", 16, 1), [0.01] * 38 + [0.02] * 2)  # one in twenty: far
    record = _finish(watch)
    assert record.signs == ["repeats"]
    assert [(p.phase, p.n_ctx, p.seen) for p in record.points] == [
        ("prefill", 8, ["far repeats"]), ("prefill", 16, ["far repeats"]), ("decode", 16, ["far repeats"])]


def test_a_pilot_twice_off_its_later_median_either_way_is_a_sign():
    record = _finish(_watch(), pilot_s={8: 0.69, 16: 0.05, 32: 0.05, 64: 0.199},
                     medians_s={8: 0.04, 16: 0.10, 32: 0.0251, 64: 0.1})
    assert record.signs == ["pilot"]
    assert record.pilot_off == [PilotCheck(8, 0.69, 0.04), PilotCheck(16, 0.05, 0.10)]
    assert "the pilot's prefill n=8 took 690.0 ms, later 40.0 ms" in record.seen()


@pytest.mark.parametrize("load, busy", [(2.6, True), (2.4, False), (None, False)])
def test_load_beyond_the_cores_is_a_sign(load, busy):
    record = _finish(_watch(load=load, cores=2))
    assert record.disturbed == busy and record.load_1m_end == load and record.cores == 2


def test_too_few_lengths_only_when_lengths_were_dropped_on_a_disturbed_machine():
    few = {8: 0.01, 16: 0.02, 32: 0.04}
    assert _finish(_watch(load=5), medians_s=few, dropped=[64]).too_few_lengths
    assert not _finish(_watch(load=5), medians_s=few).too_few_lengths  # nothing dropped: the lengths asked
    assert not _finish(_watch(), medians_s=few, dropped=[64]).too_few_lengths  # quiet: the budget's doing
    enough = few | {64: 0.08}
    assert len(enough) == MIN_FIT_LENGTHS and not _finish(_watch(load=5), medians_s=enough, dropped=[91]).too_few_lengths


# -- the sweep on a fake machine ----------------------------------------------------------------------------

def _disturbed_machine(monkeypatch, prefill_factor) -> FakeClock:
    """The synthetic machine of test_sweep (about 1 ms per token and per decode step), every prefill pass taking
    ``prefill_factor()`` times as long: the disturbance, as each test switches it."""
    clock = FakeClock()
    charge(monkeypatch, clock, "prefill", lambda n: prefill_factor() * _prefill_s(n))
    charge(monkeypatch, clock, "forward", _prefill_s)
    charge(monkeypatch, clock, "decode_step", lambda cache: DECODE_STEP_S)
    charge(monkeypatch, clock, "extend", lambda cache, s: _prefill_s(s))
    charge(monkeypatch, clock, "generate", _generate_s)
    return clock


def _points_in_order(samples) -> list[tuple]:
    return list(dict.fromkeys(zip(samples.phase, samples.n_ctx, samples.n_new)))


def _grid_sweep(loaded, path, monkeypatch, budget_s, prefill_factor=lambda: 1, progress=None, load=QUIET_LOAD):
    clock = _disturbed_machine(monkeypatch, prefill_factor)
    kwargs = {"progress": progress} if progress else {}
    return _sweep(loaded, path, default_lengths(TINY_MAX_POSITIONS), budget_s=budget_s, trim=True, clock=clock,
                  load_average=lambda: load, **kwargs)


# In fake time the sweep's decisions do not depend on the architecture: one is enough.
@pytest.mark.parametrize("tiny_kind", ["llama"])
def test_a_quiet_machine_records_no_disturbance(tiny_loaded, tmp_path, monkeypatch):
    log = []
    outcome, samples = _grid_sweep(tiny_loaded, tmp_path / "s.csv", monkeypatch, budget_s=3.0,
                                   progress=lambda description, done_s, total_s: log.append((description, done_s)))
    record = outcome.disturbance
    assert len(outcome.lengths) < len(default_lengths(TINY_MAX_POSITIONS))  # the budget trimmed it: no re-plan
    assert not record.disturbed and record.points == [] and record.brought_back == [] and record.pilot_off == []
    # the reference passes all at one speed: one before the first visit, then before a visit (or a generate pair)
    # only where REFERENCE_GAP of them have had time to run since the last ended, and one after the last visit
    assert set(record.reference_latencies_s) == {_prefill_s(8)}
    gap_s, begun, last = REFERENCE_GAP * _prefill_s(8), [], ""
    for description, done_s in log:
        if description.startswith("reference"):
            assert not begun or done_s >= begun[-1] + _prefill_s(8) + gap_s or done_s > visits_end_s(log), done_s
            begun.append(done_s)
        elif _visit_begins(description):
            assert begun and (last.startswith("reference") or done_s < begun[-1] + _prefill_s(8) + gap_s), done_s
        last = description
    visits = sum(_visit_begins(description) for description, _ in log)
    assert 3 <= len(begun) < visits / 2
    assert begun[-1] > visits_end_s(log) or outcome.elapsed_s + _prefill_s(8) > 3.0


def visits_end_s(log) -> float:
    """When the last visit (or generate pair) of a progress ``log`` began."""
    return max(done_s for description, done_s in log if _visit_begins(description))


def _visit_begins(description: str) -> bool:
    """Whether a progress line begins a visit to a point (a length's begins at its prefill) or a generate pair."""
    return not description.startswith(("reference", "pilot", "drift", "forward"))


@pytest.mark.parametrize("tiny_kind", ["llama"])
def test_a_slow_pilot_is_replanned_and_the_dropped_lengths_come_back(tiny_loaded, tmp_path, monkeypatch):
    # 7 s holds the whole grid on the quiet machine; with every pilot pass 15 times slower (the issue: 0.69 s
    # for an 8-token prefill that takes 0.04 s) the pilot plans three lengths
    budget_s, grid = 7.0, default_lengths(TINY_MAX_POSITIONS)
    quiet, _ = _grid_sweep(tiny_loaded, tmp_path / "quiet.csv", monkeypatch, budget_s)
    assert quiet.lengths == grid
    piloting = {"on": True}

    def progress(description, done_s, total_s):
        piloting["on"] = piloting["on"] and description.startswith("pilot")  # until the first measurement

    outcome, samples = _grid_sweep(tiny_loaded, tmp_path / "s.csv", monkeypatch, budget_s,
                                   prefill_factor=lambda: 15 if piloting["on"] else 1, progress=progress)
    record = outcome.disturbance
    first_plan = sorted(set(outcome.lengths) - set(record.brought_back))
    assert len(first_plan) < MIN_FIT_LENGTHS and record.brought_back  # two-point plans no longer stand
    assert outcome.lengths == grid and outcome.skipped == []
    assert record.signs == ["pilot"] and record.points == [] and not record.too_few_lengths
    assert record.pilot_off == [PilotCheck(n, 15 * _prefill_s(n), _prefill_s(n)) for n in first_plan]
    measured = set(_points_in_order(samples))
    for n in record.brought_back:  # measured like every other length (decode at the maximum with a free position)
        assert {("prefill", n, n), ("decode", min(n, TINY_MAX_POSITIONS - 1), 1), ("forward", n, n)} <= measured
    # the budget holds as in test_sweep: past the plan each item overruns its share by one repeat at most
    one_repeat_each_s = sum(2 * _prefill_s(n) + DECODE_STEP_S for n in outcome.lengths)
    one_repeat_each_s += sum(_generate_s(*pair) for pair in outcome.generate_pairs)
    assert outcome.elapsed_s <= budget_s + one_repeat_each_s + FAST.min_repeats * _prefill_s(outcome.drift["n_ctx"])


@pytest.mark.parametrize("tiny_kind", ["llama"])
def test_a_slow_spell_at_one_length_names_the_points_around_the_reference_that_saw_it(tiny_loaded, tmp_path,
                                                                                      monkeypatch):
    spell, log = {"on": False, "seen": False}, []

    def progress(description, done_s, total_s):
        log.append(description)
        if description == "prefill n_ctx=16":
            spell["on"] = True  # 4x from 16's first prefill ...
        elif description.startswith("reference") and spell["on"]:
            spell["seen"] = True  # ... through the next reference pass (where REFERENCE_GAP had time to run) ...
        elif spell["seen"]:
            spell["on"] = False  # ... until the visit after it begins

    clock = _disturbed_machine(monkeypatch, lambda: 4 if spell["on"] else 1)
    outcome, samples = _sweep(tiny_loaded, tmp_path / "s.csv", [8, 16, 32, 64, 96], clock=clock, progress=progress,
                              load_average=_quiet)
    record = outcome.disturbance
    # the slow reference names every point measured since the reference before it, and until the one after it
    references = [k for k, description in enumerate(log) if description.startswith("reference")]
    slow = next(k for k in references if k > log.index("prefill n_ctx=16"))
    around = references[references.index(slow) - 1], references[references.index(slow) + 1]
    expected = {_label_point(description) for description in log[around[0] + 1:around[1]]
                if not description.startswith("reference")}
    assert ("prefill", 16, 16) in expected and {(p.phase, p.n_ctx, p.n_new) for p in record.points} == expected
    assert all(p.seen == ["slow reference"] for p in record.points)
    # the spell covered the first of 16's visits: its median is the quiet speed, and the pilot agrees with it
    prefill_16 = samples[(samples.phase == "prefill") & (samples.n_ctx == 16)].latency_s
    assert (prefill_16 == 4 * _prefill_s(16)).any() and prefill_16.median() == _prefill_s(16)
    assert record.signs == ["reference"] and record.pilot_off == []


def _label_point(description: str) -> tuple[str, int, int]:
    """The point a progress line measures: ``(phase, n_ctx, n_new)`` (a decode step's ``n_new`` 1, a prefill's or
    forward's its ``n_ctx``)."""
    phase, *fields = description.removesuffix(" (again)").split()
    values = dict(field.split("=") for field in fields)
    n_ctx = int(values["n_ctx"])
    return phase, n_ctx, int(values.get("n_new", 1 if phase == "decode" else n_ctx))


@pytest.mark.parametrize("tiny_kind", ["llama"])
def test_a_hiccup_in_one_reference_pass_is_timed_again_and_forgotten(tiny_loaded, tmp_path, monkeypatch):
    state = {"references": 0, "hiccup": False}

    def progress(description, done_s, total_s):
        if description.startswith("reference"):
            state["references"] += 1
            state["hiccup"] = state["references"] == 3  # the next prefill pass, and that one only

    def factor():
        slow, state["hiccup"] = state["hiccup"], False
        return 10 if slow else 1

    clock = _disturbed_machine(monkeypatch, factor)
    outcome, _ = _sweep(tiny_loaded, tmp_path / "s.csv", [8, 16, 32], clock=clock, progress=progress,
                        load_average=_quiet)
    assert not outcome.disturbance.disturbed
    assert set(outcome.disturbance.reference_latencies_s) == {_prefill_s(8)}  # the quicker of the two kept


@pytest.mark.parametrize("tiny_kind", ["llama"])
def test_bimodal_passes_are_far_repeats(tiny_loaded, tmp_path, monkeypatch):
    passes = {"count": 0}

    def every_other_slow():
        passes["count"] += 1
        return 15 if passes["count"] % 2 else 1

    clock = _disturbed_machine(monkeypatch, every_other_slow)
    # a budget that holds the three lengths whichever turn their pilot passes drew (explicit lengths are kept
    # only while the plan fits)
    outcome, _ = _sweep(tiny_loaded, tmp_path / "s.csv", [8, 16, 32], budget_s=30.0, clock=clock,
                        load_average=_quiet)
    record = outcome.disturbance
    far = {(p.phase, p.n_ctx) for p in record.points if "far repeats" in p.seen}
    assert far == {("prefill", 8), ("prefill", 16), ("prefill", 32)}  # decode and forward ran at one speed
    # a slow reference pass is timed again and the next, quick, one kept: the spread shows in the repeats (and
    # in pilot passes that drew the slow turn)
    assert "repeats" in record.signs and "reference" not in record.signs


@pytest.mark.parametrize("tiny_kind", ["llama"])
def test_a_loaded_machine_that_drops_lengths_says_the_fit_rests_on_too_few(tiny_loaded, tmp_path, monkeypatch):
    # every prefill 15 times slower throughout: the timings agree with one another, the load says why
    busy, _ = _grid_sweep(tiny_loaded, tmp_path / "busy.csv", monkeypatch, budget_s=1.5, prefill_factor=lambda: 15,
                          load=usable_cores() + 2)
    assert len(busy.lengths) < MIN_FIT_LENGTHS and busy.skipped
    assert busy.disturbance.signs == ["load"] and busy.disturbance.too_few_lengths
    quiet, _ = _grid_sweep(tiny_loaded, tmp_path / "quiet.csv", monkeypatch, budget_s=1.5, prefill_factor=lambda: 15)
    assert quiet.lengths == busy.lengths and not quiet.disturbance.disturbed
    assert not quiet.disturbance.too_few_lengths  # a slow machine, not a disturbed one: the budget's choice


# -- run.json, the console and the report -------------------------------------------------------------------

DISTURBED = Disturbance(
    signs=["load", "reference", "pilot"], cores=2, load_1m_start=3.9, load_1m_end=4.2, reference_n_ctx=8,
    reference_latencies_s=[0.04, 0.69, 0.041], pilot_off=[PilotCheck(8, 0.69, 0.04)], brought_back=[11, 23],
    points=[AffectedPoint("prefill", 16, 16, ["slow reference"]), AffectedPoint("decode", 16, 1, ["slow reference"])],
    too_few_lengths=True,
)


def _example_copy(tmp_path, disturbance) -> Path:
    folder = tmp_path / "cpu-intel-xeon-processor-2t" / "gpt2"
    shutil.copytree(EXAMPLE, folder)
    run = RunDocument.read(folder)
    replace(run, done=replace(run.done, disturbance=disturbance)).write(folder)
    return folder


def test_run_json_keeps_the_record_and_older_files_read_without_one(tmp_path):
    assert RunDocument.read(EXAMPLE).done.disturbance is None  # written before the watch
    folder = _example_copy(tmp_path, DISTURBED)
    assert RunDocument.read(folder).done.disturbance == DISTURBED
    written = json.loads((folder / "run.json").read_text())["done"]["disturbance"]
    assert written["points"][0] == {"phase": "prefill", "n_ctx": 16, "n_new": 16, "seen": ["slow reference"],
                                    "batch": 1}
    assert written["too_few_lengths"] is True


def test_the_report_names_the_affected_points(tmp_path):
    data = load_run(_example_copy(tmp_path, DISTURBED), cost_model=load_cost_model(EXAMPLE_FIT))
    (caveat,) = [item for item in _run_caveats(data) if "disturbed" in item]
    assert "prefill n = 16; decode n = 16" in caveat and "load average 4.2 on 2 cores" in caveat
    assert "n = 11, 23" in caveat and f"fewer than {MIN_FIT_LENGTHS} lengths" in caveat
    quiet = replace(DISTURBED, signs=[], points=[], pilot_off=[], brought_back=[], too_few_lengths=False)
    data = load_run(_example_copy(tmp_path / "quiet", quiet), cost_model=load_cost_model(EXAMPLE_FIT))
    assert not [item for item in _run_caveats(data) if "disturbed" in item]


def test_the_console_says_it_in_one_yellow_line(tmp_path):
    from profiler.cli.run_outcome import print_outcome
    from profiler.measure.sweep import SweepOutcome

    console = Console(record=True, width=10_000, force_terminal=True)
    print_outcome(console, SweepOutcome(lengths=[8, 16], disturbance=DISTURBED), tmp_path)
    styled = [line for line in console.export_text(styles=True, clear=False).splitlines() if "disturbed" in line]
    lines = [line for line in console.export_text().splitlines() if "disturbed" in line]
    assert len(lines) == 1 and styled[0].startswith("\x1b[33m")  # yellow
    assert "2 points affected" in lines[0] and "brought back n = 11, 23" in lines[0] and "too few lengths" in lines[0]


def test_a_reference_pass_looks_slow_against_the_quickest_so_far_or_what_it_was_predicted_to_take():
    watch = DisturbanceWatch(load_average=lambda: 0.0, cores=2)
    assert watch.looks_slow(0.16, expected_s=0.1) and not watch.looks_slow(0.14, expected_s=0.1)  # the first
    watch.reference(8, 0.05)
    assert watch.looks_slow(0.08, expected_s=0.1) and not watch.looks_slow(0.07, expected_s=0.1)


def test_a_batch_point_in_a_slow_spell_is_named_with_its_batch():
    watch = DisturbanceWatch(lambda: 0.0, cores=2)
    watch.reference(8, 0.01)
    watch.measured(("decode", 16, 1, 4), [0.02, 0.02, 0.02])  # a decode point of 4 sequences
    watch.measured(("decode", 16, 1), [0.01, 0.01, 0.01])
    watch.reference(8, 0.05)
    points = watch.finish({}, {}, [], []).points
    assert points == [AffectedPoint("decode", 16, 1, ["slow reference"]),
                      AffectedPoint("decode", 16, 1, ["slow reference"], batch=4)]


def test_the_machines_variation_is_the_reference_passes_mean_deviation_from_their_median():
    varied = replace(DISTURBED, reference_latencies_s=[0.10, 0.11, 0.09, 0.10, 0.12])
    assert varied.reference_spread == pytest.approx(0.008 / 0.10)
    assert replace(DISTURBED, reference_latencies_s=[0.10, 0.11, 0.09, 0.10]).reference_spread is None  # too few
