"""Prefix reuse priced by replay: hand-made call sequences priced exactly, the exercises' programs served through
a prefix cache (what each call finds cached, worked out by hand), and the replay equal to the closed forms
where nothing is reused."""

import numpy as np
import pytest

from profiler.errors import UserError
from profiler.lba.calls import Call, TooManyCalls
from profiler.lba.exercises import VARIANTS, Debugging, Evolution, KTask
from profiler.lba.prefix_cache import PrefixCache, Reuse
from profiler.lba.pricing import FittedPricing
from profiler.lba.reuse import (
    REPLAY_WORK,
    RUNS,
    ReplayRecorder,
    check_replay,
    price_replayed,
    replay,
    replay_costs,
    replay_work,
)
from tests.fitted import CURVES, cost_model, extend_seconds

UNBOUNDED = Reuse()


@pytest.fixture(scope="module")
def pricing():
    return FittedPricing(cost_model(extend=True))


def _params(exercise, **overrides):
    return {name: float(value) for name, value in (exercise.defaults() | overrides).items()}


def _call_s(n_in, n_out, cached=0):
    """A call by hand: the prefill curve (or the extend surface past ``cached`` tokens), then the decode steps."""
    first = CURVES["prefill"](n_in) if cached == 0 else extend_seconds(cached, n_in - cached)
    return first + sum(CURVES["decode"](c) for c in range(n_in, n_in + n_out - 1))


def test_a_hand_made_conversation_is_priced_exactly(pricing):
    recorder = ReplayRecorder(PrefixCache())
    system = ("system", 100)
    recorder.group([Call("qa", 130, 8, segments=(system, ("a", 30)), output="r1"),  # nothing cached
                    Call("qa", 120, 4, segments=(system, ("b", 20)))])  # the system prompt
    recorder.group([Call("qa", 168, 5, segments=(system, ("a", 30), ("r1", 8), ("more", 30)))])  # 130 + 7
    recorder.group([Call("developer", 110, 2, segments=(system,))])  # its own model: nothing
    assert recorder.counts == {(Call("qa", 130, 8), 0): 1, (Call("qa", 120, 4), 100): 1, (Call("qa", 168, 5), 137): 1,
                               (Call("developer", 110, 2), 0): 1}
    priced = price_replayed(recorder, pricing, {"qa": 1.0, "developer": 1.0})
    assert priced["qa"] == pytest.approx(_call_s(130, 8) + _call_s(120, 4, 100) + _call_s(168, 5, 137), rel=1e-9)
    assert priced["developer"] == pytest.approx(_call_s(110, 2), rel=1e-9)


def test_a_replay_stops_at_its_limit_before_the_group_that_passes_it():
    recorder = ReplayRecorder(PrefixCache(), limit=3)
    recorder.group([Call("qa", 10, 1)] * 2)
    with pytest.raises(TooManyCalls):
        recorder.group([Call("qa", 10, 1)] * 2)
    assert recorder.calls == 2 and sum(recorder.counts.values()) == 2


def test_the_debugging_chat_reads_only_its_new_tokens_each_round():
    """Round i's call of a role finds cached its previous call's input and output, less the output's last token."""
    k, l, b, report, s = 3, 10, 4, 5, 7
    counts = replay(Debugging, "optimistic", _params(Debugging, k=k, l=l, b=b, report=report, system_prompt=s),
                    UNBOUNDED).counts
    assert sum(counts.values()) == 2 * b
    n, previous = k * l, {}
    for call, cached in sorted(counts, key=lambda entry: entry[0].n_in):
        assert cached == (0 if call.role not in previous else sum(previous[call.role]) - 1)
        previous[call.role] = (call.n_in, call.n_out)
    qa_inputs = [call.n_in for call, _ in counts if call.role == "qa"]
    assert sorted(qa_inputs) == [s + n + i * (report + n) for i in range(b)]


