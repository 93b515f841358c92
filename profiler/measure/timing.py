"""Timing discipline in one place: the clock around a pass, and when to stop repeating it.

A pass is timed by a ``Clock``: the wall clock (``time.perf_counter``, seconds) unless a
caller passes another (tests pass a fake one that moves by a known cost per pass, so that
budgets and deadlines are checked exactly whatever the machine's load). The device is
synchronised before and after on a GPU so that queued kernels are inside the interval; garbage collection is off
for the pass.

Repeats of one pass stop when the median's 95% interval is within +-2% (or the pass's
share of the run's budget is spent, or ``max_repeats`` is reached), never before
``min_repeats``; the interval is trusted from ``ci_min_repeats`` on, a robust spread of fewer being luck. The
interval uses the large-sample standard error of a median, ``1.2533 sigma / sqrt(r)``,
with ``sigma`` estimated robustly as ``1.4826 * MAD`` so one stray repeat does not decide
it. A point whose repeats spread by 10% or more (stdev / mean, pyperf's warning level)
is flagged unstable.
"""

from __future__ import annotations

import gc
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch

from profiler.measure.devices import synchronize

Clock = Callable[[], float]  # a monotonic reading in seconds; only differences between readings mean anything

_Z95 = 1.96
_MEDIAN_SE = 1.2533  # sqrt(pi / 2): standard error of a median over that of a mean
_MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class RepeatPolicy:
    min_repeats: int = 3
    ci_min_repeats: int = 5
    max_repeats: int = 200
    target_ci_rel: float = 0.02  # half-width of the median's 95% interval, over the median
    unstable_cv: float = 0.10


def time_pass(run_pass: Callable[[], object], device: torch.device,
              clock: Clock = time.perf_counter) -> tuple[object, float]:
    """Run ``run_pass`` once, garbage collection off (a full collection after a long run can take a tenth of a
    second: a pilot pass of a small model read ten times its cost so); return its result and its latency in
    seconds by ``clock``. Collection is left as it was found."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        synchronize(device)
        start = clock()
        result = run_pass()
        synchronize(device)
        return result, clock() - start
    finally:
        if collecting:
            gc.enable()


def median_ci_rel(latencies_s: list[float]) -> float:
    """Half-width of the 95% interval of the median, relative to the median (inf below 2 repeats)."""
    if len(latencies_s) < 2:
        return float("inf")
    median = statistics.median(latencies_s)
    mad = statistics.median(abs(x - median) for x in latencies_s)
    return _Z95 * _MEDIAN_SE * _MAD_TO_SIGMA * mad / (len(latencies_s) ** 0.5) / median


def is_unstable(latencies_s: list[float], policy: RepeatPolicy = RepeatPolicy()) -> bool:
    """True when the repeats' stdev is ``policy.unstable_cv`` of their mean or more."""
    if len(latencies_s) < 2:
        return False
    return statistics.stdev(latencies_s) >= policy.unstable_cv * statistics.fmean(latencies_s)


def enough_repeats(latencies_s: list[float], spent_s: float, share_s: float, policy: RepeatPolicy) -> bool:
    """Whether to stop repeating a pass, after ``spent_s`` of its ``share_s`` seconds."""
    if len(latencies_s) < policy.min_repeats:
        return False
    if len(latencies_s) >= policy.max_repeats or spent_s >= share_s:
        return True
    return len(latencies_s) >= policy.ci_min_repeats and median_ci_rel(latencies_s) <= policy.target_ci_rel
