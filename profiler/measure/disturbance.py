"""Watching for a disturbed machine during a sweep, as pyperf watches its runs.

Another process on the cores makes passes slower, and unevenly: a spell of contention can
cover the pilot (the plan then drops lengths it had time for), one point (the curve bends
there), or some repeats of a point (its timings are bimodal). Four signs are watched:

- load: the 1-minute load average (``os.getloadavg``) at the start and at the end of the
  sweep, against the cores this process may use. More than ``cores + 0.5`` runnable tasks
  at the end (a minute that is mostly the sweep's) means other work competed for the cores.
- a reference pass: prefill at the shortest length, timed once before a visit to an item (a length's
  prefill and forward points, or a generate pair) where ten of them have had time to run since the last
  (``profiler.measure.plan.REFERENCE_GAP``), and once after the last; one that looks slow is timed
  again and the quicker kept (a hiccup does not repeat, a busy spell does). A reference 1.5
  times the quickest or slower says the machine was slow then; the points measured since the reference
  before it and until the one after it are affected.
- repeats: a point with repeats 50% or more off its median (pyperf's warning for an
  extreme), at least one in twenty of them, timed some repeats in another state of the
  machine. One in twenty: a point of a fast pass repeats up to 200 times, and a single
  stray repeat there moves nothing.
- the pilot: the one pass per length that plans the budget (the FLOP counter's overhead
  taken off: ``profiler.measure.plan``), against the median measured at that length later.
  A ratio of 2 or more either way means the plan rested on a disturbed pass (the sweep then
  re-plans: ``profiler.measure.sweep``).

A single pass is compared only against gross changes (1.5x, 2x); a point's spread of 10% is
already flagged unstable (``profiler.measure.timing``). Latencies in seconds. Torch-free: the
record is part of ``run.json``, read by the report without building a model.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

MIN_SPREAD_REFERENCES = 5  # reference passes a spread of the machine's speed is said from
SLOW_REFERENCE = 1.5  # a reference pass this many times the quickest one: the machine was slow then
FAR_EXTREME = 0.5  # a repeat this far off its point's median (relative): some repeats ran in another state
FAR_SHARE = 0.05  # ... and at least this share of the point's repeats (one at least)
PILOT_OFF = 2.0  # a pilot pass this many times the later median, or 1/this: the plan rested on a disturbed pass
LOAD_MARGIN = 0.5  # runnable tasks beyond the cores, averaged over the last minute: other work competed
MIN_FIT_LENGTHS = 4  # a three-coefficient form is fixed, and judged by leaving one length out, from four lengths

Point = tuple  # (phase, n_ctx, n_new), or (phase, n_ctx, n_new, batch) for a pass of more than one sequence


def load_average_1m() -> float | None:
    """The 1-minute load average: runnable tasks, averaged; None where the system keeps none."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the system says, else all)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass(frozen=True)
class PilotCheck:
    """A length whose pilot pass (``pilot_s``) was ``PILOT_OFF`` times or more off its later median."""

    n_ctx: int
    pilot_s: float
    median_s: float


@dataclass(frozen=True)
class AffectedPoint:
    """A measured point and what was seen there: ``"slow reference"`` (the reference pass before or
    after it was slow) and/or ``"far repeats"`` (a repeat 50% or more off its median); ``batch``: its
    sequences in a pass."""

    phase: str
    n_ctx: int
    n_new: int
    seen: list[str]
    batch: int = 1


@dataclass(frozen=True)
class Disturbance:
    """``run.json``'s ``done.disturbance``: what the watch saw during the sweep.

    ``signs`` names what was seen (``"load"``, ``"reference"``, ``"repeats"``, ``"pilot"``): empty
    on a quiet machine. ``reference_latencies_s`` are the reference passes in order (prefill at
    ``reference_n_ctx``); ``brought_back`` the lengths the budget had dropped on a disturbed pilot
    and the re-plan measured after all; ``too_few_lengths`` that the sweep measured fewer than
    ``MIN_FIT_LENGTHS`` lengths while dropping others for time on a disturbed machine, so a fit
    would rest on too few lengths to fix its form."""

    signs: list[str]
    cores: int
    load_1m_start: float | None
    load_1m_end: float | None
    reference_n_ctx: int | None = None
    reference_latencies_s: list[float] = field(default_factory=list)
    pilot_off: list[PilotCheck] = field(default_factory=list)
    brought_back: list[int] = field(default_factory=list)
    points: list[AffectedPoint] = field(default_factory=list)
    too_few_lengths: bool = False

    @property
    def disturbed(self) -> bool:
        return bool(self.signs)

    @property
    def reference_spread(self) -> float | None:
        """How much the machine's speed varied through the sweep: the reference passes' mean absolute deviation from
        their median, relative to it (0.09: 9%); None with fewer than ``MIN_SPREAD_REFERENCES`` of them. A point
        measured at any moment of the sweep is that far off on average, so a fitted curve's held-out error can go
        no lower on this run."""
        times = self.reference_latencies_s
        if len(times) < MIN_SPREAD_REFERENCES:
            return None
        middle = statistics.median(times)
        return statistics.fmean(abs(t - middle) for t in times) / middle

    def seen(self) -> list[str]:
        """What was seen, one short phrase per sign, for the console and the report."""
        phrases = []
        if "load" in self.signs:
            phrases.append(f"load average {self.load_1m_end:.1f} on {self.cores} cores")
        if "reference" in self.signs:
            times = self.reference_latencies_s
            phrases.append(f"reference prefill n={self.reference_n_ctx} took {min(times) * 1e3:.1f} to "
                           f"{max(times) * 1e3:.1f} ms")
        if "repeats" in self.signs:
            count = sum("far repeats" in p.seen for p in self.points)
            phrases.append(f"repeats 50% or more off their median at {count} point{'s' if count > 1 else ''}")
        if "pilot" in self.signs:
            worst = max(self.pilot_off, key=lambda c: max(c.pilot_s / c.median_s, c.median_s / c.pilot_s))
            phrases.append(f"the pilot's prefill n={worst.n_ctx} took {worst.pilot_s * 1e3:.1f} ms, later "
                           f"{worst.median_s * 1e3:.1f} ms")
        return phrases

    @classmethod
    def from_json(cls, document: dict) -> Disturbance:
        return cls(**{**document,
                      "pilot_off": [PilotCheck(**check) for check in document.get("pilot_off", [])],
                      "points": [AffectedPoint(**point) for point in document.get("points", [])]})


