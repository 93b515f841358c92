"""The programs themselves run over seeds (the oracle's draws), their calls recorded and priced: the
spread an expected cost hides.

``monte_carlo`` gives each variant's mean and 5-95% spread at one point; ``add_monte_carlo`` puts
them on every row of a break-even document (``profiler.lba.breakeven``); ``priced_runs`` prices each
run (``validate`` sets its interval of the mean by it). Calls are priced one after another, each
distinct call once, or in a parallel schedule's groups (``profiler.lba.schedule``), or replayed
through a prefix cache under its reuse (``profiler.lba.reuse``), in the pricing's unit.

Programs run call by call only when their expected calls (``Exercise.expected_calls``) fit
``MONTE_CARLO_CALLS`` a variant and value and ``SIMULATED_CALLS`` a sweep, and the segments those
calls name (``Exercise.expected_segments``: the chat history's grow with its rounds) fit
``MONTE_CARLO_SEGMENTS`` and ``SIMULATED_SEGMENTS``.
"""

from __future__ import annotations

import math

import numpy as np

from profiler.errors import UserError
from profiler.lba.breakeven import replays
from profiler.lba.breakeven_document import BreakevenDocument, Spread
from profiler.lba.calls import CallRecorder, TooManyCalls
from profiler.lba.exercises import VARIANTS, Exercise
from profiler.lba.pricing import Pricing
from profiler.lba.reuse import price_replayed, replay
from profiler.lba.schedule import SEQUENTIAL, Schedule

# Programs run call by call (each call recorded and priced, about 20 us here): at most this many calls
# in all of one variant's runs at one value (the global mutation at a large k makes millions a run:
# such a value is skipped), and at most ``SIMULATED_CALLS`` expected in all the runs one sweep makes.
MONTE_CARLO_CALLS = 500_000
SIMULATED_CALLS = 1_000_000
# The segments those calls name (each checked when its call is made, and matched against a prefix cache
# under reuse: about 0.5 us and 2 us here): the chat history's round i names 2i of them, so a run of b
# rounds names about 2 b^2. Limits of the same kind: only the chat's quadratic growth reaches them.
MONTE_CARLO_SEGMENTS = 2_000_000
SIMULATED_SEGMENTS = 4_000_000


def check_simulation(exercise: type[Exercise], vary: str, values: list[float], params: dict, runs: int, what: str,
                     skipped_over: float = math.inf, skipped_segments: float = math.inf) -> None:
    """One-line UserError, before any program runs, when ``runs`` runs of both variants at each of
    ``values`` (for ``what``) would make more than ``SIMULATED_CALLS`` calls in expectation
    (``Exercise.expected_calls``), or name more than ``SIMULATED_SEGMENTS`` segments
    (``Exercise.expected_segments``); a variant and value over ``skipped_over`` calls or
    ``skipped_segments`` segments is left out (it will be skipped)."""
    grid = np.asarray(values, dtype=float)
    expected_calls = exercise.expected_calls(params | {vary: grid})
    expected_segments = exercise.expected_segments(params | {vary: grid})
    calls = segments = 0.0
    for variant in VARIANTS:
        per_value = runs * np.broadcast_to(np.asarray(expected_calls[variant], dtype=float), grid.shape)
        named = runs * np.broadcast_to(np.asarray(expected_segments[variant], dtype=float), grid.shape)
        kept = (per_value <= skipped_over) & (named <= skipped_segments)
        calls += float(np.sum(per_value[kept]))
        segments += float(np.sum(named[kept]))
    runs_at = f"{what}: {exercise.name}'s {runs:,} runs of each variant at {len(grid):,} value(s) of {vary}"
    if calls > SIMULATED_CALLS:
        raise UserError(f"{runs_at} would make {calls:,.0f} calls in expectation, more than the limit of "
                        f"{SIMULATED_CALLS:,}: fewer seeds or values")
    if segments > SIMULATED_SEGMENTS:
        raise UserError(f"{runs_at} would name {segments:,.0f} segments of context in expectation (the chat history's "
                        f"calls name it piece by piece), more than the limit of {SIMULATED_SEGMENTS:,}: fewer seeds "
                        "or values")


def add_monte_carlo(exercise: type[Exercise], document: BreakevenDocument, params: dict, pricing: Pricing,
                    seeds: int, schedule: Schedule = SEQUENTIAL) -> None:
    """``monte_carlo`` spreads on every row of ``document`` (priced sequentially, with ``schedule``'s prefix reuse
    where it has one) and, under a parallel ``schedule``, of each of its ``prices`` in its measure (the programs
    run again for each); refused first when its runs would be too many (``check_simulation``)."""
    first = SEQUENTIAL if schedule.reuse is None else schedule
    priced = [(document, first)] + [(price, schedule.priced_in(price.measure)) for price in document.prices or []]
    check_simulation(exercise, document.vary, document.values(), params, seeds * len(priced),
                     f"--monte-carlo {seeds}", skipped_over=MONTE_CARLO_CALLS * len(priced),
                     skipped_segments=MONTE_CARLO_SEGMENTS * len(priced))
    for priced_document, priced_by in priced:
        for row in priced_document.rows:
            row.monte_carlo = monte_carlo(exercise, params | {document.vary: row.value}, pricing, seeds, priced_by)


