"""Making and saving figures on every core this process may use: ``save_all``.

Building a figure and saving it (its layout, drawing every artist, encoding the PNG) is
single-threaded Python and C, about a quarter of a second a figure; a report has eight,
``breakeven --exercise all`` three.
``save_all`` forks worker processes -- one per core, at most one per figure -- and each builds and
saves whole figures: a figure is given built, or as a function of no arguments that builds it (then
it is built in the worker too). A worker inherits the figures, the functions with their data and
the theme in force (only an index is sent to it), so its files are those ``style.save`` writes
here. Where ``fork`` is not offered (Windows), or with one core, the figures are made and saved
here one after the other.

The workers cost about 0.1-0.2 s of CPU in all (the forks, and the pages they write, copied from
the parent's). On a machine busy with other work they still take their share of each core: the
report command was ahead of saving one by one there too.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Union

from matplotlib.figure import Figure

from profiler.report import style

FigureOrMaker = Union[Figure, Callable[[], Figure]]
_PENDING: tuple[tuple[FigureOrMaker, Path], ...] = ()  # what a forked worker finds in its copy of this module


def cores() -> int:
    """How many cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _made(fig: FigureOrMaker) -> Figure:
    return fig() if callable(fig) else fig


def _save(index: int) -> None:
    fig, path = _PENDING[index]
    style.save(_made(fig), path)


def save_all(figures: Sequence[tuple[FigureOrMaker, Path]]) -> None:
    """``style.save`` each (figure, path) of ``figures``, the figure built first where it is a function.
    With workers, every figure is tried, then the first error (in ``figures``' order) is raised here as
    its worker raised it (its traceback chained); the workers have exited and been waited for when this
    returns or raises."""
    global _PENDING
    workers = min(len(figures), cores())
    if workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
        for fig, path in figures:
            style.save(_made(fig), path)
        return
    _PENDING = tuple(figures)
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            futures = [pool.submit(_save, index) for index in range(len(figures))]
    finally:
        _PENDING = ()
    for future in futures:
        if future.exception() is not None:
            raise future.exception()
