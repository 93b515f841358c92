"""A validation's verdict: measured against predicted, and whether the issue's targets are met.

Per row, the measured mean of each variant's runs (seconds), the relative errors ``predicted / measured
- 1`` (of the row's cost, and of each run's calls as made), the measured ratio and break-even
(``summarise``); then the targets (``assess``): every measured cost within ``COST_TOLERANCE`` (or
inside the predicted interval, for a stochastic exercise), leaving out runs made while the machine ran
more than ``SPEED_TOLERANCE`` off its profiled speed (``steady``), and the measured break-even within
one grid step of the predicted one (``grid_position``).
"""

from __future__ import annotations

import numpy as np

from profiler.lba.breakeven import crossing
from profiler.lba.exercises import VARIANTS
from profiler.lba.validation_document import Run, Targets, ValidationDocument

COST_TOLERANCE = 0.10  # predicted total within 10% of measured (the target)
SPEED_TOLERANCE = 0.10  # a run is steady when the reference call before and after it is within 10% of its fit


def steady(run: Run) -> bool:
    """Whether the machine ran within ``SPEED_TOLERANCE`` of its profiled speed around ``run``."""
    return all(abs(speed - 1) <= SPEED_TOLERANCE for speed in (run.speed_before, run.speed_after))


def grid_position(value: float | None, winner: str | None, grid: list[float]) -> float | None:
    """Where a break-even lies along the grid, in grid steps (0 at the first value): a crossing by
    linear interpolation; 'the optimized variant wins throughout' at 0 (the crossing is at or
    before the grid's start), 'the optimistic wins throughout' at the last index."""
    if value is not None:
        return float(np.interp(value, grid, np.arange(len(grid))))
    return {"optimized": 0.0, "optimistic": float(len(grid) - 1)}.get(winner)


def assess(document: ValidationDocument) -> Targets:
    """Whether the issue's targets are met: every measured cost (``COST_TOLERANCE``, or inside the
    predicted interval for a stochastic exercise), and the break-even within one grid step."""
    costs, unsteady = [], 0
    for row in document.rows:
        for variant in VARIANTS:
            measured = row.measured[variant]
            if measured is None:
                continue
            if not all(steady(run) for run in row.runs[variant]):
                unsteady += 1
                continue
            if document.stochastic:
                lo, hi = row.predicted_interval[variant]
                met = lo <= measured <= hi
            else:
                met = abs(row.error[variant]) <= COST_TOLERANCE
            costs.append(met)
    breakeven = None
    if sum(row.measured_ratio is not None for row in document.rows) >= 2:
        predicted = grid_position(document.breakeven, document.winner_throughout, document.values())
        measured = grid_position(document.measured_breakeven, document.measured_winner_throughout, document.values())
        breakeven = predicted is not None and measured is not None and abs(predicted - measured) <= 1
    return Targets(costs_met=sum(costs), costs_checked=len(costs), costs=all(costs) if costs else None,
                   costs_unsteady=unsteady, breakeven=breakeven)


def outside_by_the_draws(document: ValidationDocument) -> list[tuple[float, str, float | None]]:
    """The measured means of a stochastic exercise outside their predicted interval whose runs' calls, as made, were
    priced within ``COST_TOLERANCE`` (``error_given_calls``), as ``(value, variant, draw_quantile)``: the seeds drew
    an unlikely mean (a 5-95% interval leaves out about one value in ten by design; the quantile says how unlikely),
    not a wrong price. Steady runs only, as ``assess`` counts them; none for a deterministic exercise."""
    if not document.stochastic:
        return []
    outside = []
    for row in document.rows:
        for variant in VARIANTS:
            measured, priced = row.measured[variant], row.error_given_calls[variant]
            if measured is None or priced is None or not all(steady(run) for run in row.runs[variant]):
                continue
            lo, hi = row.predicted_interval[variant]
            if not lo <= measured <= hi and abs(priced) <= COST_TOLERANCE:
                outside.append((row.value, variant, row.draw_quantile[variant]))
    return outside


def summarise(document: ValidationDocument) -> None:
    """Per row the measured means, errors and ratio; the measured break-even; the targets."""
    for row in document.rows:
        for variant in VARIANTS:
            runs = row.runs[variant]
            complete = len(runs) == document.seeds
            measured = float(np.mean([run.latency_s for run in runs])) if complete else None
            row.measured[variant] = measured
            row.error[variant] = row.cost[variant] / measured - 1 if complete else None
            row.error_given_calls[variant] = float(np.mean(
                [run.predicted_s / run.latency_s - 1 for run in runs])) if complete else None
        optimistic, optimized = (row.measured[variant] for variant in VARIANTS)
        row.measured_ratio = optimistic / optimized if None not in (optimistic, optimized) else None
    rows = [row for row in document.rows if row.measured_ratio is not None]
    value, winner = None, None
    if rows:
        value, winner = crossing([r.value for r in rows], [r.measured_ratio for r in rows])
    document.measured_breakeven, document.measured_winner_throughout = value, winner
    document.targets = assess(document)
