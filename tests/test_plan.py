import math

import pytest

from profiler.measure.disturbance import PILOT_OFF
from profiler.measure.grid import generate_pairs
from profiler.measure.plan import GENERATE_SHARE, REFERENCE_GAP, Plan, references_s

MAX_POSITIONS = 128
TOKEN_S = DECODE_S = 2.0**-10  # powers of two: every sum below is exact


def _plan(lengths, pilot_factor=1.0) -> Plan:
    plan = Plan(min_repeats=3, max_positions=MAX_POSITIONS)
    plan.pilot_s = {n: pilot_factor * n * TOKEN_S for n in lengths}
    plan.prefill_s = dict(plan.pilot_s)
    plan.decode_pilot_s = {8: pilot_factor * DECODE_S, 127: pilot_factor * 2 * DECODE_S}
    plan.decode_points_s = dict(plan.decode_pilot_s)
    return plan


def test_cost_counts_lengths_decode_contexts_pairs_reference_passes_and_the_drift_check():
    lengths = [8, 32, 128]
    plan = _plan(lengths)
    plan.fill_s_per_token = TOKEN_S / 8
    pairs = generate_pairs(lengths, MAX_POSITIONS)  # (32, 16), (120, 8)
    assert pairs == [(32, 16), (120, 8)]
    # a pair's prompt is priced at the shortest planned length at or above it (120 as 128), its steps at the
    # decode step of its longest context
    assert plan.generate_s(32, 16) == 32 * TOKEN_S + 15 * plan.decode_estimate_s(48)
    pairs_s = 4 * (plan.generate_s(32, 16) + plan.generate_s(120, 8))
    # in three visits: three prefills and three forwards, the prefill's warm-up in the later two (the pilot's pass was
    # the first's; a forward's is the prefills before it)
    per_length_s = {n: 8 * n * TOKEN_S for n in lengths}
    decode_s = 3 * 126 * TOKEN_S / 8 + 6 * 2 * DECODE_S  # three fills (126 tokens grown), three warm-ups, three steps
    # a reference before each visit and pair (each takes far more than REFERENCE_GAP of them), and after the last
    reference_passes_s = (3 * 4 + 2 + 1) * 8 * TOKEN_S
    drift_s = 3 * 32 * TOKEN_S
    items = [("length", n, 1) for n in lengths] + [("decode", 127, 1)]
    assert plan.cost_s(lengths, items) == pytest.approx(sum(per_length_s.values()) + decode_s + pairs_s
                                                        + reference_passes_s + drift_s)
    # once 32 is begun only its later visits (each a prefill, its warm-up and a forward) and their references remain
    later = [(("length", 32, 1), visit, 3) for visit in (1, 2)]
    assert plan.cost_s(lengths, [("length", 8, 1), ("length", 128, 1)], later_visits=later) == pytest.approx(
        per_length_s[8] + per_length_s[128] + 6 * 32 * TOKEN_S + pairs_s + 11 * 8 * TOKEN_S + drift_s)


def test_a_points_repeats_are_split_over_its_visits_and_a_long_pass_is_visited_once():
    plan = Plan(min_repeats=3, max_positions=MAX_POSITIONS, budget_s=100.0)
    plan.prefill_s = {8: 1.0, 1024: 6.0}
    plan.decode_points_s = {8: 0.5}
    assert plan.visits(("length", 8, 1)) == 3 and plan.visits(("decode", 8, 1)) == 3
    assert [plan.visit_repeats(1.0, visit, 3) for visit in (0, 1, 2)] == [1, 1, 1]
    assert [plan.visit_repeats(1.0, visit, 2) for visit in (0, 1)] == [2, 1]  # where two visits are all that fits
    plan.most_visits = 2
    assert plan.visits(("length", 8, 1)) == 2 and plan.item_cost_s(("length", 8, 1)) == 7 * 1.0
    plan.most_visits = 3
    assert plan.visits(("length", 1024, 1)) == 1 and plan.visit_repeats(6.0, 0, 1) == 2
    assert plan.item_cost_s(("length", 1024, 1)) == 4 * 6.0  # two prefills and two forwards, warmed by the pilot
    # a reference before each of its three visits, but one only where REFERENCE_GAP have had time to run since the last
    assert plan.with_references_s(("decode", 8, 1), 0.25) == pytest.approx(6 * 0.5 + 6 * 0.5 / REFERENCE_GAP + 0.25)
    assert plan.with_references_s(("decode", 8, 1), 0.1) == pytest.approx(6 * 0.5 + 3 * 0.1)
    one = Plan(min_repeats=1, max_positions=MAX_POSITIONS, budget_s=100.0)
    one.prefill_s = {8: 1.0}
    assert one.visits(("length", 8, 1)) == 1  # never a visit without a repeat


