"""The sweep's pilot and its re-planning: which lengths the budget can hold, and bringing back
those a disturbed pilot dropped (steps 1 and 3 of ``profiler.measure.sweep``).

``Pilot`` is a part of ``Sweep`` kept in a module of its own: its methods read and set the
sweep's ``grid``, ``plan`` (``profiler.measure.plan.Plan``), ``passes``, ``clock``, ``outcome``,
``medians_s`` and ``measured_lengths``, and call its ``_out_of_memory``, ``_beyond_memory`` and
``_prefill_medians_s``.
"""

from __future__ import annotations

import torch

from profiler.measure.flops import count_flops
from profiler.measure.grid import generate_pairs
from profiler.measure.memory import is_out_of_memory
from profiler.measure.rewind import Rewind
from profiler.measure.timing import time_pass


class Pilot:
    def _fits(self, kept: list[int], spent_s: float) -> bool:
        to_measure = [n for n in kept if n not in self.measured_lengths and not self._beyond_memory(n)]
        return spent_s + self.plan.cost_s(kept, to_measure) <= self.budget_s

    def _pilot(self, started: float) -> list[int]:
        """Pilot the grid: every length, or with a budget as many as fit (``_grow``)."""
        kept = self._grow([], started) if self.trim_to_budget else self._pilot_lengths(self.grid, [], started)
        oom = self.outcome.out_of_memory
        for n in self.grid:
            if n not in kept:
                reason = "out of memory" if oom and n >= oom["n_ctx"] else "time budget"
                self.outcome.skipped.append({"n_ctx": n, "reason": reason})
        return kept

    def _grow(self, kept: list[int], started: float) -> list[int]:
        """Pilot the grid's lengths not in ``kept`` as the budget allows: the range first (every other
        length, up to the top), then the lengths between, so a tight budget thins the grid before it
        shortens it. Returns all kept, sorted."""
        coarse = self.grid[::2] + ([self.grid[-1]] if len(self.grid) % 2 == 0 else [])
        untried = [n for n in self.grid if n not in kept and not self._beyond_memory(n)]
        kept = self._pilot_lengths([n for n in untried if n in coarse], kept, started)
        between = [n for n in untried if n not in coarse and kept and n < kept[-1]]
        return self._pilot_lengths(between, kept, started)

    def _pilot_lengths(self, candidates: list[int], kept: list[int], started: float) -> list[int]:
        """Pilot ``candidates`` in ascending order on top of ``kept``; stop at the first that
        runs out of memory or, with a budget, would not fit in it. Returns all kept, sorted."""
        plan = self.plan
        for n in candidates:
            if self.trim_to_budget and kept:
                below = max(m for m in kept if m < n)
                plan.prefill_s[n] = plan.prefill_s[below] * n / below  # predicted, linear in n
                if not self._fits(sorted([*kept, n]), self.clock() - started + plan.prefill_s[n]):
                    del plan.prefill_s[n]
                    break
            self.progress(f"pilot prefill n={n}", self.clock() - started, self.budget_s)
            try:
                if not kept:
                    plain_s, counted_s = self._time_first_passes(n)
                (cache, self.prefill_flops_counted[n]), pilot_counted_s = time_pass(
                    lambda: count_flops(lambda: self.passes.prefill(n)), self.loaded.device, self.clock)
                if not kept:
                    plan.calibrate_counter(plain_s, min(counted_s, pilot_counted_s))
                    plan.decode_s = self._pilot_decode_s(cache)
                plan.prefill_s[n] = plan.uncounted_s(pilot_counted_s)
                del cache
            except (RuntimeError, torch.OutOfMemoryError) as err:
                if not is_out_of_memory(err):
                    raise
                self._out_of_memory("prefill", n, err)
                break
            if self.trim_to_budget and kept and not self._fits(sorted([*kept, n]), self.clock() - started):
                del plan.prefill_s[n]
                break
            plan.pilot_s[n] = plan.prefill_s[n]
            kept = sorted([*kept, n])
        return kept

    def _replan(self, queue: list[int], started: float, current: int) -> None:
        """After the prefill point of length ``current``, before its decode and forward take their shares of
        the time left: once the timings so far prove the pilot too slow (``Plan.correct``), the estimates are
        corrected and, with a budget, lengths it dropped are piloted again and join ``queue`` (shuffled in)
        while the corrected plan fits (``current`` counted whole in it: a little to spare)."""
        decode_median_s = [s for (phase, _, _), s in self.medians_s.items() if phase == "decode"]
        if not self.plan.correct(self.outcome.lengths, self._prefill_medians_s(), decode_median_s):
            return
        if self.trim_to_budget:
            kept = self._grow(self.outcome.lengths, started)
            back = [n for n in kept if n not in self.outcome.lengths]
            if back:
                self.brought_back += back
                self.outcome.skipped = [s for s in self.outcome.skipped if s["n_ctx"] not in back]
                self.outcome.lengths = kept
                self.outcome.generate_pairs = generate_pairs(kept, self.arch.max_positions)
                queue += back
                self.rng.shuffle(queue)
        self.remaining_cost_s = self.plan.one_repeat_s(queue, self.outcome.generate_pairs, self.reference_n)
        self.remaining_cost_s += self.plan.prefill_s[current] + self.plan.decode_s  # its decode and forward

    def _time_first_passes(self, n: int) -> tuple[float, float]:
        """The model's first passes, at the first length: one untimed (it pays one-off set-up), then the
        quicker of two plain passes and one FLOP-counted pass, timed (for ``Plan.calibrate_counter``)."""
        self.passes.prefill(n)
        plain_s = min(time_pass(lambda: self.passes.prefill(n), self.loaded.device, self.clock)[1] for _ in range(2))
        counted_s = time_pass(lambda: count_flops(lambda: self.passes.prefill(n)), self.loaded.device, self.clock)[1]
        return plain_s, counted_s

    def _pilot_decode_s(self, cache) -> float:
        """Latency of one decode step on ``cache`` (after one untimed step, the cache put back in between), for
        the plan. A cache that fills every position is replaced by one a token shorter: a step needs a free one."""
        if cache.get_seq_length() >= self.arch.max_positions:
            cache = self.passes.prefill(self.arch.max_positions - 1)
        rewind = Rewind(cache)
        self.passes.decode_step(cache)
        rewind()
        return time_pass(lambda: self.passes.decode_step(cache), self.loaded.device, self.clock)[1]