class DisturbanceWatch:
    """Collects the signs while a sweep runs (built at its start: the load is read then);
    ``finish`` turns them into a ``Disturbance``."""

    def __init__(self, load_average: Callable[[], float | None] = load_average_1m, cores: int | None = None):
        self.cores = cores or usable_cores()
        self._load_average = load_average
        self.load_start = load_average()
        self.reference_n_ctx: int | None = None
        self._timeline: list[float | Point] = []  # reference latencies and measured points, in the order timed
        self._far_repeats: list[Point] = []

    def looks_slow(self, latency_s: float, expected_s: float) -> bool:
        """Whether a reference pass is slow against the quickest one so far and ``expected_s``, what it was
        predicted to take (the pilot's figure: the first reference has no other to go by)."""
        references = [entry for entry in self._timeline if isinstance(entry, float)]
        return latency_s >= SLOW_REFERENCE * min(references + [expected_s])

    def reference(self, n_ctx: int, latency_s: float) -> None:
        self.reference_n_ctx = n_ctx
        self._timeline.append(latency_s)

    def measured(self, point: Point, latencies_s: list[float]) -> None:
        self._timeline.append(point)
        median = statistics.median(latencies_s)
        far = sum(abs(x / median - 1) >= FAR_EXTREME for x in latencies_s)
        if far and far >= FAR_SHARE * len(latencies_s):
            self._far_repeats.append(point)

    def _slow_spells(self) -> list[Point]:
        """The points measured since the reference pass before a slow one, and until the one after it."""
        references = [entry for entry in self._timeline if isinstance(entry, float)]
        if not references:
            return []
        slow_from = SLOW_REFERENCE * min(references)
        affected, since_reference, slow_before = [], [], False
        for entry in self._timeline:
            if isinstance(entry, float):
                slow = entry >= slow_from
                if slow or slow_before:
                    affected += since_reference
                since_reference, slow_before = [], slow
            else:
                since_reference.append(entry)
        return affected + (since_reference if slow_before else [])

    def finish(self, pilot_s: dict[int, float], prefill_median_s: dict[int, float], dropped_for_time: list[int],
               brought_back: list[int]) -> Disturbance:
        """The record, from the pilot's pass per length, the prefill median measured per length, the
        lengths the budget left out and those the re-plan brought back."""
        load_end = self._load_average()
        pilot_off = [PilotCheck(n, pilot_s[n], prefill_median_s[n]) for n in sorted(pilot_s)
                     if n in prefill_median_s
                     and not 1 / PILOT_OFF < pilot_s[n] / prefill_median_s[n] < PILOT_OFF]
        slow = self._slow_spells()
        points = [AffectedPoint(*point[:3], seen=[why for why, where in (("slow reference", slow),
                                                                         ("far repeats", self._far_repeats))
                                                 if point in where], batch=(*point, 1)[3])
                  for point in dict.fromkeys(slow + self._far_repeats)]
        signs = [sign for sign, seen in (
            ("load", load_end is not None and load_end > self.cores + LOAD_MARGIN),
            ("reference", bool(slow)),
            ("repeats", bool(self._far_repeats)),
            ("pilot", bool(pilot_off)),
        ) if seen]
        order = {"prefill": 0, "decode": 1, "extend": 2, "forward": 3, "generate": 4}
        return Disturbance(
            signs=signs, cores=self.cores, load_1m_start=self.load_start, load_1m_end=load_end,
            reference_n_ctx=self.reference_n_ctx,
            reference_latencies_s=[entry for entry in self._timeline if isinstance(entry, float)],
            pilot_off=pilot_off, brought_back=sorted(brought_back),
            points=sorted(points, key=lambda p: (order[p.phase], p.batch, p.n_ctx, p.n_new)),
            too_few_lengths=bool(signs) and bool(dropped_for_time) and len(prefill_median_s) < MIN_FIT_LENGTHS,
        )
