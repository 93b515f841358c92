"""The figures ``breakeven --exercise all --fit`` writes beside the fit (``<fit stem>.breakeven-<exercise>.png``).

What each shows is computed before anything is drawn (``figure_data``: the paper-priced sweep, the 2-D
ratio map and the practical comparison; in makespan under a parallel schedule, with prefix reuse under a
schedule that has it); every path is checked before the first is drawn (``check_figure_paths``); they are
drawn together by ``profiler.report.breakeven_figures`` (``draw``: matplotlib only then); and each gets
its lines on the console (``print_figure``).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from profiler.cli.breakeven_console import reuse_words
from profiler.errors import UserError
from profiler.files import breakeven_figure_path
from profiler.lba.breakeven import practical_comparison, ratio_map, sweep
from profiler.lba.breakeven_document import BreakevenDocument
from profiler.lba.pricing import PaperPrimitive, Pricing
from profiler.lba.schedule import MEASURE_NAMES, SEQUENTIAL, Schedule


@dataclass
class _Figure:
    """What a figure beside the fit shows, computed before anything is drawn."""

    path: Path
    title: str
    drawn: BreakevenDocument  # the fit's prices drawn: the sweep's, or its makespan's under a parallel schedule
    paper: BreakevenDocument
    ratio_map: dict


def figure_data(exercise, document: BreakevenDocument, params: dict, pricing: Pricing, fit_path: Path,
                schedule: Schedule) -> _Figure:
    """The paper-priced sweep, the 2-D map and the practical comparison the figure and its lines need: in
    makespan under a parallel schedule (the practical comparison also on the sequential document), with prefix
    reuse under a schedule that has it."""
    sequential = SEQUENTIAL if schedule.reuse is None else schedule
    document.practical = practical_comparison(exercise, params, pricing, sequential)
    path = breakeven_figure_path(fit_path, exercise.name)
    document.figure = str(path)
    drawn, priced_by = document, sequential
    if schedule.parallel:
        drawn, priced_by = document.priced("makespan"), schedule.priced_in("makespan")
        drawn.practical = practical_comparison(exercise, params, pricing, priced_by)
    title = f"{exercise.title}: {pricing.name}" + (f", makespan ({_layout(schedule)})" if schedule.parallel else "")
    if schedule.reuse is not None:
        title += reuse_words(schedule.reuse)
    paper = sweep(exercise, document.vary, document.values(), params, PaperPrimitive(), schedule)
    return _Figure(path=path, title=title, drawn=drawn, paper=paper.priced(priced_by.measure),
                   ratio_map=ratio_map(exercise, params, pricing, priced_by))


def _layout(schedule: Schedule) -> str:
    batch = "the fit's largest batch" if schedule.max_batch is None else f"batches of {schedule.max_batch:,}"
    return f"{batch}, {schedule.devices:,} device" + ("s" if schedule.devices > 1 else "")


def check_figure_paths(paths: list[Path]) -> None:
    """Each figure's path can take a file: not a folder, in a folder that accepts new files (tried with a
    temporary file, removed at once). Checked for all before the first is drawn."""
    for path in paths:
        if path.is_dir():
            raise UserError(f"cannot write the figure {path}: a folder is in the way")
        try:
            with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"):
                pass
        except OSError as err:
            raise UserError(f"cannot write the figure {path}: {err.strerror or err}") from None


def draw(figures: list[tuple[BreakevenDocument, _Figure]]) -> None:
    """All the figures drawn together, on every core (``profiler.report.saving``)."""
    if not figures:
        return
    from profiler.report.breakeven_figures import write_breakeven_figures  # matplotlib: only for a figure

    try:
        write_breakeven_figures([(figure.path, figure.title, figure.drawn, figure.paper, figure.ratio_map)
                                 for _, figure in figures])
    except OSError as err:  # the folder changed since it was checked
        where = f"the figure {err.filename}" if err.filename else f"the figures into {figures[0][1].path.parent}"
        raise UserError(f"cannot write {where}: {err.strerror or err}") from None


def print_figure(console, document: BreakevenDocument, figure: _Figure) -> None:
    practical = figure.drawn.practical
    at = ", ".join(f"{name}={value:g}" for name, value in practical.params.items())
    measure = f" in {MEASURE_NAMES[figure.drawn.measure]}" if figure.drawn.measure else ""
    console.print(f"at {at}: ratio{measure} {practical.ratio:.3g} with fitted costs, {practical.paper_ratio:.3g} "
                  f"with the paper's primitive (its order {practical.order} = {practical.order_value:.3g});"
                  f" fitted / paper = {practical.ratio / practical.paper_ratio:.2f}")
    console.print(f"figure: {figure.path}\n")
