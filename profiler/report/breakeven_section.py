"""The report's break-even section: the paper's three exercises priced by the run's fitted costs.

For each exercise, at its default parameters (``python -m profiler breakeven --help``), the
ratio ``optimistic / optimized`` along ``k`` priced by the fit (with a KV cache) and by the
paper's primitive, the break-even, the 2-D map (``profiler.report.breakeven_figures``), and how
far the fitted ratio at the default size is from the paper's. Sizes other than the profiled
model's (the k-task generalist) are priced as linear in size: a report covers one model.
"""

from __future__ import annotations

from functools import partial

from profiler.lba.breakeven import practical_comparison, ratio_map, sweep
from profiler.lba.breakeven_document import BreakevenDocument
from profiler.report.units import format_cost
from profiler.report.breakeven_figures import breakeven_figure
from profiler.lba.exercises import EXERCISES, VARIANTS
from profiler.lba.pricing import FittedPricing, PaperPrimitive
from profiler.report.document import ReportContext, Section, Table
from profiler.report.units import significant, tick


def _verdict(document: BreakevenDocument) -> str:
    if document.breakeven is not None:
        return f"breaks even at {document.vary} = {document.breakeven:.3g}"
    winner = document.winner_throughout
    return "does not cross 1 in this range" + (f": the {winner} variant costs less throughout" if winner else "")


def breakeven_sections(ctx: ReportContext) -> list[Section]:
    pricing = FittedPricing(ctx.cost_model)
    blocks: list = [
        "Each of the paper's worked examples runs as two programs, the intuitive design (optimistic) and the "
        "decomposition (optimized); the ratio is optimistic / optimized cost, above 1 where the decomposition "
        "wins. Priced here by this model's fitted costs with a KV cache, and by the paper's m*n primitive. "
        "The breakeven command prices other sizes and settings."]
    for exercise in EXERCISES.values():
        params = exercise.defaults()
        values = [float(v) for v in exercise.main_values]
        fitted = sweep(exercise, exercise.main, values, params, pricing)
        paper = sweep(exercise, exercise.main, values, params, PaperPrimitive())
        practical = practical_comparison(exercise, params, pricing)
        fixed = ", ".join(f"{name}={value:g}" for name, value in params.items() if name != exercise.main)
        blocks.append(
            f"{exercise.title.capitalize()} ({fixed}): the decomposition {_verdict(fitted)}. At "
            f"{exercise.main}={params[exercise.main]:g} the ratio is {significant(practical.ratio)} with measured "
            f"costs against {significant(practical.paper_ratio)} by the paper's primitive (its order "
            f"{exercise.asymptotic} is {tick(practical.order_value)} there).")
        rows = tuple((f"{row.value:g}", *(format_cost(row.cost[variant], fitted.unit) for variant in VARIANTS),
                      significant(row.ratio), significant(paper_row.ratio),
                      f"{row.longest_context:,}" + (" *" if row.extrapolated else ""))
                     for row, paper_row in zip(fitted.rows, paper.rows))
        extrapolated = any(row.extrapolated for row in fitted.rows)
        notes = (["* longer than the measured lengths: extrapolated."] if extrapolated else []) + fitted.assumptions
        columns = (exercise.main, "optimistic", "optimized", "ratio", "paper's ratio", "longest call (positions)")
        blocks.append(Table(columns, rows, numeric=(True,) * len(columns), note=" ".join(notes)))
        figure = partial(breakeven_figure, f"{exercise.title}: measured costs vs the paper's primitive", fitted,
                         paper, ratio_map(exercise, params, pricing))  # made where it is saved: on every core
        blocks.append(ctx.save_figure(figure, f"breakeven-{exercise.name}",
                                      f"{exercise.title}: the ratio along {exercise.main} (left) and over "
                                      f"{exercise.map_axes[0][0]} x {exercise.map_axes[1][0]} (right), with the "
                                      "break-even contour."))
    return [Section("Break-even: the paper's three exercises", tuple(blocks))]
