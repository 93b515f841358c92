"""``breakeven``'s console output: a break-even document as a table per price, in the pricing's unit.

Each row's cost of both variants, their ratio, each variant's cost by role (shares), the longest call
(flagged where its price is extrapolated or beyond the model's positions) and, when the rows have them,
the Monte-Carlo spreads; then the break-even in words and the pricing's assumptions.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from profiler.lba.breakeven_document import BreakevenDocument
from profiler.lba.exercises import EXERCISES, VARIANTS
from profiler.lba.prefix_cache import Reuse
from profiler.lba.schedule import MEASURE_NAMES
from profiler.report.units import format_cost


def _shares(roles: dict[str, float]) -> str:
    total = sum(roles.values())
    return ", ".join(f"{role} {cost / total:.0%}" for role, cost in roles.items()) if len(roles) > 1 else "-"


def print_sweep(console: Console, document: BreakevenDocument) -> None:
    """The document as a table; with the Monte-Carlo spreads when its rows have them. Under a parallel
    schedule, a table per price, then the sequential sum's break-even."""
    if document.prices is None:
        _print_table(console, document)
        return
    for price in document.prices:
        _print_table(console, price)
    console.print(f"sequential sum (the paper's count): {_breakeven_words(document)}")


def _print_table(console: Console, document: BreakevenDocument) -> None:
    exercise = EXERCISES[document.exercise]
    unit = document.unit
    fixed = ", ".join(f"{name}={value:g}" for name, value in document.params.items())
    measure = f" in {MEASURE_NAMES[document.measure]}" if document.measure else ""
    if document.reuse is not None:
        measure += reuse_words(Reuse.from_json(document.reuse))
    table = Table(title=f"{exercise.title} ({exercise.name}), priced by {document.pricing}{measure}; {fixed}",
                  title_justify="left")
    spreads = all(row.monte_carlo is not None for row in document.rows)
    columns = [document.vary, "optimistic", "optimized", "ratio", "optimistic by role", "optimized by role",
               "longest call (positions)"] + (["optimistic 5-95% (MC)", "optimized 5-95% (MC)"] if spreads else [])
    for name in columns:
        table.add_column(name, justify="left" if "role" in name else "right")
    for row in document.rows:
        cells = [f"{row.value:g}", *(format_cost(row.cost[variant], unit) for variant in VARIANTS), f"{row.ratio:.3g}",
                 *(_shares(row.roles[variant]) for variant in VARIANTS),
                 f"{row.longest_context:,}" + (" **" if row.beyond_max_positions else " *" if row.extrapolated else "")]
        for spread in (row.monte_carlo[variant] for variant in VARIANTS) if spreads else ():
            cells.append(spread.skipped or f"{format_cost(spread.p5, unit)} - {format_cost(spread.p95, unit)}")
        table.add_row(*cells)
    console.print(table)
    if any(row.extrapolated for row in document.rows):
        console.print("* a call longer than the cost model measured: its cost is extrapolated")
    if any(row.beyond_max_positions for row in document.rows):
        console.print("** a call longer than the model's maximum positions: priced as if a model of the same cost "
                      "could hold it")
    console.print(f"break-even: {_breakeven_words(document)}")
    for note in document.assumptions:
        console.print(f"assumed: {note}")


def reuse_words(reuse: Reuse) -> str:
    capacity = "" if reuse.capacity_tokens is None else f" (a cache of {reuse.capacity_tokens:,} tokens)"
    return f" with prefix reuse{capacity}"


def _breakeven_words(document: BreakevenDocument) -> str:
    if document.breakeven is not None:
        return f"{document.vary} = {document.breakeven:.3g} (the optimized decomposition costs less above it)"
    winner = document.winner_throughout
    return "none in range: " + (f"the {winner} variant costs less throughout" if winner
                                else "the ratio does not cross 1 going up")