def monte_carlo(exercise: type[Exercise], params: dict, pricing: Pricing, seeds: int,
                schedule: Schedule = SEQUENTIAL) -> dict[str, Spread]:
    """Each variant's program run ``seeds`` (at least 1) times with seeded oracle draws, its groups priced
    under ``schedule`` (or its calls replayed through a prefix cache, under its reuse): mean, 5th and 95th
    percentile of its total cost. A variant whose runs would make more than ``MONTE_CARLO_CALLS`` calls in
    all -- expected (``Exercise.expected_calls``), so it is not started, or made, so it is stopped -- or name
    more than ``MONTE_CARLO_SEGMENTS`` segments in expectation gets a ``Spread`` that only says why it was
    skipped."""
    if seeds < 1:
        raise UserError(f"Monte-Carlo runs: {seeds} seeds, at least 1")
    scalars = {name: float(value) for name, value in params.items()}
    exercise.check(scalars)
    expected, named = exercise.expected_calls(scalars), exercise.expected_segments(scalars)
    return {variant: _spread(exercise, variant, scalars, pricing, seeds, float(expected[variant]),
                             float(named[variant]), schedule) for variant in VARIANTS}


def _spread(exercise: type[Exercise], variant: str, params: dict, pricing: Pricing, seeds: int,
            expected_calls: float, expected_segments: float, schedule: Schedule) -> Spread:
    if seeds * expected_calls > MONTE_CARLO_CALLS:
        return Spread(skipped=f"{seeds:,} runs of {expected_calls:,.0f} calls expected each: more than "
                              f"{MONTE_CARLO_CALLS:,} calls in all")
    if seeds * expected_segments > MONTE_CARLO_SEGMENTS:
        return Spread(skipped=f"{seeds:,} runs of {expected_segments:,.0f} segments of context expected each: more "
                              f"than {MONTE_CARLO_SEGMENTS:,} in all")
    try:
        totals = priced_runs(exercise, variant, params, pricing, range(seeds), limit=MONTE_CARLO_CALLS,
                             schedule=schedule)
    except TooManyCalls:
        return Spread(skipped=f"its {seeds:,} runs made more than {MONTE_CARLO_CALLS:,} calls in all")
    p5, p95 = np.percentile(totals, [5, 95])
    return Spread(mean=float(np.mean(totals)), p5=float(p5), p95=float(p95), seeds=seeds)


def price_calls(recorder: CallRecorder, pricing: Pricing, sizes: dict, schedule: Schedule = SEQUENTIAL) -> float:
    """The cost of the calls a program made: one after another, each distinct call priced once; or its groups
    under a parallel ``schedule``, in its measure, each distinct group priced once."""
    if not schedule.parallel:
        return sum(count * float(pricing.price(call.role, call.n_in, call.n_out, sizes[call.role]))
                   for call, count in recorder.counts.items())
    return sum(schedule.price_groups(recorder.groups.items(), pricing, sizes).values())


def priced_runs(exercise: type[Exercise], variant: str, params: dict, pricing: Pricing, seeds,
                limit: int | None = None, schedule: Schedule = SEQUENTIAL) -> list[float]:
    """The cost of ``variant``'s program run once per seed in ``seeds`` (its oracle's draws), calls
    recorded and priced under ``schedule`` (replayed through a prefix cache under its reuse, by a pricing
    with a cache); ``TooManyCalls`` when the runs make more than ``limit`` calls in all."""
    sizes = exercise.role_sizes(params)
    totals, runs, calls = [], [], 0
    if replays(pricing, schedule):
        for seed in seeds:
            recorder = replay(exercise, variant, params, schedule.reuse, seed,
                              limit=None if limit is None else limit - calls)
            totals.append(sum(price_replayed(recorder, pricing, sizes).values()))
            calls += recorder.calls
        return totals
    for seed in seeds:
        recorder = CallRecorder(limit=None if limit is None else limit - calls)
        getattr(exercise, variant)(params, recorder, np.random.default_rng(seed))
        if schedule.parallel:
            runs.append(recorder.groups)
        else:
            totals.append(price_calls(recorder, pricing, sizes))
        calls += recorder.calls
    return schedule.price_runs((groups.items() for groups in runs), pricing, sizes) if schedule.parallel else totals
