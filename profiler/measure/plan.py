"""The sweep's budget plan: what measuring a length, a decode context, an extend point, a generate pair, a
reference pass and the drift check is predicted to cost, in seconds, from the pilot's timings.

Items, ``(kind, n, batch)`` (an extend item's third slot is its ``s``). A length ``("length", n, 1)`` is a
prefill point and a forward point at ``n``; a decode context ``("decode", c, batch)`` a decode point of
``batch`` sequences on a cache of ``c`` tokens each, filled without a prefill
(``profiler.measure.cache_fill``), so decode contexts are planned apart from the lengths and reach the model's
last position even where a prefill of that length is unaffordable; a batched prefill ``("prefill", n, batch)``
(batch above 1) a prefill point of ``batch`` sequences of ``n`` tokens; an extend point ``("extend", c, s)``
extend passes of one sequence appending ``s`` tokens to a cache of ``c`` (filled without a prefill, like
decode's).

The batch grid (``batch_grid``): prefill at three lengths spread over those planned and decode at three
contexts spread over its own, each at every batch size above 1 (batch 1 is the main grid's), within a
limit: while it costs more, its costliest point goes (the largest batch at the longest length first), but each
phase's largest batch at its shortest length only once the others are gone (a batched call is priced without
extrapolating only up to the largest batch both phases measured) and its cheapest point last, a phase's last point
only once the other phase is down to one too (a batched call is priced only where both phases have a surface), and
then any point left out that fits in what that freed comes back; the decode ends' second contexts go after the ends
and before the others (a batch's cost per cached token measured, and its own per-pass cost held out from its own
points: ``profiler.costmodel.per_batch_form``); so a tight budget keeps a batched
prefill beside the cheaper decode steps, the smallest and the largest batch at the short lengths, where a batch is
cheap, and the smaller batches further up, the points still spread over the whole range. The limit is
``BATCH_SHARE`` of the budget, and no more than the plan of the lengths leaves: the range of lengths
(the default grid's every other length up to its top, or explicit ``--lengths``) is planned first and
never shortened for batches, the lengths between come only where the batch grid's share still fits
beside them (``profiler.measure.pilot``). So batches thin the grid; they do not shorten it.

The extend grid (``extend_grid``): ``grid.extend_points`` at three contexts spread over the decode contexts,
thinned the same way (``_within_limit``) to ``EXTEND_SHARE`` of the budget and its part of what the lengths
leave (in proportion to the two shares where batches are measured; chosen before the batch grid, which takes
what is left: ``profiler.measure.pilot``), but the longest appends go first (the costliest of them first), so a
tight budget keeps the short appends at every context, the top one too: the surface's ``s * c`` term is told
from its ``c`` term by contexts far apart.

Estimates: a prefill per length piloted (the pilot's one FLOP-counted pass less the counter's overhead, until
later timings correct it); beyond the longest piloted, the quickest decode step (what a pass costs whatever
its tokens) plus a power law through the two longest's excess over it (exponent between 1 and 2: attention
makes a prefill at most quadratic), one length only being linear. A decode step per piloted context (the first
length's and the last position's), linear in the context between and beyond them; filling a cache, seconds per
token grown (the pilot's fill at the top: ``fill_s``). A generate call: the prefill of the shortest length planned
at or above its prompt, plus a decode step per token after the first. An extend pass (``extend_pass_s``), from the same
estimates and meant to bound it from above: the prefill of ``c + s`` tokens (which does the extend's work and
the prefix's besides), or, if less, the prefill of ``s`` tokens plus ``s`` times what the cache of ``c`` adds
to a decode step (each appended token reading the cache as a decode step does, which a pass of ``s`` tokens
does at most). A pass of ``B`` sequences (``batch_pass_s``): never more than ``B`` times one sequence's; a
prefill of ``B x n`` tokens' estimate if less (the same weights read and token work, and no more attention); a
decode step a prefill of ``B`` tokens (the weights read once for ``B`` tokens' work) plus, per sequence, what
its context adds to a step over the shortest context's. Once a batch point is measured (``batch_measured``), its
median is its estimate, and a larger batch at that length is estimated along the line through the two largest
batches measured below it (one sequence's estimate the smaller where only one was), between the largest's median
and that median times the ratio of the batches, if less than the estimate above (a GPU's batched passes cost far
less than ``B`` times one: gpt2's prefill of 64 x 1,024 tokens took 54 ms on an H200 against 371 ms so estimated).

Repeats: ``min_repeats`` per point, but a long pass (one costing more than ``LONG_PASS_SHARE`` of the budget) only
``LONG_PASS_REPEATS``: a budget is better spent reaching a longer length than repeating a pass whose noise is a small
share of it (the fit uses every raw sample). So is a length whose pilot pass is spent and that the budget holds only so
(``few_repeats``): a pass just under the share costs a length half as much again as one just over it, and the range
would otherwise reach less far on a larger budget. A point's repeats are taken in ``VISITS`` visits far apart in the
sweep (``profiler.measure.sweep``), the minimum split between them (3 as 1, 1 and 1), each visit with its warm-up (and
its cache filled again): on a shared machine a slow spell of a few seconds would otherwise cover a point's every repeat,
a step in the curve that no spread within the point shows (a pass following another shape ran 5% slower than the next at
64 tokens of gpt2 on this 2-core CPU, hence the warm-up). Three, not two: split 2 and 1, the visit of two sets the
median, so one slow visit still moves the point (gpt2's prefill at 128 tokens read 245 and 249 ms in one visit and 185
ms in the other); over three visits the median is the middle visit's, which one spell does not reach. A long pass is
visited once (its repeats are few and each lasts as long as a spell), and so is every point where the budget holds the
curves only if they come first; where the range of lengths does not fit at three visits a point, two (``most_visits``:
``profiler.measure.pilot``; raised again where the prefills then run quicker than the pilot's estimates). A heavy pass,
one costing more than ``HEAVY_PASS_SHARE`` of the budget, is visited ``heavy_visits`` times: once (its warm-ups are what
a budget's longest lengths are made of) unless the range of lengths still fits with it visited as the others are, which
the pilot chooses next on the default grid (the lengths between come after). These are the range's longest lengths, and
the longest sets where the curve goes beyond the range: visited once, a stretch of slow passes covering its one visit
bends the curve there (on a synthetic machine slow half the time in stretches of seconds, the fitted prefill's shape at
twice the longest length was off by 14.1% on average with them visited once, 8.4% with three visits:
``tests/test_planner.py``; this VM's passes ran 1.15-1.3 times their quickest in such stretches,
``benchmarks/machine_speed.py``). At ``r`` repeats in ``v`` visits, a length costs ``2r + v - 1`` prefill-sized passes
(``r`` prefills and ``r`` forwards, the prefill's warm-up in each later visit: in the first it is the pilot's pass, and
a forward's is the prefills just before it), a decode context or an extend point ``v`` fills and ``r + v`` passes. A
generate pair costs ``r + 1`` calls in one visit (planned at most ``GENERATE_SHARE`` of the budget: on a machine where a
decode step is slow, a 16-token generate call costs more than a long prefill); a reference pass is one prefill at the
shortest length, timed before a visit or pair where ``REFERENCE_GAP`` of them have had time to run since the last one
ended, and after the last (``references_s``: one before each visit, but no more than a ``1 / REFERENCE_GAP`` share of
the work and one; before, one before every visit took 13% of gpt2's default run, 92 passes of 64 ms, and 11% of
Qwen2.5-0.5B's, whose reference, 0.25 s, cost more than its decode step); the drift check ``min_repeats`` prefills at
the middle length.

The FLOP counter's overhead (``calibrate_counter``): FlopCounterMode sends every operator
through Python, a cost per pass that a plain pass does not pay and that does not grow with n
(the operators are the same at every length): a few percent of a 1024-token gpt2 prefill, up
to several times a small model's short pass. It is the quicker of two FLOP-counted passes
less the quicker of two plain ones at the first length, or at ``pilot.CALIBRATION_TOKENS`` when
that is shorter (quicker: other work only adds time), and taken off every pilot timing; never
more than the share it took there, which a longer pass can only exceed by noise.

Correction (``correct``): the pilot passes were timed once each, on a machine that may have
been busy then. When those of the lengths measured since took ``PILOT_OFF`` times their
medians or more in sum, the disturbance has gone: every estimate becomes the median where one
was measured and the pilot over that factor elsewhere (prefill and decode alike), the fill and the
counter's overhead (timed in the same spell) over that factor too; a length piloted after a correction
is timed at the corrected speed and neither corrected nor judged again. A pilot that was too quick is
left alone (the lengths planned are measured at their minimum repeats whatever they cost, as far as
the budget lasts).
"""

