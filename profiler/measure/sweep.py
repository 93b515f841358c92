"""The measurement sweep: every phase across the context-length grid, within a time budget.

1. Pilot: one FLOP-counted prefill per grid length, ascending. It is that length's prefill
   warm-up and FLOP count, finds where memory runs out, and gives each length's latency.
   With the default grid, every other length is piloted first, up to the top, then the
   lengths between; each is kept while measuring it (and the generate pairs it implies) is
   predicted to fit the budget, so a tight budget thins the grid before it shortens it.
   Explicit ``--lengths`` are all kept.
2. Measurement: the lengths in shuffled order (so slow drift does not masquerade as a
   trend in n); at each length prefill, then decode on the cache the last prefill built,
   then forward; then the generate pairs. Each item is a warm-up pass (FLOP-counted for
   decode and forward; prefill's was the pilot), then timed repeats until
   ``timing.enough_repeats``, with a share of the budget still left proportional to its
   predicted cost. Garbage collection is off while timing.
3. Drift check: one prefill point is timed again at the end; if its median moved by 10% or
   more, the machine's speed changed during the sweep (throttling, a noisy neighbour) and
   the run says so, since a slow spell covering a whole point is invisible in its spread.

Out of memory at some length: recorded; that length and longer ones are dropped, what was
measured stays. An interrupt (Ctrl-C) ends the sweep the same way. Rows reach the disk as
they are measured, so neither loses a sample.

Every latency, the budget and the progress are read off one ``timing.Clock`` (the wall clock
unless the caller passes another).
"""

from __future__ import annotations

import gc
import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from profiler.measure.devices import dtype_name
from profiler.measure.flops import count_flops, generate_flops, pass_flops
from profiler.measure.grid import generate_pairs
from profiler.measure.loading import LoadedModel
from profiler.measure.memory import PeakMemory, kv_cache_bytes
from profiler.measure.passes import Passes
from profiler.measure.samples import SampleWriter
from profiler.measure.timing import Clock, RepeatPolicy, enough_repeats, time_pass

Progress = Callable[[str, float, float], None]  # (what runs now, seconds done, seconds in all)


def _no_progress(description: str, done_s: float, total_s: float) -> None:
    pass


def is_out_of_memory(err: BaseException) -> bool:
    text = str(err).lower()
    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in text or "can't allocate memory" in text


class _OutOfMemory(Exception):
    """Raised by an item that ran out of memory, after the fact is recorded."""


@dataclass
class SweepOutcome:
    lengths: list[int] = field(default_factory=list)
    generate_pairs: list[tuple[int, int]] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    out_of_memory: dict | None = None
    drift: dict | None = None
    interrupted: bool = False
    elapsed_s: float = 0.0


