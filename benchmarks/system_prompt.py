"""How far a system prompt moves each exercise's break-even, with and without prefix reuse, on fitted models.

What: for each fit given (``--fit``, repeatable: e.g. gpt2's, and SmolLM2-135M's for the 2,000-token prompt that
gpt2's 1,024 positions cannot hold) and each exercise, ``profiler.lba.system_prompt.system_prompt_breakevens``:
the exercise priced along its main variable (its default grid, the other parameters at their defaults or
``--set``) at system prompts of 0, 200 and 2,000 tokens, without reuse (every call prefills its prompt) and with
it (``Schedule(reuse=Reuse())``: each model computes a prefix once, its calls extend it; the programs replayed call
by call, ``profiler.lba.reuse``). Printed per fit, exercise and prompt: the break-even (or which variant wins
throughout), the ratio optimistic / optimized at the main variable's default, and the values priced (a value
whose calls need more positions than the model has is left out). Last line: one JSON document. Each fit's own
figures say what it was measured on (its hardware, its run's budget).

Why (issue 15, the paper's Sec. 5.1): is it reasonable to disregard a large constant like the system prompt? It
moves the break-even when every call pays it; with reuse a model pays it once.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from profiler.costmodel.fit_file import load_cost_model
from profiler.errors import UserError
from profiler.lba.exercises import EXERCISES
from profiler.lba.parameters import parse_settings
from profiler.lba.pricing import FittedPricing
from profiler.lba.system_prompt import PROMPTS, system_prompt_breakevens


def _shown(row) -> str:
    if row.skipped:
        return "skipped: " + row.skipped
    where = f"{row.breakeven:.2f}" if row.breakeven is not None else f"none ({row.winner_throughout or 'neither'} wins)"
    ratio = "-" if row.ratio_at_default is None else f"{row.ratio_at_default:.3g}"
    return f"break-even {where:<24} ratio at default {ratio:>8}   values {row.values[0]:g}..{row.values[-1]:g}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", type=Path, action="append", required=True, help="a fit file (repeatable)")
    parser.add_argument("--exercise", choices=[*EXERCISES, "all"], default="all")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a parameter other than the main variable and the system prompt")
    args = parser.parse_args(argv)
    exercises = list(EXERCISES.values()) if args.exercise == "all" else [EXERCISES[args.exercise]]
    tables = []
    try:
        for path in args.fit:
            pricing = FittedPricing(load_cost_model(path))
            for exercise in exercises:
                fixed = {name: value for name, value in parse_settings(exercise, args.set).items()
                         if name not in (exercise.main, "system_prompt")}
                tables.append((path, system_prompt_breakevens(exercise, pricing, PROMPTS, fixed=fixed)))
    except UserError as err:
        print(f"system_prompt.py: error: {err}", file=sys.stderr)
        return 2
    for path, table in tables:
        print(f"\n{table.exercise} along {table.vary} (default {table.default:g}), {table.pricing} ({path.name})")
        for row in table.rows:
            print(f"  system prompt {row.system_prompt:>5,} {'with reuse   ' if row.reuse else 'without reuse'}  "
                  f"{_shown(row)}")
    print(json.dumps([{"fit": str(path), "exercise": t.exercise, "vary": t.vary, "default": t.default,
                       "pricing": t.pricing, "rows": [vars(row) for row in t.rows]} for path, t in tables]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
