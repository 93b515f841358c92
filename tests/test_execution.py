"""The real backend: exactly the stated tokens in and out, each call timed, refusals in one place."""

import numpy as np
import pytest

from profiler.lba.calls import Call, CallRecorder, as_group
from profiler.lba.execution import ModelBackend, OutOfTime, TooLong
from profiler.lba.exercises import Debugging
from profiler.lba.schedule import Schedule, class_batches
from profiler.measure.passes import cache_batch
from tests.clock import FakeClock, charge
from tests.conftest import TINY_MAX_POSITIONS


@pytest.mark.parametrize("n_in, n_out", [(10, 1), (10, 5), (1, 7)])
def test_a_call_reads_n_in_and_emits_exactly_n_out(tiny_loaded, n_in, n_out):
    llm = ModelBackend(tiny_loaded)
    llm("qa", n_in, n_out)
    # the last emitted token is not fed back: the cache holds the prompt and the first n_out - 1 emitted
    assert llm.last_cache.get_seq_length() == n_in + n_out - 1
    assert llm.recorder.counts == {Call("qa", n_in, n_out): 1}
    assert len(llm.latencies_s) == 1 and llm.latencies_s[0] > 0


def test_executes_the_calls_a_recorder_sees(tiny_loaded):
    params = Debugging.defaults() | {"k": 4, "l": 3, "b": 2, "report": 2}
    executed, recorded = ModelBackend(tiny_loaded), CallRecorder()
    Debugging.optimistic(params, executed, np.random.default_rng(0))
    Debugging.optimistic(params, recorded, np.random.default_rng(0))
    assert executed.recorder.counts == recorded.counts and len(executed.latencies_s) == 4


def test_a_call_beyond_the_maximum_positions_is_refused_before_it_runs(tiny_loaded):
    llm = ModelBackend(tiny_loaded)
    llm("developer", TINY_MAX_POSITIONS - 3, 4)  # exactly the maximum (the last token is never fed back): runs
    with pytest.raises(TooLong, match="needs 129 positions: beyond the model's 128"):
        llm("developer", TINY_MAX_POSITIONS - 3, 5)
    assert llm.recorder.calls == 1


def test_no_call_starts_after_the_deadline(tiny_loaded, monkeypatch):
    clock = FakeClock()
    charge(monkeypatch, clock, "generate", lambda n_in, n_out: 0.75)  # seconds a call
    llm = ModelBackend(tiny_loaded, deadline=1.0, clock=clock)
    llm("qa", 4, 2)  # starts at 0 s
    llm("qa", 4, 2)  # starts at 0.75 s, before the deadline: runs to its end, past it
    with pytest.raises(OutOfTime):
        llm("qa", 4, 2)  # would start at 1.5 s
    assert llm.recorder.calls == 2 and llm.latencies_s == [0.75, 0.75]  # each call timed by the clock given


def _parallel(max_batch: int) -> Schedule:
    return Schedule("parallel", max_batch=max_batch)


def test_a_group_runs_as_one_batched_generate_per_batch_of_at_most_the_limit(tiny_loaded):
    llm = ModelBackend(tiny_loaded, schedule=_parallel(2))
    llm.group([Call("qa", 6, 3)] * 5)
    # ceil(5 / 2) generates: two of two sequences, one of one
    assert [(b.n_in, b.n_out, b.size) for b in llm.batches] == [(6, 3, 2), (6, 3, 2), (6, 3, 1)]
    assert all(latency_s > 0 for latency_s in llm.latencies_s)
    assert llm.recorder.calls == 5 and llm.recorder.groups == {((Call("qa", 6, 3), 5),): 1}
    assert cache_batch(llm.last_cache) == 1 and llm.last_cache.get_seq_length() == 6 + 3 - 1


