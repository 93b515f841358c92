"""The three exercises: their programs make the calls the paper's pseudocode implies, their
closed forms equal pricing those calls, and priced by the paper's primitive they show the
paper's improvements."""

import numpy as np
import pytest

from profiler.errors import UserError
from profiler.lba.calls import Call, CallRecorder, as_group, positions_needed
from profiler.lba.exercises import EXERCISES, Debugging, Evolution, KTask
from profiler.lba.exercises.base import MAX_EVALUATIONS
from profiler.lba.exercises.evolution import _global_searches, _local_searches, expected_global_steps
from profiler.lba.pricing import FittedPricing, PaperPrimitive
from profiler.lba.schedule import MEASURES, SEQUENTIAL, Schedule

PAPER = PaperPrimitive()


def _record(exercise, variant, params, seed=0):
    llm = CallRecorder()
    getattr(exercise, variant)(params, llm, np.random.default_rng(seed))
    return llm


def _params(exercise, **overrides):
    return {name: float(value) for name, value in (exercise.defaults() | overrides).items()}


def _priced(exercise, recorder, params, pricing):
    sizes = exercise.role_sizes(params)
    roles = {}
    for call, count in recorder.counts.items():
        cost = count * float(pricing.price(call.role, call.n_in, call.n_out, sizes[call.role]))
        roles[call.role] = roles.get(call.role, 0.0) + cost
    return roles


def test_ktask_calls():
    p = _params(KTask, k=4, n=300, c=20, out=5, system_prompt=7)
    assert list(_record(KTask, "optimistic", p).counts) == [Call("generalist", 307, 5)]
    assert list(_record(KTask, "optimized", p).counts) == [Call("delegator", 27, 1), Call("specialist", 307, 5)]
    assert KTask.role_sizes(p)["generalist"] == 4 and KTask.role_sizes(p)["specialist"] == 1


def test_debugging_chat_history_grows_each_round():
    k, l, b, r, s = 3, 10, 2, 4, 5
    llm = _record(Debugging, "optimistic", _params(Debugging, k=k, l=l, b=b, report=r, system_prompt=s))
    n = k * l
    assert list(llm.counts) == [
        Call("qa", s + n, r), Call("developer", s + n + r, n),  # round 1 reads the code
        Call("qa", s + 2 * n + r, r), Call("developer", s + 2 * n + 2 * r, n),  # round 2: the history of round 1
    ]


def test_debugging_focused_reads_each_function_once_and_fixes_b():
    llm = _record(Debugging, "optimized", _params(Debugging, k=5, l=10, b=3, report=4, system_prompt=0), seed=3)
    assert llm.counts == {Call("qa", 10, 4): 5, Call("developer", 14, 10): 3}


def test_evolution_programs_rewrite_the_whole_solution_or_one_block():
    p = _params(Evolution, k=3, l=8, p=0.5, system_prompt=2)
    global_calls = _record(Evolution, "optimistic", p)
    assert set(global_calls.counts) == {Call("mutator", 26, 24)}
    local_calls = _record(Evolution, "optimized", p)
    assert set(local_calls.counts) == {Call("mutator", 10, 8)} and local_calls.calls >= 3


@pytest.mark.parametrize("name", ["ktask", "debugging"])
@pytest.mark.parametrize("overrides", [{}, {"k": 3, "b": 3, "system_prompt": 11}, {"k": 2, "n": 9, "l": 3}])
def test_closed_form_equals_the_recorded_calls(name, overrides, fitted_pricing):
    exercise = EXERCISES[name]
    p = _params(exercise, **{key: v for key, v in overrides.items() if key in exercise.all_params()})
    for pricing in (PAPER, fitted_pricing):
        closed = exercise.costs(p, pricing)
        for variant in ("optimistic", "optimized"):
            recorded = _priced(exercise, _record(exercise, variant, p), p, pricing)
            assert recorded.keys() == closed[variant].keys()
            for role, cost in recorded.items():
                assert float(closed[variant][role]) == pytest.approx(cost, rel=1e-12)


