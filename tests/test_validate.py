"""Validation on a tiny model: measured and predicted for every variant, budgets and sizes that
end cleanly with what was measured, and one-line errors."""

import json
import math
import warnings

import numpy as np
import pytest
import torch

from profiler.cli.main import main
from profiler.costmodel.cost_model import ExtrapolationWarning
from profiler.costmodel.fit_file import load_cost_model
from profiler.lba.breakeven import sweep
from profiler.lba.calls import CallRecorder
from profiler.lba.exercises import Debugging, Evolution, KTask
from profiler.lba.prefix_cache import Reuse
from profiler.lba.pricing import FittedPricing
from profiler.lba.reuse import replay
from profiler.lba.schedule import SEQUENTIAL, Schedule
from profiler.lba.validate import validate
from profiler.lba.validation_document import Skipped, ValidationDocument
from profiler.lba.validation_prediction import draw_quantile, every_role_by, interval_of, simulated_means
from profiler.measure.catalog import ModelSource
from profiler.measure.loading import load_model
from tests.clock import FakeClock, charge
from tests.fitted import SURFACES, cost_model, known_extend, known_surface


@pytest.fixture(scope="module")
def loaded(tiny_fit):
    _, tiny, _ = tiny_fit
    return load_model(ModelSource("tiny", tiny, "local"), torch.device("cpu"), torch.float32)


@pytest.fixture(scope="module")
def pricing(tiny_fit):
    return FittedPricing(load_cost_model(tiny_fit[2]))


@pytest.fixture
def priced_clock(monkeypatch, pricing):
    """A fake clock that every call moves by its fitted price: what a budget admits does not depend on the
    machine's load."""
    clock = FakeClock()
    charge(monkeypatch, clock, "generate", lambda n_in, n_out: float(pricing.price("call", n_in, n_out)))
    return clock


def _params(exercise, **overrides):
    return {name: float(value) for name, value in (exercise.defaults() | overrides).items()}


def test_measured_and_predicted_for_each_variant(loaded, pricing, tmp_path):
    path = tmp_path / "validate-debugging.json"
    document = validate(Debugging, "k", [2, 4], _params(Debugging, l=4, b=2, report=4), loaded, pricing, seeds=3,
                        deadline=math.inf, path=path)
    assert document.seeds == 1  # deterministic: the oracle's draw does not change the calls
    for row in document.rows:
        for variant in ("optimistic", "optimized"):
            (run,) = row.runs[variant]
            assert row.measured[variant] == run.latency_s >= run.calls_latency_s > 0
            assert row.error[variant] == pytest.approx(row.cost[variant] / run.latency_s - 1)
            recorder = CallRecorder()
            getattr(Debugging, variant)(_params(Debugging, k=row.value, l=4, b=2, report=4), recorder,
                                        np.random.default_rng(0))
            assert run.calls == recorder.calls  # every call the program makes ran
            assert run.predicted_s == pytest.approx(row.cost[variant])  # the closed form prices those calls
            assert run.generates == run.calls  # every call alone
        assert row.measured_ratio == pytest.approx(row.measured["optimistic"] / row.measured["optimized"])
    targets = document.targets
    assert targets.costs_checked + targets.costs_unsteady == 4
    assert all(run.speed_before > 0 and run.speed_after > 0 for row in document.rows
               for runs in row.runs.values() for run in runs)
    assert ValidationDocument.read(path) == document  # written after the last run as it is returned
    assert document.schedule is None and not {"schedule", "measure"} & set(json.loads(path.read_text()))
    assert not any(key.startswith("draw_quantile") for row in json.loads(path.read_text())["rows"] for key in row)


def test_stochastic_runs_every_seed_against_a_predicted_interval(loaded, pricing):
    document = validate(Evolution, "k", [1, 2], _params(Evolution, l=2), loaded, pricing, seeds=3,
                        deadline=math.inf)
    for row in document.rows:
        for variant in ("optimistic", "optimized"):
            runs = row.runs[variant]
            assert [run.seed for run in runs] == [0, 1, 2]
            assert row.measured[variant] == pytest.approx(np.mean([run.latency_s for run in runs]))
            lo, hi = row.predicted_interval[variant]
            assert 0 < lo <= row.cost[variant] <= hi  # the expected cost lies inside the interval of the mean
            assert 0 <= row.draw_quantile[variant] <= 1
    # one block: global and local mutation make the same calls with the same draws
    first = document.rows[0].runs
    assert [r.calls for r in first["optimistic"]] == [r.calls for r in first["optimized"]]


