"""Measuring one visit to an item of the sweep (a length's prefill and forward points, a decode context of one sequence
or of a batch, a batched prefill, an extend point, a generate pair), and the reference passes between visits
(``_reference``). A visit is a warm-up, then timed repeats while the visit's share of the time left lasts and each pass
is predicted to end within the budget (``profiler.measure.sweep``, step 2). A point's rows number its repeats on across
its visits, and its median (``medians_s``) is over them all (``point_latencies_s``).

``Items`` is a part of ``Sweep`` kept in a module of its own: its methods read and set the sweep's ``plan``,
``passes``, ``clock``, ``budget_s``, ``policy``, ``writer``, ``memory``, ``pilot_memory``, ``energy``, ``watch``,
``medians_s``, ``point_latencies_s``, ``later_visits``, ``pairs_to_come``, ``reference_n``, ``reference_s``,
``reference_end_s``, ``remaining_cost_s`` and ``outcome``, and call its ``_out_of_memory``,
``_batch_out_of_memory``, ``_extend_out_of_memory``, ``_replan`` and ``_pairs_reserve_s``.

A batched point's row says its ``batch``; its FLOPs are ``batch`` times a sequence's, its memory and KV bytes the
whole batch's (``profiler.measure.samples``); its median is not one of ``medians_s`` (the single-sequence figures
the plan is corrected by and the drift check reads).

An extend point's rows: phase ``extend``, ``n_ctx`` and ``n_cached`` the ``c`` tokens cached, ``n_new`` the ``s``
appended, FLOPs those of ``s`` tokens attending to ``c + s`` (``flops.pass_flops``).

Peak memory (``peak_mem_bytes``, ``peak_mem_reserved_bytes``) is read once a point, on the first pass of its first
visit, and is on that visit's rows; a later visit's rows leave it empty. On a CPU the free pages the process holds are
handed back before that pass (``PeakMemory.reset``, ``profiler.measure.allocator``), so it faults in its own pages. It
is the visit's warm-up where it has one; a prefill's first visit has its pilot pass's (``pilot_memory``), the pass that
was its warm-up; a forward's, with no warm-up of its own, is its first timed repeat (a forward of gpt2 right after the
pages were handed back took 1.006-1.017 times one on pages held, the median of 6 at 128, 512 and 1,024 tokens on this
2-core CPU: within the noise, where pages handed back seconds before, which the host takes back, cost up to 15%).

FLOPs are counted (FlopCounterMode, ``flops_counted``) on the warm-up of the first ``COUNTED_WARM_UPS`` points of
each phase and batch size (a forward's at the shortest lengths only), a plain warm-up after them (a forward none
after them: the prefills of its length just before it ran the same products; its first pass after them took
0.98-0.99 times the next ones, the median of 12 rounds at 64, 256 and 1,024 tokens of gpt2 on this 2-core CPU,
where a prefill's first after another shape took up to 1.06 times, ``benchmarks/forward_warm_up.py``): the count
checks the analytic FLOPs, which are exact (``tests/test_flops.py``), and sends every operator through Python, a cost
per pass that does not grow with the tokens (0.15-0.2 s on a 135M-parameter model on a 2-core CPU, several times its
short passes) and that every point would otherwise take from the budget. A prefill's are counted on its pilot pass.
"""

from __future__ import annotations

import statistics
from dataclasses import replace

import torch

from profiler.measure.cache_fill import filled_cache
from profiler.measure.flops import count_flops, pass_flops
from profiler.measure.memory import is_out_of_memory, kv_cache_bytes
from profiler.measure.plan import REFERENCE_GAP
from profiler.measure.rewind import Rewind
from profiler.measure.samples import cached_tokens
from profiler.measure.timing import enough_repeats, time_pass


class OutOfMemory(Exception):
    """Raised by an item that ran out of memory, after the fact is recorded."""


class OverBudget(Exception):
    """Raised by an item whose first pass was predicted not to end within the budget, after the fact is
    recorded in ``skipped``."""


COUNTED_WARM_UPS = 2  # points of each phase and batch size whose warm-up is FLOP-counted (module doc)
# A visit past those planned (the time the plan left, ``Sweep._spend_left``): its index is not below its count. It takes
# ``Plan.extra_visit_repeats`` and no more, re-plans nothing, and one the budget cannot afford is not said.
EXTRA_VISIT = (1, 1)