def test_a_length_kept_at_a_long_pass_s_repeats_is_priced_and_measured_so():
    plan = Plan(min_repeats=3, max_positions=MAX_POSITIONS, budget_s=100.0)
    plan.prefill_s = {8: 1.0, 32: 2.0}
    assert plan.repeats(2.0, 32) == 3 and plan.item_cost_s(("length", 32, 1)) == 6 * 2.0
    plan.few_repeats.add(32)
    assert plan.repeats(2.0, 32) == 2 and plan.visit_repeats(2.0, 0, 1, 32) == 2
    assert plan.item_cost_s(("length", 32, 1)) == 4 * 2.0  # two prefills and two forwards
    # only the length kept so: a decode context or an extend point at 32 keeps its repeats
    assert plan.repeats(2.0) == 3 and plan.repeats(2.0, 8) == 3


def test_a_heavy_pass_is_visited_as_the_pilot_chose_and_a_long_one_once():
    """On 100 s, a pass of 0.5 s (under 1%) is visited ``most_visits`` times; one of 2 s (a heavy pass, over 1%)
    ``heavy_visits`` times, never more than ``most_visits``; one of 6 s (a long pass, over 5%: two repeats) once."""
    plan = Plan(min_repeats=3, max_positions=MAX_POSITIONS, budget_s=100.0)
    plan.prefill_s = {8: 0.5, 32: 2.0, 128: 6.0}
    plan.most_visits = 3
    assert [plan.visits(("length", n, 1)) for n in (8, 32, 128)] == [3, 1, 1]
    plan.heavy_visits = 3
    assert [plan.visits(("length", n, 1)) for n in (8, 32, 128)] == [3, 3, 1]
    assert plan.item_cost_s(("length", 32, 1)) == 8 * 2.0  # three prefills, three forwards, two later warm-ups
    plan.most_visits = 2  # the heavy pass's three capped
    assert [plan.visits(("length", n, 1)) for n in (8, 32, 128)] == [2, 2, 1]


