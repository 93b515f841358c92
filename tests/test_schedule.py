"""Schedules: batches of one role and model, list-scheduled longest first on D devices, groups one after
another; device time and makespan of hand-made call graphs computed by hand."""

import warnings

import numpy as np
import pytest

from profiler.costmodel.cost_model import ExtrapolationWarning, MissingCurve
from profiler.lba.calls import Call, CallRecorder
from profiler.lba.list_schedule import lpt_makespan, one_class_makespan
from profiler.lba.pricing import FittedPricing, PaperPrimitive
from profiler.lba.schedule import SEQUENTIAL, Schedule, batches
from tests.fitted import cost_model

PAPER = PaperPrimitive()  # a call reading n and writing 1 token costs n; a batch takes one call's time


def greedy(jobs, devices):
    """The list schedule one job at a time: longest first, each to the least loaded device."""
    loads = [0.0] * devices
    for duration in sorted((d for d, count in jobs for _ in range(count)), reverse=True):
        loads[loads.index(min(loads))] += duration
    return max(loads)


def test_lpt_in_bulk_is_the_list_schedule_one_job_at_a_time():
    rng = np.random.default_rng(0)
    for _ in range(2000):
        devices = int(rng.integers(1, 7))
        jobs = [(float(rng.choice([0.5, 1, 1.5, 2, 2.5, 3, 7])), int(rng.integers(0, 10)))
                for _ in range(rng.integers(1, 5))]
        assert lpt_makespan(jobs, devices) == pytest.approx(greedy(jobs, devices), abs=1e-12), (jobs, devices)


