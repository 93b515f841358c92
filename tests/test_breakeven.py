import numpy as np
import pytest

from profiler.lba.breakeven import (crossing, evaluate, exercise_named, monte_carlo, parse_settings, parse_values,
                                ratio_map, sweep)
from profiler.errors import UserError
from profiler.lba.exercises import Debugging, Evolution, KTask
from profiler.lba.pricing import PaperPrimitive

PAPER = PaperPrimitive()


def test_crossing_is_interpolated_in_log_ratio():
    value, winner = crossing([1, 2, 3], [0.5, 0.5, 2.0])
    assert value == pytest.approx(2.5) and winner is None
    assert crossing([1, 2], [2.0, 3.0]) == (None, "optimized")
    assert crossing([1, 2], [0.2, 0.9]) == (None, "optimistic")
    assert crossing([1, 2, 3], [2.0, 0.5, 0.4]) == (None, None)


def test_sweep_document(fitted_pricing):
    document = sweep(KTask, "k", [4, 1, 2, 8], KTask.defaults(), fitted_pricing)
    assert [row["value"] for row in document["rows"]] == [1, 2, 4, 8]
    assert set(document) >= {"exercise", "vary", "params", "rows", "breakeven"} and "k" not in document["params"]
    first = document["rows"][0]
    assert first["ratio"] == pytest.approx(first["optimistic"] / first["optimized"])
    assert first["optimized"] == pytest.approx(sum(first["roles"]["optimized"].values()))
    assert set(first["roles"]["optimized"]) == {"delegator", "specialist"}
    assert first["ratio"] < 1 < document["rows"][-1]["ratio"]  # at k=1 the delegator is pure overhead
    assert 1 < document["breakeven"] < 2


def test_rows_beyond_the_measured_lengths_are_flagged(fitted_pricing):
    document = sweep(Debugging, "k", [2, 8, 32], Debugging.defaults(), fitted_pricing)
    assert [row["extrapolated"] for row in document["rows"]] == [False, True, True]  # measured up to 1024
    assert [row["beyond_max_positions"] for row in document["rows"]] == [False, False, True]  # holds 2048
    n = 2 * 64
    assert document["rows"][0]["longest_context"] == (n + 16 + n) + 16 + n  # round 2's developer: history, report, n


def test_the_paper_primitive_shows_no_break_even_for_debugging():
    document = sweep(Debugging, "k", [2, 4, 8], Debugging.defaults(), PAPER)
    assert document["breakeven"] is None and document["winner_throughout"] == "optimized"


def test_ratio_map_is_priced_at_once_and_masks_impossible_cells(fitted_pricing):
    result = ratio_map(Debugging, Debugging.defaults() | {"b": 4}, fitted_pricing)
    assert result["ratio"].shape == (len(result["ys"]), len(result["xs"])) and result["ratio"].size >= 40 * 40
    k = np.broadcast_to(result["xs"], result["ratio"].shape)
    assert np.all(np.isnan(result["ratio"][k < 4])) and np.all(np.isfinite(result["ratio"][k >= 4]))


def test_monte_carlo_spread():
    deterministic = monte_carlo(Debugging, Debugging.defaults(), PAPER, seeds=5)
    expected = evaluate(Debugging, Debugging.defaults(), PAPER)["totals"]["optimistic"]
    assert deterministic["optimistic"]["p5"] == deterministic["optimistic"]["p95"] == pytest.approx(float(expected))
    stochastic = monte_carlo(Evolution, Evolution.defaults() | {"k": 4}, PAPER, seeds=400)
    assert stochastic["optimistic"]["p5"] < stochastic["optimistic"]["mean"] < stochastic["optimistic"]["p95"]
    expected = float(evaluate(Evolution, Evolution.defaults() | {"k": 4}, PAPER)["totals"]["optimistic"])
    assert stochastic["optimistic"]["mean"] == pytest.approx(expected, rel=0.2)


def test_monte_carlo_skips_a_program_of_millions_of_calls():
    spread = monte_carlo(Evolution, Evolution.defaults() | {"k": 24}, PAPER, seeds=2)
    assert "skipped" in spread["optimistic"] and "mean" in spread["optimized"]


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