@pytest.mark.parametrize("name", ["ktask", "debugging", "evolution"])
@pytest.mark.parametrize("overrides", [{}, {"k": 3, "b": 3, "system_prompt": 11},
                                       {"k": 2, "n": 9, "l": 3, "report": 40}])
def test_longest_context_is_the_most_positions_a_recorded_call_needs(name, overrides):
    """Per role, over both programs' calls: the read tokens plus the written, less the last written."""
    exercise = EXERCISES[name]
    p = _params(exercise, **{key: v for key, v in overrides.items() if key in exercise.all_params()})
    needed: dict[str, int] = {}
    for variant in ("optimistic", "optimized"):
        for call in _record(exercise, variant, p).counts:
            needed[call.role] = max(needed.get(call.role, 0), call.n_in + call.n_out - 1)
    longest = exercise.longest_context(p)
    assert longest.keys() == needed.keys()
    assert {role: float(value) for role, value in longest.items()} == needed


def test_positions_needed_leaves_out_the_last_token_written():
    assert positions_needed(10, 1) == 10 and positions_needed(10, 5) == 14
    assert np.array_equal(positions_needed(np.array([1, 8]), np.array([1, 2])), [1, 9])


def test_evolution_closed_form_is_the_expected_number_of_recorded_calls():
    p = _params(Evolution, k=4, l=8, p=0.6)
    closed = Evolution.costs(p, PAPER)
    for variant, expected_calls in (("optimistic", 0.6**-4), ("optimized", 4 / 0.6)):
        counts = [_record(Evolution, variant, p, seed).calls for seed in range(3000)]
        standard_error = np.std(counts) / np.sqrt(len(counts))
        assert abs(np.mean(counts) - expected_calls) < 4 * standard_error
        (call,) = _record(Evolution, variant, p).counts
        assert float(closed[variant]["mutator"]) == pytest.approx(expected_calls * PAPER.price("mutator", call.n_in,
                                                                                               call.n_out))


@pytest.mark.parametrize("name", ["ktask", "debugging"])
@pytest.mark.parametrize("overrides", [{}, {"k": 3, "b": 3}, {"k": 5, "b": 2, "n": 9, "l": 3}])
def test_expected_calls_are_the_recorded_calls_of_a_deterministic_program(name, overrides):
    exercise = EXERCISES[name]
    p = _params(exercise, **{key: v for key, v in overrides.items() if key in exercise.all_params()})
    expected = exercise.expected_calls(p)
    for variant in ("optimistic", "optimized"):
        assert float(expected[variant]) == _record(exercise, variant, p, seed=7).calls


def test_evolution_expected_calls_are_the_mean_of_the_recorded_calls():
    p = _params(Evolution, k=3, p=0.7)
    expected = Evolution.expected_calls(p)
    for variant in ("optimistic", "optimized"):
        counts = [_record(Evolution, variant, p, seed).calls for seed in range(2000)]
        assert abs(np.mean(counts) - float(expected[variant])) < 4 * np.std(counts) / np.sqrt(len(counts))


def test_expected_calls_broadcast_over_a_grid():
    k = np.arange(2, 7.0)
    for exercise in EXERCISES.values():
        grid = exercise.expected_calls(_params(exercise) | {"k": k})
        for i, value in enumerate(k):
            one = exercise.expected_calls(_params(exercise, k=value))
            assert {variant: float(np.broadcast_to(calls, k.shape)[i]) for variant, calls in grid.items()} == \
                   {variant: float(calls) for variant, calls in one.items()}


def test_global_mutation_needs_two_to_the_k_steps_at_one_half():
    assert expected_global_steps(np.arange(1, 11), 0.5) == pytest.approx(2.0 ** np.arange(1, 11))