def test_a_batch_is_padded_to_its_longest_input_and_output(tiny_loaded):
    llm = ModelBackend(tiny_loaded, schedule=_parallel(2))
    llm.group([Call("qa", 4, 5), Call("qa", 10, 2), Call("qa", 6, 1)])
    # longest first: (10, 2) and (6, 1) share a batch run at 10 in, 2 out; (4, 5) alone
    assert [(b.n_in, b.n_out, b.size) for b in llm.batches] == [(10, 2, 2), (4, 5, 1)]
    assert llm.recorder.counts == {Call("qa", 4, 5): 1, Call("qa", 10, 2): 1, Call("qa", 6, 1): 1}


def test_the_backend_runs_the_batches_the_schedule_prices(tiny_loaded):
    group = [Call("specialist", 8, 2, model=task) for task in (0, 1, 1, 2, 1)] + [Call("delegator", 5, 1)] * 3
    llm = ModelBackend(tiny_loaded, schedule=_parallel(2))
    llm.group(group)
    priced = class_batches(as_group(group), lambda role: 2)
    expected = sorted((role, model, n_in, n_out, size) for (role, model), cut in priced.items()
                      for n_in, n_out, size, times in cut for _ in range(times))
    assert sorted((b.role, b.model, b.n_in, b.n_out, b.size) for b in llm.batches) == expected
    # only calls of one model share a batch: specialist 1's three calls make two batches, 0 and 2 one each
    assert sorted(b.size for b in llm.batches if b.role == "specialist") == [1, 1, 1, 2]


def test_a_program_in_parallel_makes_its_calls_in_batches(tiny_loaded):
    params = Debugging.defaults() | {"k": 5, "l": 3, "b": 3, "report": 2}
    llm, recorded = ModelBackend(tiny_loaded, schedule=_parallel(2)), CallRecorder()
    Debugging.optimized(params, llm, np.random.default_rng(0))
    Debugging.optimized(params, recorded, np.random.default_rng(0))
    assert llm.recorder.groups == recorded.groups
    # a group of 5 QA reports (3 batches), then one of 3 fixes (2 batches)
    assert [(b.role, b.size) for b in llm.batches] == [("qa", 2), ("qa", 2), ("qa", 1), ("developer", 2),
                                                        ("developer", 1)]


def test_sequential_runs_a_group_call_by_call(tiny_loaded):
    llm = ModelBackend(tiny_loaded)
    llm.group([Call("qa", 6, 3)] * 3)
    assert [(b.n_in, b.n_out, b.size) for b in llm.batches] == [(6, 3, 1)] * 3


def test_a_batch_padded_beyond_the_maximum_positions_is_refused_before_its_group_runs(tiny_loaded):
    llm = ModelBackend(tiny_loaded, schedule=_parallel(2))
    # each alone fits the 128 positions (120 and 100); padded together, 120 in and 100 out need 219
    with pytest.raises(TooLong, match="qa batch of 2 calls of 120 \\+ 100 tokens needs 219 positions"):
        llm.group([Call("qa", 120, 1), Call("qa", 1, 100)])
    assert llm.batches == [] and llm.recorder.calls == 0
    ModelBackend(tiny_loaded).group([Call("qa", 120, 1), Call("qa", 1, 100)])  # one after another: both fit


def test_the_deadline_is_checked_before_each_batch(tiny_loaded, monkeypatch):
    clock = FakeClock()
    charge(monkeypatch, clock, "generate", lambda n_in, n_out, batch=1: 0.5 + 0.25 * batch)  # seconds a batch
    llm = ModelBackend(tiny_loaded, deadline=1.0, clock=clock, schedule=_parallel(2))
    with pytest.raises(OutOfTime):
        llm.group([Call("qa", 4, 2)] * 6)  # batches start at 0 and 1 s; the third would start at 2 s
    assert llm.latencies_s == [1.0, 1.0] and llm.recorder.calls == 6  # the group was issued


def test_a_backend_runs_on_one_device_with_a_batch_limit(tiny_loaded):
    for schedule in (Schedule("parallel", max_batch=2, devices=2), Schedule("parallel")):
        with pytest.raises(ValueError, match="one device with a given batch limit"):
            ModelBackend(tiny_loaded, schedule=schedule)