class Items:
    def _warm_up(self, phase: str, batch: int = 1, visit: tuple[int, int] = (0, 1)) -> str:
        """``"counted"`` until ``COUNTED_WARM_UPS`` points of ``phase`` at ``batch`` had their FLOPs counted, then
        ``"plain"``; ``"plain"`` on a later visit (its point's FLOPs counted, if at all, on the first)."""
        counted = self.warm_ups_counted.get((phase, batch), 0) < COUNTED_WARM_UPS and not visit[0]
        return "counted" if counted else "plain"

    def _warm_up_s(self, warm_up: str, pass_s: float) -> float:
        """A warm-up of a pass predicted to take ``pass_s``: a counted one takes the counter's overhead besides."""
        return self.plan.counted_s(pass_s) if warm_up == "counted" else pass_s

    def _affordable(self, pass_s: float, started: float) -> bool:
        """Whether a pass predicted to take ``pass_s`` ends within the budget."""
        return self.clock() + pass_s <= started + self.budget_s

    def _over_budget(self, phase: str, n_ctx: int, n_new: int, pass_s: float, batch: int = 1,
                     visit: tuple[int, int] = (0, 1)) -> None:
        if visit[0] > 0:  # a later visit left out: the point keeps its earlier visits' repeats
            raise OverBudget
        if phase == "extend":
            self.outcome.extend_skipped.append({
                "c": n_ctx, "s": n_new, "reason": "time budget", "pass_s": pass_s,
                "predicted_s": self.plan.item_cost_s(("extend", n_ctx, n_new)), "budget_s": self.budget_s})
            raise OverBudget
        skip = {"n_ctx": n_ctx, "reason": "time budget", "phase": phase, "pass_s": pass_s, "budget_s": self.budget_s}
        if batch > 1:
            self.outcome.batch_skipped.append({"batch": batch} | skip)
        else:
            self.outcome.skipped.append(skip | ({"n_new": n_new} if phase == "generate" else {}))
        raise OverBudget

    def _measure(self, phase, n_ctx, n_new, run_pass, flops, warm_up, estimate_s, after=None, started=0.0, batch=1,
                 visit=(0, 1), reserve_s=None):
        """Warm-up, then timed repeats; every repeat becomes a row (numbered on from the point's earlier visits).

        ``warm_up`` is ``"counted"`` (a FLOP-counted pass), ``"plain"``, or no warm-up: the FLOPs already counted
        on an earlier warm-up of the same pass (the pilot's prefill), or None. ``estimate_s``: one pass.

        Out of memory is recorded against ``n_ctx + n_new`` (a batch's or an extend's against its point) and raised
        as ``OutOfMemory``; a first pass predicted not to end within the budget is recorded in ``skipped`` (a batch's
        in ``batch_skipped``, an extend's in ``extend_skipped``; not on a later ``visit``, ``(index from 0, of how
        many)``) and raised as ``OverBudget``. ``reserve_s``: seconds a repeat after the first leaves the budget (the
        generate pairs after a pair's: each keeps a warm-up and one call); None: what the generate pairs still to come
        need so (``Sweep._pairs_reserve_s``), so on a machine slower than its pilot a point's repeats after its first
        do not take a pair's only call.
        """
        if reserve_s is None:
            reserve_s = self._pairs_reserve_s(None, self.pairs_to_come, started)
        try:
            return self._repeat(phase, n_ctx, n_new, run_pass, flops, warm_up, estimate_s, after, started, batch,
                                visit, reserve_s)
        except (RuntimeError, torch.OutOfMemoryError) as err:
            if not is_out_of_memory(err):
                raise
            if phase == "extend":
                self._extend_out_of_memory(n_ctx, n_new, err)
            elif batch > 1:
                self._batch_out_of_memory(phase, n_ctx, batch, err)
            else:
                self._out_of_memory(phase, n_ctx + (n_new if phase in ("decode", "generate") else 0), err)
            raise OutOfMemory from None

    def _repeat(self, phase, n_ctx, n_new, run_pass, flops, warm_up, estimate_s, after, started, batch, visit,
                reserve_s):
        length = n_ctx if phase in ("prefill", "forward") and batch == 1 else None
        if visit[0] < visit[1]:
            policy = replace(self.policy, min_repeats=self.plan.visit_repeats(estimate_s, *visit, length))
        else:  # a visit past the planned ones (``EXTRA_VISIT``): its repeats, no more
            repeats = self.plan.extra_visit_repeats(estimate_s, length)
            policy = replace(self.policy, min_repeats=repeats, max_repeats=repeats)
        # its share of the time left, in proportion to its minimum repeats' part of what is left at the minimum
        minimum_s = policy.min_repeats * estimate_s
        share_s = max(0.0, started + self.budget_s - self.clock()) * minimum_s / max(self.remaining_cost_s, 1e-9)
        warmed = warm_up in ("counted", "plain")  # else the pilot's pass was the warm-up
        self.remaining_cost_s -= minimum_s + warmed * estimate_s  # as ``Plan.left_s`` counts it
        warm_up_s = self._warm_up_s(warm_up, estimate_s) if warmed else 0.0
        if not self._affordable(warm_up_s + estimate_s, started):
            self._over_budget(phase, n_ctx, n_new, estimate_s, batch, visit)
        label = f"{phase} n_ctx={n_ctx}" + (f" n_new={n_new}" if phase in ("generate", "extend") else "")
        label += (f" batch={batch}" if batch > 1 else "") + (" (again)" if visit[0] else "")
        earlier = self.point_latencies_s.setdefault((phase, n_ctx, n_new, batch), [])
        self.progress(label, self.clock() - started, self._total_s(started))
        # the point's peak memory (module doc): None until read, on its first visit's first pass
        result, flops_counted, memory = None, None, ((None, None) if visit[0] else None)
        if warm_up == "counted":
            (result, flops_counted), memory = self._warm(lambda: count_flops(run_pass), memory)
            self.warm_ups_counted[(phase, batch)] = self.warm_ups_counted.get((phase, batch), 0) + 1
        elif warm_up == "plain":
            result, memory = self._warm(run_pass, memory)
        else:
            flops_counted = warm_up
            if memory is None and phase == "prefill":  # a prefill's first visit: its pilot pass was its warm-up
                memory = self.pilot_memory[n_ctx]
        if after and result is not None:
            after(result)
        latencies: list[float] = []
        item_start = self.clock()
        while (not enough_repeats(latencies, self.clock() - item_start, share_s, policy)
               and self._affordable(latencies[-1] + reserve_s if latencies else estimate_s, started)):
            reading = memory is None
            if reading:
                self.memory.reset()
            counter = self.energy
            before = counter.read() if counter else None
            result, latency_s = time_pass(run_pass, self.loaded.device, self.clock)
            energy_j = counter.pass_joules(before, counter.read(), latency_s) if counter else None
            if reading:
                memory = self.memory.read()
            self.writer.write(
                self._row_base
                | {
                    "phase": phase, "batch": batch, "n_ctx": n_ctx, "n_cached": cached_tokens(phase, n_ctx),
                    "n_new": n_new, "repeat": len(earlier) + len(latencies),
                    "latency_s": latency_s, "flops": flops, "flops_counted": flops_counted,
                    "peak_mem_bytes": memory[0], "peak_mem_reserved_bytes": memory[1],
                    "kv_cache_bytes": kv_cache_bytes(result), "energy_j": energy_j,
                }
            )
            latencies.append(latency_s)
            if after:
                after(result)
        if not latencies:
            self._over_budget(phase, n_ctx, n_new, estimate_s, batch, visit)
        earlier += latencies
        if batch == 1:
            self.medians_s[(phase, n_ctx, n_new)] = statistics.median(earlier)
        else:
            self.plan.batch_measured(phase, n_ctx, batch, statistics.median(earlier))
        self.watch.measured((phase, n_ctx, n_new) + ((batch,) if batch > 1 else ()), latencies)
        return result

    def _warm(self, run_pass, memory):
        """A warm-up pass: its result, and the point's ``memory`` (``(peak, reserved)`` bytes), read on this pass where
        it is None (``PeakMemory.measure``)."""
        return self.memory.measure(run_pass) if memory is None else (run_pass(), memory)

    def _reference(self, started: float, last: bool = False) -> None:
        """Time the reference pass once (prefill at the shortest length kept), for the disturbance watch,
        when it is predicted to end within the budget, and (but for the ``last``) where ``plan.REFERENCE_GAP`` of them
        have had time to run since the last one ended (``plan.references_s``)."""
        n = self.reference_n
        gap_s = REFERENCE_GAP * self.plan.prefill_s[n]
        if not last and self.reference_s and self.clock() - self.reference_end_s < gap_s:
            return
        self.remaining_cost_s -= self.plan.prefill_s[n]
        if self._beyond_memory(n) or not self._affordable(self.plan.prefill_s[n], started):
            return
        self.progress(f"reference prefill n_ctx={n}", self.clock() - started, self._total_s(started))
        latency_s = time_pass(lambda: self.passes.prefill(n), self.loaded.device, self.clock)[1]
        # a hiccup does not repeat, a busy spell does
        if self.watch.looks_slow(latency_s, self.plan.prefill_s[n]) and self._affordable(latency_s, started):
            latency_s = min(latency_s, time_pass(lambda: self.passes.prefill(n), self.loaded.device, self.clock)[1])
        self.watch.reference(n, latency_s)
        self.reference_s.append(latency_s)
        self.reference_end_s = self.clock()

    def _total_s(self, started: float) -> float:
        elapsed = self.clock() - started
        return elapsed + max(started + self.budget_s - self.clock(), 0.0, self.remaining_cost_s)

    def _left_s(self, queue: list) -> float:
        return self.plan.left_s(queue, list(self.later_visits), self.outcome.generate_pairs, self.reference_n,
                                self.outcome.lengths)

    def _measure_length(self, n: int, queue: list, started: float, visit: tuple[int, int]) -> None:
        """Prefill, then forward, at ``n``: on the first ``visit`` the prefill's warm-up was its pilot pass; the
        forward's are the prefills (a FLOP-counted one of its own at the first ``COUNTED_WARM_UPS`` of the shortest as
        many lengths kept: short passes, which the plan does not price; a counted forward at gpt2's 1,024 tokens
        took 1.3 s on this 2-core CPU)."""
        self._measure("prefill", n, n, lambda: self.passes.prefill(n), pass_flops(self.arch, n, n),
                      "plain" if visit[0] else self.prefill_flops_counted[n], self.plan.prefill_s[n], started=started,
                      visit=visit)
        if visit[0] < visit[1]:  # a visit past the planned ones re-plans nothing: the plan is done
            self._replan(queue, started, ("length", n, 1), visit, begun=True)
        counted = n in self.outcome.lengths[:COUNTED_WARM_UPS] and self._warm_up("forward", visit=visit) == "counted"
        self._measure("forward", n, n, lambda: self.passes.forward(n), pass_flops(self.arch, n, n),
                      "counted" if counted else None, self.plan.prefill_s[n], started=started, visit=visit)

    def _measure_decode(self, c: int, started: float, batch: int, visit: tuple[int, int]) -> None:
        """Decode steps of ``batch`` sequences at context ``c`` on a filled cache, put back after each step."""
        step_s = self.plan.batch_pass_s("decode", c, batch)
        fill_s = self.plan.fill_s(("decode", c, batch))
        self.remaining_cost_s -= fill_s
        warm_up = self._warm_up("decode", batch, visit)
        if not self._affordable(fill_s + self._warm_up_s(warm_up, step_s) + step_s, started):
            self._over_budget("decode", c, 1, step_s, batch, visit)
        try:
            cache = filled_cache(self.passes, c, self.seed, batch=batch)
        except (RuntimeError, torch.OutOfMemoryError) as err:
            if not is_out_of_memory(err):
                raise
            if batch > 1:
                self._batch_out_of_memory("decode", c, batch, err)
            else:
                self._out_of_memory("decode", c, err)
            raise OutOfMemory from None
        rewind = Rewind(cache)
        self._measure("decode", c, 1, lambda: self.passes.decode_step(cache, batch=batch),
                      batch * pass_flops(self.arch, 1, c + 1), warm_up, step_s, after=lambda grown: rewind(),
                      started=started, batch=batch, visit=visit)

    def _measure_extend(self, c: int, s: int, started: float, visit: tuple[int, int]) -> None:
        """Extend passes of ``s`` tokens on a filled cache of ``c``, put back after each pass."""
        item = ("extend", c, s)
        pass_s, fill_s = self.plan.pass_s(item), self.plan.fill_s(item)
        self.remaining_cost_s -= fill_s
        warm_up = self._warm_up("extend", visit=visit)
        if not self._affordable(fill_s + self._warm_up_s(warm_up, pass_s) + pass_s, started):
            self._over_budget("extend", c, s, pass_s, visit=visit)
        try:
            cache = filled_cache(self.passes, c, self.seed)
        except (RuntimeError, torch.OutOfMemoryError) as err:
            if not is_out_of_memory(err):
                raise
            self._extend_out_of_memory(c, s, err)
            raise OutOfMemory from None
        rewind = Rewind(cache)
        self._measure("extend", c, s, lambda: self.passes.extend(cache, s), pass_flops(self.arch, s, c + s), warm_up,
                      pass_s, after=lambda grown: rewind(), started=started, visit=visit)

    def _measure_batch_prefill(self, n: int, batch: int, started: float, visit: tuple[int, int]) -> None:
        """Prefills of ``batch`` sequences of ``n`` tokens, after a warm-up (FLOP-counted for the first few)."""
        self._measure("prefill", n, n, lambda: self.passes.prefill(n, batch=batch), batch * pass_flops(self.arch, n, n),
                      self._warm_up("prefill", batch, visit), self.plan.batch_pass_s("prefill", n, batch),
                      started=started, batch=batch, visit=visit)
