"""The report's break-even section: the paper's three exercises priced by the run's fitted costs.

For each exercise, at its default parameters (``python -m profiler breakeven --help``), the
ratio ``optimistic / optimized`` along ``k`` priced by the fit (with a KV cache) and by the
paper's primitive, the break-even, the 2-D map (``profiler.report.breakeven_figures``), and how
far the fitted ratio at the default size is from the paper's. Sizes other than the profiled
model's (the k-task generalist) are priced as linear in size: a report covers one model.

Beside the paper's sequential sum, the parallel schedule (``PARALLEL``: each group of independent
calls batched up to the largest batch the fit measured, on one device; ``profiler.lba.schedule``):
the ratio in makespan along the same grid, with its break-even, in the table and as a curve in the
figure's left panel (and in device time, in the table where it differs from the makespan; on one
device a batch occupies the device for just its duration, so they agree). A fit without batch
surfaces prices no batch: the section says so and how to measure them, and shows the sequential sum.

Last, with the fit's extend surface, how far a system prompt of 0, 200 and 2,000 tokens moves each
exercise's break-even, with and without prefix reuse (``profiler.report.system_prompt_table``).
"""

from __future__ import annotations

from functools import partial

from profiler.lba.breakeven import practical_comparison, ratio_map, sweep
from profiler.lba.breakeven_document import BreakevenDocument
from profiler.lba.exercises import EXERCISES, VARIANTS
from profiler.lba.pricing import FittedPricing, PaperPrimitive
from profiler.lba.schedule import SEQUENTIAL, Schedule
from profiler.report.breakeven_figures import breakeven_figure
from profiler.report.document import ReportContext, Section, Table
from profiler.report.system_prompt_table import system_prompt_table
from profiler.report.units import format_cost, significant, tick

PARALLEL = Schedule("parallel", max_batch=None, devices=1)
NO_SURFACES = ("The parallel schedule (groups of independent calls batched) is not priced here: this fit has no batch "
               "surfaces. `python -m profiler run` measures batches (its default grid, or --batch), and its fit "
               "prices them.")
_SAME = 1e-9  # relative: ratios this close are one number (a schedule with nothing to batch)


def _verdict(document: BreakevenDocument) -> str:
    if document.breakeven is not None:
        return f"breaks even at {document.vary} = {document.breakeven:.3g}"
    winner = document.winner_throughout
    return "does not cross 1 in this range" + (f": the {winner} variant costs less throughout" if winner else "")


def _same(first: BreakevenDocument, second: BreakevenDocument) -> bool:
    return all(abs(a.ratio - b.ratio) <= _SAME * abs(a.ratio) for a, b in zip(first.rows, second.rows))


def _parallel_words(exercise, fitted: BreakevenDocument) -> str:
    """The parallel makespan's verdict, in a sentence."""
    makespan = fitted.priced("makespan")
    if _same(makespan, fitted):
        return (" In parallel its programs have nothing to batch at these settings (each call waits for the one "
                "before), so the makespan is the sequential sum; a load above 1 gives them concurrent calls "
                f"(`python -m profiler breakeven --fit FIT --exercise {exercise.name} --schedule parallel --set load=8`).")
    return f" In parallel, in makespan, it {_verdict(makespan)}."


