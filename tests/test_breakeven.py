import json

import numpy as np
import pytest

from profiler.errors import UserError
from profiler.lba.breakeven import crossing, evaluate, practical_comparison, ratio_map, sweep
from profiler.lba.breakeven_document import BreakevenDocument
from profiler.lba.calls import positions_needed
from profiler.lba.exercises import VARIANTS, Debugging, Evolution, KTask
from profiler.lba.exercises.base import MAX_EVALUATIONS
from profiler.lba.monte_carlo import monte_carlo
from profiler.lba.parameters import exercise_named, parse_settings, parse_values
from profiler.lba.prefix_cache import Reuse
from profiler.lba.pricing import FittedPricing, PaperPrimitive, Pricing
from profiler.lba.reuse import RUNS, replay_costs
from profiler.lba.schedule import Schedule
from tests.fitted import cost_model

PAPER = PaperPrimitive()


@pytest.fixture(scope="module")
def batched_pricing():
    return FittedPricing(cost_model(surfaces=True))


def test_crossing_is_interpolated_in_log_ratio():
    value, winner = crossing([1, 2, 3], [0.5, 0.5, 2.0])
    assert value == pytest.approx(2.5) and winner is None
    assert crossing([1, 2], [2.0, 3.0]) == (None, "optimized")
    assert crossing([1, 2], [0.2, 0.9]) == (None, "optimistic")
    assert crossing([1, 2, 3], [2.0, 0.5, 0.4]) == (None, None)


def test_sweep_document(fitted_pricing):
    document = sweep(KTask, "k", [4, 1, 2, 8], KTask.defaults(), fitted_pricing)
    assert document.values() == [1, 2, 4, 8]
    assert document.exercise == "ktask" and document.vary == "k" and "k" not in document.params
    first = document.rows[0]
    assert first.ratio == pytest.approx(first.cost["optimistic"] / first.cost["optimized"])
    assert first.cost["optimized"] == pytest.approx(sum(first.roles["optimized"].values()))
    assert set(first.roles["optimized"]) == {"delegator", "specialist"}
    assert first.ratio < 1 < document.rows[-1].ratio  # at k=1 the delegator is pure overhead
    assert 1 < document.breakeven < 2


def test_rows_beyond_the_measured_lengths_are_flagged(fitted_pricing):
    document = sweep(Debugging, "k", [2, 8, 32], Debugging.defaults(), fitted_pricing)
    assert [row.extrapolated for row in document.rows] == [False, True, True]  # measured up to 1024
    assert [row.beyond_max_positions for row in document.rows] == [False, False, True]  # holds 2048
    n = 2 * 64
    # round 2's developer reads the history (code, report, code) and its report, and rewrites the code
    assert document.rows[0].longest_context == positions_needed((n + 16 + n) + 16, n) == 3 * n + 32 - 1


def test_a_call_of_exactly_the_maximum_positions_is_within_them():
    """The flag uses the positions a call needs (n_in + n_out - 1), the rule the execution backend refuses by."""
    params = KTask.defaults()
    cap = params["n"] + params["out"] - 1  # the generalist's and the specialist's call
    at = sweep(KTask, "k", [1], params, FittedPricing(cost_model(max_positions=cap)))
    beyond = sweep(KTask, "k", [1], params, FittedPricing(cost_model(max_positions=cap - 1)))
    assert at.rows[0].longest_context == cap and not at.rows[0].beyond_max_positions
    assert beyond.rows[0].beyond_max_positions


def test_the_paper_primitive_shows_no_break_even_for_debugging():
    document = sweep(Debugging, "k", [2, 4, 8], Debugging.defaults(), PAPER)
    assert document.breakeven is None and document.winner_throughout == "optimized"


def test_both_pricings_answer_the_pricing_protocol(fitted_pricing):
    assert isinstance(PAPER, Pricing) and isinstance(fitted_pricing, Pricing)


def test_the_document_survives_json(fitted_pricing):
    document = sweep(Evolution, "k", [1, 2, 3], Evolution.defaults(), fitted_pricing)
    for row in document.rows:
        row.monte_carlo = monte_carlo(Evolution, Evolution.defaults() | {"k": row.value}, fitted_pricing, seeds=5)
    document.practical = practical_comparison(Evolution, Evolution.defaults(), fitted_pricing)
    document.figure = "evolution.png"
    text = json.dumps(document.to_json())
    assert BreakevenDocument.from_json(json.loads(text)) == document
    row = json.loads(text)["rows"][0]
    assert [row[variant] for variant in VARIANTS] == [document.rows[0].cost[variant] for variant in VARIANTS]


