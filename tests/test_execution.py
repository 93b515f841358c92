"""The real backend: exactly the stated tokens in and out, each call timed, refusals in one place."""

import numpy as np
import pytest

from profiler.lba.exercises import Debugging
from profiler.lba.execution import ModelBackend, OutOfTime, TooLong
from profiler.lba.calls import Call, CallRecorder
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