from __future__ import annotations

import math
from collections import Counter

from profiler.measure.disturbance import PILOT_OFF
from profiler.measure.grid import extend_points, generate_pairs

LONG_PASS_SHARE = 0.05  # a pass costing more than this share of the budget is measured fewer times
LONG_PASS_REPEATS = 2
DECODE_SHARE = 0.25  # the share of the budget the default decode contexts may take before they are thinned
# the most the generate pairs are planned to take: checks of the fitted curves, they do not shorten the lengths
# (measured last, as far as the budget lasts; a pair it cannot afford is skipped and said)
GENERATE_SHARE = 0.15
BATCH_SHARE = 0.15  # the most the batch grid may take of the budget
BATCH_POINTS = 3  # lengths (or contexts) of the batch grid per phase, before the budget thins it
EXTEND_SHARE = 0.10  # the most the extend grid may take of the budget
VISITS = 3  # a point's repeats are taken in this many visits, far apart in the sweep (a long pass's in one)
HEAVY_PASS_SHARE = 0.01  # a pass costing more than this share of the budget: visited ``Plan.heavy_visits`` times
# a reference pass is timed before a visit only where this many reference passes' time has passed since the last
REFERENCE_GAP = 10

# (kind, n, batch): ("length", n, 1) prefill and forward at n; ("decode", c, batch) decode at context c;
# ("prefill", n, batch) a batched prefill at n (batch above 1); ("extend", c, s): the third slot is not a batch
# but the tokens appended, s, to a cache of c (one sequence)
Item = tuple[str, int, int]
# a visit to an item: (item, index from 0, of how many)
Visit = tuple[Item, int, int]


