"""How far a system prompt moves an exercise's break-even, with and without prefix reuse.

The paper asks (Sec. 5.1) whether it is reasonable to disregard large constants like the
system prompt. Every call of every exercise reads the prompt first (``("system", s)``,
``profiler.lba.exercises.base``): without reuse each call prefills it again; with reuse
(``Schedule.reuse``, an unbounded cache unless given a capacity) each model computes it once.
``system_prompt_breakevens`` prices the exercise along its main variable (its default grid, the
other parameters fixed) at each prompt length, both ways, and reads off the break-even
(``breakeven.sweep``) and the ratio at the main variable's default value.

A grid value whose longest call (``Exercise.longest_context``) needs more positions than a
role's model has (``Pricing.max_positions``) is left out: its price would be that of a call the
model cannot make. A prompt that leaves no value is skipped, and its rows say why; the rows
list the values priced, so break-evens read on different grids are not mistaken for one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from profiler.lba.breakeven import sweep
from profiler.lba.exercises.base import Exercise
from profiler.lba.prefix_cache import Reuse
from profiler.lba.pricing import Pricing
from profiler.lba.schedule import SEQUENTIAL, Schedule

PROMPTS = (0, 200, 2_000)  # tokens: none, a short instruction, a long one (the three lengths)


@dataclass(frozen=True)
class PromptRow:
    """One prompt length (``system_prompt`` tokens), priced with prefix reuse or without (``reuse``).

    ``breakeven``: the main variable's value where the decomposition starts to pay, or None, with
    ``winner_throughout`` the variant cheaper at every value priced (None when neither);
    ``ratio_at_default``: optimistic / optimized at the main variable's default (None when that value
    was left out); ``values``: the grid values priced; ``skipped``: why none was, else None."""

    system_prompt: int
    reuse: bool
    breakeven: float | None
    winner_throughout: str | None
    ratio_at_default: float | None
    values: tuple[float, ...]
    skipped: str | None = None


@dataclass(frozen=True)
class PromptTable:
    """``exercise`` along ``vary`` (its default ``default``), the other parameters ``params``, priced by
    ``pricing`` (its name): a ``PromptRow`` per prompt length, without reuse then with it."""

    exercise: str
    vary: str
    default: float
    params: dict[str, float]
    pricing: str
    rows: tuple[PromptRow, ...]


def system_prompt_breakevens(exercise: type[Exercise], pricing: Pricing, prompts=PROMPTS, fixed: dict | None = None,
                             capacity_tokens: int | None = None, values=None) -> PromptTable:
    """The break-even of ``exercise`` along its main variable (over ``values``, default its default grid) at each
    of ``prompts`` (tokens), without and with prefix reuse (a cache of ``capacity_tokens``, None: unbounded), the
    other parameters ``fixed`` (default: the exercise's defaults). Pricing with reuse replays the programs
    (``profiler.lba.reuse``): bounded, and refused in one line, as ``breakeven`` is."""
    params = exercise.defaults() | (fixed or {})
    vary, grid = exercise.main, [float(v) for v in (exercise.main_values if values is None else values)]
    default = float(params.pop(vary))
    reusing = Schedule(reuse=Reuse(capacity_tokens))
    rows = []
    for tokens in prompts:
        at = params | {"system_prompt": float(tokens)}
        values, skipped = _fitting(exercise, pricing, at, vary, grid)
        for schedule in (SEQUENTIAL, reusing):
            if skipped:
                rows.append(PromptRow(int(tokens), schedule is reusing, None, None, None, (), skipped))
                continue
            document = sweep(exercise, vary, values, at, pricing, schedule)
            ratio = next((row.ratio for row in document.rows if row.value == default), None)  # priced once
            rows.append(PromptRow(int(tokens), schedule is reusing, document.breakeven, document.winner_throughout,
                                  ratio, tuple(values)))
    return PromptTable(exercise=exercise.name, vary=vary, default=default, params=params, pricing=pricing.name,
                       rows=tuple(rows))


def _fitting(exercise: type[Exercise], pricing: Pricing, params: dict, vary: str,
             grid: list[float]) -> tuple[list[float], str | None]:
    """The values of ``grid`` whose every call fits its model's positions, and why none does (None if some do)."""
    values = np.asarray(grid)
    longest = exercise.longest_context({name: np.asarray(v, dtype=float) for name, v in params.items()}
                                       | {vary: values})
    fits = np.ones(len(grid), dtype=bool)
    for role, positions in longest.items():
        fits &= np.broadcast_to(positions <= pricing.max_positions(role), values.shape)
    if fits.any():
        return [float(v) for v in values[fits]], None
    most = min(pricing.max_positions(role) for role in longest)
    return [], (f"a {int(params['system_prompt']):,}-token system prompt: at every {vary} from {values[0]:g} to "
                f"{values[-1]:g} a call needs more than the {most:,.0f} positions its model has")
