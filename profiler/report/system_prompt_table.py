"""The break-even section's system-prompt table: how far a system prompt moves each exercise, with and without
prefix reuse.

Every call of every exercise reads the system prompt first; the paper asks (Sec. 5.1) whether so large a
constant may be disregarded. ``profiler.lba.system_prompt.system_prompt_breakevens`` prices each exercise
along its main variable at prompts of 0, 200 and 2,000 tokens, each call prefilling the prompt again (no
reuse) or each model computing it once and extending its cache after (reuse, an unbounded prefix cache); the
table sets the break-even and the ratio at the main variable's default side by side. A prompt whose calls
need more positions than the model has at every grid value is not priced, and says so; one priced on part of
the grid says which part. Pricing with reuse replays the programs call by call (``profiler.lba.reuse``), work
that grows with the main variable (evolution's global mutation doubles it with each block): the report prices
the default grid only as far as ``REPLAY_WORK`` calls and segments in expectation (``reuse.cell_work``) a
prompt, and says where it stopped (``breakeven --prefix-cache on`` prices the rest). Pricing with reuse needs
the fit's extend surface: without it the break-even section leaves this table out (the cached-prefix section
says why, once).
"""

from __future__ import annotations

import numpy as np

from profiler.lba.exercises import EXERCISES
from profiler.lba.exercises.base import Exercise
from profiler.lba.pricing import Pricing
from profiler.lba.reuse import cell_work
from profiler.lba.system_prompt import PROMPTS, PromptRow, PromptTable, system_prompt_breakevens
from profiler.report.document import Table
from profiler.report.units import significant

# calls and segments one exercise's replay may serve at one prompt, in expectation: evolution's default grid up
# to k = 8, about a second here; k = 12 would be 200,000 and some 12 s
REPLAY_WORK = 15_000


def report_grid(exercise: type[Exercise]) -> tuple[float, ...]:
    """The main variable's default values, ascending, as far as replaying both variants at them (at the longest
    prompt, the exercise's other defaults) serves at most ``REPLAY_WORK`` calls and segments in expectation; the
    first value at least."""
    values = np.array(sorted(exercise.main_values), dtype=float)
    params = {name: np.asarray(value, dtype=float) for name, value in exercise.defaults().items()}
    work = cell_work(exercise, params | {"system_prompt": np.asarray(float(max(PROMPTS))), exercise.main: values})
    return tuple(values[: max(int(np.sum(np.cumsum(work) <= REPLAY_WORK)), 1)].tolist())


def _breakeven(row: PromptRow, vary: str) -> str:
    if row.skipped:
        return "-"
    if row.breakeven is not None:
        return f"{vary} = {row.breakeven:.3g}"
    return f"none: {row.winner_throughout} wins" if row.winner_throughout else "none in range"


def _ratio(row: PromptRow) -> str:
    return "-" if row.ratio_at_default is None else significant(row.ratio_at_default)


def _note(table: PromptTable, row: PromptRow, grid: tuple[float, ...], default_grid: tuple[float, ...]) -> str:
    if row.skipped:
        return f"not priced: {row.skipped}"
    notes, why = [], []
    if row.values != grid:
        why.append("longer calls exceed the model's positions")
    if grid != default_grid:
        why.append(f"replaying the programs beyond {table.vary} = {grid[-1]:g} takes longer than a report should: "
                   "`breakeven --prefix-cache on` prices it")
    if why:
        notes.append(f"priced at {table.vary} {row.values[0]:g}-{row.values[-1]:g} only ({'; '.join(why)})")
    if row.ratio_at_default is None:
        notes.append(f"the default {table.vary} = {table.default:g} is not among them")
    return "; ".join(notes)


def prompt_rows(table: PromptTable, grid: tuple[float, ...], default_grid: tuple[float, ...]) -> list[tuple[str, ...]]:
    """One row per prompt length of ``table`` (priced over ``grid``, of the exercise's ``default_grid``): its rows
    without and with reuse side by side."""
    by_prompt = {(row.system_prompt, row.reuse): row for row in table.rows}
    rows = []
    for prompt in dict.fromkeys(row.system_prompt for row in table.rows):
        plain, reused = by_prompt[(prompt, False)], by_prompt[(prompt, True)]
        rows.append((table.exercise, f"{plain.system_prompt:,}", _breakeven(plain, table.vary),
                     _breakeven(reused, table.vary), _ratio(plain), _ratio(reused),
                     _note(table, plain, grid, default_grid)))
    return rows


def system_prompt_table(pricing: Pricing) -> Table:
    """The table (module doc) of every exercise at its defaults, priced by ``pricing`` (a fitted one, with the
    extend surface)."""
    rows = []
    for exercise in EXERCISES.values():
        grid = report_grid(exercise)
        table = system_prompt_breakevens(exercise, pricing, values=grid)
        rows += prompt_rows(table, grid, tuple(sorted(float(v) for v in exercise.main_values)))
    return Table(
        columns=("exercise", "system prompt (tokens)", "break-even, no reuse", "break-even, reuse",
                 "ratio at default, no reuse", "ratio at default, reuse", "note"),
        rows=tuple(rows), numeric=(False, True, True, True, True, True, False),
        note="Each exercise along k at its other defaults (above), every call reading the system prompt first. No "
             "reuse: each call prefills the prompt again; reuse: each model keeps the prefixes it has computed, its "
             "own outputs included (an unbounded prefix cache), and a call computes only what it does not hold "
             "(`python -m profiler breakeven --prefix-cache on`). Reuse saves only where a "
             "model is called again (k-task at load 1 calls each model once per input). Ratio: optimistic / "
             "optimized at the default k, above 1 where the decomposition wins.")