def test_decode_is_linear_in_the_context_between_and_beyond_the_contexts_piloted():
    plan = _plan([8])
    assert plan.decode_estimate_s(4) == DECODE_S  # below the first: the first
    assert plan.decode_estimate_s(8 + 119 // 2) == pytest.approx(1.5 * DECODE_S, rel=0.01)
    assert plan.decode_estimate_s(127 + 119) == pytest.approx(3 * DECODE_S)


def test_a_prefill_beyond_the_longest_piloted_follows_their_power_law():
    plan = Plan(min_repeats=3, max_positions=MAX_POSITIONS)
    plan.prefill_s = {16: 1.0, 32: 3.0}  # exponent log2(3) = 1.58
    assert plan.prefill_estimate_s(64) == pytest.approx(9.0)
    plan.prefill_s = {16: 1.0, 32: 8.0}  # steeper than attention can make it: quadratic at most
    assert plan.prefill_estimate_s(64) == pytest.approx(32.0)
    plan.prefill_s = {16: 1.0}  # one length: linear
    assert plan.prefill_estimate_s(64) == pytest.approx(4.0)


def test_a_prefill_beyond_the_pilot_grows_from_the_decode_steps_floor():
    """A short prefill costs mostly what any pass does (the weights read, a decode step's cost): only its excess
    over that grows with n (gpt2 on a busy CPU: 0.25 s at 8 tokens, 0.51 s at 64, a decode step 0.12 s)."""
    plan = Plan(min_repeats=3, max_positions=MAX_POSITIONS)
    plan.decode_points_s = {8: 0.12}
    plan.prefill_s = {8: 0.25}
    assert plan.prefill_estimate_s(64) == pytest.approx(0.12 + 0.13 * 8)  # not 8 x 0.25
    plan.prefill_s = {16: 0.22, 32: 0.32}  # excess 0.1 then 0.2: linear
    assert plan.prefill_estimate_s(128) == pytest.approx(0.12 + 0.2 * 4)
    plan.decode_points_s = {8: 0.5}  # no prefill quicker than its floor: the quickest prefill is
    assert plan.prefill_estimate_s(64) == pytest.approx(0.22 + 0.1 * 2)


def test_reference_passes_are_one_a_visit_but_at_most_a_share_of_the_work():
    # visits of 2 s each and a reference of 0.1 s: the gap (1 s) passes within every visit, one before each
    assert references_s(visits=5, work_s=10.0, reference_s=0.1) == pytest.approx(5 * 0.1)
    # visits of 0.2 s: a reference only every REFERENCE_GAP of its passes' time, the first and a tenth of the work
    assert references_s(visits=50, work_s=10.0, reference_s=0.1) == pytest.approx(0.1 + 10.0 / REFERENCE_GAP)
    assert references_s(visits=0, work_s=0.0, reference_s=0.1) == 0.0


def test_long_passes_are_repeated_fewer_times():
    plan = Plan(min_repeats=3, max_positions=MAX_POSITIONS, budget_s=100.0)
    assert plan.repeats(5.0) == 3 and plan.repeats(5.1) == 2


def test_what_is_left_at_the_minimum_repeats():
    plan = _plan([8, 32, 128])
    plan.fill_s_per_token = TOKEN_S / 8
    later = [(("decode", 8, 1), 2, 3)]
    left = plan.left_s([("length", 32, 1)], later, [(120, 8)], reference_n=8, planned=[8, 32, 128])
    # 32 in three visits (a prefill and a forward, then in each later visit one each and the prefill's warm-up), decode
    # at 8 in its third (its cache's fill, a warm-up and a step), a generate pair's three calls and its warm-up; a
    # reference pass before each visit and pair (each far over REFERENCE_GAP of them), and after; the drift check
    fill_s = 7 * TOKEN_S / 8  # 7 tokens grown
    assert left == ((2 + 3 + 3) * 32 * TOKEN_S + fill_s + 2 * DECODE_S + 4 * plan.generate_s(120, 8)
                    + 6 * 8 * TOKEN_S + 3 * 32 * TOKEN_S)
    assert left == plan.cost_s([8, 32, 128], [("length", 32, 1)], later_visits=later) - (
        4 * plan.generate_s(32, 16) + 8 * TOKEN_S)  # the plan's cost, but for the pair (32, 16) and its reference


def test_a_pilot_proved_slow_is_corrected_by_the_medians():
    lengths = [8, 16, 32, 64]
    plan = _plan(lengths, pilot_factor=15)
    medians = {8: 8 * TOKEN_S, 16: 16 * TOKEN_S}
    assert plan.correct(lengths, medians, {8: DECODE_S / 2})
    # measured lengths take their medians, the others the pilot over the factor the measured ones showed
    assert plan.prefill_s == {n: n * TOKEN_S for n in lengths}
    assert plan.decode_points_s == {8: DECODE_S / 2, 127: 2 * DECODE_S}
    assert plan.pilot_s[64] == 15 * 64 * TOKEN_S  # the pilot itself is kept as timed


@pytest.mark.parametrize("pilot_factor", [PILOT_OFF * 0.99, 1.0, 0.1])
def test_a_pilot_near_its_medians_or_too_quick_is_left_alone(pilot_factor):
    lengths = [8, 16]
    plan = _plan(lengths, pilot_factor)
    before, decode_before = dict(plan.prefill_s), dict(plan.decode_points_s)
    assert not plan.correct(lengths, {8: 8 * TOKEN_S}, {8: DECODE_S})
    assert plan.prefill_s == before and plan.decode_points_s == decode_before
    assert not plan.correct(lengths, {}, {})  # nothing measured yet


def test_the_flop_counters_overhead_is_taken_off_pilot_timings():
    plan = Plan(min_repeats=3, max_positions=MAX_POSITIONS)
    assert plan.uncounted_s(0.25) == 0.25  # before calibration: as timed
    plan.calibrate_counter(plain_s=0.01, counted_s=0.04)  # a small model: the counter's cost dominates
    assert plan.counter_overhead_s == pytest.approx(0.03)
    assert plan.uncounted_s(0.5) == pytest.approx(0.47)
    assert plan.uncounted_s(0.02) == pytest.approx(0.005)  # a quicker pass than calibrated: its share taken off
    plan.calibrate_counter(plain_s=0.05, counted_s=0.04)  # the counted pass the quicker: nothing to take off
    assert plan.counter_overhead_s == 0.0 and plan.uncounted_s(0.5) == 0.5


def test_a_correction_scales_the_counters_overhead_timed_in_the_same_spell():
    plan = _plan([8, 16], pilot_factor=4)
    plan.calibrate_counter(plain_s=0.08, counted_s=0.12)
    assert plan.correct([8, 16], {8: 8 * TOKEN_S, 16: 16 * TOKEN_S}, {})
    assert plan.counter_overhead_s == pytest.approx(0.01)


def test_the_generate_pairs_are_planned_at_most_their_share_of_the_budget():
    plan = Plan(min_repeats=3, max_positions=MAX_POSITIONS, budget_s=10.0)
    plan.prefill_s = {8: 0.1, 128: 0.5}
    plan.decode_points_s = {8: 1.0}  # a 16-token generate call: 15 s
    free = Plan(min_repeats=3, max_positions=MAX_POSITIONS)
    free.prefill_s, free.decode_points_s = plan.prefill_s, plan.decode_points_s
    pairs_s = free.cost_s([8, 128], []) - 3 * 0.1 - 3 * 0.5  # the reference passes and the drift check
    assert pairs_s > 30 and plan.cost_s([8, 128], []) == pytest.approx(GENERATE_SHARE * 10.0 + 3 * 0.1 + 3 * 0.5)


def test_spread_takes_both_ends_and_the_points_nearest_an_even_log_spread():
    from profiler.measure.plan import spread

    assert spread([8, 11, 16, 23, 32, 45, 64, 91, 128]) == [8, 32, 128]
    assert spread([8, 16, 1024]) == [8, 16, 1024] and spread([8, 16]) == [8, 16] and spread([]) == []
    assert spread([8, 11, 16, 23, 32], count=4) == [8, 11, 23, 32]


def test_a_pass_of_a_batch_is_priced_at_most_batch_times_one_sequence():
    plan = _plan([8, 16, 32, 64, 128])
    # prefill: B x n tokens of one sequence where that is less (here equal: linear in n), never more than B times
    assert plan.batch_pass_s("prefill", 16, 1) == 16 * TOKEN_S
    assert plan.batch_pass_s("prefill", 16, 4) == 64 * TOKEN_S
    plan.prefill_s = {n: 0.5 + n * TOKEN_S for n in plan.prefill_s}  # a pass's floor: batching pays
    assert plan.batch_pass_s("prefill", 8, 8) == plan.prefill_s[64] < 8 * plan.prefill_s[8]
    # decode (gpt2 on this project's CPU): a prefill of B tokens (the weights read once) plus each sequence's
    # context over the shortest's, at most B steps of one sequence
    plan = Plan(min_repeats=3, max_positions=1024)
    plan.prefill_s, plan.decode_points_s = {8: 0.047, 16: 0.053}, {8: 0.030, 1023: 0.042}
    assert plan.batch_pass_s("decode", 1023, 8) == pytest.approx(0.047 + 8 * 0.012)  # not 8 x 0.042
    assert plan.batch_pass_s("decode", 8, 16) == pytest.approx(0.053)
    assert plan.batch_pass_s("decode", 8, 1) == 0.030
    plan.prefill_s = {8: 0.1}  # a prefill of 2 tokens dearer than 2 steps: the bound
    assert plan.batch_pass_s("decode", 8, 2) == pytest.approx(2 * 0.030)


def test_measured_batches_correct_the_estimates_of_larger_ones():
    """gpt2 on an H200: a prefill of 1,024 tokens 5.8 ms, of 8 x 1,024 8.5 ms, of 16 x 1,024 14.9 ms, where the
    unmeasured estimate of 64 sequences is 64 times one. Measured, a point is its median; a larger batch lies along
    the line through the two largest measured below it, between the largest's median and that median times the
    ratio of the batches; a smaller one, or another length, is not touched."""
    plan = Plan(min_repeats=3, max_positions=1024)
    plan.prefill_s = {1024: 0.0058}
    assert plan.batch_pass_s("prefill", 1024, 64) == pytest.approx(64 * 0.0058)
    plan.batch_measured("prefill", 1024, 8, 0.0085)
    assert plan.batch_pass_s("prefill", 1024, 8) == 0.0085
    # one batch measured: the line from one sequence's estimate
    assert plan.batch_pass_s("prefill", 1024, 16) == pytest.approx(0.0085 + (0.0085 - 0.0058) / 7 * 8)
    plan.batch_measured("prefill", 1024, 16, 0.0149)
    assert plan.batch_pass_s("prefill", 1024, 64) == pytest.approx(0.0149 + (0.0149 - 0.0085) / 8 * 48)
    assert plan.batch_pass_s("prefill", 1024, 4) == pytest.approx(4 * 0.0058)
    # a line falling (a slow pilot pass) stops at the largest's median; a steep one at the ratio of the batches
    plan.batch_measured("prefill", 1024, 32, 0.0100)
    assert plan.batch_pass_s("prefill", 1024, 64) == 0.0100
    plan.batch_measured("prefill", 1024, 32, 0.0500)
    assert plan.batch_pass_s("prefill", 1024, 64) == pytest.approx(0.1000)


def test_the_batch_grid_is_three_points_per_phase_at_every_size_its_costliest_left_out_to_its_limit():
    lengths, contexts = [8, 16, 32, 64, 128], [8, 32, 127]
    plan = _plan(lengths)
    plan.fill_s_per_token = TOKEN_S / 8
    reference_s = 8 * TOKEN_S
    whole = plan.batch_grid([1, 2, 4], lengths, contexts, reference_s, limit_s=math.inf)
    assert sorted(whole) == sorted([("prefill", n, b) for n in (8, 32, 128) for b in (2, 4)] + [
        ("decode", c, b) for c in contexts for b in (2, 4)])
    cost = {item: plan.with_references_s(item, reference_s) for item in whole}
    # just short of all of it: only the costliest goes, a prefill of 4 x 128 tokens
    kept = plan.batch_grid([2, 4], lengths, contexts, reference_s, limit_s=sum(cost.values()) - 1e-9)
    assert set(whole) - set(kept) == {("prefill", 128, 4)}
    for limit_s in (0.3, 0.15, 0.075, 0.015, 0.0015, 0.0):
        kept = plan.batch_grid([1, 2, 4], lengths, contexts, reference_s, limit_s)
        kept_s = sum(cost[item] for item in kept)
        assert kept_s <= limit_s
        # nothing left out would still have fitted (batches 2 and 4 are the ends: no batch between goes whole)
        assert all(kept_s + cost[other] > limit_s for other in set(whole) - set(kept))
        # each phase keeps a point (its surface needs one beside the lengths) wherever the two cheapest fit
        cheapest = sum(min(cost[item] for item in whole if item[0] == kind) for kind in ("prefill", "decode"))
        if limit_s >= cheapest:
            assert {kind for kind, _, _ in kept} == {"prefill", "decode"}, limit_s
        # the cheap points stay: every batch size at the shortest length before any at a longer one
        ns = {n for k, n, _ in kept if k == "prefill"}
        if ns and max(ns) > 8:
            assert {b for k, n, b in kept if k == "prefill" and n == 8} == {2, 4}
    assert plan.batch_grid([2, 4], lengths, contexts, reference_s, limit_s=0.0) == []
    assert plan.batch_grid([1], lengths, contexts, reference_s, limit_s=math.inf) == []


def test_a_tight_batch_grid_keeps_each_phases_largest_batch_before_the_batches_between():
    """A limit that holds each phase's cheapest point and its largest batch at its shortest length (decode's at its two
    shortest contexts) keeps them: a batched call is priced without extrapolating up to the largest batch both phases
    measured, so the largest batch at the shortest length is worth more than a batch between (gpt2's default run on
    this CPU measured decode at 2, 4 and 8 sequences and prefill at 2 only, and priced batches of at most 2); the
    decode ends' second contexts go next, and the points between, costliest first."""
    lengths, contexts = [8, 16, 32, 64, 128], [8, 32, 127]
    plan = _plan(lengths)
    plan.fill_s_per_token = TOKEN_S / 8
    reference_s = 8 * TOKEN_S
    whole = plan.batch_grid([2, 4, 8], lengths, contexts, reference_s, limit_s=math.inf)
    cost = {item: plan.with_references_s(item, reference_s) for item in whole}
    ends = {("prefill", 8, 2), ("prefill", 8, 8), *(("decode", c, b) for c in (8, 32) for b in (2, 8))}
    ends_s = math.fsum(cost[item] for item in ends)  # as the plan sums: exactly rounded, in any order alike
    for limit_s in (ends_s + k / 40 * (sum(cost.values()) - ends_s) for k in range(41)):
        kept = plan.batch_grid([2, 4, 8], lengths, contexts, reference_s, limit_s)
        assert ends <= set(kept), limit_s
        assert math.fsum(cost[item] for item in kept) <= limit_s
        # in the order kept: the ends before every other point, the others the cheapest first
        assert set(kept[:len(ends)]) == ends
        between = [cost[item] for item in kept[len(ends):]]
        assert between == sorted(between)
        # nothing left out would still fit beside them
        assert all(math.fsum([*(cost[item] for item in kept), cost[out]]) > limit_s for out in set(whole) - set(kept))
    # short of them: the cheapest point of each phase still goes last
    kept = plan.batch_grid([2, 4, 8], lengths, contexts, reference_s, ends_s - 1e-9)
    assert {("prefill", 8, 2), ("decode", 8, 2)} <= set(kept) and not ends <= set(kept)


def test_an_extend_pass_is_priced_at_most_a_prefill_of_its_whole_context():
    plan = _plan([8, 16, 32, 64, 128])  # prefill 1 TOKEN_S a token; decode DECODE_S at 8, twice that at 127

    def context_s(c: int) -> float:
        return plan.decode_estimate_s(c) - plan.decode_estimate_s(1)

    assert context_s(8) == 0 and context_s(112) == pytest.approx(DECODE_S * 104 / 119)
    # the prefill of s plus s times what the cache adds to a decode step, where that is less
    assert plan.extend_pass_s(8, 16) == 16 * TOKEN_S
    assert plan.extend_pass_s(112, 16) == pytest.approx(16 * TOKEN_S + 16 * context_s(112))
    assert plan.extend_pass_s(64, 64) == pytest.approx(64 * TOKEN_S + 64 * context_s(64))
    assert plan.extend_pass_s(64, 64) < 128 * TOKEN_S
    # a dear cache (each step 100 times dearer at the top): the prefill of c + s bounds it
    plan.decode_points_s = {8: DECODE_S, 127: 100 * DECODE_S}
    assert plan.extend_pass_s(112, 16) == 128 * TOKEN_S
    # its point in three visits: the cache's fill and a warm-up in each, and the repeats
    plan.fill_s_per_token = TOKEN_S / 8
    fill_s = 111 * TOKEN_S / 8  # 111 tokens grown on a one-token cache
    assert plan.fill_s(("extend", 112, 16)) == fill_s
    assert plan.item_cost_s(("extend", 112, 16)) == 3 * fill_s + 6 * 128 * TOKEN_S


def test_the_extend_grid_is_each_size_at_three_contexts_its_longest_appends_left_out_to_its_limit():
    contexts = [8, 16, 32, 64, 127]
    plan = _plan([8, 16, 32, 64, 128])
    plan.fill_s_per_token = TOKEN_S / 8
    reference_s = 8 * TOKEN_S
    whole = plan.extend_grid(contexts, reference_s, limit_s=math.inf)
    assert whole == [("extend", c, s) for c, s in ((8, 16), (8, 64), (32, 16), (32, 64), (64, 64), (112, 16))]
    assert all(c >= 1 and c + s <= MAX_POSITIONS for _, c, s in whole)
    cost = {item: plan.with_references_s(item, reference_s) for item in whole}
    kept = plan.extend_grid(contexts, reference_s, limit_s=sum(cost.values()) - 1e-9)
    assert set(whole) - set(kept) == {max(whole, key=cost.get)} == {("extend", 64, 64)}
    for limit_s in (1.0, 0.6, 0.5, 0.2, 0.1, 0.05, 0.0):
        kept = plan.extend_grid(contexts, reference_s, limit_s)
        assert math.fsum(cost[item] for item in kept) <= limit_s
        assert all(math.fsum([*(cost[item] for item in kept), cost[other]]) > limit_s
                   for other in set(whole) - set(kept))
        # the short appends stay longest: a 64-token append only where every 16-token one is kept
        if any(s == 64 for _, _, s in kept):
            assert {item for item in whole if item[2] == 16} <= set(kept)
    assert plan.extend_grid(contexts, reference_s, limit_s=0.0) == []
    # a dear cache (gpt2 on a CPU: a step 40 times dearer at the top): the top context's 16-token append costs more
    # than a 64-token one at the bottom, and is still kept before it, so the points span the contexts
    plan.decode_points_s = {8: DECODE_S, 127: 40 * DECODE_S}
    cost = {item: plan.with_references_s(item, reference_s) for item in whole}
    short = [item for item in whole if item[2] == 16]
    assert cost[("extend", 112, 16)] > cost[("extend", 8, 64)]
    assert plan.extend_grid(contexts, reference_s, limit_s=sum(cost[item] for item in short) + 1e-9) == short
