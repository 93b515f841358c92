"""Where an optimized decomposition starts to pay: cost of both variants along one parameter.

For an exercise (``profiler.lba.exercises``), a pricing (``profiler.lba.pricing``), one varied
parameter and the others fixed, each grid value gets the optimistic and the optimized
cost (closed form, every role's part), their ratio ``optimistic / optimized`` (above 1: the
decomposition wins) and the positions the longest call of either variant needs
(``positions_needed``): beyond the lengths the cost model measured its price is
extrapolated, and beyond the model's maximum positions it is the price of a call that model
cannot make (a longer-context model of that cost could). The break-even is where the ratio
crosses 1 going up the grid, interpolated linearly in ``log(ratio)`` between the two grid
values around it; without a crossing the document (``BreakevenDocument``) says which
variant wins throughout.

``ratio_map`` prices a 2-D grid of two parameters in one vectorised evaluation.
``monte_carlo`` runs the programs themselves over seeds (the oracle's draws), for the
spread an expected cost hides.

Prices follow a schedule (``profiler.lba.schedule``): the paper's sequential sum by default.
Under a parallel one, the document keeps the sequential sum in its rows and adds the
schedule and one document per price (``prices``: device time, then makespan), each with its
own rows and break-even. Under a sequential one with prefix reuse (``Schedule.reuse``) the rows
are priced by replaying the programs through a prefix cache (``profiler.lba.reuse``; a pricing
without a cache, as the paper's primitive, keeps its closed forms) and the document records
``reuse``; a map under reuse leaves blank the cells whose replay takes more than an equal share of
``reuse.REPLAY_WORK``.

What a user gives (``--values``, ``--set``) is read here, and refused in one line when it is
not a finite number in its parameter's range (``Param.problem``); work that grows with a
parameter is bounded before it starts: at most ``MAX_VALUES`` grid values, at most
``MAX_EVALUATIONS`` call prices an evaluation (``Exercise.check_work``), and programs run
call by call only when their expected calls (``Exercise.expected_calls``) fit
``MONTE_CARLO_CALLS`` a variant and value and ``SIMULATED_CALLS`` a sweep, and the segments
those calls name (``Exercise.expected_segments``: the chat history's grow with its rounds) fit
``MONTE_CARLO_SEGMENTS`` and ``SIMULATED_SEGMENTS``. A cost that overflows a float is refused
rather than printed.
"""

from __future__ import annotations

import functools
import math
from dataclasses import replace

import numpy as np

from profiler.errors import UserError
from profiler.lba.breakeven_document import BreakevenDocument, BreakevenRow, PracticalComparison, Spread
from profiler.lba.calls import CallRecorder, TooManyCalls
from profiler.lba.exercises import EXERCISES, VARIANTS, Exercise
from profiler.lba.pricing import PaperPrimitive, Pricing
from profiler.lba.reuse import REPLAY_WORK, cell_work, price_replayed, replay, replay_costs, reuse_notes
from profiler.lba.schedule import MEASURES, SEQUENTIAL, Schedule


def exercise_named(name: str) -> type[Exercise]:
    try:
        return EXERCISES[name]
    except KeyError:
        raise UserError(f"unknown exercise {name!r}: one of {', '.join(EXERCISES)}, all") from None


MAX_VALUES = 1_000  # values in one grid: a table of more is read by nobody (and takes rich seconds to print)


def parse_values(text: str, name: str) -> list[float]:
    """``2,4,8`` or an integer range ``1:12`` (both ends included): finite numbers, at most
    ``MAX_VALUES`` of them (a range is counted before it is made). Whether each suits the
    parameter ``name`` is the exercise's check (``Exercise.check``)."""
    expected = f"--values {text!r} for {name}: expected a list like 2,4,8 or a range like 1:12"
    try:
        if ":" in text:
            lo, hi = (int(part) for part in text.split(":"))
            if hi < lo:
                raise UserError(f"--values {text}: the range must go up (lo:hi)")
            values = hi - lo + 1
            if values > MAX_VALUES:
                raise UserError(f"--values {text}: {values:,} values, more than the limit of {MAX_VALUES:,}")
            return [float(v) for v in range(lo, hi + 1)]
        parts = text.split(",")
        if len(parts) > MAX_VALUES:
            raise UserError(f"--values: {len(parts):,} values, more than the limit of {MAX_VALUES:,}")
        values = [float(part) for part in parts]
    except ValueError:
        raise UserError(expected) from None
    if not all(map(math.isfinite, values)):
        raise UserError(f"{expected} of finite numbers")
    return values