class Sweep:
    def __init__(
        self,
        loaded: LoadedModel,
        writer: SampleWriter,
        *,
        lengths: list[int],
        trim_to_budget: bool,
        budget_s: float,
        policy: RepeatPolicy = RepeatPolicy(),
        seed: int = 0,
        progress: Progress = _no_progress,
        clock: Clock = time.perf_counter,
    ):
        self.loaded = loaded
        self.arch = loaded.architecture
        self.writer = writer
        self.grid = lengths
        self.trim_to_budget = trim_to_budget
        self.budget_s = budget_s
        self.policy = policy
        self.rng = random.Random(seed)
        self.progress = progress
        self.clock = clock
        self.passes = Passes(loaded, seed)
        self.memory = PeakMemory(loaded.device)
        self.outcome = SweepOutcome()
        self.prefill_s: dict[int, float] = {}  # pilot latency per length
        self.prefill_flops_counted: dict[int, int] = {}  # counted on the pilot pass
        self.decode_s = 0.0  # pilot latency of one decode step
        self.medians_s: dict[tuple, float] = {}  # (phase, n_ctx, n_new) -> measured median
        self.remaining_cost_s = 0.0
        self._row_base = {
            "model": loaded.source.name, "weights": "random" if loaded.random_weights else "safetensors",
            "device": loaded.device.type, "dtype": dtype_name(loaded.dtype),
        }

    # -- the plan -------------------------------------------------------------------
    def _prefill_estimate_s(self, n: int) -> float:
        longer = [m for m in self.prefill_s if m >= n]
        return self.prefill_s[min(longer)] if longer else self.prefill_s[max(self.prefill_s)] * n / max(self.prefill_s)

    def _generate_s(self, n_in: int, n_out: int) -> float:
        return self._prefill_estimate_s(n_in) + (n_out - 1) * self.decode_s

    def _length_cost_s(self, n: int) -> float:
        """Predicted time to measure one length at the minimum repeats, warm-ups included."""
        repeats = self.policy.min_repeats
        return (2 * repeats + 1) * self.prefill_s[n] + (repeats + 1) * self.decode_s

    def _fits(self, kept: list[int], spent_s: float) -> bool:
        pairs = generate_pairs(kept, self.arch.max_positions)
        cost = sum(self._length_cost_s(n) for n in kept)
        cost += (self.policy.min_repeats + 1) * sum(self._generate_s(*pair) for pair in pairs)
        return spent_s + cost <= self.budget_s

    def _pilot(self, started: float) -> list[int]:
        """Pilot the grid; with a budget, the range first (every other length, up to the top),
        then the lengths between, so a tight budget thins the grid before it shortens it."""
        if not self.trim_to_budget:
            kept = self._pilot_lengths(self.grid, [], started)
        else:
            coarse = self.grid[::2] + ([self.grid[-1]] if len(self.grid) % 2 == 0 else [])
            kept = self._pilot_lengths(coarse, [], started)
            between = [n for n in self.grid if n not in coarse and kept and n < kept[-1]]
            kept = self._pilot_lengths(between, kept, started)
        oom = self.outcome.out_of_memory
        for n in self.grid:
            if n not in kept:
                reason = "out of memory" if oom and n >= oom["n_ctx"] else "time budget"
                self.outcome.skipped.append({"n_ctx": n, "reason": reason})
        return kept

    def _pilot_lengths(self, candidates: list[int], kept: list[int], started: float) -> list[int]:
        """Pilot ``candidates`` in ascending order on top of ``kept``; stop at the first that
        runs out of memory or, with a budget, would not fit in it. Returns all kept, sorted."""
        for n in candidates:
            if self.trim_to_budget and kept:
                below = max(m for m in kept if m < n)
                self.prefill_s[n] = self.prefill_s[below] * n / below  # predicted, linear in n
                if not self._fits(sorted([*kept, n]), self.clock() - started + self.prefill_s[n]):
                    del self.prefill_s[n]
                    break
            self.progress(f"pilot prefill n={n}", self.clock() - started, self.budget_s)
            try:
                if not kept:  # the model's very first pass pays one-off set-up: keep it out of the estimates
                    self.passes.prefill(n)
                (cache, self.prefill_flops_counted[n]), self.prefill_s[n] = time_pass(
                    lambda: count_flops(lambda: self.passes.prefill(n)), self.loaded.device, self.clock)
                if not kept:
                    self.decode_s = self._pilot_decode_s(cache)
                del cache
            except (RuntimeError, torch.OutOfMemoryError) as err:
                if not is_out_of_memory(err):
                    raise
                self._out_of_memory("prefill", n, err)
                break
            if self.trim_to_budget and kept and not self._fits(sorted([*kept, n]), self.clock() - started):
                del self.prefill_s[n]
                break
            kept = sorted([*kept, n])
        return kept

    def _pilot_decode_s(self, cache) -> float:
        """Latency of one decode step on ``cache`` (after one untimed step), for the plan."""
        if cache.get_seq_length() >= self.arch.max_positions - 1:
            cache.crop(-2)
        self.passes.decode_step(cache)
        return time_pass(lambda: self.passes.decode_step(cache), self.loaded.device, self.clock)[1]

    def _out_of_memory(self, phase: str, n: int, err: BaseException) -> None:
        self.outcome.out_of_memory = {"phase": phase, "n_ctx": n, "error": str(err).splitlines()[0][:200]}
        gc.collect()
        if self.loaded.device.type == "cuda":
            torch.cuda.empty_cache()

    # -- measuring one item ---------------------------------------------------------
    def _measure(self, phase, n_ctx, n_new, run_pass, flops, warm_up, estimate_s, after=None, started=0.0):
        """Warm-up, then timed repeats; every repeat becomes a row.

        ``warm_up`` is ``"counted"`` (a FLOP-counted pass), ``"plain"``, or the FLOPs already
        counted on an earlier warm-up of the same pass (the pilot's prefill).

        Out of memory is recorded against ``n_ctx + n_new`` and raised as ``_OutOfMemory``.
        """
        try:
            return self._repeat(phase, n_ctx, n_new, run_pass, flops, warm_up, estimate_s, after, started)
        except (RuntimeError, torch.OutOfMemoryError) as err:
            if not is_out_of_memory(err):
                raise
            self._out_of_memory(phase, n_ctx + (n_new if phase in ("decode", "generate") else 0), err)
            raise _OutOfMemory from None

    def _repeat(self, phase, n_ctx, n_new, run_pass, flops, warm_up, estimate_s, after, started):
        deadline = started + self.budget_s
        share_s = max(0.0, deadline - self.clock()) * estimate_s / max(self.remaining_cost_s, 1e-9)
        self.remaining_cost_s -= estimate_s
        label = f"{phase} n_ctx={n_ctx}" + (f" n_new={n_new}" if phase == "generate" else "")
        self.progress(label, self.clock() - started, self._total_s(started))
        result, flops_counted = None, None
        if warm_up == "counted":
            result, flops_counted = count_flops(run_pass)
        elif warm_up == "plain":
            result = run_pass()
        else:
            flops_counted = warm_up
        if after and result is not None:
            after(result)
        latencies: list[float] = []
        item_start = self.clock()
        gc.disable()
        try:
            while not enough_repeats(latencies, self.clock() - item_start, share_s, self.policy):
                self.memory.reset()
                result, latency_s = time_pass(run_pass, self.loaded.device, self.clock)
                peak, reserved = self.memory.read()
                self.writer.write(
                    self._row_base
                    | {
                        "phase": phase, "n_ctx": n_ctx, "n_new": n_new, "repeat": len(latencies),
                        "latency_s": latency_s, "flops": flops, "flops_counted": flops_counted,
                        "peak_mem_bytes": peak, "peak_mem_reserved_bytes": reserved,
                        "kv_cache_bytes": kv_cache_bytes(result),
                    }
                )
                latencies.append(latency_s)
                if after:
                    after(result)
        finally:
            gc.enable()
        self.medians_s[(phase, n_ctx, n_new)] = statistics.median(latencies)
        return result

    def _total_s(self, started: float) -> float:
        elapsed = self.clock() - started
        return elapsed + max(started + self.budget_s - self.clock(), 0.0, self.remaining_cost_s)

    def _measure_length(self, n: int, started: float) -> None:
        p_s = self.prefill_s[n]
        cache = self._measure("prefill", n, n, lambda: self.passes.prefill(n), pass_flops(self.arch, n, n),
                              self.prefill_flops_counted[n], p_s, started=started)
        if n >= self.arch.max_positions:
            cache.crop(-1)  # a decode step needs a free position
        c = cache.get_seq_length()
        self._measure("decode", c, 1, lambda: self.passes.decode_step(cache), pass_flops(self.arch, 1, c + 1),
                      "counted", self.decode_s, after=lambda grown: grown.crop(-1), started=started)
        del cache
        self._measure("forward", n, n, lambda: self.passes.forward(n), pass_flops(self.arch, n, n),
                      "counted", p_s, started=started)

    # -- the whole sweep ------------------------------------------------------------
    def run(self) -> SweepOutcome:
        started = self.clock()
        try:
            self.outcome.lengths = self._pilot(started)
            self.outcome.generate_pairs = pairs = (
                generate_pairs(self.outcome.lengths, self.arch.max_positions) if self.outcome.lengths else []
            )
            order = list(self.outcome.lengths)
            self.rng.shuffle(order)
            self.remaining_cost_s = sum(2 * self.prefill_s[n] + self.decode_s for n in order)
            self.remaining_cost_s += sum(self._generate_s(*pair) for pair in pairs)
            for n in order:
                if not self._dropped(n):
                    try:
                        self._measure_length(n, started)
                    except _OutOfMemory:
                        pass
            for n_in, n_out in pairs:
                if not self._dropped(n_in + n_out):
                    try:
                        self._measure("generate", n_in, n_out, lambda: self.passes.generate(n_in, n_out),
                                      generate_flops(self.arch, n_in, n_out), "plain",
                                      self._generate_s(n_in, n_out), started=started)
                    except _OutOfMemory:
                        pass
            self.outcome.drift = self._drift_check(started)
        except KeyboardInterrupt:
            self.outcome.interrupted = True
        self.outcome.elapsed_s = self.clock() - started
        return self.outcome

    def _drift_check(self, started: float) -> dict | None:
        """Re-time one prefill point after the sweep: a machine that slowed down (or sped up)
        between the two shows up as a ratio away from 1, which a spread within a point cannot."""
        measured = sorted(n for (phase, n, _) in self.medians_s if phase == "prefill")
        if not measured:
            return None
        n = measured[len(measured) // 2]
        self.progress(f"drift check: prefill n_ctx={n}", self.clock() - started, self._total_s(started))
        again = [time_pass(lambda: self.passes.prefill(n), self.loaded.device, self.clock)[1]
                 for _ in range(self.policy.min_repeats)]
        during_s, after_s = self.medians_s[("prefill", n, n)], statistics.median(again)
        return {"phase": "prefill", "n_ctx": n, "median_latency_s": during_s, "median_latency_s_after": after_s,
                "ratio": after_s / during_s, "drifted": abs(after_s / during_s - 1) > self.policy.unstable_cv}

    def _dropped(self, n: int) -> bool:
        oom = self.outcome.out_of_memory
        if oom is None or n < oom["n_ctx"]:
            return False
        if not any(s["n_ctx"] == n for s in self.outcome.skipped):
            self.outcome.skipped.append({"n_ctx": n, "reason": "out of memory"})
        return True
