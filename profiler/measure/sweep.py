"""The measurement sweep: every phase across the context-length grid, within a time budget.

Two grids: the lengths (prefill and forward at ``n``) and the decode contexts (decode at ``c`` on a
cache filled without a prefill, ``profiler.measure.cache_fill``: so decode reaches the model's last
position, ``max_positions - 1``, even where a prefill that long is unaffordable). By default the
lengths are the half-octave grid from 8 to the maximum, the decode contexts the same grid topped by
the last position; explicit ``--lengths`` are both (a context capped at the last position).

Budget: a pass is started only when it is predicted to end within the budget (``Sweep._affordable``):
the pilot's, a warm-up, each repeat (predicted by the repeat before it), a reference pass, the drift
check's. So a run ends within its budget plus at most one pass, the one whose prediction was wrong.
What could not be afforded is in ``skipped`` with its predicted cost (``pass_s``: one pass,
``predicted_s``: the point at its minimum repeats; ``budget_s``).

1. Pilot: one FLOP-counted prefill per grid length, ascending. It is that length's prefill
   warm-up and FLOP count, finds where memory runs out, and gives each length's latency (less
   the counter's overhead, timed at the first length: ``plan.Plan.calibrate_counter``). At the
   first length a decode step is timed too, and one at the top of the decode grid on a filled
   cache (with its fill): the plan's decode cost, linear in the context. The default decode
   contexts are thinned (ends kept) until they cost at most a quarter of the budget. With the
   default grid, every other length is piloted first, up to the top, then the lengths between;
   each (explicit ``--lengths`` too, ascending) is kept while measuring it, with every decode
   context, the generate pairs, the reference passes and the drift check, is predicted to fit the
   budget at the minimum repeats (fewer for a long pass: ``plan.Plan.repeats``), so a tight budget
   thins the grid before it shortens it.
2. Measurement: the lengths and decode contexts in shuffled order (so slow drift does not
   masquerade as a trend in n); at each length prefill, then forward; at each decode context
   decode steps on a filled cache (every step at the same context: the cache is put back after
   each, ``profiler.measure.rewind``); then the generate pairs. Each item is a warm-up pass
   (FLOP-counted for decode and forward; prefill's was the pilot), then timed repeats until
   ``timing.enough_repeats``, with a share of the budget still left proportional to its
   predicted cost. Garbage collection is off while timing. A reference pass (prefill at the
   shortest length) is timed before each item and after the last, to see the machine's speed
   through the run (``profiler.measure.disturbance``).
3. Re-plan: after each length's prefill point, the pilot is set against the medians measured
   (``plan.Plan.correct``). When it proves twice too slow or more (a disturbance during the
   pilot that has gone away), the estimates are corrected and, with the default grid, lengths
   the budget dropped are piloted again and brought back while the corrected plan fits.
4. Drift check: one prefill point is timed again at the end; if its median moved by 10% or
   more, the machine's speed changed during the sweep (throttling, a noisy neighbour) and
   the run says so, since a slow spell covering a whole point is invisible in its spread.

Out of memory at some length: recorded; that length and longer ones are dropped, what was
measured stays. An interrupt (Ctrl-C) ends the sweep the same way. Rows reach the disk as
they are measured, so neither loses a sample. The outcome carries what the disturbance watch
saw, interrupted or not.

Every latency, the budget and the progress are read off one ``timing.Clock`` (the wall clock
unless the caller passes another), the load off ``load_average`` (``os.getloadavg`` unless
the caller passes another).
"""

from __future__ import annotations

import gc
import random
import statistics
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import torch

from profiler.measure.cache_fill import filled_cache
from profiler.measure.devices import dtype_name
from profiler.measure.disturbance import SLOW_REFERENCE, Disturbance, DisturbanceWatch, load_average_1m
from profiler.measure.flops import count_flops, generate_flops, pass_flops
from profiler.measure.grid import decode_contexts, generate_pairs
from profiler.measure.loading import LoadedModel
from profiler.measure.memory import PeakMemory, is_out_of_memory, kv_cache_bytes
from profiler.measure.passes import Passes
from profiler.measure.pilot import Pilot
from profiler.measure.plan import Plan
from profiler.measure.rewind import Rewind
from profiler.measure.samples import SampleWriter
from profiler.measure.timing import Clock, RepeatPolicy, enough_repeats, time_pass

