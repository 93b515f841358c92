import pytest

from profiler.measure.disturbance import PILOT_OFF
from profiler.measure.grid import generate_pairs
from profiler.measure.plan import Plan

MAX_POSITIONS = 128
TOKEN_S = DECODE_S = 2.0**-10  # powers of two: every sum below is exact


def _plan(lengths, pilot_factor=1.0) -> Plan:
    plan = Plan(min_repeats=3, max_positions=MAX_POSITIONS)
    plan.pilot_s = {n: pilot_factor * n * TOKEN_S for n in lengths}
    plan.prefill_s = dict(plan.pilot_s)
    plan.decode_s = DECODE_S
    return plan


def test_cost_counts_lengths_pairs_and_reference_passes():
    lengths = [8, 32, 128]
    plan = _plan(lengths)
    pairs = generate_pairs(lengths, MAX_POSITIONS)  # (32, 16), (120, 8)
    assert pairs == [(32, 16), (120, 8)]
    # a pair's prompt is priced at the shortest planned length at or above it: 120 as 128
    pairs_s = 4 * ((32 * TOKEN_S + 15 * DECODE_S) + (128 * TOKEN_S + 7 * DECODE_S))
    per_length_s = {n: 7 * n * TOKEN_S + 4 * DECODE_S for n in lengths}
    references_s = (3 + 2 + 1) * 8 * TOKEN_S
    assert plan.cost_s(lengths, lengths) == sum(per_length_s.values()) + pairs_s + references_s
    # once 32 is begun it is out of the cost, and one reference pass fewer remains
    assert plan.cost_s(lengths, [8, 128]) == per_length_s[8] + per_length_s[128] + pairs_s + 5 * 8 * TOKEN_S


def test_one_repeat_of_what_is_left():
    plan = _plan([8, 32, 128])
    left = plan.one_repeat_s([32], [(120, 8)], reference_n=8)
    assert left == (2 * 32 * TOKEN_S + DECODE_S) + (128 * TOKEN_S + 7 * DECODE_S) + 3 * 8 * TOKEN_S


def test_a_pilot_proved_slow_is_corrected_by_the_medians():
    lengths = [8, 16, 32, 64]
    plan = _plan(lengths, pilot_factor=15)
    medians = {8: 8 * TOKEN_S, 16: 16 * TOKEN_S}
    assert plan.correct(lengths, medians, [DECODE_S / 2, DECODE_S / 2, DECODE_S])
    # measured lengths take their medians, the others the pilot over the factor the measured ones showed
    assert plan.prefill_s == {n: n * TOKEN_S for n in lengths}
    assert plan.decode_s == DECODE_S / 2
    assert plan.pilot_s[64] == 15 * 64 * TOKEN_S  # the pilot itself is kept as timed


@pytest.mark.parametrize("pilot_factor", [PILOT_OFF * 0.99, 1.0, 0.1])
def test_a_pilot_near_its_medians_or_too_quick_is_left_alone(pilot_factor):
    lengths = [8, 16]
    plan = _plan(lengths, pilot_factor)
    before = dict(plan.prefill_s)
    assert not plan.correct(lengths, {8: 8 * TOKEN_S}, [DECODE_S])
    assert plan.prefill_s == before and plan.decode_s == DECODE_S
    assert not plan.correct(lengths, {}, [])  # nothing measured yet


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
    assert plan.correct([8, 16], {8: 8 * TOKEN_S, 16: 16 * TOKEN_S}, [])
    assert plan.counter_overhead_s == pytest.approx(0.01)