def test_a_system_prompt_is_prefilled_once_per_model():
    k, s = 4, 300
    p = _params(KTask, k=k, n=50, c=10, out=3, system_prompt=s, load=2 * k)  # two inputs for each specialist
    optimistic = replay(KTask, "optimistic", p, UNBOUNDED).counts
    assert optimistic == {(Call("generalist", s + 50, 3), 0): 1, (Call("generalist", s + 50, 3), s): 2 * k - 1}
    optimized = replay(KTask, "optimized", p, UNBOUNDED).counts
    assert {entry: count for entry, count in optimized.items() if entry[0].role == "delegator"} == {
        (Call("delegator", s + 10, 1), 0): 1, (Call("delegator", s + 10, 1), s): 2 * k - 1}
    for task in range(k):  # each specialist computes the system prompt for its first input only
        assert {entry: count for entry, count in optimized.items() if entry[0].role == "specialist"
                and entry[0].model == task} == {(Call("specialist", s + 50, 3, task), 0): 1,
                                                (Call("specialist", s + 50, 3, task), s): 1}


def test_evolution_s_mutants_of_one_solution_share_it():
    k, l, s = 3, 8, 20
    p = _params(Evolution, k=k, l=l, p=0.5, system_prompt=s)
    for seed in range(5):
        optimistic = replay(Evolution, "optimistic", p, UNBOUNDED, seed).counts
        cached = {hit: count for (_, hit), count in optimistic.items()}
        # the first mutant computes everything, a mutant of a new version its solution, the others one token
        assert set(cached) <= {0, s, s + k * l - 1} and cached[0] == 1
        optimized = replay(Evolution, "optimized", p, UNBOUNDED, seed).counts
        cached = {hit: count for (_, hit), count in optimized.items()}
        assert set(cached) <= {0, s, s + l - 1} and cached[0] == 1 and cached.get(s) == k - 1  # each block once


@pytest.mark.parametrize("exercise, overrides", [
    (KTask, {"system_prompt": 0, "load": 5, "k": 3}),  # every call reads an input of its own, no system prompt
    (Debugging, {"system_prompt": 0, "b": 1, "load": 2}),  # one round: no call continues another of its model
])
def test_the_replay_is_the_closed_form_where_no_call_finds_anything_cached(exercise, overrides, pricing):
    p = _params(exercise, **overrides) | {"k": np.array([3.0, 4.0, 6.0]), "n": np.array([40.0, 80.0, 300.0])}
    p = {name: value for name, value in p.items() if name in exercise.all_params()}
    replayed, closed = replay_costs(exercise, p, pricing, UNBOUNDED), exercise.costs(p, pricing)
    for variant in VARIANTS:
        assert replayed[variant].keys() == closed[variant].keys()
        for role, cost in closed[variant].items():
            np.testing.assert_allclose(replayed[variant][role], np.broadcast_to(cost, (3,)), rtol=1e-12)


def test_a_cache_too_small_for_any_segment_reuses_nothing(pricing):
    """Capacity 1: every node is evicted after its call, so every call, evolution's too, costs its closed form."""
    for exercise in (Debugging, Evolution):
        p = _params(exercise, system_prompt=10)
        replayed, closed = replay_costs(exercise, p, pricing, Reuse(1)), exercise.costs(p, pricing)
        for variant in VARIANTS:
            for role, cost in closed[variant].items():
                assert float(replayed[variant][role]) == pytest.approx(float(cost), rel=1e-12)


def test_reuse_costs_less_and_a_smaller_cache_saves_less(pricing):
    p = _params(Debugging, system_prompt=200, k=4, l=32, b=4)
    costs = {capacity: replay_costs(Debugging, p, pricing, Reuse(capacity))["optimistic"]
             for capacity in (None, 1_200, 800, 1)}
    totals = [float(sum(costs[capacity].values())) for capacity in (None, 1_200, 800, 1)]
    assert totals[0] < totals[1] < totals[2] < totals[3]


