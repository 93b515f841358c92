"""What a report says, as plain data: sections of paragraphs, bullet lists, tables and figures.

The Markdown and the HTML (``profiler.report.markdown``, ``profiler.report.html``) are two
renderings of one ``Report``; neither is derived from the other. Every string here is plain
text -- model names and paths included -- and each renderer escapes it for its format.

Sections made elsewhere (the break-even exercises) plug in as *section providers*:
callables ``provider(context: ReportContext) -> Sequence[Section]``, given the run, its
cost model and its call intervals, and ``context.save_figure`` to write a PNG beside the
report in the house style. Their sections follow the typical-call table and precede the
caveats (``profiler.report.build``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import pandas as pd

from profiler.costmodel.cost_model import CostModel
from profiler.measure.run_document import HardwareDocument, RunDocument
from profiler.costmodel.uncertainty import CallIntervals


@dataclass(frozen=True)
class Figure:
    """A PNG beside the report (``file`` is its name there) with the sentence under it."""

    file: str
    caption: str


@dataclass(frozen=True)
class Table:
    """A table of text cells; ``numeric`` columns are right-aligned. ``note`` goes under it."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: tuple[bool, ...] = ()
    note: str = ""

    def __post_init__(self):
        if any(len(row) != len(self.columns) for row in self.rows):
            raise ValueError(f"every row of a table needs {len(self.columns)} cells")


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


Block = Union[str, Figure, Table, Bullets]  # a str is a paragraph


@dataclass(frozen=True)
class Section:
    title: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class Report:
    title: str
    subtitle: str
    sections: tuple[Section, ...]
    folder: Path  # where the figures are and the renderings go


@dataclass(frozen=True)
class ReportContext:
    """What a section provider gets: the run's data, its fitted cost model and where figures go.

    ``run``, ``hardware``: the run's ``run.json`` and ``hardware.json``; ``samples``: its
    ``samples.csv``; ``points``: the per-point summary (``run.json`` ``points``);
    ``calls``: 95% intervals of whole calls (``calls.call(n_in, n_out)`` is (value, low, high)).
    """

    folder: Path
    cost_model: CostModel
    run: RunDocument
    hardware: HardwareDocument
    samples: pd.DataFrame
    points: pd.DataFrame
    calls: CallIntervals
    figures: list = field(default_factory=list)  # (figure or maker, path) to save, in the order given

    def save_figure(self, fig, name: str, caption: str) -> Figure:
        """Have ``fig`` saved as ``<name>.png`` beside the report; the block that shows it. ``fig``: a
        ``matplotlib.figure.Figure`` (see ``profiler.report.style``), or better a function of no arguments
        that makes one: the report's figures are made and saved together once its sections are written,
        on every core (``profiler.report.saving``), before the report is rendered."""
        self.figures.append((fig, self.folder / _file_name(name)))
        return Figure(_file_name(name), caption)


def _file_name(name: str) -> str:
    if not name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"figure name {name!r}: letters, digits, '-' and '_' only")
    return f"{name}.png"


SectionProvider = Callable[[ReportContext], Sequence[Section]]