def spread(points: list[int], count: int = BATCH_POINTS) -> list[int]:
    """``count`` of the sorted ``points`` spread over them (both ends, the others nearest to an even spread of
    their logarithms); all of them when there are no more."""
    if len(points) <= count:
        return list(points)
    lo, hi = math.log(points[0]), math.log(points[-1])
    chosen = [points[0], points[-1]]
    for k in range(1, count - 1):
        target = lo + (hi - lo) * k / (count - 1)
        chosen.append(min((p for p in points if p not in chosen), key=lambda p: abs(math.log(p) - target)))
    return sorted(chosen)


def references_s(visits: int, work_s: float, reference_s: float) -> float:
    """The reference passes (``reference_s`` each) before ``visits`` visits and pairs that take ``work_s`` in all: one
    before each, but a pass only where ``REFERENCE_GAP`` of them have had time to run since the last (the sweep's
    rule), so no more than ``work_s / REFERENCE_GAP`` and the first."""
    return min(visits * reference_s, work_s / REFERENCE_GAP + reference_s)


def _within_limit(grid: list[Item], cost: dict[Item, float], limit_s: float, first_out=None,
                  each_phase: bool = False) -> list[Item]:
    """The items of ``grid`` kept within ``limit_s`` of ``cost`` (summed exactly rounded, so in any order alike): left
    out while they cost more, the greatest by ``first_out`` (a sort key; the costliest when None) first (with
    ``each_phase``, from the phases that have more than one kept first: a phase keeps its last item until every phase
    is down to one), then any left out that still fits, cheapest first; in ``grid``'s order."""
    kept, key = list(grid), first_out or cost.get
    while kept and math.fsum(cost[item] for item in kept) > limit_s:
        per_phase = Counter(item[0] for item in kept)
        kept.remove(max(kept, key=lambda item: (not each_phase or per_phase[item[0]] > 1, key(item))))
    for item in sorted(set(grid) - set(kept), key=cost.get):  # what fits in what the costliest left
        if math.fsum([*(cost[other] for other in kept), cost[item]]) <= limit_s:
            kept.append(item)
    return [item for item in grid if item in kept]


