"""The programs run over seeds: spreads against the closed forms, and every bound checked before a program runs."""

import pytest

from profiler.errors import UserError
from profiler.lba.breakeven import evaluate, sweep
from profiler.lba.calls import TooManyCalls
from profiler.lba.exercises import VARIANTS, Debugging, Evolution
from profiler.lba.monte_carlo import (
    MONTE_CARLO_CALLS,
    MONTE_CARLO_SEGMENTS,
    SIMULATED_CALLS,
    add_monte_carlo,
    check_simulation,
    monte_carlo,
    priced_runs,
)
from profiler.lba.prefix_cache import Reuse
from profiler.lba.pricing import FittedPricing, PaperPrimitive
from profiler.lba.schedule import Schedule
from tests.fitted import cost_model

PAPER = PaperPrimitive()
REUSE = Schedule(reuse=Reuse())


@pytest.fixture(scope="module")
def batched_pricing():
    return FittedPricing(cost_model(surfaces=True))


@pytest.fixture(scope="module")
def extend_pricing():
    return FittedPricing(cost_model(extend=True))


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
    monkeypatch.setattr("profiler.lba.monte_carlo.MONTE_CARLO_CALLS", 50)
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
