import json

import numpy as np
import pytest

from profiler.errors import UserError
from profiler.lba.breakeven import (
    MAX_VALUES,
    MONTE_CARLO_CALLS,
    MONTE_CARLO_SEGMENTS,
    SIMULATED_CALLS,
    add_monte_carlo,
    check_simulation,
    crossing,
    evaluate,
    exercise_named,
    monte_carlo,
    parse_settings,
    parse_values,
    practical_comparison,
    priced_runs,
    ratio_map,
    sweep,
)
from profiler.lba.breakeven_document import BreakevenDocument
from profiler.lba.calls import TooManyCalls, positions_needed
from profiler.lba.exercises import VARIANTS, Debugging, Evolution, KTask
from profiler.lba.exercises.base import MAX_EVALUATIONS
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


def test_monte_carlo_spread():
    deterministic = monte_carlo(Debugging, Debugging.defaults(), PAPER, seeds=5)
    expected = evaluate(Debugging, Debugging.defaults(), PAPER)["totals"]["optimistic"]
    assert deterministic["optimistic"].p5 == deterministic["optimistic"].p95 == pytest.approx(float(expected))
    stochastic = monte_carlo(Evolution, Evolution.defaults() | {"k": 4}, PAPER, seeds=400)
    assert stochastic["optimistic"].p5 < stochastic["optimistic"].mean < stochastic["optimistic"].p95
    expected = float(evaluate(Evolution, Evolution.defaults() | {"k": 4}, PAPER)["totals"]["optimistic"])
    assert stochastic["optimistic"].mean == pytest.approx(expected, rel=0.2)


def test_monte_carlo_skips_a_program_of_millions_of_calls_without_running_it(monkeypatch):
    runs = []
    original = Evolution.optimistic
    monkeypatch.setattr(Evolution, "optimistic", staticmethod(lambda *a: runs.append(1) or original(*a)))
    spread = monte_carlo(Evolution, Evolution.defaults() | {"k": 24}, PAPER, seeds=2)
    assert spread["optimistic"].skipped == (f"2 runs of {2**24:,} calls expected each: more than "
                                            f"{MONTE_CARLO_CALLS:,} calls in all")
    assert runs == []
    assert spread["optimized"].skipped is None and spread["optimized"].mean > 0
    assert spread["optimistic"].to_json() == {"skipped": spread["optimistic"].skipped}


def test_monte_carlo_stops_runs_that_make_more_calls_than_expected(monkeypatch):
    """The expectation is checked before; the calls made are counted over all seeds as they are made."""
    monkeypatch.setattr(Evolution, "expected_calls", staticmethod(lambda p: {"optimistic": 1.0, "optimized": 1.0}))
    monkeypatch.setattr("profiler.lba.breakeven.MONTE_CARLO_CALLS", 50)
    spread = monte_carlo(Evolution, Evolution.defaults() | {"k": 4}, PAPER, seeds=10)  # about 160 and 80 calls
    assert spread["optimistic"].skipped == "its 10 runs made more than 50 calls in all"


def test_priced_runs_count_the_limit_over_all_seeds():
    params = Debugging.defaults()  # 2b = 4 calls a run of the chat history
    assert len(priced_runs(Debugging, "optimistic", params, PAPER, range(3), limit=12)) == 3
    with pytest.raises(TooManyCalls):
        priced_runs(Debugging, "optimistic", params, PAPER, range(4), limit=12)


def test_a_sweeps_simulated_runs_are_bounded_before_the_first(monkeypatch):
    monkeypatch.setattr(Evolution, "optimistic", staticmethod(lambda *a: pytest.fail("ran")))
    document = sweep(Evolution, "k", [1, 2, 3, 30], Evolution.defaults(), PAPER)
    # k=30 (2^30 calls a run) is skipped, so not counted; the others' 2+4+8 and 2+4+6 calls a run are
    with pytest.raises(UserError, match=f"would make {26 * 40_000:,} calls in expectation, more than the limit of "
                                        f"{SIMULATED_CALLS:,}: fewer seeds or values"):
        add_monte_carlo(Evolution, document, Evolution.defaults(), PAPER, seeds=40_000)
    check_simulation(Evolution, "k", [1, 2, 3, 30], Evolution.defaults(), 38_000, "x", skipped_over=MONTE_CARLO_CALLS)
    with pytest.raises(UserError, match="^--seeds 5: evolution's 2,000 runs"):  # validate: nothing skipped
        check_simulation(Evolution, "k", [1, 2, 3, 30], Evolution.defaults(), 2000, "--seeds 5")


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