def test_closed_forms_broadcast_over_a_grid():
    k, l = np.meshgrid(np.arange(2, 7.0), np.array([4.0, 16.0, 64.0]))
    p = _params(Debugging) | {"k": k, "l": l}
    costs = Debugging.costs(p, PAPER)
    assert costs["optimistic"]["developer"].shape == (3, 5)
    one = Debugging.costs(_params(Debugging, k=4, l=16), PAPER)
    assert costs["optimistic"]["developer"][1, 2] == pytest.approx(float(one["optimistic"]["developer"]))


# -- conformance with the paper, priced by its primitive -------------------------------------------


def _ratio(exercise, p, part=None):
    costs = exercise.costs(p, PAPER)
    if part:
        return costs["optimistic"][part] / costs["optimized"][part]
    return sum(costs["optimistic"].values()) / sum(costs["optimized"].values())


def _slope(exercise, name, lo, hi, part, **fixed):
    p = _params(exercise, **fixed)
    return float(np.log(_ratio(exercise, p | {name: hi}, part) / _ratio(exercise, p | {name: lo}, part))
                 / np.log(hi / lo))


@pytest.mark.parametrize("k", [2, 8, 32])
def test_ktask_ratio_tends_to_k(k):
    assert float(_ratio(KTask, _params(KTask, k=k, n=10**7))) == pytest.approx(k, rel=0.01)
    assert float(_ratio(KTask, _params(KTask, k=k, n=64))) < k  # the delegator's cost shows at small n


def test_debugging_developer_ratio_grows_as_b_k_squared():
    assert _slope(Debugging, "k", 512, 1024, "developer", b=4, l=64) == pytest.approx(2, abs=0.1)
    assert _slope(Debugging, "b", 256, 512, "developer", k=2048, l=64) == pytest.approx(1, abs=0.1)


def test_debugging_qa_ratio_grows_as_b_squared():
    assert _slope(Debugging, "b", 256, 512, "qa", k=2048, l=64) == pytest.approx(2, abs=0.1)
    assert _slope(Debugging, "k", 512, 1024, "qa", b=4, l=64) == pytest.approx(0, abs=0.1)


def test_evolution_ratio_grows_as_two_to_the_k_times_k():
    ratios = {k: float(_ratio(Evolution, _params(Evolution, k=k))) for k in (30, 31, 60, 61)}
    for k in (30, 60):
        assert ratios[k + 1] / ratios[k] == pytest.approx(2 * (k + 1) / k, rel=0.01)
    assert (ratios[60] / (2**60 * 60)) == pytest.approx(ratios[30] / (2**30 * 30), rel=0.05)


# -- the parameters' ranges and the work a grid may take -----------------------------------------


@pytest.mark.parametrize("exercise, name, value, message", [
    (KTask, "n", np.inf, "n must be a whole number at least 1 and at most 1,000,000,000 (not inf)"),
    (KTask, "n", np.nan, "(not nan)"),
    (KTask, "k", 2.5, "k must be a whole number at least 1 and at most 1,000,000 (not 2.5)"),
    (KTask, "k", 1e9, "(not 1,000,000,000)"),
    (KTask, "out", 0, "out must be a whole number at least 1"),
    (KTask, "system_prompt", -1, "system_prompt must be a whole number at least 0"),
    (KTask, "m_s", 0, "m_s must be a number at least 1e-09 and at most 1,000,000,000 (not 0)"),
    (Debugging, "m_q", -np.inf, "m_q must be a number"),
    (Evolution, "p", 1.5, "p must be a number at least 1e-06 and at most 1 (not 1.5)"),
    (Evolution, "p", 0, "(not 0)"),
])
def test_a_value_out_of_its_parameters_range_is_named_with_the_range(exercise, name, value, message):
    param = exercise.all_params()[name]
    assert message in param.problem(np.array([param.default, value]))
    with pytest.raises(UserError, match=f"^{exercise.name}: {name} must be"):
        exercise.check(_params(exercise) | {name: np.array([param.default, value])})