def _table(exercise, fitted: BreakevenDocument, paper: BreakevenDocument) -> Table:
    parallel = fitted.prices is not None
    makespan = fitted.priced("makespan") if parallel else None
    device = fitted.priced("device_time") if parallel else None
    device_column = parallel and not _same(device, makespan)
    columns = (exercise.main, "optimistic", "optimized", "ratio", "paper's ratio",
               *(("ratio in parallel: makespan",) if parallel else ()),
               *(("device time",) if device_column else ()), "longest call (positions)")
    rows = []
    for i, (row, paper_row) in enumerate(zip(fitted.rows, paper.rows)):
        rows.append((f"{row.value:g}", *(format_cost(row.cost[variant], fitted.unit) for variant in VARIANTS),
                     significant(row.ratio), significant(paper_row.ratio),
                     *((significant(makespan.rows[i].ratio),) if parallel else ()),
                     *((significant(device.rows[i].ratio),) if device_column else ()),
                     f"{row.longest_context:,}" + (" *" if row.extrapolated else "")))
    extrapolated = any(row.extrapolated for row in fitted.rows)
    assumed = fitted.assumptions + ([note for note in makespan.assumptions if note not in fitted.assumptions]
                                    if parallel else [])
    notes = ((["* longer than the measured lengths: extrapolated."] if extrapolated else [])
             + ([f"Assumed: {'; '.join(assumed)}."] if assumed else [])
             + (["On one device a batch occupies it for just its duration: the ratio in device time is the "
                 "makespan's."] if parallel and not device_column else []))
    return Table(columns, tuple(rows), numeric=(True,) * len(columns), note=" ".join(notes))


def breakeven_sections(ctx: ReportContext) -> list[Section]:
    pricing = FittedPricing(ctx.cost_model)
    schedule = PARALLEL if ctx.cost_model.surfaces else SEQUENTIAL
    layout = f"batches up to {ctx.cost_model.max_batch}, one device"
    blocks: list = [
        "Each of the paper's worked examples runs as two programs, the intuitive design (optimistic) and the "
        "decomposition (optimized); the ratio is optimistic / optimized cost, above 1 where the decomposition "
        "wins. Priced here by this model's fitted costs with a KV cache, and by the paper's m*n primitive, "
        "each call after the one before (the paper's sum). "
        + ("Beside it, the parallel schedule: each group of independent calls (debugging's QA reports and fixes, "
           f"the concurrent inputs of a load above 1) batched, {layout}, priced in makespan by the fit's batch "
           "surfaces. " if schedule.parallel else NO_SURFACES + " ")
        + "The breakeven command prices other sizes, settings and schedules."]
    for exercise in EXERCISES.values():
        params = exercise.defaults()
        values = [float(v) for v in exercise.main_values]
        fitted = sweep(exercise, exercise.main, values, params, pricing, schedule)
        paper = sweep(exercise, exercise.main, values, params, PaperPrimitive())
        practical = practical_comparison(exercise, params, pricing)
        fixed = ", ".join(f"{name}={value:g}" for name, value in params.items() if name != exercise.main)
        blocks.append(
            f"{exercise.title.capitalize()} ({fixed}): the decomposition {_verdict(fitted)}. At "
            f"{exercise.main}={params[exercise.main]:g} the ratio is {significant(practical.ratio)} with measured "
            f"costs against {significant(practical.paper_ratio)} by the paper's primitive (its order "
            f"{exercise.asymptotic} is {tick(practical.order_value)} there)."
            + (_parallel_words(exercise, fitted) if schedule.parallel else ""))
        blocks.append(_table(exercise, fitted, paper))
        parallel = (fitted.priced("makespan"), layout) if schedule.parallel else None
        figure = partial(breakeven_figure, f"{exercise.title}: measured costs vs the paper's primitive", fitted,
                         paper, ratio_map(exercise, params, pricing), parallel)  # made where it is saved: every core
        blocks.append(ctx.save_figure(figure, f"breakeven-{exercise.name}",
                                      f"{exercise.title}: the ratio along {exercise.main} (left"
                                      + (", the sequential sum and the parallel makespan" if parallel else "")
                                      + f") and over {exercise.map_axes[0][0]} x {exercise.map_axes[1][0]} "
                                      "(right, the sequential sum), with the break-even contour."))
    if ctx.cost_model.has_extend:
        blocks += ["Every call reads the system prompt first. How far a long one moves each break-even, when each "
                   "call prefills it again and when each model computes it once and keeps it (prefix reuse, priced "
                   "with the extend surface of the section on a cached prefix):", system_prompt_table(pricing)]
    return [Section("Break-even: the paper's three exercises", tuple(blocks))]