def test_parse_values():
    assert parse_values("1:4", "k") == [1, 2, 3, 4]
    assert parse_values("2,4,0.5", "p") == [2, 4, 0.5]
    assert len(parse_values(f"1:{MAX_VALUES}", "k")) == MAX_VALUES


@pytest.mark.parametrize("text, message", [
    ("", "expected a list like 2,4,8"),
    ("2,,4", "expected a list like 2,4,8"),
    ("2,inf", "of finite numbers"),
    ("nan", "of finite numbers"),
    ("-inf,2", "of finite numbers"),
    ("1.5:3", "or a range like 1:12"),
    ("1:2:3", "or a range like 1:12"),
    (f"1:{MAX_VALUES + 1}", f"{MAX_VALUES + 1:,} values, more than the limit of {MAX_VALUES:,}"),
    ("1:" + "9" * 30, "values, more than the limit"),
    (",".join(["1"] * (MAX_VALUES + 1)), "more than the limit"),
])
def test_parse_values_refuses(text, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        parse_values(text, "k")


@pytest.mark.parametrize("settings, vary, message", [
    (["m_q=nan"], None, "--set m_q=nan: debugging: m_q must be a number at least 1e-09"),
    (["l=inf"], None, "l must be a whole number at least 1 and at most 1,000,000,000 (not inf)"),
    (["k=2.5"], None, "(not 2.5)"),
    (["b=-1"], None, "(not -1)"),
    (["k=4"], "k", "--set k=4: k is the varied parameter (--vary k): give it with --values"),
    (["k"], None, "expected k=NUMBER"),
    (["=3"], None, "no parameter ''"),
])
def test_parse_settings_refuses(settings, vary, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_settings(Debugging, settings, vary)


def test_parse_settings_keeps_the_defaults_it_is_not_given():
    assert parse_settings(Debugging, ["l=8", "m_q=0.5"], "k") == Debugging.defaults() | {"l": 8, "m_q": 0.5}


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


def test_monte_carlo_spreads_under_a_parallel_schedule(batched_pricing):
    params, apart = Evolution.defaults() | {"load": 3}, Schedule("parallel", max_batch=1, devices=3)
    document = sweep(Evolution, "k", [2, 3], params, batched_pricing, apart)
    add_monte_carlo(Evolution, document, params, batched_pricing, 200, apart)
    for priced in (document, *document.prices):
        for row in priced.rows:
            spread = row.monte_carlo["optimized"]
            assert spread.seeds == 200 and spread.p5 <= row.cost["optimized"] <= spread.p95
    makespan, device = document.priced("makespan").rows[0], document.priced("device_time").rows[0]
    assert makespan.monte_carlo["optimistic"].mean < device.monte_carlo["optimistic"].mean  # three calls at once


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


def test_monte_carlo_under_prefix_reuse_replays_each_run(extend_pricing):
    params = Debugging.defaults() | {"system_prompt": 50.0}
    spread = monte_carlo(Debugging, params, extend_pricing, seeds=3, schedule=REUSE)
    expected = evaluate(Debugging, params, extend_pricing, REUSE)["totals"]
    for variant in VARIANTS:  # deterministic: every run costs what the replay priced
        assert spread[variant].p5 == pytest.approx(spread[variant].p95) == pytest.approx(float(expected[variant]))


def test_the_segments_a_simulation_names_are_bounded_too():
    params = Debugging.defaults() | {"k": 2000.0, "b": 2000.0}  # the chat: b * 3 + 2 b (b - 1); focused: k + 2b
    with pytest.raises(UserError, match="would name 8,008,000 segments of context in expectation"):
        check_simulation(Debugging, "b", [2000], params, 1, "--monte-carlo 1")
    spread = monte_carlo(Debugging, params, PAPER, seeds=1)
    assert spread["optimistic"].skipped == (f"1 runs of 8,002,000 segments of context expected each: more than "
                                            f"{MONTE_CARLO_SEGMENTS:,} in all")
