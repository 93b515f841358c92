import pytest

from profiler.lba.calls import Call, CallRecorder, TooManyCalls


def test_recorder_counts_distinct_calls_in_order():
    llm = CallRecorder()
    for _ in range(3):
        llm("qa", 100, 4)
    llm("developer", 104, 50)
    assert llm.calls == 4
    assert list(llm.counts.items()) == [(Call("qa", 100, 4), 3), (Call("developer", 104, 50), 1)]
    assert set(llm.by_role()) == {"qa", "developer"}


def test_a_call_reads_and_writes_at_least_one_token():
    with pytest.raises(ValueError, match="at least one token"):
        CallRecorder()("qa", 0, 4)


def test_limit_stops_a_runaway_program():
    llm = CallRecorder(limit=5)
    with pytest.raises(TooManyCalls, match="more than 5 calls"):
        for _ in range(6):
            llm("mutator", 10, 10)
    assert llm.calls == 5