def test_evolution_is_its_runs_mean_cost_corrected_by_the_calls_they_made(pricing):
    p = _params(Evolution, k=4, system_prompt=50)
    replayed = replay_costs(Evolution, p, pricing, UNBOUNDED)
    for variant in VARIANTS:
        expected = float(Evolution.expected_calls(p)[variant])
        runs = [replay(Evolution, variant, p, UNBOUNDED, seed) for seed in range(RUNS)]
        costs = np.array([sum(price_replayed(run, pricing, {"mutator": 1.0}).values()) for run in runs])
        calls = np.array([run.calls for run in runs], dtype=float)
        slope = np.cov(costs, calls, bias=True)[0, 1] / np.var(calls)
        assert float(replayed[variant]["mutator"]) == pytest.approx(
            costs.mean() + slope * (expected - calls.mean()), rel=1e-9)
        assert float(replayed[variant]["mutator"]) < float(Evolution.costs(p, pricing)[variant]["mutator"])


def test_evolution_without_hits_is_its_closed_form(pricing):
    p = _params(Evolution, k=3)  # no system prompt; every mutant of an unchanged solution hits it, so capacity 1
    replayed = replay_costs(Evolution, p, pricing, Reuse(1))
    for variant in VARIANTS:
        assert float(replayed[variant]["mutator"]) == pytest.approx(
            float(Evolution.costs(p, pricing)[variant]["mutator"]), rel=1e-9)


def test_evolution_with_few_calls_a_run_is_its_mean_cost_within_a_percent(pricing):
    # k = 1: a run is two calls in expectation, the first paying a long system prompt, the others reading it
    # cached; the mean of 4,000 other seeded runs is the reference (its standard error under 1%). The runs' mean
    # cost per call times the calls expected was 20% under it.
    p = _params(Evolution, k=1, system_prompt=1500, l=4)
    replayed = replay_costs(Evolution, p, pricing, UNBOUNDED)
    for variant in VARIANTS:
        runs = [replay(Evolution, variant, p, UNBOUNDED, seed) for seed in range(10_000, 14_000)]
        mean = np.mean([sum(price_replayed(run, pricing, {"mutator": 1.0}).values()) for run in runs])
        assert float(replayed[variant]["mutator"]) == pytest.approx(mean, rel=0.03)


def test_a_grid_replays_each_distinct_combination_and_prices_it_where_it_is(pricing):
    k = np.array([[2.0, 3.0], [3.0, 2.0]])
    p = _params(Debugging, system_prompt=30) | {"k": k}
    grid = replay_costs(Debugging, p, pricing, UNBOUNDED)
    for index in np.ndindex(k.shape):
        one = replay_costs(Debugging, p | {"k": k[index]}, pricing, UNBOUNDED)
        for variant in VARIANTS:
            for role, cost in one[variant].items():
                assert grid[variant][role][index] == pytest.approx(float(cost), rel=1e-12)


def test_replay_work_is_bounded_before_any_program_runs(monkeypatch):
    monkeypatch.setattr(Evolution, "optimistic", staticmethod(lambda *a: pytest.fail("ran")))
    p = _params(Evolution, k=30)
    assert replay_work(Evolution, p) > REPLAY_WORK
    with pytest.raises(UserError, match=f"^evolution: with prefix reuse .* more than the limit of {REPLAY_WORK:,}"):
        check_replay(Evolution, p)


@pytest.mark.parametrize("exercise, overrides", [
    (KTask, {}), (KTask, {"system_prompt": 5, "load": 7}), (Debugging, {}), (Debugging, {"system_prompt": 9, "b": 5}),
    (Debugging, {"load": 3, "k": 4, "b": 4}),
])
def test_expected_segments_are_the_segments_a_deterministic_program_names(exercise, overrides):
    p = _params(exercise, **overrides)
    for variant in VARIANTS:
        llm = SegmentCounter()
        getattr(exercise, variant)(p, llm, np.random.default_rng(0))
        assert float(exercise.expected_segments(p)[variant]) == llm.named


class SegmentCounter:
    """An LLM backend that counts the segments its calls name."""

    def __init__(self):
        self.named = 0

    def __call__(self, role, n_in, n_out):
        self.group([Call(role, n_in, n_out)])

    def group(self, calls):
        self.named += sum(len(call.segments) for call in calls)
