"""The longest-processing-time-first list schedule, exactly, in bulk.

Jobs (a group's batches, by duration) go one by one, longest first, each to the least loaded of
``D`` identical devices; the schedule's length is the most loaded device's load. ``lpt_makespan``
computes it for any multiset of durations in work that grows with the distinct durations, not
with how many jobs share one (a group may hold millions of identical batches) nor with the
devices; ``one_class_makespan`` is the closed form, element-wise on numpy arrays, for the jobs of
one role and model: full batches and one last, smaller batch (or, from a noisy fit, a longer one).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

# Rounding in a schedule: a device this fraction of a job short of a level is on it (durations are sums of
# floating-point prices); devices on a level or just off it are interchangeable, so the choice is harmless.
_TIE = 1e-9


def one_class_makespan(full_s, full, rest_s, devices: int) -> np.ndarray:
    """The LPT schedule's length of ``full`` batches of ``full_s`` seconds and one batch of ``rest_s`` (none
    where 0) on ``devices`` empty devices, in closed form (``lpt_makespan`` for these jobs), element-wise."""
    a, q, b = (np.asarray(x, dtype=float) for x in (full_s, full, rest_s))
    d = float(devices)
    with np.errstate(divide="ignore", invalid="ignore"):
        # the last batch no longer than a full one: the full batches round-robin, the last on a least loaded device
        rounds, left = np.floor(q / d), np.mod(q, d)
        shorter_last = np.maximum((rounds + (left > 0)) * a, rounds * a + b)
        if devices == 1:
            longer_last = b + q * a
        else:
            # longer: it goes first, to one device; the full batches fill the other devices up to it...
            lift = np.ceil(b / a - _TIE)
            to_lift = (d - 1) * lift
            below = np.maximum(b, (np.floor(q / (d - 1)) + (np.mod(q, d - 1) > 0)) * a)
            # ... then round-robin over all, the device holding the last batch first
            more = q - to_lift
            rounds_all, left_all = np.floor(more / d), np.mod(more, d)
            above = np.maximum(b + (rounds_all + (left_all >= 1)) * a, (lift + rounds_all + (left_all >= 2)) * a)
            longer_last = np.where(q <= to_lift, below, above)
        length = np.where(b <= a, shorter_last, longer_last)
    return np.where(q > 0, length, b)


def lpt_makespan(jobs: Iterable[tuple[float, float]], devices: int) -> float:
    """The length of the list schedule that gives each job, longest first, to the least loaded of ``devices``
    devices: ``jobs`` are ``(duration, count)``; the work grows with the distinct durations, not the counts.

    Loads are kept as levels (a load and how many devices hold it). ``count`` jobs of one duration ``d`` go
    where the greedy rule sends them, in bulk: the lowest levels are first lifted, as far as the jobs
    reach, to the level above them (each of their devices takes jobs while below it); the devices then
    below the next level are within ``d`` of each other, so the greedy rule deals the jobs left to them
    round-robin, lowest first. Devices with equal loads are interchangeable, so ties do not change the
    schedule's length."""
    levels = [[0.0, int(devices)]]
    for d, count in sorted(((float(d), int(count)) for d, count in jobs if count > 0 and d > 0), reverse=True):
        levels = _place(levels, d, count)
    return max(load for load, _ in levels)



def _jobs_to_reach(load: float, target: float, d: float) -> int:
    """Jobs of length ``d`` a device at ``load`` takes before it is at ``target`` or above."""
    return max(0, math.ceil((target - load) / d - _TIE))


def _place(levels: list[list], d: float, count: int) -> list[list]:
    """``count`` jobs of length ``d`` on ``levels`` (ascending ``[load, devices]``): the levels after."""
    lifted, needed = -1, 0
    for top in range(len(levels) - 1):
        target = levels[top + 1][0]
        need = sum(n * _jobs_to_reach(load, target, d) for load, n in levels[:top + 1])
        if need > count:
            break
        lifted, needed = top, need
    bound = levels[lifted + 2][0] if lifted + 2 < len(levels) else math.inf
    if lifted >= 0:
        target = levels[lifted + 1][0]
        for level in levels[:lifted + 1]:
            level[0] += _jobs_to_reach(level[0], target, d) * d
        count -= needed
    levels = _merged(levels)
    window = [level for level in levels if level[0] < bound]  # within d of each other: round-robin
    rest = [level for level in levels if level[0] >= bound]
    devices = sum(n for _, n in window)
    rounds, extra = divmod(count, devices)
    dealt = []
    for load, n in window:  # lowest first
        more = min(n, extra)
        extra -= more
        dealt += [[load + (rounds + 1) * d, more], [load + rounds * d, n - more]]
    return _merged(dealt + rest)


def _merged(levels: list[list]) -> list[list]:
    """Levels sorted by load, equal loads joined, empty ones dropped."""
    out: list[list] = []
    for load, n in sorted(level for level in levels if level[1] > 0):
        if out and load == out[-1][0]:
            out[-1][1] += n
        else:
            out.append([load, n])
    return out