def _batch_ends(grid: list[Item], cost: dict[Item, float], decode_contexts: list[int]) -> dict[Item, float]:
    """The batch points of ``grid`` that go last, with their rank (the higher goes first): each phase's cheapest (0),
    the cheapest of its largest batch (1), and the decode ends at the second of the sorted ``decode_contexts``
    (1.5: their cached tokens' cost, measured)."""
    ends = {}
    for phase in ("prefill", "decode"):
        items = [item for item in grid if item[0] == phase]
        if items:
            largest = max(item[2] for item in items)
            ends.setdefault(min((item for item in items if item[2] == largest), key=cost.get), 1)
            ends[min(items, key=cost.get)] = 0
    if len(decode_contexts) > 1:
        shortest, next_one = decode_contexts[:2]
        ends = {("decode", next_one, b): 1.5 for kind, c, b in ends if kind == "decode" and c == shortest} | ends
    return ends


def _length_of(item: Item) -> int | None:
    """A length item's length; None for the other kinds."""
    return item[1] if item[0] == "length" else None


def length_visit_passes(repeats: int, visit: int) -> int:
    """Prefill-sized passes in visit ``visit`` (from 0) to a length at ``repeats``: its prefills and forwards, and
    the prefill's warm-up but on the first visit (the pilot's pass was that); the forward's warm-up is the prefills
    (``profiler.measure.items``; the FLOP-counted warm-up of the first two forwards, short passes, is not priced)."""
    return 2 * repeats + (0 if visit == 0 else 1)