def _spend_the_budget_after(what: str, clock: FakeClock, deadline: float):
    """A progress callback that moves ``clock`` past ``deadline`` once ``what`` has been measured."""
    def progress(line: str) -> None:
        if what in line:
            clock.advance(max(deadline - clock(), 0) + 0.01)
    return progress


def test_a_budget_too_small_ends_cleanly_with_what_was_measured(loaded, pricing, priced_clock, tmp_path):
    path = tmp_path / "validate-ktask.json"
    deadline = priced_clock() + 4
    document = validate(KTask, "n", [8, 16], _params(KTask, c=8, out=2), loaded, pricing, seeds=1, deadline=deadline,
                        path=path, progress=_spend_the_budget_after("n=8 optimized", priced_clock, deadline),
                        clock=priced_clock)
    measured, unmeasured = document.rows
    assert measured.measured_ratio is not None and unmeasured.measured_ratio is None
    assert [entry.value for entry in document.skipped] == [16]
    assert document.skipped[0].reason.startswith("budget (predicted")
    assert ValidationDocument.read(path).skipped == document.skipped


def test_a_run_past_the_deadline_stops_before_its_next_call(loaded, pricing, priced_clock):
    deadline = priced_clock() + 4
    document = validate(KTask, "n", [8, 16], _params(KTask, c=8, out=2), loaded, pricing, seeds=1, deadline=deadline,
                        progress=_spend_the_budget_after("n=8 optimistic", priced_clock, deadline),
                        clock=priced_clock)
    (row, _) = document.rows
    assert row.measured["optimistic"] is not None and row.measured["optimized"] is None
    assert row.measured_ratio is None and document.measured_breakeven is None
    assert document.skipped == [
        Skipped(8, "budget (the run stopped after 0 calls)", variant="optimized", seed=0),
        Skipped(16, "budget (the deadline passed before it)")]


def test_sizes_beyond_the_maximum_positions_are_skipped_and_said(loaded, pricing):
    document = validate(KTask, "n", [8, 200], _params(KTask, c=8, out=2), loaded, pricing, seeds=1,
                        deadline=math.inf)
    assert document.values() == [8]
    # its longest call reads 200 tokens and writes 2: 201 positions (the last token written is never fed back)
    assert document.skipped == [Skipped(200, "beyond the model's 128 positions (its longest call needs 201)")]