def test_ratio_map_is_priced_at_once_and_masks_impossible_cells(fitted_pricing):
    result = ratio_map(Debugging, Debugging.defaults() | {"b": 4}, fitted_pricing)
    assert result["ratio"].shape == (len(result["ys"]), len(result["xs"])) and result["ratio"].size >= 40 * 40
    k = np.broadcast_to(result["xs"], result["ratio"].shape)
    assert np.all(np.isnan(result["ratio"][k < 4])) and np.all(np.isfinite(result["ratio"][k >= 4]))


def test_a_cost_beyond_a_float_is_refused_naming_where():
    with pytest.raises(UserError, match=r"^evolution: the optimistic cost at k=1100 is not a finite number of m\\*"):
        sweep(Evolution, "k", [1, 1100, 1200], Evolution.defaults(), PAPER)
    with pytest.raises(UserError, match="at k=1100, l=32"):  # a scalar evaluation names every parameter
        evaluate(Evolution, Evolution.defaults() | {"k": 1100}, PAPER)


def test_the_map_is_bounded_before_it_is_priced(monkeypatch, fitted_pricing):
    monkeypatch.setattr(Debugging, "costs", staticmethod(lambda *a: pytest.fail("priced")))
    cells = np.prod([len(axis) for _, axis in Debugging.map_axes])
    with pytest.raises(UserError, match="more than the limit of"):
        ratio_map(Debugging, Debugging.defaults() | {"b": MAX_EVALUATIONS // cells + 1}, fitted_pricing)


@pytest.mark.parametrize("call, message", [
    (lambda: exercise_named("routing"), "one of ktask, debugging, evolution, all"),
    (lambda: parse_settings(KTask, ["z=3"]), "no parameter 'z': one of k, n, c, out"),
    (lambda: parse_settings(KTask, ["n=lots"]), "expected n=NUMBER"),
    (lambda: parse_values("3:1", "k"), "must go up"),
    (lambda: parse_values("a,b", "k"), "expected a list like 2,4,8"),
    (lambda: sweep(Debugging, "k", [1, 2], Debugging.defaults() | {"b": 2}, PAPER), "b (bugs) must not exceed k"),
    (lambda: sweep(KTask, "k", [1.5], KTask.defaults(), PAPER), "k must be a whole number"),
    (lambda: sweep(Evolution, "p", [0.5, 1.5], Evolution.defaults(), PAPER), "at most 1"),
    (lambda: sweep(KTask, "l", [1], KTask.defaults(), PAPER), "no parameter 'l' to vary"),
])
def test_bad_input_is_a_one_line_user_error(call, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()


# -- schedules -------------------------------------------------------------------------------------------------

PARALLEL = Schedule("parallel", max_batch=4, devices=2)


def test_a_parallel_sweep_keeps_the_sequential_rows_and_adds_a_document_per_price(batched_pricing):
    params = KTask.defaults() | {"load": 8}
    sequential = sweep(KTask, "k", [1, 2, 4, 8], params, batched_pricing)
    parallel = sweep(KTask, "k", [1, 2, 4, 8], params, batched_pricing, PARALLEL)
    assert parallel.rows == sequential.rows and parallel.breakeven == sequential.breakeven
    assert parallel.schedule == {"kind": "parallel", "max_batch": 4, "devices": 2}
    assert [price.measure for price in parallel.prices] == ["device_time", "makespan"]
    device, makespan = parallel.priced("device_time"), parallel.priced("makespan")
    for price, measure in ((device, "device_time"), (makespan, "makespan")):
        expected = evaluate(KTask, params | {"k": np.array([1.0, 2, 4, 8])}, batched_pricing,
                            PARALLEL.priced_in(measure))["totals"]
        assert [row.cost["optimized"] for row in price.rows] == pytest.approx(expected["optimized"])
        assert price.prices is None and price.schedule is None
        assert "list-scheduled longest first on 2 devices" in price.assumptions[-1]
    assert all(m.cost["optimistic"] < s.cost["optimistic"] for m, s in zip(makespan.rows, sequential.rows))
    text = json.dumps(parallel.to_json())
    assert BreakevenDocument.from_json(json.loads(text)) == parallel
    assert sequential.priced("makespan") is sequential and "prices" not in sequential.to_json()


def test_the_paper_primitive_counts_the_same_work_batched_or_not():
    params = Debugging.defaults() | {"load": 4}
    parallel = sweep(Debugging, "k", [2, 4, 8], params, PAPER, Schedule("parallel", devices=3))
    device = parallel.priced("device_time")
    for variant in VARIANTS:
        assert [row.cost[variant] for row in device.rows] == pytest.approx([row.cost[variant] for row in parallel.rows])
    makespan = parallel.priced("makespan")
    assert len({row.cost["optimized"] for row in makespan.rows}) == 1  # the focused variant's depth: 2 calls


def test_a_map_in_makespan(batched_pricing):
    sequential = ratio_map(KTask, KTask.defaults() | {"load": 16}, batched_pricing)
    parallel = ratio_map(KTask, KTask.defaults() | {"load": 16}, batched_pricing,
                         Schedule("parallel", devices=4, measure="makespan"))
    assert parallel["ratio"].shape == sequential["ratio"].shape
    assert np.all(np.isfinite(parallel["ratio"])) and not np.allclose(parallel["ratio"], sequential["ratio"])


def test_evolution_at_a_load_too_heavy_for_its_sums_is_refused_before_any_work():
    with pytest.raises(UserError, match="^evolution: these values take .* a parallel schedule prices the searches"):
        sweep(Evolution, "k", list(range(1, 13)), Evolution.defaults() | {"load": 5000}, PAPER,
              Schedule("parallel", devices=4))
    sweep(Evolution, "k", list(range(1, 13)), Evolution.defaults() | {"load": 5000}, PAPER)  # sequential: T times


# ---- prefix reuse ------------------------------------------------------------------------------------------------

REUSE = Schedule(reuse=Reuse())


@pytest.fixture(scope="module")
def extend_pricing():
    return FittedPricing(cost_model(extend=True))


def test_a_sweep_with_prefix_reuse_prices_the_replayed_programs_and_records_the_cache(extend_pricing):
    fixed = Debugging.defaults() | {"system_prompt": 100.0}
    document = sweep(Debugging, "k", [2, 4, 8], fixed, extend_pricing, Schedule(reuse=Reuse(5000)))
    assert document.reuse == {"capacity_tokens": 5000} and document.prices is None and document.schedule is None
    replayed = replay_costs(Debugging, fixed | {"k": np.array([2.0, 4.0, 8.0])}, extend_pricing, Reuse(5000))
    plain = sweep(Debugging, "k", [2, 4, 8], fixed, extend_pricing)
    for i, row in enumerate(document.rows):
        assert row.cost["optimistic"] == pytest.approx(sum(float(c[i]) for c in replayed["optimistic"].values()))
        assert row.cost["optimistic"] < plain.rows[i].cost["optimistic"]  # the chat reads only its new tokens
    assert any("one extend pass" in note for note in document.assumptions)
    assert any("at most 5,000 tokens" in note for note in document.assumptions)
    assert BreakevenDocument.from_json(json.loads(json.dumps(document.to_json()))) == document
    assert "reuse" not in plain.to_json()


def test_the_paper_primitive_with_prefix_reuse_keeps_its_prices_and_says_why():
    plain, reusing = (sweep(Evolution, "k", [2, 4], Evolution.defaults(), PAPER, schedule) for schedule in
                      (Schedule(), REUSE))
    assert [row.cost for row in reusing.rows] == [row.cost for row in plain.rows]
    assert reusing.reuse == {"capacity_tokens": None} and "no cache" in reusing.assumptions[0]


def test_evolution_with_prefix_reuse_states_its_runs(extend_pricing):
    document = sweep(Evolution, "k", [2, 3], Evolution.defaults(), extend_pricing, REUSE)
    assert any(f"each program run {RUNS} times" in note for note in document.assumptions)


def test_a_map_with_prefix_reuse_leaves_blank_what_it_cannot_replay(extend_pricing, monkeypatch):
    monkeypatch.setattr("profiler.lba.breakeven.REPLAY_WORK", 40 * 48 * 600)  # a cell's share: 600
    result = ratio_map(Evolution, Evolution.defaults(), extend_pricing, REUSE)
    (_, ks), (_, ls) = Evolution.map_axes
    priced_ks = ks[result["replayed"].any(axis=0)]
    assert priced_ks.tolist() == [1, 2, 3, 4, 5]  # 8 runs of about 2 * 2^k calls and segments a cell, up to 600
    assert np.isnan(result["ratio"][:, ~result["replayed"].any(axis=0)]).all()
    at = evaluate(Evolution, Evolution.defaults() | {"k": 3.0, "l": float(ls[7])}, extend_pricing, REUSE)
    assert result["ratio"][7, 2] == pytest.approx(float(at["ratio"]))