def parse_settings(exercise: type[Exercise], settings: list[str], vary: str | None = None) -> dict[str, float]:
    """``name=value`` pairs over the exercise's defaults, each in its parameter's range; ``vary``, the
    parameter a grid gives, may not be set as well."""
    params, declared = exercise.defaults(), exercise.all_params()
    for setting in settings:
        name, _, text = setting.partition("=")
        if name not in params:
            raise UserError(f"{exercise.name} has no parameter {name!r}: one of {', '.join(params)}")
        if name == vary:
            raise UserError(f"--set {setting}: {name} is the varied parameter (--vary {name}): give it with --values")
        try:
            value = float(text)
        except ValueError:
            raise UserError(f"--set {setting!r}: expected {name}=NUMBER") from None
        problem = declared[name].problem(value)
        if problem:
            raise UserError(f"--set {setting}: {exercise.name}: {problem}")
        params[name] = value
    return params


def check_variable(exercise: type[Exercise], name: str) -> None:
    if name not in exercise.all_params():
        raise UserError(f"{exercise.name} has no parameter {name!r} to vary: one of {', '.join(exercise.all_params())}")


def check_grid(exercise: type[Exercise], vary: str, values: list[float], fixed: dict,
               schedule: Schedule = SEQUENTIAL) -> None:
    """One-line UserError unless ``values`` of ``vary`` (1 to ``MAX_VALUES`` of them) with ``fixed`` are
    parameters the programs can run with, in work a sweep under ``schedule`` may take (``Exercise.check``)."""
    check_variable(exercise, vary)
    if not 0 < len(values) <= MAX_VALUES:
        raise UserError(f"{exercise.name}: {len(values):,} values of {vary}: give 1 to {MAX_VALUES:,}")
    exercise.check(fixed | {vary: np.asarray(sorted(set(values)), dtype=float)}, schedule)


def evaluate(exercise: type[Exercise], params: dict, pricing: Pricing, schedule: Schedule = SEQUENTIAL) -> dict:
    """Costs of both variants for (arrays of) ``params`` in ``schedule``'s measure: per role, totals, ratio,
    and the positions the longest call needs (``Exercise.longest_context``) with whether that is beyond what
    a role's cost model measured (``extrapolated``) or its model has (``beyond_max_positions``)."""
    params = {name: np.asarray(value, dtype=float) for name, value in params.items()}
    exercise.check_work(params, schedule)
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is refused below, in words
        costs = _costs(exercise, params, pricing, schedule)
    shape = np.broadcast_shapes(*(v.shape for v in params.values()))
    roles = {variant: {role: np.broadcast_to(cost, shape) for role, cost in costs[variant].items()}
             for variant in VARIANTS}
    totals = {variant: sum(roles[variant].values()) for variant in VARIANTS}
    for variant in VARIANTS:
        _check_finite(exercise, params, shape, variant, totals[variant], pricing.unit)
    longest = exercise.longest_context(params)
    extrapolated, impossible = np.zeros(shape, dtype=bool), np.zeros(shape, dtype=bool)
    for role, positions in longest.items():
        extrapolated |= np.broadcast_to(positions > pricing.longest_measured(role), shape)
        impossible |= np.broadcast_to(positions > pricing.max_positions(role), shape)
    return {"roles": roles, "totals": totals, "ratio": totals["optimistic"] / totals["optimized"],
            "longest_context": np.broadcast_to(functools.reduce(np.maximum, longest.values()), shape),
            "extrapolated": extrapolated, "beyond_max_positions": impossible}