class Plan:
    def __init__(self, min_repeats: int, max_positions: int, budget_s: float = math.inf):
        self.min_repeats = min_repeats
        self.max_positions = max_positions
        self.budget_s = budget_s
        self.most_visits = VISITS  # fewer where the range of lengths does not fit so (``profiler.measure.pilot``)
        self.heavy_visits = 1  # a heavy pass's, more where the range of lengths fits so (``profiler.measure.pilot``)
        self.pilot_s: dict[int, float] = {}  # the pilot pass's latency per length planned
        self.prefill_s: dict[int, float] = {}  # the estimate per length: the pilot's, until corrected
        self.decode_pilot_s: dict[int, float] = {}  # the pilot's decode step per context
        self.decode_points_s: dict[int, float] = {}  # the estimate per context: the pilot's, until corrected
        self.fill_s_per_token = 0.0  # growing a filled cache, per token (``fill_s``)
        self.counter_overhead_s = 0.0  # what timing a pass under FlopCounterMode adds to it
        self.uncounted_share = 1.0  # a plain pass over a counted one at the calibration length
        self.corrected_by = 1.0  # the pilot's inflation the estimates were last corrected by
        self.piloted_since: set[int] = set()  # lengths piloted after a correction: at the corrected speed
        self.few_repeats: set[int] = set()  # lengths kept at a long pass's repeats: piloted, they fit only so
        self.batch_points_s: dict[tuple[str, int, int], float] = {}  # (phase, n, batch) -> median measured

    def calibrate_counter(self, plain_s: float, counted_s: float) -> None:
        """Take the counter's overhead from a plain and a FLOP-counted pass at the calibration length."""
        self.counter_overhead_s = max(0.0, counted_s - plain_s)
        self.uncounted_share = min(1.0, plain_s / counted_s)

    def uncounted_s(self, counted_s: float) -> float:
        """A pass timed under the FLOP counter, as a plain pass would take."""
        return max(counted_s - self.counter_overhead_s, counted_s * self.uncounted_share)

    def counted_s(self, plain_s: float) -> float:
        """A pass as a FLOP-counted warm-up takes it (the inverse of ``uncounted_s``)."""
        return max(plain_s + self.counter_overhead_s, plain_s / self.uncounted_share)

    def _long(self, pass_s: float, length: int | None) -> bool:
        return pass_s > LONG_PASS_SHARE * self.budget_s or length in self.few_repeats

    def repeats(self, pass_s: float, length: int | None = None) -> int:
        """The minimum repeats of a pass predicted to take ``pass_s`` (a prefill or forward at ``length``, or None):
        fewer for a long one, or a length kept so (``few_repeats``)."""
        return min(self.min_repeats, LONG_PASS_REPEATS) if self._long(pass_s, length) else self.min_repeats

    def length_cost_s(self, pass_s: float) -> float:
        """Predicted time to measure a length whose prefill is predicted to take ``pass_s``, in all its visits."""
        visits = self._visits(pass_s)
        return sum(length_visit_passes(self.visit_repeats(pass_s, visit, visits), visit) * pass_s
                   for visit in range(visits))

    def prefill_estimate_s(self, n: int) -> float:
        """A prefill of ``n`` tokens: the shortest length planned at or above ``n``, or beyond the longest
        the quickest decode step (a pass's cost that does not grow with its tokens: the weights read) plus a
        power law through the two longest's excess over it (exponent 1 to 2)."""
        longer = [m for m in self.prefill_s if m >= n]
        if longer:
            return self.prefill_s[min(longer)]
        top = sorted(self.prefill_s)[-2:]
        floor_s = 0.0
        if self.decode_points_s:
            floor_s = min([*self.decode_points_s.values(), *(self.prefill_s[m] for m in top)])
        excess_s = [self.prefill_s[m] - floor_s for m in top]
        exponent = 1.0
        if len(top) == 2 and excess_s[0] > 0:
            ratio = excess_s[1] / excess_s[0]
            exponent = min(2.0, max(1.0, math.log(max(ratio, 1e-12)) / math.log(top[1] / top[0])))
        if excess_s[-1] <= 0:  # one length, its pass no longer than a decode step: linear in n
            floor_s, excess_s[-1] = 0.0, self.prefill_s[top[-1]]
        return floor_s + excess_s[-1] * (n / top[-1]) ** exponent

    def decode_estimate_s(self, c: int) -> float:
        """A decode step at context ``c``: linear between the contexts piloted (or measured), beyond them along
        the last two (never falling), at the first one below it."""
        points = sorted(self.decode_points_s.items())
        if not points:
            return 0.0
        if len(points) == 1 or c <= points[0][0]:
            return points[0][1]
        pairs = list(zip(points, points[1:]))
        (c0, s0), (c1, s1) = next(((lo, hi) for lo, hi in pairs if c <= hi[0]), pairs[-1])
        return max(0.0, s0 + (s1 - s0) * (c - c0) / (c1 - c0), min(s0, s1))

    def generate_s(self, n_in: int, n_out: int) -> float:
        return self.prefill_estimate_s(n_in) + (n_out - 1) * self.decode_estimate_s(n_in + n_out)

    def batch_measured(self, phase: str, n: int, batch: int, median_s: float) -> None:
        """Record the median of the batch point ``(phase, n, batch)`` measured: its estimate from now on."""
        self.batch_points_s[(phase, n, batch)] = median_s

    def batch_pass_s(self, phase: str, n: int, batch: int) -> float:
        """One pass of ``batch`` sequences of ``phase`` (prefill or decode) at length or context ``n`` (see the
        module doc): batch 1's estimate, at most ``batch`` times it; measured, its median; past a measured batch at
        ``n``, no more than along the line through the two largest below it."""
        if (phase, n, batch) in self.batch_points_s:
            return self.batch_points_s[(phase, n, batch)]
        estimate_s = self._unmeasured_batch_pass_s(phase, n, batch)
        smaller = [b for (p, m, b) in self.batch_points_s if (p, m) == (phase, n) and b < batch]
        if not smaller:
            return estimate_s
        # along the line through the two largest batches below (one sequence's estimate the smaller where only one
        # was measured), between the largest's median and that median times the ratio of the batches
        points = {1: self._unmeasured_batch_pass_s(phase, n, 1)} | {b: self.batch_points_s[(phase, n, b)]
                                                                       for b in smaller}
        (b1, s1), (b2, s2) = sorted(points.items())[-2:]
        along_s = s2 + (s2 - s1) / (b2 - b1) * (batch - b2)
        return min(estimate_s, max(s2, min(along_s, s2 * batch / b2)))

    def _unmeasured_batch_pass_s(self, phase: str, n: int, batch: int) -> float:
        if phase == "prefill":
            single_s = self.prefill_estimate_s(n)
            return single_s if batch == 1 else min(batch * single_s, self.prefill_estimate_s(batch * n))
        single_s = self.decode_estimate_s(n)
        if batch == 1:
            return single_s
        context_s = max(0.0, single_s - self.decode_estimate_s(1))  # what the cache adds to a step, per sequence
        return min(batch * single_s, max(single_s, self.prefill_estimate_s(batch)) + batch * context_s)

    def extend_pass_s(self, c: int, s: int) -> float:
        """An extend pass of ``s`` tokens on a cache of ``c`` (see the module doc): at most a prefill of ``c + s``."""
        context_s = max(0.0, self.decode_estimate_s(c) - self.decode_estimate_s(1))  # what the cache adds to a step
        return min(self.prefill_estimate_s(c + s), self.prefill_estimate_s(s) + s * context_s)

    def pass_s(self, item: Item) -> float:
        """One pass of ``item`` (a length's: its prefill, its forward taken alike)."""
        kind, n, third = item
        if kind == "length":
            return self.prefill_s[n]
        if kind == "extend":
            return self.extend_pass_s(n, third)
        return self.batch_pass_s(kind, n, third)

    def fill_s(self, item: Item) -> float:
        """Filling the cache ``item`` runs on, a decode point's (of its every sequence) or an extend point's (0 for the
        other kinds): ``fill_s_per_token`` for each token grown (the one-token cache it starts from is a copy, 1-2 ms:
        ``Passes.one_token_cache``)."""
        kind, n, third = item
        return {"decode": third * (n - 1), "extend": n - 1}.get(kind, 0) * self.fill_s_per_token

    def _visits(self, pass_s: float, length: int | None = None) -> int:
        if self._long(pass_s, length):
            return 1
        visits = min(self.most_visits, self.repeats(pass_s, length))
        return min(visits, self.heavy_visits) if pass_s > HEAVY_PASS_SHARE * self.budget_s else visits

    def visits(self, item: Item) -> int:
        """The visits ``item``'s repeats are taken in (``most_visits``, ``VISITS`` unless the pilot chose fewer; for a
        pass costing more than ``HEAVY_PASS_SHARE`` of the budget at most ``heavy_visits``; one for a long pass; never
        more than its repeats)."""
        return self._visits(self.pass_s(item), _length_of(item))

    def visit_repeats(self, pass_s: float, visit: int, visits: int, length: int | None = None) -> int:
        """The minimum repeats of visit ``visit`` (from 0) of ``visits`` to a point whose pass is predicted to take
        ``pass_s`` (a prefill or forward at ``length``, or None): the point's minimum split over its visits, the first
        ones taking what does not divide."""
        repeats = self.repeats(pass_s, length)
        return repeats // visits + (visit < repeats % visits)

    def _visit_s(self, item: Item, repeats: int, visit: int) -> float:
        """Visit ``visit`` (from 0) to ``item`` at ``repeats``, warm-ups and a cache's fill included: a length's first
        visit has its prefill warm-up in the pilot."""
        pass_s = self.pass_s(item)
        if item[0] == "length":
            return length_visit_passes(repeats, visit) * pass_s
        return self.fill_s(item) + (repeats + 1) * pass_s

    def visit_cost_s(self, item: Item, visit: int, visits: int) -> float:
        """Predicted time to measure visit ``visit`` (from 0) of ``visits`` to ``item`` at its minimum repeats."""
        return self._visit_s(item, self.visit_repeats(self.pass_s(item), visit, visits, _length_of(item)), visit)

    def extra_visit_repeats(self, pass_s: float, length: int | None = None) -> int:
        """The repeats of a visit past a point's planned ones (the time the plan left, at the end of a sweep): a last
        planned visit's minimum, so the time left buys as many visits, far apart, as it can."""
        return self.visit_repeats(pass_s, VISITS - 1, VISITS, length)

    def extra_visit_cost_s(self, item: Item) -> float:
        """Predicted time of a visit to ``item`` past its planned ones, with a later visit's warm-ups (and its cache's
        fill)."""
        return self._visit_s(item, self.extra_visit_repeats(self.pass_s(item), _length_of(item)), 1)

    def item_cost_s(self, item: Item) -> float:
        """Predicted time to measure ``item`` at its minimum repeats, in all its visits, warm-ups (and a cache's
        fill) included."""
        visits = self.visits(item)
        return sum(self.visit_cost_s(item, visit, visits) for visit in range(visits))

    def with_references_s(self, item: Item, reference_s: float) -> float:
        """``item_cost_s`` and the reference passes (``reference_s`` each) of its visits (``references_s``)."""
        cost_s = self.item_cost_s(item)
        return cost_s + references_s(self.visits(item), cost_s, reference_s)

    def batch_grid(self, sizes: list[int], lengths: list[int], contexts: list[int], reference_s: float,
                   limit_s: float) -> list[Item]:
        """The batch items (``("prefill", n, b)`` and ``("decode", c, b)`` for ``b`` in ``sizes`` above 1) at three
        of the sorted ``lengths`` and ``contexts`` spread over them, the costliest left out while they cost more than
        ``limit_s`` with a reference pass (``reference_s``) before each, but each phase's cheapest point of its largest
        batch size only after the others and its cheapest point last (a phase's last point once every phase is down
        to one), then any of those left out that still fits, cheapest first; the decode ends' second contexts go after
        the ends (see the module doc). In the order they are kept, the last to go first: the order a sweep measures
        them in (``profiler.measure.sweep``)."""
        sizes = sorted(b for b in sizes if b > 1)
        grid = [("prefill", n, b) for n in spread(lengths) for b in sizes]
        decode_contexts = spread(contexts)
        grid += [("decode", c, b) for c in decode_contexts for b in sizes]
        point_s = {item: self.with_references_s(item, reference_s) for item in grid}
        ends = _batch_ends(grid, point_s, decode_contexts)

        def first_out(item):
            return ends.get(item, 2), point_s[item]

        return sorted(_within_limit(grid, point_s, limit_s, first_out=first_out, each_phase=True), key=first_out)

    def extend_grid(self, contexts: list[int], reference_s: float, limit_s: float) -> list[Item]:
        """The extend items (``("extend", c, s)``, ``grid.extend_points`` at three of the sorted ``contexts`` spread
        over them) within ``limit_s`` with a reference pass (``reference_s``) before each, thinned as
        ``batch_grid`` is but the longest appends left out first (see the module doc)."""
        grid = [("extend", c, s) for c, s in extend_points(spread(contexts), self.max_positions)]
        cost = {item: self.with_references_s(item, reference_s) for item in grid}
        return _within_limit(grid, cost, limit_s, first_out=lambda item: (item[2], cost[item]))

    def drift_check_s(self, planned: list[int]) -> float:
        return self.min_repeats * self.prefill_s[planned[len(planned) // 2]]

    def cost_s(self, planned: list[int], to_measure: list[Item], generates: bool = True,
               later_visits: list[Visit] = ()) -> float:
        """Predicted time to finish a sweep of ``planned`` lengths (sorted) at the minimum repeats: the items
        ``to_measure`` (those not yet begun) in all their visits, the ``later_visits`` of items begun, the generate
        pairs ``planned`` implies (at most ``GENERATE_SHARE`` of the budget; none unless ``generates``: they then
        take what is left), the reference passes and the drift check."""
        pairs = generate_pairs(planned, self.max_positions) if generates else []
        return self._to_finish_s(to_measure, later_visits, pairs, planned[0], planned, GENERATE_SHARE * self.budget_s)

    def left_s(self, queue: list[Item], later_visits: list[Visit], pairs: list[tuple[int, int]], reference_n: int,
               planned: list[int]) -> float:
        """What is left at the minimum repeats, warm-ups and fills included (the items of ``queue`` in all their visits,
        the ``later_visits`` of items begun, each generate pair's calls and warm-up, whatever their share), with the
        reference passes left and the drift check: what a visit's share of the time left is taken over (in proportion
        to its own minimum, ``profiler.measure.items``), so a visit takes more than its minimum only where the time
        left exceeds it."""
        return self._to_finish_s(queue, later_visits, pairs, reference_n, planned)

    def _to_finish_s(self, to_measure: list[Item], later_visits: list[Visit], pairs: list[tuple[int, int]],
                     reference_n: int, planned: list[int], pairs_limit_s: float = math.inf) -> float:
        """The items ``to_measure`` in all their visits and the ``later_visits``, at the minimum repeats, the
        reference passes (a prefill of ``reference_n``) before the visits and pairs (``references_s``) and after the
        last, the generate ``pairs`` (at most ``pairs_limit_s``), and the drift check of ``planned``."""
        visits = [*((item, visit, count) for item in to_measure for count in (self.visits(item),)
                    for visit in range(count)), *later_visits]
        cost = sum(self.visit_cost_s(*visit) for visit in visits)
        pairs_s = sum((self.repeats(self.generate_s(*pair)) + 1) * self.generate_s(*pair) for pair in pairs)
        cost += min(pairs_s, pairs_limit_s)
        reference_s = self.prefill_s[reference_n]
        return (cost + references_s(len(visits) + len(pairs), cost, reference_s) + reference_s
                + self.drift_check_s(planned))

    def piloted(self, n: int, latency_s: float) -> None:
        """Record the pilot pass of length ``n`` (less the counter's overhead) as its estimate."""
        self.pilot_s[n] = self.prefill_s[n] = latency_s
        if self.corrected_by != 1.0:
            self.piloted_since.add(n)

    def correct(self, planned: list[int], prefill_median_s: dict[int, float],
                decode_median_s: dict[int, float]) -> bool:
        """Correct the estimates of ``planned`` when the pilot proves ``PILOT_OFF`` times too slow in sum
        against ``prefill_median_s`` (length -> median measured); ``decode_median_s`` (context -> median)
        replaces the decode pilot where measured. Whether it did."""
        measured = [n for n in self.pilot_s if n in prefill_median_s and n not in self.piloted_since]
        if not measured:
            return False
        inflation = sum(self.pilot_s[n] for n in measured) / sum(prefill_median_s[n] for n in measured)
        if inflation < PILOT_OFF:
            return False
        for n in planned:
            spell = 1.0 if n in self.piloted_since else inflation
            self.prefill_s[n] = prefill_median_s.get(n, self.pilot_s[n] / spell)
        self.decode_points_s = {c: s / inflation for c, s in self.decode_pilot_s.items()} | decode_median_s
        self.fill_s_per_token *= self.corrected_by / inflation
        self.counter_overhead_s *= self.corrected_by / inflation
        self.corrected_by = inflation
        return True
