"""The measurement sweep: every phase across the context-length grid, within a time budget.

Four grids: the lengths (prefill and forward at ``n``), the decode contexts (decode at ``c`` on a
cache filled without a prefill, ``profiler.measure.cache_fill``: so decode reaches the model's last
position, ``max_positions - 1``, even where a prefill that long is unaffordable), the batch grid
(prefill and decode of ``B`` sequences in one pass, for each batch size above 1 asked, at three lengths
and three contexts spread over the others, thinned to its share of the budget:
``profiler.measure.plan.Plan.batch_grid``; batch 1 is the other grids) and the extend grid (``s`` tokens
appended to a filled cache of ``c``, ``grid.EXTEND_SIZES`` at three contexts spread over the decode contexts,
inside the positions, thinned to its share: ``profiler.measure.plan.Plan.extend_grid``). By default the lengths are the
half-octave grid from 8 to the maximum, the decode contexts the same grid topped by the last position;
explicit ``--lengths`` are both (a context capped at the last position).

Budget: a pass is started only when it is predicted to end within the budget (``Sweep._affordable``):
the pilot's, a warm-up, each repeat (predicted by the repeat before it), a reference pass, the drift
check's. So a run ends within its budget plus at most one pass, the one whose prediction was wrong.
What could not be afforded is in ``skipped`` with its predicted cost (``pass_s``: one pass,
``predicted_s``: the point at its minimum repeats; ``budget_s``); a batch point in ``batch_skipped``
(with its ``batch``), an extend point in ``extend_skipped`` (``c`` and ``s``).

1. Pilot: one FLOP-counted prefill per grid length, ascending (timed again, plainly, when it takes ``pilot.SLOW_PILOT``
   times what the shorter lengths predict or more, the quicker kept, unless the length would not fit even at that
   prediction: a hiccup would drop the length, or inflate the estimates made from it). It is
   that length's prefill warm-up and FLOP count, finds where memory runs out, and gives each length's latency (less
   the counter's overhead, timed on the model's first passes at the first length or 8 tokens, the shorter:
   ``plan.Plan.calibrate_counter``). At the
   first length a decode step is timed too, and one at the top of the decode grid on a filled
   cache (with its fill): the plan's decode cost, linear in the context. The default decode
   contexts are thinned (ends kept) until they cost at most a quarter of the budget. With the
   default grid, every other length is piloted first, up to the top, planned at one visit a point, then the
   points' visits chosen (three where that range still fits so, else two, else one: ``Pilot._choose_visits``), then
   the lengths between,
   middle first (``grid.middle_first``);
   each (explicit ``--lengths`` too, ascending, at three visits a point) is kept while measuring it, with every decode
   context, the generate pairs, the reference passes and the drift check, is predicted to fit the
   budget at the minimum repeats (fewer for a long pass: ``plan.Plan.repeats``), so a tight budget
   thins the grid before it shortens it. Where that keeps fewer than the three lengths a curve is fitted
   from, the curves come first: three decode contexts, no extend or batch point with the range, the generate
   pairs on what is left, the lengths again (``Pilot._pilot``); a default budget (``raise_budget``) that still
   holds fewer is raised to what the shortest lengths missing need, at most twice itself, and says so
   (``budget_raised_to_s``). The cheapest batch point of each phase is planned with the range of lengths.
   The batch grid is chosen once the lengths are (and again on a re-plan), within its share of the
   budget and what the lengths leave: the range of lengths is planned without it, the lengths between
   only beside its share, so batches thin the grid but never shorten it. The extend grid likewise, within
   its own share and its part of what the lengths leave (in proportion to the two shares where batches are
   measured), chosen before the batch grid (which takes what is left).
2. Measurement: the lengths, decode contexts, batch points and extend points in shuffled order (so slow drift does
   not masquerade as a trend in n or B; with the curves first, the lengths and decode contexts before the others;
   else the points visited more than once before those visited once), the batch points then put in the places they
   fell in in the plan's order (``plan.Plan.batch_grid``: the floor, the largest batches, the others), so the points
   a machine slower than its pilot leaves out are the plan's first to go (the earlier places still fall anywhere in
   the sweep);
   at each length prefill, then forward; at each decode context decode steps on a filled cache (every step at the
   same context: the cache is put back after each, ``profiler.measure.rewind``), of one sequence or of a batch; at
   each batched prefill point the prefill of its batch; at each extend point extend passes on a filled cache, put
   back after each; then the generate pairs, a pair's repeats after its first leaving the pairs after it a warm-up
   and a call each where the budget holds them (``Sweep._pairs_reserve_s``); then the batch and extend points the
   budget left out, cheapest first, one visit each, where the time left now affords them (``Sweep._bring_back``:
   measured batch points correct the estimates of larger batches); then the time still left on further visits to
   the points measured, round after round, until none more fits (``Sweep._spend_left``), so a run ends at its budget
   rather than where its plan did. Each item is visited three times
   (``plan.Plan.visits``: once for a long pass, where the range of lengths would not fit so, and where the curves
   come first; twice where it fits only so; raised for the items not yet begun where, at the speed the prefills then
   run, they fit at more: ``Pilot._more_visits``, a pilot in a mild slow spell; a pass costing over 1% of the budget,
   the range's longest lengths, once unless the range fits with it visited as the others are:
   ``plan.Plan.heavy_visits``). The time
   then left to the budget is split in
   as many spans as the point's visits, and its ``k``-th later visit falls due at a random moment between ``k - 1/2``
   and ``k + 1/2`` spans from its first (``Sweep._due_s``); a visit due is taken before the next item begins (the
   earliest due first; all in that order once none is left to begin). So a point's visits are far apart and each
   round's order is its own: a slow spell of a few seconds covers one visit of a point, not the one its median is,
   and the points it covers in one round are not those it covers in the next (on a synthetic machine slow a sixth of
   the time, in spells longer than a short point's visit, 12 of 222 points moved over 5%, where two visits a point,
   2 and 1 repeats, moved 27 of 252: ``tests/test_planner.py``). A visit is a warm-up pass (FLOP-counted on the
   first visit for decode, extend and forward, and none for forward after that: its length's prefills just before it
   were; prefill's first was the pilot; a cache filled again), then timed repeats until
   ``timing.enough_repeats`` (the point's minimum split between its visits), with a share of the budget still left
   in proportion to its minimum's part of what is left at the minimum (``plan.Plan.left_s``: a visit takes more only
   where the time left exceeds that); a later visit the budget cannot afford, or one that would leave the items not
   yet begun or the generate pairs less than their planned time (a machine slower than its pilot; the plan priced at
   the speed the prefills ran where that is quicker than the pilot's, ``Sweep._pace``), is left out
   unsaid (its point has the earlier visits' repeats); so is, said, a batch or extend point beyond the batch floor
   and extend core whose first visit would leave what is planned with the range and the generate pairs less than
   theirs. Garbage collection is off while timing. A reference pass (prefill at the shortest length) is timed before
   the first visit, before a visit where ``plan.REFERENCE_GAP`` of them have had time to run since the last ended, and
   after the last visit, to see the machine's speed through the run (``profiler.measure.disturbance``; one before
   every visit took 13% of gpt2's default run, 92 passes of 64 ms, and the time a spell lasts is seconds).
3. Re-plan: before each visit takes its share of the time left (after its reference pass, if any) and after
   each length's prefill point, the pilot is set against the reference passes and the medians
   measured (``plan.Plan.correct``). When it proves twice too slow or more (a disturbance during the
   pilot that has gone away), the estimates are corrected and, with the default grid, decode
   contexts and lengths the budget dropped come back while the corrected plan fits.
4. Drift check: one prefill point is timed again at the end; if its median moved by 10% or
   more, the machine's speed changed during the sweep (throttling, a noisy neighbour) and
   the run says so, since a slow spell covering a whole point is invisible in its spread.

Out of memory at some length: recorded; that length and longer ones are dropped, what was
measured stays. An interrupt (Ctrl-C) ends the sweep the same way. Rows reach the disk as
they are measured, so neither loses a sample. The outcome carries what the disturbance watch
saw, interrupted or not. Out of memory at a batch point: recorded in ``batch_out_of_memory``; the
batch points of that batch or larger at that length (or context) or longer are dropped, the rest of
the sweep goes on; at an extend point, recorded in ``extend_out_of_memory`` and the points of as long a cache
and as many tokens appended or more dropped.

Energy: with an ``energy`` counter (``profiler.measure.energy``), each timed pass's row has the joules the counter
took around it, where the pass lasted long enough for the counter to tell; without one, ``energy_j`` stays empty.

Every latency, the budget and the progress are read off one ``timing.Clock`` (the wall clock
unless the caller passes another), the load off ``load_average`` (``os.getloadavg`` unless
the caller passes another).
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from profiler.measure.devices import dtype_name
from profiler.measure.disturbance import Disturbance, DisturbanceWatch, load_average_1m
from profiler.measure.energy import EnergyCounter
from profiler.measure.flops import generate_flops
from profiler.measure.grid import decode_contexts, generate_pairs
from profiler.measure.items import EXTRA_VISIT, Items, OutOfMemory, OverBudget
from profiler.measure.loading import LoadedModel
from profiler.measure.memory import PeakMemory
from profiler.measure.memory_limits import MemoryLimits
from profiler.measure.passes import Passes
from profiler.measure.pilot import Pilot
from profiler.measure.plan import Plan, Visit
from profiler.measure.samples import SampleWriter
from profiler.measure.timing import Clock, RepeatPolicy, time_pass

Progress = Callable[[str, float, float], None]  # (what runs now, seconds done, seconds in all)


def _no_progress(description: str, done_s: float, total_s: float) -> None:
    pass


def _grid_point(item: tuple[str, int, int]) -> bool:
    """Whether ``item`` is a point of the batch or extend grid (not a length or a decode context of one sequence)."""
    return item[0] == "extend" or (item[0] != "length" and item[2] > 1)


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
    batch_skipped: list[dict] = field(default_factory=list)  # batch points not measured: {phase, batch, n_ctx, ...}
    batch_out_of_memory: list[dict] = field(default_factory=list)  # {phase, batch, n_ctx, error}
    # extend points not measured: {c, s, reason} (and pass_s, predicted_s, budget_s where the budget left one out)
    extend_skipped: list[dict] = field(default_factory=list)
    extend_out_of_memory: list[dict] = field(default_factory=list)  # {c, s, error}
    budget_raised_to_s: float | None = None  # a default budget raised so the curves can be fitted: to what
    # why decode and extend caches were built by prefills rather than filled (cache_fill.fill_check); None: filled
    caches_prefilled: str | None = None


class Sweep(Items, Pilot, MemoryLimits):
    """The sweep over ``lengths`` of ``loaded`` into ``writer`` (see the module doc); its pilot and re-planning
    are ``profiler.measure.pilot.Pilot``'s, what memory ran out at and what that drops
    ``profiler.measure.memory_limits.MemoryLimits``'s."""

    def __init__(
        self,
        loaded: LoadedModel,
        writer: SampleWriter,
        *,
        lengths: list[int],
        trim_to_budget: bool,
        budget_s: float,
        raise_budget: bool = False,
        policy: RepeatPolicy = RepeatPolicy(),
        seed: int = 0,
        batch_sizes: list[int] = (1,),
        progress: Progress = _no_progress,
        clock: Clock = time.perf_counter,
        load_average: Callable[[], float | None] = load_average_1m,
        energy: EnergyCounter | None = None,
    ):
        self.loaded = loaded
        self.arch = loaded.architecture
        self.writer = writer
        self.grid = lengths
        self.decode_grid = decode_contexts(lengths, self.arch.max_positions, default=trim_to_budget)
        self.decode_contexts: list[int] = []  # chosen by the pilot
        self.fit_first = False  # the budget holds too few lengths beside the other grids: the curves first
        self.batch_sizes = sorted({1, *batch_sizes})
        self.batch_items: list[tuple[str, int, int]] = []  # chosen by the pilot
        self.extend_items: list[tuple[str, int, int]] = []  # ("extend", c, s), chosen by the pilot
        self.trim_to_budget = trim_to_budget
        self.budget_s = budget_s
        self.raise_budget = raise_budget  # the budget is the default: raised where it cannot hold the curves
        self.policy = policy
        self.seed = seed
        self.rng = random.Random(seed)
        self.progress = progress
        self.clock = clock
        self.load_average = load_average
        self.passes = Passes(loaded, seed)
        self.memory = PeakMemory(loaded.device)
        self.energy = energy
        self.outcome = SweepOutcome()
        self.plan = Plan(policy.min_repeats, self.arch.max_positions, budget_s)
        self.prefill_flops_counted: dict[int, int] = {}  # counted on the pilot pass
        self.pilot_memory: dict[int, tuple[int | None, int | None]] = {}  # the pilot pass's peak and reserved bytes
        self.warm_ups_counted: dict[tuple[str, int], int] = {}  # (phase, batch) -> FLOP-counted warm-ups
        self.medians_s: dict[tuple, float] = {}  # (phase, n_ctx, n_new) -> measured median, of one sequence
        self.measured: set[tuple[str, int, int]] = set()  # items begun (or dropped): out of the plan's cost
        self.later_visits: dict[Visit, float] = {}  # the visits left to items begun -> when each is due (clock)
        self.pairs_to_come: list[tuple[int, int]] = []  # the generate pairs, until their turn
        self.first_visited: list[tuple[str, int, int]] = []  # items whose first visit measured, in its order
        self.point_latencies_s: dict[tuple, list[float]] = {}  # (phase, n_ctx, n_new, batch) -> every repeat so far
        self.reference_n = 0  # the reference pass's length: the shortest kept
        self.reference_s: list[float] = []  # its latencies
        self.reference_end_s = 0.0  # when the last one ended (clock)
        self.brought_back: list[int] = []
        self.remaining_cost_s = 0.0
        self.watch: DisturbanceWatch | None = None
        self._row_base = {
            "model": loaded.source.name, "weights": "random" if loaded.random_weights else "safetensors",
            "device": loaded.device.type, "dtype": dtype_name(loaded.dtype),
        }

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
        """The lengths, decode contexts, batch points and extend points planned, in shuffled order, re-planning after
        each length's prefill point, their later visits (``Plan.visits``) taken among them as each falls due
        (``_due_s``, ``_next_visit``); then the generate pairs; a reference pass before a visit where
        ``plan.REFERENCE_GAP`` of them have had time to run since the last (``Items._reference``), and after the
        last."""
        self.reference_n = self.outcome.lengths[0]
        self.outcome.generate_pairs = self.pairs_to_come = generate_pairs(self.outcome.lengths,
                                                                          self.arch.max_positions)
        queue = [("length", n, 1) for n in self.outcome.lengths] + [("decode", c, 1) for c in self.decode_contexts]
        queue += self.batch_items + self.extend_items
        self._shuffle(queue)
        self.remaining_cost_s = self._left_s(queue)
        while queue or self.later_visits:
            self._more_visits(queue, started)
            item, visit = self._next_visit(queue)
            self.measured.add(item)
            # a later visit beyond memory, or one that would leave the items not begun or the generate pairs short, is
            # not said: its point has the earlier visits' repeats
            if (self._beyond_item_memory(item) or self._leaves_short(queue, [(item, *visit)], started)) if visit[0] \
                    else (self._item_dropped(item) or self._left_out(item, queue, started)):
                continue
            if not visit[0]:  # costed from now on (``_left_s``, ``Pilot._fits``)
                self.later_visits |= self._due_s(item, visit[1], started)
            self._reference(started)
            self._replan(queue, started, item, visit, begun=False)
            try:
                self._measure_item(item, queue, started, visit)
            except (OutOfMemory, OverBudget):
                self.later_visits = {later: due_s for later, due_s in self.later_visits.items() if later[0] != item}
            else:
                if not visit[0]:
                    self.first_visited.append(item)
        pairs, self.pairs_to_come = self.outcome.generate_pairs, []
        for index, (n_in, n_out) in enumerate(pairs):
            if not self._dropped(n_in + n_out, "generate"):
                self._reference(started)
                try:
                    self._measure("generate", n_in, n_out, lambda: self.passes.generate(n_in, n_out),
                                  generate_flops(self.arch, n_in, n_out), "plain",
                                  self.plan.generate_s(n_in, n_out), started=started,
                                  reserve_s=self._pairs_reserve_s((n_in, n_out), pairs[index + 1:], started))
                except (OutOfMemory, OverBudget):
                    pass
        self._bring_back(started)
        self._spend_left(started)
        self._reference(started, last=True)  # the last item's other side

    def _due_s(self, item: tuple[str, int, int], visits: int, started: float) -> dict[Visit, float]:
        """When each later visit of ``item`` (of ``visits``), first visited now, falls due: the time left to the budget
        split in as many spans, visit ``k`` at a random moment of the span around ``k`` spans from now (``rng``: a
        point's visits far apart, and each round's order its own, so the points a spell covers in one round are not
        those it covers in the next)."""
        now_s = self.clock()
        span_s = max(0.0, started + self.budget_s - now_s) / visits
        return {(item, index, visits): now_s + span_s * (index - 0.5 + self.rng.random()) for index in range(1, visits)}

    def _next_visit(self, queue: list) -> tuple[tuple[str, int, int], tuple[int, int]]:
        """The next visit, ``(item, (index from 0, of how many))``: the later visit due earliest where it is due, or
        where no item is left to begin; else the first visit of ``queue``'s next item (taken from it)."""
        if self.later_visits:
            later = min(self.later_visits, key=self.later_visits.get)
            if not queue or self.later_visits[later] <= self.clock():
                del self.later_visits[later]
                return later[0], later[1:]
        item = queue.pop(0)
        return item, (0, self.plan.visits(item))

    def _bring_back(self, started: float) -> None:
        """The batch and extend points the budget left out (thinned from their grids, or ``_left_out``), measured
        after everything else, cheapest first, one visit each, where memory (as far as known) and the time left
        afford a point (its reference pass, warm-up, fill and minimum repeats at its estimate, which measured batch
        points have corrected: ``Plan.batch_measured``) and the drift check after it. A pilot that overestimated them
        (a GPU's batched passes cost far less than ``B`` times one) then no longer ends a run far inside its budget
        with points said to be unaffordable. A point measured so is no longer said; one its first pass does not fit
        after all is said again, with the estimate it was refused at; the others stay as they were said."""
        said = [(s, ("extend", s["c"], s["s"])) for s in self.outcome.extend_skipped if s["reason"] == "time budget"]
        said += [(s, (s["phase"], s["n_ctx"], s["batch"])) for s in self.outcome.batch_skipped
                 if s["reason"] == "time budget"]
        reserve_s = self._closing_s()
        said.sort(key=lambda pair: self.plan.visit_cost_s(pair[1], 0, 1))  # the one visit it is measured in
        for index, (skip, item) in enumerate(said):
            cost_s = self.plan.visit_cost_s(item, 0, 1)
            if self._beyond_item_memory(item) or not self._affordable(cost_s + reserve_s, started):
                continue  # still said as the budget left it out
            (self.outcome.extend_skipped if item[0] == "extend" else self.outcome.batch_skipped).remove(skip)
            # its share of the time left: in proportion to what it and the points after it cost, not all of it
            self.remaining_cost_s = self.plan.left_s([later for _, later in said[index:]], [], [], self.reference_n,
                                                     self.outcome.lengths)
            self._reference(started)
            try:
                self._measure_item(item, [], started, (0, 1))
            except (OutOfMemory, OverBudget):
                pass
            else:
                self.first_visited.append(item)

    def _spend_left(self, started: float) -> None:
        """The time the plan left, spent on further visits (``EXTRA_VISIT``) to the points measured: round after round
        in the order of their first visits, each at a last visit's minimum repeats (``Plan.extra_visit_repeats``) with
        a later visit's warm-up (and its cache filled again) and a reference pass before it where one is due (it is
        priced whether or not), where the time left affords it with the drift check and the last reference pass after;
        an item with ``policy.max_repeats`` repeats at a point is visited no more. A point's median is over all its
        repeats, so its visits, spread over the run, outweigh a spell that covered one: on a GPU, where a short pass
        runs at two speeds in spells of the host (gpt2 on an H200 read 5.9 or 11.4 ms, spells of 1 to 66 passes,
        ``benchmarks/gpu_two_speeds.py``), a point measured in one spell is a step in the curve, and a run whose plan
        held every point ended a third inside its budget."""
        reserve_s = self._closing_s()
        visited = True
        while visited:
            visited = False
            for item in self.first_visited:
                cost_s = self.plan.prefill_s[self.reference_n] + self.plan.extra_visit_cost_s(item)
                if (self._beyond_item_memory(item) or self._fewest_repeats(item) >= self.policy.max_repeats
                        or not self._affordable(cost_s + reserve_s, started)):
                    continue
                self.remaining_cost_s = cost_s
                self._reference(started)
                try:
                    self._measure_item(item, [], started, EXTRA_VISIT)
                except (OutOfMemory, OverBudget):
                    continue
                visited = True

    def _closing_s(self) -> float:
        """What a sweep keeps for its end: the drift check, and the last reference pass before it."""
        return self.plan.drift_check_s(self.outcome.lengths) + self.plan.prefill_s[self.reference_n]

    def _fewest_repeats(self, item: tuple[str, int, int]) -> int:
        """The fewest repeats so far at ``item``'s points (a length's prefill and forward; a decode context's, a
        batched prefill's or an extend point's one)."""
        kind, n, third = item
        points = {"length": [("prefill", n, n, 1), ("forward", n, n, 1)], "decode": [("decode", n, 1, third)],
                  "prefill": [("prefill", n, n, third)], "extend": [("extend", n, third, 1)]}[kind]
        return min(len(self.point_latencies_s.get(point, ())) for point in points)

    def _pairs_reserve_s(self, pair: tuple[int, int] | None, later: list[tuple[int, int]], started: float) -> float:
        """What the generate pairs ``later`` need at the least, each a reference pass, a warm-up and one call, of
        those the budget still holds after ``pair``'s warm-up and first call (or now, without a ``pair``; in order;
        predicted at the speed the prefills ran, ``_slowdown``): ``pair``'s repeats after its first leave it to them,
        so a budget short of the pairs' repeats measures each pair it holds once rather than the first several times
        and the costliest (the longest prompt, last) not at all; so do a point's (``Items._measure``)."""
        slowdown = self._slowdown()
        left_s = started + self.budget_s - self.clock() - (2 * self.plan.generate_s(*pair) * slowdown if pair else 0.0)
        reserve_s = 0.0
        for n_in, n_out in later:
            need_s = (self.plan.prefill_s[self.reference_n] + 2 * self.plan.generate_s(n_in, n_out)) * slowdown
            if reserve_s + need_s <= left_s and not self._beyond_memory(n_in + n_out):
                reserve_s += need_s
        return reserve_s

    def _pace(self) -> float:
        """The prefills measured over the plan's estimates of them, in sum (1 before any): above 1 a machine slower
        than its pilot, below 1 a quicker one (a pilot in a slow spell too short or too mild for ``Plan.correct``)."""
        medians_s = self._prefill_medians_s()
        planned_s = sum(self.plan.prefill_s[n] for n in medians_s)
        return sum(medians_s.values()) / planned_s if planned_s else 1.0

    def _slowdown(self) -> float:
        """How many times the plan's estimates the prefills measured took, in sum (at least 1): a machine slower than
        its pilot, which ``Plan.correct`` leaves alone."""
        return max(1.0, self._pace())

    def _leaves_short(self, to_measure: list, later_visits: list[Visit], started: float) -> bool:
        """Whether measuring ``to_measure`` and ``later_visits`` at their minimum repeats, with the generate pairs,
        is predicted to end past the budget (``Plan.cost_s``, at the speed the prefills ran where that is quicker than
        the pilot's, ``_pace``)."""
        after_s = self.plan.cost_s(self.outcome.lengths, to_measure, not self.fit_first, later_visits)
        return self.clock() - started + after_s * min(1.0, self._pace()) > self.budget_s

    def _optional(self) -> Callable[[tuple[str, int, int]], bool]:
        """Whether an item is a batch or extend point beyond those planned with the range of lengths (the batch floor,
        the extend core: ``profiler.measure.pilot``)."""
        with_range = {*self._extend_core(self.outcome.lengths), *self._batch_floor(self.outcome.lengths)}
        return lambda item: _grid_point(item) and item not in with_range

    def _left_out(self, item: tuple[str, int, int], queue: list, started: float) -> bool:
        """Whether ``item``'s first visit, an optional one (``_optional``), is left out, and said, because it would
        leave what is planned with the range (the lengths, decode contexts, batch floor and extend core still in
        ``queue``) and the generate pairs less than their planned time: on a machine slower than its pilot, the
        batch and extend grids' shares give way first."""
        if not _grid_point(item):  # the floor and core are not worked out for a length or a decode context
            return False
        optional = self._optional()
        if not optional(item) or not self._leaves_short([item, *(o for o in queue if not optional(o))], [], started):
            return False
        kind, n, third = item
        try:  # said among the points the time budget left out
            if kind == "extend":
                self._over_budget("extend", n, third, self.plan.pass_s(item))
            else:
                self._over_budget(kind, n, n if kind == "prefill" else 1, self.plan.pass_s(item), batch=third)
        except OverBudget:
            pass
        return True

    def _measure_item(self, item: tuple[str, int, int], queue: list, started: float, visit: tuple[int, int]) -> None:
        kind, n, third = item
        if kind == "length":
            self._measure_length(n, queue, started, visit)
        elif kind == "decode":
            self._measure_decode(n, started, third, visit)
        elif kind == "extend":
            self._measure_extend(n, third, started, visit)
        else:
            self._measure_batch_prefill(n, third, started, visit)

    def _shuffle(self, queue: list) -> None:
        """Shuffle ``queue`` in place, then order it (``_order``)."""
        self.rng.shuffle(queue)
        self._order(queue)

    def _order(self, queue: list) -> None:
        """Order ``queue`` in place, stably: with the curves first (``fit_first``), the lengths and decode contexts (of
        one sequence) before the batch and extend points, so a budget that runs short costs those, not a curve; else
        the items visited more than once before those visited once (the long passes), so the later visits fall due
        among the long passes, far apart, rather than bunched after them; the batch points, in the places they fell
        in, in the plan's order (``batch_items``: the floor, then the last to go first), so a machine slower than its
        pilot leaves out the first to go (``_left_out``)."""
        if self.fit_first:
            queue.sort(key=lambda item: item[0] not in ("length", "decode") or item[2] != 1)
        else:
            queue.sort(key=lambda item: self.plan.visits(item) == 1)
        places = [i for i, item in enumerate(queue) if item in self.batch_items]
        for i, item in zip(places, sorted((queue[i] for i in places), key=self.batch_items.index)):
            queue[i] = item

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
