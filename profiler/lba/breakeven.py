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
``profiler.lba.monte_carlo`` runs the programs themselves over seeds (the oracle's draws), for
the spread an expected cost hides.

Prices follow a schedule (``profiler.lba.schedule``): the paper's sequential sum by default.
Under a parallel one, the document keeps the sequential sum in its rows and adds the
schedule and one document per price (``prices``: device time, then makespan), each with its
own rows and break-even. Under a sequential one with prefix reuse (``Schedule.reuse``) the rows
are priced by replaying the programs through a prefix cache (``profiler.lba.reuse``; a pricing
without a cache, as the paper's primitive, keeps its closed forms) and the document records
``reuse``; a map under reuse leaves blank the cells whose replay takes more than an equal share of
``reuse.REPLAY_WORK``.

What a user gives (``--values``, ``--set``) is read and checked by ``profiler.lba.parameters``; work
that grows with a parameter is bounded before it starts: at most ``MAX_VALUES`` grid values
(``check_grid``), at most ``MAX_EVALUATIONS`` call prices an evaluation (``Exercise.check_work``).
A cost that overflows a float is refused rather than printed.
"""

from __future__ import annotations

import functools
from dataclasses import replace

import numpy as np

from profiler.errors import UserError
from profiler.lba.breakeven_document import BreakevenDocument, BreakevenRow, PracticalComparison
from profiler.lba.exercises import VARIANTS, Exercise
from profiler.lba.parameters import check_grid
from profiler.lba.pricing import PaperPrimitive, Pricing
from profiler.lba.reuse import REPLAY_WORK, cell_work, replay_costs, reuse_notes
from profiler.lba.schedule import MEASURES, SEQUENTIAL, Schedule


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