def test_cli_json_and_files(tiny_fit, capsys):
    root, tiny, fit = tiny_fit
    argv = ["validate", "--model", str(tiny), "--exercise", "debugging", "--vary", "k", "--values", "2,3",
            "--set", "l=2", "--set", "report=2", "--budget", "60", "--json", "--out", str(root / "reports"),
            "--fits", str(fit.parent)]
    assert main(argv) == 0
    document = json.loads(capsys.readouterr().out)
    assert {"rows", "breakeven", "measured_breakeven", "skipped", "targets"} <= set(document)
    keys = {"optimistic", "optimized", "ratio", "measured_optimistic", "measured_optimized", "measured_ratio"}
    assert all(keys <= set(row) for row in document["rows"])
    folder = root / "reports" / document["hardware_slug"] / "tiny"
    assert json.loads((folder / "validate-debugging.json").read_text())["rows"] == document["rows"]
    assert (folder / "validate-debugging.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_tables_say_what_was_skipped(tiny_fit, capsys):
    root, tiny, fit = tiny_fit
    argv = ["validate", "--model", str(tiny), "--exercise", "ktask", "--values", "8,200", "--set", "c=8",
            "--set", "out=2", "--budget", "60", "--out", str(root / "reports"), "--fits", str(fit.parent)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "skipped n=200: beyond the model's 128 positions" in out and "break-even measured" in out


@pytest.mark.parametrize("argv, message", [
    (["--exercise", "routing"], "unknown exercise 'routing'"),
    (["--exercise", "debugging", "--vary", "q", "--values", "1,2"], "debugging has no parameter 'q' to vary"),
    (["--exercise", "ktask", "--set", "l=3"], "ktask has no parameter 'l'"),
    (["--budget", "0"], "argument --budget: 0: expected seconds above 0"),
    (["--exercise", "debugging", "--vary", "k", "--values", "8,16", "--set", "l=32"],
     "every k in 8, 16 makes a call beyond tiny's 128 positions"),
])
def test_mistakes_are_one_line_and_exit_2(tiny_fit, capsys, argv, message):
    root, tiny, fit = tiny_fit
    common = ["--model", str(tiny), "--out", str(root / "reports"), "--fits", str(fit.parent)]
    assert main(["validate", *common, *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_an_unknown_model_is_one_line(capsys):
    assert main(["validate", "--model", "no-such-model"]) == 2
    assert "unknown model 'no-such-model'" in capsys.readouterr().err


# -- a parallel schedule -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def batched_pricing():
    """Known curves and batch surfaces (tests/fitted.py), measured up to 8 sequences a pass."""
    return FittedPricing(cost_model(surfaces=True))


@pytest.fixture
def batched_clock(monkeypatch, batched_pricing):
    """A fake clock that a generate of B sequences moves by the fit's batched call (its call at B = 1): a run
    measures exactly what its generates are predicted to cost."""
    clock = FakeClock()

    def cost_s(n_in, n_out, batch=1):
        with warnings.catch_warnings():  # the tiny model's calls are shorter than the fit measured
            warnings.simplefilter("ignore", ExtrapolationWarning)
            return float(batched_pricing.base.call_batch(n_in, n_out, batch))

    charge(monkeypatch, clock, "generate", cost_s)
    return clock


def test_parallel_runs_the_batches_whose_makespan_it_predicts(loaded, batched_pricing, batched_clock, tmp_path):
    path = tmp_path / "validate-debugging.json"
    params = _params(Debugging, l=4, b=2, report=4)
    schedule = Schedule("parallel", max_batch=3)
    document = validate(Debugging, "k", [2, 4], params, loaded, batched_pricing, seeds=1, deadline=math.inf,
                        path=path, clock=batched_clock, schedule=schedule)
    assert document.schedule == {"kind": "parallel", "max_batch": 3, "devices": 1}
    assert document.measure == "makespan" and "batched generates of at most 3 calls" in document.measurement
    makespan = sweep(Debugging, "k", [2, 4], params, every_role_by(Debugging, batched_pricing),
                     Schedule("parallel", max_batch=3)).priced("makespan")
    assert [row.cost for row in document.rows] == [row.cost for row in makespan.rows]
    for row in document.rows:
        for variant in ("optimistic", "optimized"):
            (run,) = row.runs[variant]
            # the program's groups, run as the batches the schedule prices: measured is predicted exactly
            assert run.latency_s == pytest.approx(run.predicted_s) == pytest.approx(row.cost[variant])
            assert row.error[variant] == pytest.approx(0, abs=1e-12)
        # optimized: k QA reports in ceil(k / 3) batches, then the b = 2 fixes in one
        assert row.runs["optimized"][0].generates == -(-int(row.value) // 3) + 1
        assert row.runs["optimized"][0].calls == row.value + 2
    assert document.targets.costs_met == document.targets.costs_checked == 4
    assert ValidationDocument.read(path) == document
    assert json.loads(path.read_text())["schedule"] == document.schedule


def test_parallel_evolution_is_set_against_the_interval_of_its_makespan(loaded, batched_pricing, batched_clock):
    params = _params(Evolution, l=2, lam=2)  # two mutants a generation: a group of two
    document = validate(Evolution, "k", [2], params, loaded, batched_pricing, seeds=2, deadline=math.inf,
                        clock=batched_clock, schedule=Schedule("parallel"))
    assert document.schedule["max_batch"] == 8  # the largest batch the fit measured
    (row,) = document.rows
    pricing = every_role_by(Evolution, batched_pricing)
    in_makespan = Schedule("parallel", max_batch=8, measure="makespan")
    means = simulated_means(Evolution, params | {"k": 2.0}, pricing, 2, schedule=in_makespan)
    assert row.predicted_interval == {variant: interval_of(means[variant]) for variant in means}
    in_sequence = simulated_means(Evolution, params | {"k": 2.0}, pricing, 2)
    assert row.predicted_interval != {variant: interval_of(in_sequence[variant]) for variant in in_sequence}
    for variant in ("optimistic", "optimized"):  # its seeds' runs placed among the makespans' means
        assert row.draw_quantile[variant] == draw_quantile(means[variant],
                                                           [run.predicted_s for run in row.runs[variant]])
    for variant in ("optimistic", "optimized"):
        for run in row.runs[variant]:
            assert run.latency_s == pytest.approx(run.predicted_s)
            assert 2 * run.generates == run.calls  # each generation's two mutants in one batched generate


def _with_surfaces(fit, fits, surfaces=True):
    """``fit`` (the tiny model's) copied into ``fits`` with the known batch surfaces of tests/fitted.py, scaled to
    its 16 + 4 token call (a fit measured up to 8 sequences a pass), or with no surfaces."""
    document = {key: value for key, value in json.loads(fit.read_text()).items() if key != "surfaces"}
    if surfaces:
        scale = load_cost_model(fit).call(16, 4) / cost_model().call(16, 4)
        document |= {"schema_version": "1.5", "surfaces": {phase: known_surface(phase, scale) for phase in SURFACES}}
    fits.mkdir()
    (fits / fit.name).write_text(json.dumps(document))
    return fits


def test_cli_parallel_runs_batches_against_the_makespan(tiny_fit, tmp_path, capsys):
    root, tiny, fit = tiny_fit
    fits = _with_surfaces(fit, tmp_path / "fits")
    argv = ["validate", "--model", str(tiny), "--exercise", "debugging", "--vary", "k", "--values", "2,3",
            "--set", "l=2", "--set", "report=2", "--budget", "60", "--out", str(root / "reports"),
            "--fits", str(fits), "--schedule", "parallel", "--max-batch", "2"]
    assert main([*argv, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["schedule"] == {"kind": "parallel", "max_batch": 2, "devices": 1}
    assert document["measure"] == "makespan"
    for row in document["rows"]:
        optimized = row["runs"]["optimized"][0]
        # k QA reports in batches of at most 2, then the two fixes in one
        assert optimized["generates"] == -(-int(row["value"]) // 2) + 1 and optimized["calls"] == row["value"] + 2
        assert row["measured_optimized"] > 0 and row["error_optimized"] is not None
    assert main(argv) == 0
    assert "each group run as batched generates of at most 2 calls on this one device" in capsys.readouterr().out


def test_cli_parallel_default_grids_make_groups_of_several_calls(tiny_fit, tmp_path, capsys):
    root, tiny, fit = tiny_fit
    fits = _with_surfaces(fit, tmp_path / "fits")
    argv = ["validate", "--model", str(tiny), "--exercise", "ktask", "--values", "8", "--set", "c=8", "--set", "out=2",
            "--budget", "60", "--out", str(root / "reports"), "--fits", str(fits), "--schedule", "parallel", "--json"]
    assert main(argv) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["params"]["load"] == 4 and document["schedule"]["max_batch"] == 8  # the fit's largest batch
    (row,) = document["rows"]
    generalist = row["runs"]["optimistic"][0]
    assert (generalist["calls"], generalist["generates"]) == (4, 1)  # four inputs answered in one batch


@pytest.mark.parametrize("argv, message", [
    (["--schedule", "eager"], "argument --schedule: invalid choice: 'eager'"),
    (["--schedule", "parallel", "--max-batch", "0"], "argument --max-batch: 0: expected a whole number from 1 to 1,"),
    (["--schedule", "parallel", "--devices", "two"], "argument --devices: two: expected a whole number from 1"),
    (["--max-batch", "8"], "--max-batch and --devices lay out a parallel schedule: add --schedule parallel"),
    (["--schedule", "parallel", "--devices", "2"], "--devices 2: validate runs on this one device, so 2 devices"),
    (["--schedule", "parallel", "--exercise", "debugging"], "no batch surfaces, so no prediction for a batch: measure"),
])
def test_schedule_mistakes_are_one_line_and_exit_2(tiny_fit, tmp_path, capsys, argv, message):
    root, tiny, fit = tiny_fit
    fits = _with_surfaces(fit, tmp_path / "fits", surfaces=False)
    common = ["--model", str(tiny), "--out", str(root / "reports"), "--fits", str(fits)]
    assert main(["validate", *common, *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


# -- prefix reuse ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def reused_pricing():
    """Known curves and the known extend surface (tests/fitted.py): a call with a cached prefix has a price."""
    return FittedPricing(cost_model(extend=True))


@pytest.fixture
def reused_clock(monkeypatch, reused_pricing):
    """A fake clock that a call moves by the fit's price of it, with the prefix it read from a kept cache: a run
    measures exactly what its calls cost at the hits the backend realised."""
    clock = FakeClock()

    def call_s(n_in, n_out, cached=0):
        with warnings.catch_warnings():  # the tiny model's calls are shorter than the fit measured
            warnings.simplefilter("ignore", ExtrapolationWarning)
            return float(reused_pricing.base.call(n_in, n_out, cached=cached))

    charge(monkeypatch, clock, "generate", call_s)
    charge(monkeypatch, clock, "generate_from", lambda cache, tokens, n_out: call_s(
        (cached := 0 if cache is None else cache.get_seq_length()) + tokens.shape[1], n_out, cached))
    return clock


@pytest.mark.parametrize("capacity_tokens", [None, 64])  # 64: the chat's early rounds evicted by its later ones
def test_prefix_reuse_runs_the_calls_whose_replayed_price_it_predicts(loaded, reused_pricing, reused_clock, tmp_path,
                                                                      capacity_tokens):
    path = tmp_path / "validate-debugging.json"
    params = _params(Debugging, l=4, b=3, report=4, system_prompt=8)
    schedule = Schedule(reuse=Reuse(capacity_tokens))
    document = validate(Debugging, "k", [3, 4], params, loaded, reused_pricing, seeds=1, deadline=math.inf,
                        path=path, clock=reused_clock, schedule=schedule)
    assert document.reuse == {"capacity_tokens": capacity_tokens} and "prefix reuse" in document.measurement
    pricing = every_role_by(Debugging, reused_pricing)
    replayed, closed = (sweep(Debugging, "k", [3, 4], params, pricing, by) for by in (schedule, SEQUENTIAL))
    assert [row.cost for row in document.rows] == [row.cost for row in replayed.rows]
    for row, without in zip(document.rows, closed.rows):
        for variant in ("optimistic", "optimized"):
            (run,) = row.runs[variant]
            # the calls run on the caches the backend kept, each at the hit the replay prices: measured is predicted
            assert run.latency_s == pytest.approx(run.predicted_s) == pytest.approx(row.cost[variant])
            assert row.cost[variant] < without.cost[variant]
            replayed_run = replay(Debugging, variant, params | {"k": row.value}, schedule.reuse)
            assert run.cached_tokens == sum(cached * count for (_, cached), count in replayed_run.counts.items()) > 0
    assert document.targets.costs_met == document.targets.costs_checked == 4
    assert ValidationDocument.read(path) == document
    assert json.loads(path.read_text())["reuse"] == {"capacity_tokens": capacity_tokens}


def _with_extend(fit, fits):
    """``fit`` (the tiny model's) copied into ``fits`` with the known extend surface of tests/fitted.py, scaled to its
    16 + 4 token call."""
    document = {key: value for key, value in json.loads(fit.read_text()).items() if key != "extend"}
    scale = load_cost_model(fit).call(16, 4) / cost_model().call(16, 4)
    document |= {"schema_version": "1.6", "extend": known_extend(scale)}
    fits.mkdir()
    (fits / fit.name).write_text(json.dumps(document))
    return fits


# per exercise: its grid and settings, and whether its calls at load 1 read anything from a kept cache: the chat
# history and the mutants of one solution do; k-task's models each read the system prompt once
REUSING_GRIDS = {"ktask": (["--vary", "n", "--values", "16", "--set", "c=8", "--set", "out=2"], False),
                 "debugging": (["--vary", "k", "--values", "2", "--set", "l=2", "--set", "report=2"], True),
                 "evolution": (["--vary", "k", "--values", "2", "--set", "l=2", "--seeds", "2"], True)}


@pytest.mark.parametrize("exercise", list(REUSING_GRIDS))
def test_cli_prefix_cache_on_runs_each_exercise_on_kept_caches(tiny_fit, tmp_path, capsys, exercise):
    root, tiny, fit = tiny_fit
    fits = _with_extend(fit, tmp_path / "fits")
    grid, hits = REUSING_GRIDS[exercise]
    argv = ["validate", "--model", str(tiny), "--exercise", exercise, *grid, "--set", "system_prompt=8", "--budget",
            "120", "--out", str(root / "reports"), "--fits", str(fits), "--prefix-cache", "on"]
    assert main([*argv, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["reuse"] == {"capacity_tokens": None}
    (row,) = document["rows"]
    runs = [run for variant in ("optimistic", "optimized") for run in row["runs"][variant]]
    assert all(run["latency_s"] > 0 for run in runs)
    assert all(run["cached_tokens"] > 0 for run in runs) if hits else all(run["cached_tokens"] == 0 for run in runs)
    assert main([*argv, "--cache-capacity", "64"]) == 0
    assert "prefix reuse: each model kept its calls' KV caches (at most 64 tokens" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--schedule", "parallel", "--prefix-cache", "on"], "--prefix-cache on runs every call alone"),
    (["--cache-capacity", "100"], "--cache-capacity sizes the prefix cache: add --prefix-cache on"),
    (["--prefix-cache", "on", "--exercise", "debugging"], "no extend surface, so no price for a call whose input"),
])
def test_prefix_cache_mistakes_are_one_line_and_exit_2(tiny_fit, tmp_path, capsys, argv, message):
    root, tiny, fit = tiny_fit
    fits = tmp_path / "fits"
    fits.mkdir()
    document = {key: value for key, value in json.loads(fit.read_text()).items() if key != "extend"}
    (fits / fit.name).write_text(json.dumps(document))
    common = ["--model", str(tiny), "--out", str(root / "reports"), "--fits", str(fits)]
    assert main(["validate", *common, *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
