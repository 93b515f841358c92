"""Prefix reuse priced by replay: each program's calls served, in order, through a prefix cache.

With prefix caching (``Schedule.reuse``: sequential only) a call's price depends on what earlier
calls of its model left cached (``profiler.lba.prefix_cache``), so no exercise's closed form
gives it. Instead each variant's program is run at each grid value (a distinct combination of
the parameters) with a ``ReplayRecorder``, which serves every call through a fresh
``PrefixCache`` of the schedule's capacity as it is made and counts each distinct
``(call, cached prefix)``; each distinct ``(role, n_in, n_out, cached, size)`` over the whole
grid is then priced once, vectorised per role (``Pricing.price(..., cached=)``), and summed per
role: the same ``Costs`` (variant -> role -> array over the grid) as the closed forms.

- A deterministic exercise (its oracle's draws do not change its calls' lengths or what they
  share) runs once, seed 0.
- A stochastic one (evolution) runs ``RUNS`` times, seeds ``0..RUNS-1`` at every grid value
  (common draws: the grid's values differ by their parameters, not their luck). Its cost is the
  runs' mean cost, corrected by
  the calls its program makes in expectation (``Exercise.expected_calls``, exact) at the slope of a
  run's cost on its calls over the runs (``_expected_cost``: a control variate). The number of
  generations is geometric, as spread as its mean, so the runs' plain mean cost is too; set against
  the calls they made, what is left is what a call costs, which varies little. The estimate is
  exact when a run costs a fixed part plus a fixed price per call: a first call paying the system
  prompt's prefill, then calls that find it cached. (The runs' mean cost per call times the calls
  expected was not: it weighs that first call by the share of first calls among the calls the runs
  made, 20% off at k = 1 with a long prompt.) Where every call of a variant costs the same -- no
  reuse, or none that hits -- it is the closed form.
- The work is bounded before it starts: a replay matches every segment of every call
  (``Exercise.expected_segments``), so the runs' calls and segments in expectation may be at
  most ``REPLAY_WORK`` (``check_replay``, a one-line ``UserError``).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from profiler.errors import UserError
from profiler.lba.calls import Call, TooManyCalls, as_group
from profiler.lba.exercises.base import VARIANTS, Costs, Exercise
from profiler.lba.prefix_cache import PrefixCache, Reuse
from profiler.lba.pricing import Pricing

# Seeded runs of a stochastic program at each grid value. Evolution's cost per call varies little from run
# to run: the estimate of 8 runs is within 1% of the mean of 2,000 other runs at k 1 to 4 with a system prompt
# (2% at k 6, about that mean's own standard error), where the runs' plain mean spreads by 10% to 50%.
RUNS = 8
# Calls and segments a replay may serve in all, in expectation: a call with its segments, made by its
# program, matched, cached and counted takes some 20 us here (evolution's generations, on a quiet
# machine), so the largest replay takes about 10 s.
REPLAY_WORK = 500_000


class ReplayRecorder:
    """An LLM backend (``profiler.lba.calls.LLM``) that serves every call, as it is made, through ``cache``: how
    many times each distinct ``(call, cached prefix)`` was made (``counts``). Calls of a group are served one
    after another, in the order given (a sequential schedule). With a ``limit`` on the calls, the group that
    would pass it raises ``TooManyCalls`` and is not served."""

    def __init__(self, cache: PrefixCache, limit: int | None = None):
        self.cache = cache
        self.counts: Counter[tuple[Call, int]] = Counter()
        self.limit = limit
        self.calls = 0

    def __call__(self, role: str, n_in: int, n_out: int) -> None:
        self.group([Call(role, int(n_in), int(n_out))])

    def group(self, calls: Sequence[Call]) -> None:
        as_group(calls)  # the same checks as a recorded group's
        if self.limit is not None and self.calls + len(calls) > self.limit:
            raise TooManyCalls(f"more than {self.limit:,} calls")
        for call in calls:
            self.counts[(call, self.cache.serve(call))] += 1
        self.calls += len(calls)


def replay(exercise: type[Exercise], variant: str, params: dict, reuse: Reuse, seed: int = 0,
           limit: int | None = None) -> ReplayRecorder:
    """``variant``'s program run once at (scalar) ``params`` with the oracle's draws of ``seed``, its calls
    served through a fresh prefix cache of ``reuse``'s capacity."""
    recorder = ReplayRecorder(PrefixCache(reuse.capacity_tokens), limit)
    getattr(exercise, variant)(params, recorder, np.random.default_rng(seed))
    return recorder


def runs_of(exercise: type[Exercise]) -> int:
    """The runs a replay makes of each program at each grid value: one, or ``RUNS`` for a stochastic one."""
    return RUNS if exercise.stochastic else 1


def cell_work(exercise: type[Exercise], params: dict) -> np.ndarray:
    """Per cell of (arrays of) ``params``: the calls and segments its replay of both variants serves in
    expectation."""
    calls, segments = exercise.expected_calls(params), exercise.expected_segments(params)
    shape = np.broadcast_shapes(*(np.shape(value) for value in params.values()))
    work = sum(np.asarray(calls[variant], dtype=float) + segments[variant] for variant in VARIANTS)
    return runs_of(exercise) * np.broadcast_to(work, shape)


def replay_work(exercise: type[Exercise], params: dict) -> float:
    """The calls and segments the replay of both variants at every cell of ``params`` serves in expectation."""
    return float(np.sum(cell_work(exercise, params)))