def test_every_default_and_limit_is_a_value_of_its_parameter():
    for exercise in EXERCISES.values():
        for param in exercise.all_params().values():
            assert param.problem(np.array([param.default, param.minimum, param.maximum])) is None


def test_the_chat_history_is_bounded_by_its_rounds_before_it_is_priced(monkeypatch):
    """Debugging prices its optimistic variant round by round: values x b prices, refused past the limit
    before ``costs`` allocates anything."""
    def allocates(*args):
        raise AssertionError("priced")

    per_value = MAX_EVALUATIONS // 10
    at_limit = _params(Debugging, b=per_value, k=per_value) | {"l": np.arange(1.0, 11.0)}
    assert Debugging.evaluations(at_limit) == MAX_EVALUATIONS
    Debugging.check(at_limit)
    monkeypatch.setattr(Debugging, "costs", allocates)
    beyond = at_limit | {"l": np.arange(1.0, 12.0)}
    with pytest.raises(UserError, match=f"more than the limit of {MAX_EVALUATIONS:,}"):
        Debugging.check(beyond)
    assert KTask.evaluations(_params(KTask) | {"k": np.arange(1.0, 11.0)}) == 10  # one price per value


# -- groups, load and schedules ---------------------------------------------------------------------------


def _groups(exercise, variant, params, seed=0):
    """The recorded groups in order, each as {call: count}."""
    order = []

    class Ordered(CallRecorder):
        def group(self, calls):
            super().group(calls)
            order.append(dict(as_group(calls)))

    getattr(exercise, variant)(params, Ordered(), np.random.default_rng(seed))
    return order


def test_ktask_groups_batch_every_input_and_spread_them_over_the_specialists():
    p = _params(KTask, k=3, n=300, c=20, out=5, system_prompt=7, load=8)
    assert _groups(KTask, "optimistic", p) == [{Call("generalist", 307, 5): 8}]
    delegator, specialists = _groups(KTask, "optimized", p, seed=4)
    assert delegator == {Call("delegator", 27, 1): 8}
    assert specialists == {Call("specialist", 307, 5, model=0): 3, Call("specialist", 307, 5, model=1): 3,
                           Call("specialist", 307, 5, model=2): 2}  # 8 = 3 + 3 + 2, whatever the draw


def test_debugging_groups_follow_the_pseudocode():
    k, l, b, r, s, load = 3, 10, 2, 4, 5, 2
    p = _params(Debugging, k=k, l=l, b=b, report=r, system_prompt=s, load=load)
    n = k * l
    assert _groups(Debugging, "optimistic", p) == [  # each round's report, then its rewrite, for every input
        {Call("qa", s + n, r): load}, {Call("developer", s + n + r, n): load},
        {Call("qa", s + 2 * n + r, r): load}, {Call("developer", s + 2 * n + 2 * r, n): load}]
    assert _groups(Debugging, "optimized", p) == [  # the focused pass, then every fix, at once
        {Call("qa", s + l, r): load * k}, {Call("developer", s + l + r, l): load * b}]