def replays(pricing: Pricing, schedule: Schedule) -> bool:
    """Whether ``schedule``'s prices come from replaying the programs: prefix reuse, by a pricing with a cache."""
    return schedule.reuse is not None and pricing.cache


def _costs(exercise: type[Exercise], params: dict, pricing: Pricing, schedule: Schedule):
    """The closed forms; under prefix reuse, the programs replayed through a prefix cache, by a pricing that has
    one (without, nothing is reused: the closed forms)."""
    if replays(pricing, schedule):
        return replay_costs(exercise, params, pricing, schedule.reuse)
    return exercise.costs(params, pricing, replace(schedule, reuse=None))


def _check_finite(exercise: type[Exercise], params: dict, shape: tuple, variant: str, cost, unit: str) -> None:
    """A one-line UserError naming the values where ``variant``'s cost is no finite number (it overflows a
    float, e.g. the global mutation's ``p^-k`` steps at a large ``k``)."""
    finite = np.isfinite(cost)
    if np.all(finite):
        return
    at = np.unravel_index(int(np.argmin(finite)), shape) if shape else ()
    where = ", ".join(f"{name}={np.broadcast_to(value, shape)[at]:g}" for name, value in params.items()
                      if value.ndim) or ", ".join(f"{name}={value:g}" for name, value in params.items())
    raise UserError(f"{exercise.name}: the {variant} cost at {where} is not a finite number of {unit} (beyond "
                    f"{np.finfo(float).max:.3g}): give smaller values")


def _roles(exercise: type[Exercise]) -> list[str]:
    return sorted({role for variant in VARIANTS for role in exercise.roles[variant]})


def _resized(exercise: type[Exercise], params: dict, pricing: Pricing) -> bool:
    """Whether a role without its own cost model runs at another size than the base model."""
    sizes = exercise.role_sizes({name: np.asarray(value, dtype=float) for name, value in params.items()})
    return any(np.any(size != 1) for role, size in sizes.items() if role not in pricing.role_models)


def crossing(values, ratios) -> tuple[float | None, str | None]:
    """The break-even along ``values``, or ``(None, winner)`` when one variant wins throughout
    (``winner`` None when the ratio is 1 throughout or goes down through 1)."""
    values, log_ratio = np.asarray(values, dtype=float), np.log(np.asarray(ratios, dtype=float))
    for i in range(1, len(values)):
        if log_ratio[i - 1] <= 0 < log_ratio[i]:
            span = log_ratio[i] - log_ratio[i - 1]
            return float(values[i - 1] + (values[i] - values[i - 1]) * -log_ratio[i - 1] / span), None
    if np.all(log_ratio > 0):
        return None, "optimized"
    if np.all(log_ratio < 0):
        return None, "optimistic"
    return None, None


def sweep(exercise: type[Exercise], vary: str, values: list[float], fixed: dict, pricing: Pricing,
          schedule: Schedule = SEQUENTIAL) -> BreakevenDocument:
    """The ``breakeven --json`` document: both variants at each value of ``vary``, summed sequentially (with
    prefix reuse where ``schedule`` has it, recorded as ``reuse``); under a parallel ``schedule``, with
    ``schedule`` and ``prices`` (a document per measure) added."""
    check_grid(exercise, vary, values, fixed, schedule)
    if schedule.reuse is not None:
        document = _priced_sweep(exercise, vary, values, fixed, pricing, schedule)
        document.reuse = schedule.reuse.to_json()
        return document
    document = _priced_sweep(exercise, vary, values, fixed, pricing, SEQUENTIAL)
    if schedule.parallel:
        document.schedule = schedule.to_json()
        document.prices = [_priced_sweep(exercise, vary, values, fixed, pricing, schedule.priced_in(measure))
                           for measure in MEASURES]
    return document