def check_replay(exercise: type[Exercise], params: dict) -> None:
    """One-line UserError, before any program runs, when replaying ``params`` serves more than ``REPLAY_WORK``
    calls and segments in expectation."""
    work = replay_work(exercise, params)
    if not work <= REPLAY_WORK:
        raise UserError(f"{exercise.name}: with prefix reuse these values are priced by replaying the programs call "
                        f"by call ({runs_of(exercise):,} run(s) a value), {work:,.0f} calls and segments in "
                        f"expectation, more than the limit of {REPLAY_WORK:,}: give fewer values or smaller ones")


def replay_costs(exercise: type[Exercise], params: dict, pricing: Pricing, reuse: Reuse) -> Costs:
    """Both variants' cost per role at every cell of (arrays of) ``params``, each program replayed through a
    prefix cache (see the module doc), bounded first (``check_replay``)."""
    check_replay(exercise, params)
    shape = np.broadcast_shapes(*(np.shape(value) for value in params.values()))
    names = list(params)
    columns = [np.broadcast_to(np.asarray(params[name], dtype=float), shape).ravel() for name in names]
    cells: dict[tuple[float, ...], list[int]] = defaultdict(list)  # each distinct combination, where it is
    for index, values in enumerate(zip(*columns)):
        cells[values].append(index)
    # per role, each distinct (n_in, n_out, cached, size) in order; per variant and role, (run, entry, count)
    entries: dict[str, dict[tuple[int, int, int, float], int]] = defaultdict(dict)
    weights: dict[tuple[str, str], list[tuple[int, int, int]]] = defaultdict(list)
    runs: dict[tuple[int, str], list[int]] = {}  # (cell, variant) -> its runs' numbers
    run_calls: list[int] = []  # each run's calls
    expected_at: dict[tuple[int, str], float] = {}
    for cell, values in enumerate(cells):
        scalars = dict(zip(names, values))
        sizes = {role: float(size) for role, size in exercise.role_sizes(scalars).items()}
        expected = exercise.expected_calls(scalars)
        for variant in VARIANTS:
            expected_at[(cell, variant)] = float(expected[variant])
            runs[(cell, variant)] = []
            for seed in range(runs_of(exercise)):
                recorder = replay(exercise, variant, scalars, reuse, seed)
                runs[(cell, variant)].append(len(run_calls))
                for (call, cached), count in recorder.counts.items():
                    known = entries[call.role]
                    entry = known.setdefault((call.n_in, call.n_out, cached, sizes[call.role]), len(known))
                    weights[(variant, call.role)].append((len(run_calls), entry, count))
                run_calls.append(recorder.calls)
    prices = {}
    for role, known in entries.items():
        n_in, n_out, cached, size = (np.array(column, dtype=float) for column in zip(*known))
        prices[role] = np.asarray(pricing.price(role, n_in, n_out, size, cached=cached), dtype=float)
    per_run = {key: np.zeros(len(run_calls)) for key in weights}
    for key, triples in weights.items():
        run, entry, count = (np.array(column) for column in zip(*triples))
        np.add.at(per_run[key], run, prices[key[1]][entry] * count)
    calls = np.array(run_calls, dtype=float)
    per_cell = {variant: {role: np.zeros(len(cells)) for role in exercise.roles[variant]} for variant in VARIANTS}
    for (cell, variant), numbers in runs.items():
        for role, cost in per_cell[variant].items():
            run_costs = per_run.get((variant, role), np.zeros(len(run_calls)))[numbers]
            cost[cell] = _expected_cost(run_costs, calls[numbers], expected_at[(cell, variant)], exercise.stochastic)
    spread = np.empty(int(np.prod(shape)), dtype=int)  # each cell of the grid: its distinct combination
    for cell, where in enumerate(cells.values()):
        spread[where] = cell
    return {variant: {role: cost[spread].reshape(shape) for role, cost in roles.items()}
            for variant, roles in per_cell.items()}


def _expected_cost(run_costs: np.ndarray, run_calls: np.ndarray, expected_calls: float, stochastic: bool) -> float:
    """The expected cost of a program from its runs' costs and calls (see the module doc): a deterministic run's
    own; a stochastic program's runs' mean cost corrected by the calls they made against the calls expected, at
    the slope of cost on calls over the runs (a control variate: exact when a run costs a fixed part plus a
    fixed price per call, e.g. a first call paying the system prompt and cheaper calls after it), or in
    proportion where every run made as many calls."""
    if not stochastic:
        return float(run_costs[0])
    spread = float(np.var(run_calls))
    if spread == 0.0:
        return float(np.mean(run_costs)) * expected_calls / float(np.mean(run_calls))
    slope = float(np.mean((run_costs - run_costs.mean()) * (run_calls - run_calls.mean()))) / spread
    return float(np.mean(run_costs)) + slope * (expected_calls - float(np.mean(run_calls)))


def price_replayed(recorder: ReplayRecorder, pricing: Pricing, sizes: dict) -> dict[str, float]:
    """One replayed run's calls priced per role, each distinct ``(call, cached prefix)`` once."""
    roles: dict[str, float] = defaultdict(float)
    for (call, cached), count in recorder.counts.items():
        roles[call.role] += count * float(pricing.price(call.role, call.n_in, call.n_out, sizes[call.role],
                                                        cached=cached))
    return dict(roles)


def reuse_notes(exercise: type[Exercise], reuse: Reuse) -> list[str]:
    """What a replayed price rests on, in words, for a document's assumptions."""
    notes = [reuse.describe() + "; each program's calls replayed one after another through that cache"]
    if exercise.stochastic:
        notes.append(f"{exercise.name} with prefix reuse: each program run {RUNS} times (seeds 0 to {RUNS - 1}) at "
                     "every value; its cost is their mean cost corrected by the calls they made against the calls it "
                     "makes in expectation")
    return notes
