"""Timing two or more passes side by side for the benchmarks: interleaved repeats, and their medians.

``interleaved(runs, repeats, device)`` times each callable of ``runs`` ``repeats`` times after one untimed call
of each, the order reversed every repeat (so a change in the machine's load touches every run alike), with
garbage collection off; each timing is ``timing.time_pass`` (device synchronised). ``median(values)``: the
median and the half width of its 95% interval relative to it (``timing.median_ci_rel``).

A helper module of the scripts in ``benchmarks/`` (each runs with this folder first on its path).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

import torch

from profiler.measure.timing import median_ci_rel, time_pass


def interleaved(runs: dict[str, Callable[[], object]], repeats: int, device: torch.device) -> dict[str, list[float]]:
    """``repeats`` timings (seconds) of each of ``runs`` (name -> a callable), the order alternating every repeat,
    after one untimed call of each."""
    for run in runs.values():
        run()
    latencies: dict[str, list[float]] = {name: [] for name in runs}
    order = list(runs)
    for _ in range(repeats):
        for name in order:
            latencies[name].append(time_pass(runs[name], device)[1])
        order.reverse()
    return latencies


def median(values: list[float]) -> tuple[float, float]:
    """The median of ``values`` and its 95% interval's half width relative to it."""
    return statistics.median(values), median_ci_rel(values)