def _priced_sweep(exercise: type[Exercise], vary: str, values: list[float], fixed: dict, pricing: Pricing,
                  schedule: Schedule) -> BreakevenDocument:
    grid = np.asarray(sorted(set(values)), dtype=float)
    result = evaluate(exercise, fixed | {vary: grid}, pricing, schedule)
    rows = [BreakevenRow(
        value=float(value), cost={variant: float(result["totals"][variant][i]) for variant in VARIANTS},
        ratio=float(result["ratio"][i]),
        roles={variant: {role: float(cost[i]) for role, cost in result["roles"][variant].items()}
               for variant in VARIANTS},
        longest_context=int(result["longest_context"][i]), extrapolated=bool(result["extrapolated"][i]),
        beyond_max_positions=bool(result["beyond_max_positions"][i])) for i, value in enumerate(grid)]
    value, winner = crossing(grid, result["ratio"])
    assumptions = pricing.assumptions(_resized(exercise, fixed | {vary: grid}, pricing), schedule)
    if replays(pricing, schedule):
        assumptions += reuse_notes(exercise, schedule.reuse)
    return BreakevenDocument(
        exercise=exercise.name, vary=vary, params={name: v for name, v in fixed.items() if name != vary},
        pricing=pricing.name, unit=pricing.unit, asymptotic=exercise.asymptotic, rows=rows, breakeven=value,
        winner_throughout=winner,
        assumptions=assumptions + ([schedule.describe(pricing, _roles(exercise))] if schedule.parallel else []),
        measure=schedule.measure if schedule.parallel else None)


def practical_comparison(exercise: type[Exercise], params: dict, pricing: Pricing,
                         schedule: Schedule = SEQUENTIAL) -> PracticalComparison:
    """The ratio at ``params`` priced by ``pricing`` and by the paper's primitive (in ``schedule``'s measure),
    and the paper's order of improvement there: how far real costs move the asymptotic answer at a
    practical size."""
    return PracticalComparison(params=params, ratio=float(evaluate(exercise, params, pricing, schedule)["ratio"]),
                               paper_ratio=float(evaluate(exercise, params, PaperPrimitive(), schedule)["ratio"]),
                               order=exercise.asymptotic, order_value=float(exercise.asymptotic_ratio(params)))


def ratio_map(exercise: type[Exercise], fixed: dict, pricing: Pricing, schedule: Schedule = SEQUENTIAL) -> dict:
    """The ratio over the exercise's default 2-D grid of two parameters, the others fixed, in ``schedule``'s
    measure (NaN where ``feasible`` is not, and, replayed under prefix reuse, where a cell's replay takes more
    than its equal share of ``REPLAY_WORK``: ``replayed`` says where it was priced)."""
    (x_name, xs), (y_name, ys) = exercise.map_axes
    x_grid, y_grid = np.meshgrid(xs.astype(float), ys.astype(float))  # rows: y, columns: x
    params = fixed | {x_name: x_grid, y_name: y_grid}
    feasible = np.broadcast_to(exercise.feasible(params), x_grid.shape)
    exercise.check({name: np.broadcast_to(value, x_grid.shape)[feasible] for name, value in params.items()},
                   schedule)
    result = {"x": x_name, "xs": xs, "y": y_name, "ys": ys}
    if not replays(pricing, schedule):
        priced = evaluate(exercise, params, pricing, schedule)  # every cell priced (the work checked there); b > k NaN
        return result | {"ratio": np.where(feasible, priced["ratio"], np.nan), "extrapolated": priced["extrapolated"]}
    cells = {name: np.broadcast_to(value, x_grid.shape) for name, value in params.items()}
    with np.errstate(over="ignore"):  # a cell of more work than a float holds is not replayed
        replayed = feasible & (cell_work(exercise, cells) <= REPLAY_WORK / x_grid.size)
    ratio, extrapolated = np.full(x_grid.shape, np.nan), np.zeros(x_grid.shape, dtype=bool)
    if np.any(replayed):
        priced = evaluate(exercise, {name: value[replayed] for name, value in cells.items()}, pricing, schedule)
        ratio[replayed], extrapolated[replayed] = priced["ratio"], priced["extrapolated"]
    return result | {"ratio": ratio, "extrapolated": extrapolated, "replayed": replayed}


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