Progress = Callable[[str, float, float], None]  # (what runs now, seconds done, seconds in all)


def _no_progress(description: str, done_s: float, total_s: float) -> None:
    pass


class _OutOfMemory(Exception):
    """Raised by an item that ran out of memory, after the fact is recorded."""


class _OverBudget(Exception):
    """Raised by an item whose first pass was predicted not to end within the budget, after the fact is
    recorded in ``skipped``."""


@dataclass
class SweepOutcome:
    lengths: list[int] = field(default_factory=list)
    generate_pairs: list[tuple[int, int]] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    out_of_memory: dict | None = None
    drift: dict | None = None
    interrupted: bool = False
    elapsed_s: float = 0.0
    disturbance: Disturbance | None = None


class Sweep(Pilot):
    """The sweep over ``lengths`` of ``loaded`` into ``writer`` (see the module doc); its pilot and re-planning
    are ``profiler.measure.pilot.Pilot``'s."""

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
        load_average: Callable[[], float | None] = load_average_1m,
    ):
        self.loaded = loaded
        self.arch = loaded.architecture
        self.writer = writer
        self.grid = lengths
        self.decode_grid = decode_contexts(lengths, self.arch.max_positions, default=trim_to_budget)
        self.decode_contexts: list[int] = []  # chosen by the pilot
        self.trim_to_budget = trim_to_budget
        self.budget_s = budget_s
        self.policy = policy
        self.seed = seed
        self.rng = random.Random(seed)
        self.progress = progress
        self.clock = clock
        self.load_average = load_average
        self.passes = Passes(loaded, seed)
        self.memory = PeakMemory(loaded.device)
        self.outcome = SweepOutcome()
        self.plan = Plan(policy.min_repeats, self.arch.max_positions, budget_s)
        self.prefill_flops_counted: dict[int, int] = {}  # counted on the pilot pass
        self.medians_s: dict[tuple, float] = {}  # (phase, n_ctx, n_new) -> measured median
        self.measured: set[tuple[str, int]] = set()  # items done (or dropped): out of the plan's cost
        self.started = 0.0
        self.reference_n = 0  # the reference pass's length: the shortest kept
        self.reference_s: list[float] = []  # its latencies
        self.brought_back: list[int] = []
        self.remaining_cost_s = 0.0
        self.watch: DisturbanceWatch | None = None
        self._row_base = {
            "model": loaded.source.name, "weights": "random" if loaded.random_weights else "safetensors",
            "device": loaded.device.type, "dtype": dtype_name(loaded.dtype),
        }

    def _out_of_memory(self, phase: str, n: int, err: BaseException) -> None:
        self.outcome.out_of_memory = {"phase": phase, "n_ctx": n, "error": str(err).splitlines()[0][:200]}
        gc.collect()
        if self.loaded.device.type == "cuda":
            torch.cuda.empty_cache()

    # -- measuring one item ---------------------------------------------------------
    def _affordable(self, pass_s: float, started: float) -> bool:
        """Whether a pass predicted to take ``pass_s`` ends within the budget."""
        return self.clock() + pass_s <= started + self.budget_s

    def _over_budget(self, phase: str, n_ctx: int, n_new: int, pass_s: float) -> None:
        skip = {"n_ctx": n_ctx, "reason": "time budget", "phase": phase, "pass_s": pass_s, "budget_s": self.budget_s}
        self.outcome.skipped.append(skip | ({"n_new": n_new} if phase == "generate" else {}))
        raise _OverBudget

    def _measure(self, phase, n_ctx, n_new, run_pass, flops, warm_up, estimate_s, after=None, started=0.0):
        """Warm-up, then timed repeats; every repeat becomes a row.

        ``warm_up`` is ``"counted"`` (a FLOP-counted pass), ``"plain"``, or the FLOPs already
        counted on an earlier warm-up of the same pass (the pilot's prefill). ``estimate_s``: one pass.

        Out of memory is recorded against ``n_ctx + n_new`` and raised as ``_OutOfMemory``; a first pass
        predicted not to end within the budget is recorded in ``skipped`` and raised as ``_OverBudget``.
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
        policy = replace(self.policy, min_repeats=self.plan.repeats(estimate_s))
        warm_up_s = {"counted": self.plan.counted_s(estimate_s), "plain": estimate_s}.get(warm_up, 0.0)
        if not self._affordable(warm_up_s + estimate_s, started):
            self._over_budget(phase, n_ctx, n_new, estimate_s)
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
            while (not enough_repeats(latencies, self.clock() - item_start, share_s, policy)
                   and self._affordable(latencies[-1] if latencies else estimate_s, started)):
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
        if not latencies:
            self._over_budget(phase, n_ctx, n_new, estimate_s)
        self.medians_s[(phase, n_ctx, n_new)] = statistics.median(latencies)
        self.watch.measured((phase, n_ctx, n_new), latencies)
        return result

    def _reference(self, started: float) -> None:
        """Time the reference pass once (prefill at the shortest length kept), for the disturbance watch,
        when it is predicted to end within the budget."""
        n = self.reference_n
        self.remaining_cost_s -= self.plan.prefill_s[n]
        if self._beyond_memory(n) or not self._affordable(self.plan.prefill_s[n], started):
            return
        self.progress(f"reference prefill n_ctx={n}", self.clock() - started, self._total_s(started))
        gc.disable()
        try:
            latency_s = time_pass(lambda: self.passes.prefill(n), self.loaded.device, self.clock)[1]
            # slow against the quickest so far, the first against the pilot's: a hiccup does not repeat, a busy
            # spell does
            slow = latency_s >= SLOW_REFERENCE * min([*self.reference_s, self.plan.prefill_s[n]])
            if slow and self._affordable(latency_s, started):
                latency_s = min(latency_s, time_pass(lambda: self.passes.prefill(n), self.loaded.device,
                                                     self.clock)[1])
        finally:
            gc.enable()
        self.watch.reference(n, latency_s)
        self.reference_s.append(latency_s)

    def _total_s(self, started: float) -> float:
        elapsed = self.clock() - started
        return elapsed + max(started + self.budget_s - self.clock(), 0.0, self.remaining_cost_s)

    def _left_s(self, queue: list) -> float:
        return self.plan.left_s(queue, self.outcome.generate_pairs, self.reference_n, self.outcome.lengths)

    def _measure_length(self, n: int, queue: list, started: float) -> None:
        self._measure("prefill", n, n, lambda: self.passes.prefill(n), pass_flops(self.arch, n, n),
                      self.prefill_flops_counted[n], self.plan.prefill_s[n], started=started)
        self._replan(queue, started, ("length", n), begun=True)
        self._measure("forward", n, n, lambda: self.passes.forward(n), pass_flops(self.arch, n, n),
                      "counted", self.plan.prefill_s[n], started=started)

    def _measure_decode(self, c: int, started: float) -> None:
        """Decode steps at context ``c`` on a filled cache, put back after each step."""
        step_s, fill_s = self.plan.decode_estimate_s(c), c * self.plan.fill_s_per_token
        self.remaining_cost_s -= fill_s
        if not self._affordable(fill_s + self.plan.counted_s(step_s) + step_s, started):
            self._over_budget("decode", c, 1, step_s)
        try:
            cache = filled_cache(self.passes, c, self.seed)
        except (RuntimeError, torch.OutOfMemoryError) as err:
            if not is_out_of_memory(err):
                raise
            self._out_of_memory("decode", c, err)
            raise _OutOfMemory from None
        rewind = Rewind(cache)
        self._measure("decode", c, 1, lambda: self.passes.decode_step(cache), pass_flops(self.arch, 1, c + 1),
                      "counted", step_s, after=lambda grown: rewind(), started=started)

    # -- the whole sweep ------------------------------------------------------------
    def run(self) -> SweepOutcome:
        started = self.clock()
        self.watch = DisturbanceWatch(self.load_average)
        try:
            self.outcome.lengths = self._pilot(started)
            if self.outcome.lengths:
                self._measure_all(started)
                self.outcome.drift = self._drift_check(started)
        except KeyboardInterrupt:
            self.outcome.interrupted = True
        self.outcome.elapsed_s = self.clock() - started
        self.outcome.disturbance = self.watch.finish(
            self.plan.pilot_s, self._prefill_medians_s(),
            [s["n_ctx"] for s in self.outcome.skipped if s["reason"] == "time budget"], self.brought_back)
        return self.outcome

    def _measure_all(self, started: float) -> None:
        """The lengths and decode contexts planned, in shuffled order, re-planning after each length's prefill
        point; then the generate pairs; a reference pass before each item and after the last."""
        self.reference_n = self.outcome.lengths[0]
        self.outcome.generate_pairs = generate_pairs(self.outcome.lengths, self.arch.max_positions)
        queue = [("length", n) for n in self.outcome.lengths] + [("decode", c) for c in self.decode_contexts]
        self.rng.shuffle(queue)
        self.remaining_cost_s = self._left_s(queue)
        while queue:
            kind, n = item = queue.pop(0)
            if not self._dropped(n, kind):
                self._reference(started)
                self._replan(queue, started, item, begun=False)
                try:
                    self._measure_length(n, queue, started) if kind == "length" else self._measure_decode(n, started)
                except (_OutOfMemory, _OverBudget):
                    pass
            self.measured.add(item)
        for n_in, n_out in self.outcome.generate_pairs:
            if not self._dropped(n_in + n_out, "generate"):
                self._reference(started)
                try:
                    self._measure("generate", n_in, n_out, lambda: self.passes.generate(n_in, n_out),
                                  generate_flops(self.arch, n_in, n_out), "plain",
                                  self.plan.generate_s(n_in, n_out), started=started)
                except (_OutOfMemory, _OverBudget):
                    pass
        self._reference(started)  # the last item's other side

    def _prefill_medians_s(self) -> dict[int, float]:
        return {n: median_s for (phase, n, _), median_s in self.medians_s.items() if phase == "prefill"}

    def _drift_check(self, started: float) -> dict | None:
        """Re-time one prefill point after the sweep, as many times as the budget allows (up to the minimum
        repeats): a machine that slowed down (or sped up) between the two shows up as a ratio away from 1,
        which a spread within a point cannot. None when nothing was measured or no pass could be afforded."""
        measured = sorted(n for (phase, n, _) in self.medians_s if phase == "prefill")
        if not measured:
            return None
        n = measured[len(measured) // 2]
        during_s = self.medians_s[("prefill", n, n)]
        self.progress(f"drift check: prefill n_ctx={n}", self.clock() - started, self._total_s(started))
        again = []
        while len(again) < self.policy.min_repeats and self._affordable(again[-1] if again else during_s, started):
            again.append(time_pass(lambda: self.passes.prefill(n), self.loaded.device, self.clock)[1])
        if not again:
            return None
        after_s = statistics.median(again)
        return {"phase": "prefill", "n_ctx": n, "median_latency_s": during_s, "median_latency_s_after": after_s,
                "ratio": after_s / during_s, "drifted": abs(after_s / during_s - 1) > self.policy.unstable_cv}

    def _beyond_memory(self, n: int) -> bool:
        oom = self.outcome.out_of_memory
        return oom is not None and n >= oom["n_ctx"]

    def _dropped(self, n: int, kind: str = "length") -> bool:
        """Whether the item at ``n`` (a length, a decode context, a generate pair's total) is beyond memory; the
        first time, recorded in ``skipped``."""
        if not self._beyond_memory(n + (kind == "decode")):
            return False
        phase = {"length": "prefill", "decode": "decode", "generate": "generate"}[kind]
        if not any(s["n_ctx"] == n and s.get("phase", "prefill") == phase for s in self.outcome.skipped):
            self.outcome.skipped.append({"n_ctx": n, "reason": "out of memory"} | ({} if kind == "length" else
                                                                                  {"phase": phase}))
        return True