def test_evolution_generations_are_groups_of_lambda_mutants_per_running_search():
    p = _params(Evolution, k=3, l=8, p=0.5, lam=4, load=5)
    for variant, call in (("optimistic", Call("mutator", 24, 24)), ("optimized", Call("mutator", 8, 8))):
        groups = _groups(Evolution, variant, p, seed=2)
        running = [group[call] // 4 for group in groups]
        assert all(group.keys() == {call} and group[call] % 4 == 0 for group in groups)
        assert running[0] == 5 and running == sorted(running, reverse=True)  # searches only ever finish


@pytest.mark.parametrize("variant, generations", [
    ("optimistic", lambda k, p, lam: 1 / (1 - (1 - p**k) ** lam)),
    ("optimized", lambda k, p, lam: k / (1 - (1 - p) ** lam)),
])
def test_evolution_expected_generations_with_lambda_mutants(variant, generations):
    k, chance, lam = 3, 0.4, 3
    p = _params(Evolution, k=k, p=chance, lam=lam)
    counts = [len(_groups(Evolution, variant, p, seed)) for seed in range(3000)]
    expected = generations(k, chance, lam)
    assert abs(np.mean(counts) - expected) < 4 * np.std(counts) / np.sqrt(len(counts))
    assert float(Evolution.expected_calls(p)[variant]) == pytest.approx(lam * expected)


def test_lambda_one_and_load_one_are_todays_closed_forms_exactly(fitted_pricing):
    for exercise in EXERCISES.values():
        p = _params(exercise) | {"k": np.arange(1.0, 9.0)}
        before = {name: value for name, value in p.items() if name not in ("load", "lam")}
        for pricing in (PAPER, fitted_pricing):
            today = exercise.costs(p, pricing)
            for variant in ("optimistic", "optimized"):
                for role, cost in today[variant].items():
                    again = exercise.costs(before | {"load": 1.0, "lam": 1.0}, pricing)[variant][role]
                    assert np.array_equal(again, cost)
    assert np.array_equal(Evolution.costs(_params(Evolution), PAPER)["optimistic"]["mutator"],
                          0.5**-8 * PAPER.price("mutator", 8 * 32, 8 * 32))


SCHEDULES = [Schedule("parallel", None, 1), Schedule("parallel", 3, 1), Schedule("parallel", 2, 4),
             Schedule("parallel", 1, 2), Schedule("parallel", 5, 1000)]


@pytest.fixture(scope="module")
def batched_pricing():
    from tests.fitted import cost_model

    return FittedPricing(cost_model(surfaces=True))


@pytest.mark.parametrize("schedule", SCHEDULES, ids=str)
@pytest.mark.parametrize("name, overrides", [("ktask", {"k": 3, "load": 7}), ("ktask", {"k": 8, "load": 3}),
                                             ("ktask", {"k": 4, "load": 1, "n": 9}),
                                             ("debugging", {"k": 5, "b": 3, "load": 3}),
                                             ("debugging", {"k": 2, "b": 2, "l": 3, "load": 1})])
def test_closed_form_equals_the_recorded_groups_under_a_schedule(name, overrides, schedule, batched_pricing):
    exercise = EXERCISES[name]
    p = _params(exercise, **overrides)
    for pricing in (PAPER, batched_pricing):
        for measure in MEASURES:
            priced_by = schedule.priced_in(measure)
            closed = exercise.costs(p, pricing, priced_by)
            for variant in ("optimistic", "optimized"):
                groups = _record(exercise, variant, p).groups.items()
                recorded = priced_by.price_groups(groups, pricing, exercise.role_sizes(p))
                assert recorded.keys() == closed[variant].keys()
                for role, cost in recorded.items():
                    assert float(closed[variant][role]) == pytest.approx(cost, rel=1e-12), (variant, role, measure)


@pytest.mark.parametrize("overrides", [{"k": 3, "lam": 2, "load": 1}, {"k": 3, "lam": 1, "load": 4},
                                       {"k": 2, "p": 0.3, "lam": 3, "load": 6}])
def test_evolution_closed_form_is_the_mean_of_the_recorded_groups_under_a_schedule(overrides, batched_pricing):
    p = _params(Evolution, l=8, **overrides)
    schedules = (SEQUENTIAL, Schedule("parallel", 4, 2, "device_time"), Schedule("parallel", 4, 2, "makespan"))
    for variant in ("optimistic", "optimized"):
        runs = [_record(Evolution, variant, p, seed).groups.items() for seed in range(1500)]
        for schedule in schedules:
            totals = schedule.price_runs(runs, batched_pricing, {"mutator": 1.0})
            error = np.std(totals) / np.sqrt(len(totals))
            closed = float(Evolution.costs(p, batched_pricing, schedule)[variant]["mutator"])
            assert abs(np.mean(totals) - closed) < 4 * error, (variant, schedule)


def test_evolution_sums_over_the_searches_running_are_the_closed_form_at_one_search(batched_pricing):
    k = np.arange(1.0, 7.0)
    schedule = Schedule("parallel", 2, 1, "makespan")

    def generation(n):  # 3 mutants of each running search, reading and writing n tokens
        return lambda u: schedule.group(batched_pricing, "mutator", n[..., None], n[..., None], 3 * u, 1.0)

    closed = Evolution.costs(_params(Evolution, lam=3) | {"k": k}, batched_pricing, schedule)  # load 1
    assert _global_searches(k, 0.5, 3.0, np.ones(6), generation(k * 32)) == pytest.approx(
        closed["optimistic"]["mutator"], rel=1e-12)
    assert _local_searches(k, 0.5, 3.0, np.ones(6), generation(np.full(6, 32.0))) == pytest.approx(
        closed["optimized"]["mutator"], rel=1e-12)


def test_parallel_makespan_under_the_paper_primitive_is_the_textbook_depth():
    """Unlimited batches and devices enough: a group costs its longest call, so a program its depth."""
    wide = Schedule("parallel", None, 10**6, "makespan")
    k = np.array([2.0, 8.0, 32.0, 128.0])
    debugging = Debugging.costs(_params(Debugging, b=2) | {"k": k, "load": 16.0}, PAPER, wide)["optimized"]
    depth = PAPER.price("qa", 64, 16) + PAPER.price("developer", 64 + 16, 64)  # one report, then one fix
    assert sum(debugging.values()) == pytest.approx(np.full(4, depth))  # independent of k (and of the load)
    ktask = KTask.costs(_params(KTask) | {"k": k, "load": 64.0}, PAPER, wide)
    assert ktask["optimistic"]["generalist"] == pytest.approx(k * PAPER.price("generalist", 512, 8))
    assert ktask["optimized"]["specialist"] == pytest.approx(np.full(4, PAPER.price("specialist", 512, 8)))
    evolution = Evolution.costs(_params(Evolution, lam=4) | {"k": k[:2]}, PAPER, wide)["optimized"]["mutator"]
    assert evolution == pytest.approx(k[:2] / (1 - 0.5**4) * PAPER.price("mutator", 32, 32))  # generations deep
    one_device = Schedule("parallel", None, 1, "makespan")
    assert KTask.costs(_params(KTask, k=8, load=64), PAPER, one_device)["optimized"]["specialist"] == \
           pytest.approx(8 * PAPER.price("specialist", 512, 8))  # a batch per specialist, one after another


def test_the_evolution_sums_are_bounded_before_they_start(monkeypatch):
    schedule = Schedule("parallel", None, 1, "makespan")
    Evolution.check(_params(Evolution, load=16) | {"k": np.arange(1.0, 13.0)}, schedule)
    monkeypatch.setattr(Evolution, "costs", staticmethod(lambda *a: pytest.fail("priced")))
    with pytest.raises(UserError, match="a parallel schedule prices the searches still running"):
        Evolution.check(_params(Evolution, load=1000, p=0.01) | {"k": np.arange(1.0, 13.0)}, schedule)
    Evolution.check(_params(Evolution, load=1000, p=0.01) | {"k": np.arange(1.0, 13.0)})  # sequential: linear


class _Ordered:
    """An LLM backend that keeps every call, in order, with its segments and output."""

    def __init__(self):
        self.calls = []

    def __call__(self, role, n_in, n_out):
        self.group([Call(role, n_in, n_out)])

    def group(self, calls):
        self.calls.extend(calls)


def _ordered(exercise, variant, params, seed=0):
    llm = _Ordered()
    getattr(exercise, variant)(params, llm, np.random.default_rng(seed))
    return llm.calls


@pytest.mark.parametrize("name", ["ktask", "debugging", "evolution"])
@pytest.mark.parametrize("s", [0, 13])
def test_every_call_reads_the_system_prompt_first_as_a_named_segment(name, s):
    exercise = EXERCISES[name]
    p = _params(exercise, k=3, b=2, load=2, system_prompt=s)
    for variant in ("optimistic", "optimized"):
        calls = _ordered(exercise, variant, p)
        assert calls and all(sum(tokens for _, tokens in call.segments) <= call.n_in for call in calls)
        leading = {call.segments[0] for call in calls}
        assert leading == {("system", s)} if s else all(name != "system" for name, _ in leading)
        if exercise.stochastic:  # every call: the system prompt, then the solution or block
            assert sum(len(call.segments) for call in calls) == len(calls) * (1 + (s > 0))


def test_segments_and_outputs_leave_the_recorded_calls_as_they_were():
    assert Call("qa", 10, 2, segments=(("system", 4),), output="r") == Call("qa", 10, 2)
    assert hash(Call("qa", 10, 2, segments=(("system", 4),))) == hash(Call("qa", 10, 2))
    assert as_group([Call("qa", 10, 2, segments=(("a", 3),)), Call("qa", 10, 2, segments=(("b", 3),))]) == \
           ((Call("qa", 10, 2), 2),)


def test_the_chat_history_reads_the_previous_call_its_output_and_the_new_piece():
    k, l, b, r, s = 2, 5, 3, 4, 6
    calls = _ordered(Debugging, "optimistic", _params(Debugging, k=k, l=l, b=b, report=r, system_prompt=s, load=2))
    by_input = [[call for call in calls if any(name.startswith(f"code{t}") for name, _ in call.segments)]
                for t in range(2)]
    for t, chat in enumerate(by_input):
        assert [call.role for call in chat] == ["qa", "developer"] * b
        assert chat[0].segments == (("system", s), (f"code{t}", k * l)) and chat[0].output == f"report{t}.1"
        for before, after in zip(chat, chat[1:]):
            assert after.segments[:-1] == before.segments and after.segments[-1] == (before.output, before.n_out)
            assert sum(tokens for _, tokens in after.segments) == after.n_in  # the whole history is named
        assert [call.output for call in chat] == [f"{piece}{t}.{i}" for i in range(1, b + 1)
                                                  for piece in ("report", "rewrite")]


def test_the_focused_calls_name_their_function_and_its_report():
    calls = _ordered(Debugging, "optimized", _params(Debugging, k=3, l=5, b=2, report=4, system_prompt=0), seed=1)
    reports = [call for call in calls if call.role == "qa"]
    assert [(call.segments, call.output) for call in reports] == [((("f0.%d" % j, 5),), f"report0.{j}")
                                                                   for j in range(3)]
    for fix in (call for call in calls if call.role == "developer"):
        (function, _), (report, tokens) = fix.segments
        assert report == "report" + function[1:] and tokens == 4


def test_mutants_of_an_unchanged_solution_read_the_same_named_solution():
    p = _params(Evolution, k=6, l=3, p=0.5, system_prompt=0)
    calls = _ordered(Evolution, "optimistic", p, seed=0)  # 96 generations, 4 versions of the solution
    versions = [call.segments[0][0] for call in calls]
    assert versions[0] == "solution0.0" and len(set(versions)) == 4 and len(versions) == 96
    assert versions == sorted(versions, key=lambda name: int(name.split(".")[1]))  # versions only move on
    blocks = [call.segments[0] for call in _ordered(Evolution, "optimized", p, seed=3)]
    assert [name for name, _ in dict.fromkeys(blocks)] == [f"block0.{i}" for i in range(6)]