def test_lpt_work_does_not_grow_with_counts_or_devices():
    assert lpt_makespan([(2.0, 10**12)], 7) == 2.0 * -(-10**12 // 7)
    assert lpt_makespan([(3.0, 5), (1.0, 10**9)], 10**6) == 3.0 + 1.0 * -(-(10**9 - (10**6 - 5) * 3) // 10**6)
    assert lpt_makespan([], 3) == 0


def test_one_class_in_closed_form_is_the_list_schedule():
    """Full batches and one last batch, shorter or (a noisy fit) longer than a full one, element-wise."""
    rng = np.random.default_rng(1)
    full_s = rng.choice([0.5, 1.0, 2.0], 500)
    full = rng.integers(0, 14, 500).astype(float)
    rest_s = rng.choice([0.0, 0.25, 1.0, 1.5, 3.5, 7.0], 500)
    for devices in (1, 2, 3, 5):
        closed = one_class_makespan(full_s, full, rest_s, devices)
        for i in range(500):
            jobs = [(full_s[i], int(full[i])), (rest_s[i], 1)]
            assert closed[i] == pytest.approx(greedy(jobs, devices)), (jobs, devices)


def test_batches_are_cut_longest_first_and_padded():
    # 3 calls (10 in, 5 out) and 4 of (8, 9), at most 4 a batch: one batch of 3 + 1 padded to (10, 9), then 3
    assert batches([(10, 5, 3), (8, 9, 4)], 4) == [(10, 9, 4, 1), (8, 9, 3, 1)]
    assert batches([(10, 5, 9)], 4) == [(10, 5, 4, 2), (10, 5, 1, 1)]  # identical batches counted once
    assert batches([(10, 5, 9), (3, 1, 2)], np.inf) == [(10, 5, 11, 1)]


def _program():
    """A hand-made call graph: two groups; group B's QA calls by two models, which never share a batch."""
    llm = CallRecorder()
    llm.group([Call("qa", 10, 1)] * 3 + [Call("developer", 20, 2)])  # QA: 10 each; developer: 2*20 + 1 = 41
    llm.group([Call("qa", 5, 1, model=0)] * 2 + [Call("qa", 5, 1, model=1)] * 2)  # 5 each
    return llm


@pytest.mark.parametrize("max_batch, devices, makespan, qa_share", [
    # A: QA batches of 2 and 1 (10 each), the developer's 41: on 2 devices 41 | 10+10; B: a batch per model, 5 | 5
    (2, 2, 41 + 5, 20 / 61),
    (2, 1, 41 + 10 + 10 + 5 + 5, None),  # one device: every batch's duration, one after another
    (None, 2, 41 + 5, 10 / 51),  # the primitive's unlimited batch: A is QA's one batch (10) beside 41
    (None, 1, 41 + 10 + 5 + 5, None),
    (1, 3, 41 + 5 + 5, None),  # A: 41 | 10 | 10+10; B: four calls on three devices
])
def test_hand_made_call_graph(max_batch, devices, makespan, qa_share):
    groups, sizes = _program().groups.items(), {"qa": 1.0, "developer": 1.0}
    schedule = Schedule("parallel", max_batch=max_batch, devices=devices)
    device = schedule.price_groups(groups, PAPER, sizes)
    assert device == {"qa": 3 * 10 + 4 * 5, "developer": 41}  # the primitive's work: batched or not
    length = schedule.priced_in("makespan").price_groups(groups, PAPER, sizes)
    assert sum(length.values()) == pytest.approx(makespan)
    if qa_share is not None:  # group A's makespan shared by the durations of its roles' batches
        assert length["qa"] == pytest.approx(41 * qa_share + 5)
    assert SEQUENTIAL.price_groups(groups, PAPER, sizes) == {"qa": 50, "developer": 41}


def test_a_fitted_batch_is_padded_and_takes_its_batched_call_time():
    pricing = FittedPricing(cost_model(surfaces=True))
    llm = CallRecorder()
    llm.group([Call("qa", 100, 4)] * 3 + [Call("qa", 60, 9)])  # one batch of 4, padded to (100, 9)
    schedule = Schedule("parallel", max_batch=4, devices=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExtrapolationWarning)
        batch_s = float(cost_model(surfaces=True).call_batch(100, 9, 4))
    for measure in ("device_time", "makespan"):
        assert schedule.priced_in(measure).price_groups(llm.groups.items(), pricing, {"qa": 1.0}) == \
               {"qa": pytest.approx(batch_s)}
    sequential = SEQUENTIAL.price_groups(llm.groups.items(), pricing, {"qa": 1.0})["qa"]
    assert batch_s < sequential  # four sequences in one pass beat four calls


@pytest.mark.parametrize("pricing", [PAPER, FittedPricing(cost_model(surfaces=True))], ids=["paper", "fitted"])
@pytest.mark.parametrize("max_batch, devices", [(None, 1), (3, 1), (3, 2), (4, 5), (1, 3)])
def test_a_group_in_closed_form_is_the_recorded_group(pricing, max_batch, devices):
    calls = np.arange(1.0, 30.0)
    for measure in ("device_time", "makespan"):
        schedule = Schedule("parallel", max_batch=max_batch, devices=devices, measure=measure)
        closed = schedule.group(pricing, "qa", 40, 3, calls, 1.0)
        for i, count in enumerate(calls):
            llm = CallRecorder()
            llm.group([Call("qa", 40, 3)] * int(count))
            recorded = schedule.price_groups(llm.groups.items(), pricing, {"qa": 1.0})["qa"]
            assert closed[i] == pytest.approx(recorded, rel=1e-12)


@pytest.mark.parametrize("pricing", [PAPER, FittedPricing(cost_model(surfaces=True))], ids=["paper", "fitted"])
@pytest.mark.parametrize("max_batch, devices", [(None, 1), (2, 1), (2, 3), (3, 16)])
def test_inputs_spread_over_models_in_closed_form_are_the_recorded_group(pricing, max_batch, devices):
    inputs, models = np.meshgrid(np.arange(1.0, 14.0), np.arange(1.0, 7.0))
    for measure in ("device_time", "makespan"):
        schedule = Schedule("parallel", max_batch=max_batch, devices=devices, measure=measure)
        closed = schedule.spread_group(pricing, "specialist", 50, 2, inputs, models, 2.0)
        for (i, j), count in np.ndenumerate(inputs):
            share, more = divmod(int(count), int(models[i, j]))
            llm = CallRecorder()
            llm.group([Call("specialist", 50, 2, model=m) for m in range(int(models[i, j]))
                       for _ in range(share + (m < more))])
            recorded = schedule.price_groups(llm.groups.items(), pricing, {"specialist": 2.0})["specialist"]
            assert closed[i, j] == pytest.approx(recorded, rel=1e-12)


def test_sequential_is_the_sum_of_call_prices():
    calls = np.array([1.0, 5.0])
    assert SEQUENTIAL.group(PAPER, "qa", 10, 2, calls).tolist() == [21.0, 105.0]
    assert Schedule("parallel", max_batch=1).group(PAPER, "qa", 10, 2, calls).tolist() == [21.0, 105.0]


def test_a_fit_without_batch_surfaces_batches_nothing_unless_asked():
    pricing = FittedPricing(cost_model())
    assert pricing.max_batch("qa") == 1
    one_by_one = Schedule("parallel", measure="makespan").group(pricing, "qa", 40, 3, 4.0)
    assert one_by_one == pytest.approx(4 * pricing.price("qa", 40, 3))
    with pytest.raises(MissingCurve, match="re-run"):
        Schedule("parallel", max_batch=4).group(pricing, "qa", 40, 3, 4.0)


@pytest.mark.parametrize("kwargs", [{"kind": "eager"}, {"measure": "seconds"}, {"max_batch": 4},
                                    {"kind": "parallel", "max_batch": 0}, {"kind": "parallel", "devices": 0}])
def test_a_schedule_that_cannot_be_is_refused(kwargs):
    with pytest.raises(ValueError):
        Schedule(**kwargs)


def test_prefix_reuse_is_sequential_and_priced_by_replay_only():
    from profiler.lba.prefix_cache import Reuse

    with pytest.raises(ValueError, match="priced sequentially"):
        Schedule("parallel", reuse=Reuse())
    reusing = Schedule(reuse=Reuse(4096))
    assert reusing.to_json() == {"kind": "sequential", "max_batch": None, "devices": 1,
                                 "reuse": {"capacity_tokens": 4096}}
    assert SEQUENTIAL.to_json() == {"kind": "sequential", "max_batch": None, "devices": 1}
    assert "prefix caching" in reusing.describe(PAPER, ["qa"]) and "4,096 tokens" in reusing.describe(PAPER, ["qa"])
    for price in (lambda: reusing.group(PAPER, "qa", 10, 2, 3), lambda: reusing.spread_group(PAPER, "qa", 10, 2, 3, 2),
                  lambda: reusing.price_groups([], PAPER, {})):
        with pytest.raises(ValueError, match="replaying the programs' calls in order"):
            price()
