"""The sweep's pilot and its re-planning: which lengths, decode contexts, batch points and extend points the
budget can hold, and bringing back lengths a disturbed pilot dropped (steps 1 and 3 of ``profiler.measure.sweep``).

``Pilot`` is a part of ``Sweep`` kept in a module of its own: its methods read and set the
sweep's ``grid``, ``decode_grid``, ``decode_contexts``, ``batch_sizes``, ``batch_items``, ``extend_items``, ``plan``
(``profiler.measure.plan.Plan``), ``budget_s`` (raised where ``raise_budget`` allows), ``passes``, ``clock``,
``memory``, ``outcome``, ``medians_s``, ``measured``, ``later_visits``, ``pairs_to_come`` and ``pilot_memory``, and
call its ``_out_of_memory``, ``_beyond_memory``, ``_beyond_extend_memory``, ``_affordable``, ``_shuffle``,
``_order``, ``_leaves_short``, ``_left_s`` and ``_prefill_medians_s``; it reads and sets
``remaining_cost_s`` too.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable

import torch

from profiler.measure.cache_fill import fill_check, filled_cache
from profiler.measure.flops import count_flops
from profiler.measure.grid import extend_points, generate_pairs, middle_first
from profiler.measure.memory import is_out_of_memory
from profiler.measure.plan import BATCH_SHARE, DECODE_SHARE, EXTEND_SHARE, VISITS, spread
from profiler.measure.rewind import Rewind
from profiler.measure.timing import time_pass

EXTEND_CORE_POINTS = 2  # extend points planned with the range of lengths (``Pilot._extend_core``)
FIT_LENGTHS = 3  # lengths a curve is fitted from (``profiler.costmodel.fit_run.MIN_LENGTHS``): planned first
CALIBRATION_TOKENS = 8  # the first passes and the counter's calibration run at most this long
RAISE_LIMIT = 2.0  # a default budget is raised for the curves to at most this many times itself
RAISE_MARGIN = 1.1  # ... to this many times what the lengths missing are predicted to take: their pilot may run slow
SLOW_PILOT = 1.5  # a pilot pass this many times what the shorter lengths predict is timed again, the quicker kept


def thinned(points: list[int]) -> list[int]:
    """Every other point of ``points``, both ends kept."""
    return points[::2] + ([points[-1]] if len(points) % 2 == 0 else [])


class Pilot:
    def _to_measure(self, kept: list[int], shares: bool = False) -> list:
        """The items of a sweep of ``kept`` lengths not yet measured: lengths and decode contexts, and with ``shares``
        the batch and extend points within their shares of the budget (``BATCH_SHARE``, ``EXTEND_SHARE``)."""
        lengths = [("length", n, 1) for n in kept
                   if ("length", n, 1) not in self.measured and not self._beyond_memory(n)]
        items = lengths + [("decode", c, 1) for c in self.decode_contexts] + self._extend_core(kept)
        items += self._batch_floor(kept)
        if shares:
            items += [item for item in self._batch_grid(kept, BATCH_SHARE * self.budget_s) if item not in items]
            items += [item for item in self._extend_grid(kept, EXTEND_SHARE * self.budget_s) if item not in items]
        return [item for item in items if item not in self.measured]

    def _extend_core(self, kept: list[int]) -> list:
        """The extend points planned with the range of lengths, as the decode contexts are, whatever the shares leave:
        the shortest append at the two shortest contexts of the extend grid, the least that fixes the extend surface's
        forms (passes of several tokens on caches of two lengths). None when nothing is kept."""
        if not kept or self.fit_first:
            return []
        points = extend_points(spread(self.decode_contexts), self.arch.max_positions)
        shortest = min((s for _, s in points), default=0)
        core = [("extend", c, s) for c, s in sorted(points) if s == shortest][:EXTEND_CORE_POINTS]
        return [item for item in core if not self._beyond_extend_memory(item)]

    def _batch_floor(self, kept: list[int]) -> list:
        """The batch points planned with the range of lengths, as the extend core is: each phase's cheapest point of
        the batch grid, the least that prices a batched call (it needs a prefill and a decode surface). None when only
        batch 1 is asked, nothing is kept or the curves come first."""
        if self.fit_first:
            return []
        grid = self._batch_grid(kept, math.inf)
        return [min(items, key=lambda item: self._point_with_references_s(item, kept))
                for items in ([item for item in grid if item[0] == phase] for phase in ("prefill", "decode")) if items]

    def _point_with_references_s(self, item, kept: list[int]) -> float:
        """A batch or extend point's predicted cost with its reference passes, as the grids rank their points
        (``Plan.batch_grid``, ``Plan.extend_grid``; the reference pass is the shortest of ``kept`` lengths)."""
        return self.plan.with_references_s(item, self.plan.prefill_s[kept[0]])

    def _batch_grid(self, kept: list[int], limit_s: float) -> list:
        """The batch points a sweep of ``kept`` lengths plans within ``limit_s`` (``Plan.batch_grid``; none when only
        batch 1 is asked or nothing is kept), those measured (or dropped) before kept whatever the budget now says."""
        if not kept or self.batch_sizes == [1]:
            return []
        grid = self.plan.batch_grid(self.batch_sizes, [n for n in kept if not self._beyond_memory(n)],
                                    self.decode_contexts, self.plan.prefill_s[kept[0]], limit_s)
        grid = [item for item in grid if not self._beyond_batch_memory(item)]
        return list(dict.fromkeys([*grid, *(item for item in self.batch_items if item in self.measured)]))

    def _left_beside_s(self, kept: list[int], started: float, planned: list) -> float:
        """What the budget leaves (at least 0) after a sweep of ``kept`` lengths, decode contexts and ``planned``."""
        left_s = self.budget_s - (self.clock() - started)
        if kept:
            items = self._to_measure(kept)
            left_s -= self.plan.cost_s(kept, items + [item for item in planned
                                                      if item not in self.measured and item not in items],
                                       generates=not self.fit_first, later_visits=list(self.later_visits))
        return max(left_s, 0.0)

    def _choose_batch_items(self, kept: list[int], started: float) -> None:
        """Set the batch points of ``kept`` lengths: the floor (``_batch_floor``, planned with the lengths) and the rest
        of the grid within ``BATCH_SHARE`` of the budget and the floor's cost plus what the lengths' plan and the extend
        points leave; and say each point of the unthinned grid (three lengths and three contexts spread over the whole
        range, every batch size) left out, with its predicted cost."""
        left_s = self._left_beside_s(kept, started, self.extend_items)  # beside the floor, planned with the lengths
        floor = self._batch_floor(kept)
        floor_s = sum(self._point_with_references_s(item, kept) for item in floor if item not in self.measured)
        self.batch_items = list(dict.fromkeys([*floor, *self._batch_grid(kept, min(BATCH_SHARE * self.budget_s,
                                                                                 left_s + floor_s))]))
        self.outcome.batch_skipped = [s for s in self.outcome.batch_skipped if s["reason"] != "time budget"]
        sizes = [b for b in self.batch_sizes if b > 1]
        lengths = [n for n in kept if not self._beyond_memory(n)]
        whole = [("prefill", n, b) for n in spread(lengths) for b in sizes]
        whole += [("decode", c, b) for c in spread(self.decode_contexts) for b in sizes]
        for item in whole:
            if item not in self.batch_items:
                kind, n, batch = item
                pass_s = self.plan.batch_pass_s(kind, n, batch)
                self.outcome.batch_skipped.append({
                    "phase": kind, "batch": batch, "n_ctx": n, "reason": "time budget", "pass_s": pass_s,
                    "predicted_s": self.plan.item_cost_s(item), "budget_s": self.budget_s})

    def _extend_grid(self, kept: list[int], limit_s: float) -> list:
        """The extend points a sweep of ``kept`` lengths plans within ``limit_s`` (``Plan.extend_grid`` over the decode
        contexts; none when nothing is kept), those measured (or dropped) before kept whatever the budget now says."""
        if not kept:
            return []
        grid = self.plan.extend_grid(self.decode_contexts, self.plan.prefill_s[kept[0]], limit_s)
        grid = [item for item in grid if not self._beyond_extend_memory(item)]
        return sorted({*grid, *(item for item in self.extend_items if item in self.measured)})

    def _choose_extend_items(self, kept: list[int], started: float) -> None:
        """Set the extend points of a sweep of ``kept`` lengths: the core (``_extend_core``, planned with the lengths)
        and the rest of the grid within ``EXTEND_SHARE`` of the budget and the core's cost plus its part of what the
        lengths' plan leaves (all of it without batches, else in proportion to the two shares, so on a budget the range
        of lengths nearly fills both grids keep their cheapest points; chosen before the batch points, which then take
        what is left); and say each point of the unthinned grid left out, with its predicted cost."""
        left_s = self._left_beside_s(kept, started, [])  # beside the core, planned with the lengths
        if self.batch_sizes != [1]:
            left_s *= EXTEND_SHARE / (EXTEND_SHARE + BATCH_SHARE)
        core = self._extend_core(kept)
        core_s = sum(self._point_with_references_s(item, kept) for item in core if item not in self.measured)
        self.extend_items = sorted({*core, *self._extend_grid(kept, min(EXTEND_SHARE * self.budget_s,
                                                                        left_s + core_s))})
        self.outcome.extend_skipped = [s for s in self.outcome.extend_skipped if s["reason"] != "time budget"]
        if not kept:
            return
        for c, s in extend_points(spread(self.decode_contexts), self.arch.max_positions):
            item = ("extend", c, s)
            if item not in self.extend_items and not self._beyond_extend_memory(item):
                self.outcome.extend_skipped.append({
                    "c": c, "s": s, "reason": "time budget", "pass_s": self.plan.extend_pass_s(c, s),
                    "predicted_s": self.plan.item_cost_s(item), "budget_s": self.budget_s})

    def _fits(self, kept: list[int], spent_s: float, shares: bool) -> bool:
        """Whether a sweep of ``kept`` lengths is predicted to end within the budget after ``spent_s`` (``shares``:
        with the batch and extend grids' shares)."""
        cost_s = self.plan.cost_s(kept, self._to_measure(kept, shares), not self.fit_first,
                                  list(self.later_visits))
        return spent_s + cost_s <= self.budget_s

    def _pilot(self, started: float) -> list[int]:
        """Pilot the grid: as many lengths as fit the budget, ascending, with the default grid the range first
        (``_grow``), each left out said with its predicted cost; where that keeps fewer than ``FIT_LENGTHS`` that
        memory allows, the curves first (``fit_first``): each point in one visit, ``FIT_LENGTHS`` decode contexts, no
        extend core, the generate pairs on what is left, grow again; a default budget still too small is raised
        (``_raise_budget_for_curves``)."""
        kept = self._grow([], started) if self.trim_to_budget else self._pilot_lengths(self.grid, [], started)
        if self.trim_to_budget and 0 < len(kept) < FIT_LENGTHS and any(
                n > kept[-1] and not self._beyond_memory(n) for n in self.grid):
            self.fit_first = True  # each point in one visit: a second warm-up per point would cost a length here
            self.decode_contexts = self._choose_decode_contexts(at_most=FIT_LENGTHS)
            kept = self._grow(kept, started)
            if len(kept) < FIT_LENGTHS and self.raise_budget:
                kept = self._raise_budget_for_curves(kept, started)
        oom = self.outcome.out_of_memory
        for n in self.grid:
            if n not in kept:
                self.outcome.skipped.append(self._length_skip(n, oom))
        self._choose_extend_items(kept, started)
        self._choose_batch_items(kept, started)
        return kept

    def _raise_budget_for_curves(self, kept: list[int], started: float) -> list[int]:
        """Raise a default budget (``raise_budget``) that holds fewer than ``FIT_LENGTHS`` lengths with the curves first
        to what the shortest lengths missing are predicted to need, ``RAISE_MARGIN`` over, and pilot them; unchanged
        where that is more than ``RAISE_LIMIT`` times the budget. The budget raised to is in
        ``outcome.budget_raised_to_s``. Returns all kept, sorted."""
        plan = self.plan
        missing = [n for n in self.grid if n not in kept and not self._beyond_memory(n)][:FIT_LENGTHS - len(kept)]
        if not missing:
            return kept
        wanted = sorted([*kept, *missing])
        estimates = {n: plan.prefill_estimate_s(n) for n in missing}
        plan.prefill_s |= estimates
        needed_s = RAISE_MARGIN * (self.clock() - started + sum(plan.counted_s(s) for s in estimates.values())
                                   + plan.cost_s(wanted, self._to_measure(wanted), generates=False))
        for n in missing:
            del plan.prefill_s[n]
        if needed_s > RAISE_LIMIT * self.budget_s:
            return kept
        self.budget_s = plan.budget_s = self.outcome.budget_raised_to_s = math.ceil(needed_s * 10) / 10
        return self._pilot_lengths(missing, kept, started)

    def _length_skip(self, n: int, oom: dict | None) -> dict:
        if (oom and n >= oom["n_ctx"]) or not self.plan.prefill_s:
            return {"n_ctx": n, "reason": "out of memory" if oom and n >= oom["n_ctx"] else "time budget"}
        pass_s = self.plan.prefill_estimate_s(n)
        return {"n_ctx": n, "reason": "time budget", "phase": "prefill", "pass_s": pass_s,
                "predicted_s": self.plan.length_cost_s(pass_s), "budget_s": self.budget_s}

    def _grow(self, kept: list[int], started: float) -> list[int]:
        """Pilot the grid's lengths not in ``kept`` as the budget allows: the range first (every other
        length, up to the top), then the lengths between, middle first (``grid.middle_first``: a budget that holds
        a few spreads them over the range), so a tight budget thins the grid before it shortens it; the range is
        planned at one visit a point, the visits chosen after it (``_choose_visits``), the
        batch and extend grids' shares planned before the lengths between. Returns all kept, sorted."""
        coarse = thinned(self.grid)
        untried = [n for n in self.grid if n not in kept and not self._beyond_memory(n)]
        self.plan.most_visits = self.plan.heavy_visits = 1
        kept = self._pilot_lengths([n for n in untried if n in coarse], kept, started)
        self._choose_visits(kept, started)
        between = middle_first([n for n in untried if n not in coarse and kept and n < kept[-1]])
        return self._pilot_lengths(between, kept, started, shares=True)

    def _choose_visits(self, kept: list[int], started: float) -> None:
        """The most visits to a point, up to ``plan.VISITS``, at which the range of ``kept`` lengths, with the decode
        contexts and what is planned with them, still fits the budget, else one: the later visits thin the lengths
        between, never the range; one with the curves first (``fit_first``). Then, those chosen, the heavy passes'
        (``plan.Plan.heavy_visits``) the same way, up to as many."""

        def fits() -> bool:
            return not self.fit_first and (not kept or self._fits(kept, self.clock() - started, shares=False))

        self._most_visits(fits, fewest=1)
        self._most_visits(fits, fewest=1, heavy=True)

    def _more_visits(self, queue: list, started: float) -> None:
        """Raise the visits ``_choose_visits`` chose, for the items of ``queue`` (not yet begun), to the most up to
        ``plan.VISITS`` at which they, the later visits and the generate pairs still fit the time left at the speed the
        prefills ran (``_leaves_short``): a pilot in a slow spell too mild for ``Plan.correct`` chose fewer than the
        machine affords, and a point visited once is a step in the curve wherever a spell covers it. Those visited
        more than once then go first (``_order``), and the time left is shared over the new plan."""
        chosen = self.plan.most_visits
        if self.fit_first or chosen >= VISITS or not queue:
            return
        self._most_visits(lambda: not self._leaves_short(queue, list(self.later_visits), started), fewest=chosen)
        if self.plan.most_visits > chosen:
            self._order(queue)
            self.remaining_cost_s = self._left_s(queue)

    def _most_visits(self, fits: Callable[[], bool], fewest: int, heavy: bool = False) -> None:
        """Set ``plan.most_visits`` (with ``heavy``, ``plan.heavy_visits``, up to ``plan.most_visits``) to the most,
        from ``plan.VISITS`` down, at which ``fits()``; ``fewest`` where it holds at none above that."""
        name = "heavy_visits" if heavy else "most_visits"
        for visits in range(self.plan.most_visits if heavy else VISITS, fewest, -1):
            setattr(self.plan, name, visits)
            if fits():
                return
        setattr(self.plan, name, fewest)

    def _worth_piloting_again(self, n: int, expected_s: float, kept: list[int], started: float, shares: bool) -> bool:
        """Whether length ``n``'s pilot pass, ``SLOW_PILOT`` times ``expected_s`` (what the shorter lengths predict) or
        more, is timed again (a hiccup does not repeat, a busy spell does: the quicker reading is kept), where that
        pass fits the budget: always when the length fits the budget as read (the reading is the plan's estimate of
        it, and of the lengths estimated from it); else only if at ``expected_s``, a pass more spent, it would (a few
        long repeats allowed: ``Plan.few_repeats``)."""
        plan, lengths, read_s = self.plan, sorted([*kept, n]), self.plan.prefill_s[n]
        if read_s < SLOW_PILOT * expected_s or not self._affordable(read_s, started):
            return False
        if self._fits(lengths, self.clock() - started, shares):
            return True
        plan.prefill_s[n] = expected_s
        plan.few_repeats.add(n)  # not there yet: a length joins it after its pilot (``_pilot_lengths``)
        try:
            return self._fits(lengths, self.clock() - started + expected_s, shares)
        finally:
            plan.prefill_s[n] = read_s
            plan.few_repeats.discard(n)

    def _pilot_lengths(self, candidates: list[int], kept: list[int], started: float, shares: bool = False) -> list[int]:
        """Pilot ``candidates`` in their order (the range's ascending) on top of ``kept``; stop at the first that
        runs out of memory or would not fit in the budget (its pilot pass included; with the batch and extend grids'
        shares where ``shares``). Returns all kept, sorted."""
        plan = self.plan
        for n in candidates:
            expected_s = None  # what the shorter lengths predict (an upper bound but for noise): none for the first
            if kept:
                plan.prefill_s[n] = expected_s = plan.prefill_estimate_s(n)
                if not self._fits(sorted([*kept, n]), self.clock() - started + plan.counted_s(plan.prefill_s[n]),
                                  shares):
                    del plan.prefill_s[n]
                    break
            self.progress(f"pilot prefill n={n}", self.clock() - started, self.budget_s)
            try:
                if not kept:
                    calibration_n = min(n, CALIBRATION_TOKENS)
                    plain_s, counted_s = self._time_first_passes(calibration_n)
                self.memory.reset()  # the pass is the length's prefill memory pass (``profiler.measure.items``)
                (cache, self.prefill_flops_counted[n]), pilot_counted_s = time_pass(
                    lambda: count_flops(lambda: self.passes.prefill(n)), self.loaded.device, self.clock)
                self.pilot_memory[n] = self.memory.read()
                if not kept:
                    if calibration_n == n:  # the quicker of its two counted passes, for both
                        pilot_counted_s = counted_s = min(counted_s, pilot_counted_s)
                    plan.calibrate_counter(plain_s, counted_s)
                plan.prefill_s[n] = plan.uncounted_s(pilot_counted_s)
                if not kept:
                    self._pilot_decode(cache, started)
                del cache
                if expected_s is not None and self._worth_piloting_again(n, expected_s, kept, started, shares):
                    plan.prefill_s[n] = min(plan.prefill_s[n], time_pass(lambda: self.passes.prefill(n),
                                                                         self.loaded.device, self.clock)[1])
            except (RuntimeError, torch.OutOfMemoryError) as err:
                if not is_out_of_memory(err):
                    raise
                self._out_of_memory("prefill", n, err)
                break
            if kept and not self._fits(sorted([*kept, n]), self.clock() - started, shares):
                plan.few_repeats.add(n)  # its pilot pass spent: kept at a long pass's repeats where that fits
                if not self._fits(sorted([*kept, n]), self.clock() - started, shares):
                    plan.few_repeats.discard(n)
                    del plan.prefill_s[n]
                    break
            plan.piloted(n, plan.prefill_s[n])
            kept = sorted([*kept, n])
        return kept

    def _replan(self, queue: list, started: float, current: tuple[str, int, int], visit: tuple[int, int],
                begun: bool) -> None:
        """Before ``current``'s ``visit`` (``(index from 0, of how many)``) takes its share of the time left (after its
        reference pass, or a length's after its prefill point): once the timings so far (the reference passes, a
        prefill at the first length, count as its median) prove the pilot too slow (``Plan.correct``), the estimates
        are corrected and, with the default grid, decode contexts then lengths it dropped come back, joining ``queue``
        (shuffled in) while the corrected plan fits, and the batch and extend points are chosen again."""
        decode_median_s = {n: s for (phase, n, _), s in self.medians_s.items() if phase == "decode"}
        prefill_median_s = {self.reference_n: statistics.median(self.reference_s)} if self.reference_s else {}
        prefill_median_s |= self._prefill_medians_s()
        if not self.plan.correct(self.outcome.lengths, prefill_median_s, decode_median_s):
            return
        if self.trim_to_budget:
            contexts = self._choose_decode_contexts(self.decode_contexts)
            queue += [("decode", c, 1) for c in contexts if c not in self.decode_contexts]
            self.decode_contexts = contexts
            kept = self._grow(self.outcome.lengths, started)
            back = [n for n in kept if n not in self.outcome.lengths]
            self.brought_back += back
            self.outcome.lengths = kept
            self.outcome.generate_pairs = self.pairs_to_come = generate_pairs(kept, self.arch.max_positions)
            self.outcome.skipped = [s for s in self.outcome.skipped
                                    if s.get("phase") == "decode" or s["n_ctx"] not in back]
            queue += [("length", n, 1) for n in back]
            planned = self.batch_items + self.extend_items
            self._choose_extend_items(kept, started)
            self._choose_batch_items(kept, started)
            chosen = self.batch_items + self.extend_items
            queue[:] = [item for item in queue if item not in planned or item in chosen]
            queue += [item for item in chosen if item not in planned and item not in self.measured]
            self._shuffle(queue)
        # a length begun has its forward's repeats left (its warm-up was the prefills)
        pass_s = self.plan.pass_s(current)
        current_s = (self.plan.visit_repeats(pass_s, *visit, current[1]) * pass_s if begun
                     else self.plan.visit_cost_s(current, *visit))
        self.remaining_cost_s = self._left_s(queue) + current_s

    def _time_first_passes(self, n: int) -> tuple[float, float]:
        """The model's first passes, at ``n`` tokens (the first length, or ``CALIBRATION_TOKENS`` when it is longer:
        the counter's overhead does not grow with the tokens, and a long first length would pay these passes
        four times over): one untimed (it pays one-off set-up), then the quicker of two plain passes and one
        FLOP-counted pass, timed (for ``Plan.calibrate_counter``)."""
        self.passes.prefill(n)
        plain_s = min(time_pass(lambda: self.passes.prefill(n), self.loaded.device, self.clock)[1] for _ in range(2))
        counted_s = time_pass(lambda: count_flops(lambda: self.passes.prefill(n)), self.loaded.device, self.clock)[1]
        return plain_s, counted_s

    def _pilot_decode(self, cache, started: float) -> None:
        """Time a decode step at the first length (on ``cache``, its prefill's) and at the top of the decode grid
        (on a filled cache, its fill timed too), each after one untimed step, the cache put back in between;
        then choose the decode contexts (``_choose_decode_contexts``). A cache that fills every position is
        replaced by one a token shorter: a step needs a free one."""
        first, top = self.decode_grid[0], self.decode_grid[-1]
        self.outcome.caches_prefilled = fill_check(self.passes)
        if cache.get_seq_length() != first:
            cache = filled_cache(self.passes, first, self.seed)
        self.plan.decode_pilot_s[first] = self._time_decode_step(cache)
        if top != first and self._affordable(self.plan.decode_pilot_s[first] * 2, started):
            try:
                cache, fill_s = time_pass(lambda: filled_cache(self.passes, top, self.seed), self.loaded.device,
                                          self.clock)
                self.plan.fill_s_per_token = fill_s / (top - 1)  # per token grown (``Plan.fill_s``)
                self.plan.decode_pilot_s[top] = self._time_decode_step(cache)
            except (RuntimeError, torch.OutOfMemoryError) as err:
                if not is_out_of_memory(err):
                    raise
                self._out_of_memory("decode", top, err)
            cache = None
        self.plan.decode_points_s = dict(self.plan.decode_pilot_s)
        self.decode_contexts = self._choose_decode_contexts()

    def _time_decode_step(self, cache) -> float:
        rewind = Rewind(cache)
        self.passes.decode_step(cache)
        rewind()
        latency_s = time_pass(lambda: self.passes.decode_step(cache), self.loaded.device, self.clock)[1]
        rewind()
        return latency_s

    def _choose_decode_contexts(self, chosen: list[int] = (), at_most: int | None = None) -> list[int]:
        """The decode grid below any out of memory; with the default grid, thinned (ends kept) until it costs, its
        reference passes included, at most ``DECODE_SHARE`` of the budget or holds ``FIT_LENGTHS`` contexts (a curve
        is fitted from that many), and to ``at_most`` spread over them; with those ``chosen`` before. Those left out
        are in ``skipped``."""
        contexts = [c for c in self.decode_grid if not self._beyond_memory(c + 1)]
        reference_s = self.plan.prefill_s.get(self.grid[0], 0.0)
        while self.trim_to_budget and len(contexts) > FIT_LENGTHS and (
                sum(self.plan.with_references_s(("decode", c, 1), reference_s) for c in contexts)
                > DECODE_SHARE * self.budget_s):
            contexts = thinned(contexts)
        if at_most:
            contexts = spread(contexts, at_most)
        contexts = sorted({*contexts, *chosen})
        skipped = self.outcome.skipped = [s for s in self.outcome.skipped
                                          if s.get("phase") != "decode" or s["reason"] != "time budget"]
        for c in self.decode_grid:
            if c not in contexts and not any(s["n_ctx"] == c and s.get("phase") == "decode" for s in skipped):
                reason = "out of memory" if self._beyond_memory(c + 1) else "time budget"
                self.outcome.skipped.append({"n_ctx": c, "phase": "decode", "reason": reason})
        return contexts
