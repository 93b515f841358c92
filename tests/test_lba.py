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


def test_recorder_counts_distinct_groups_in_order_and_their_calls():
    llm = CallRecorder()
    for _ in range(1000):  # a million identical calls in a thousand identical groups: two entries
        llm.group([Call("qa", 10, 2)] * 999 + [Call("qa", 10, 2, model=1)])
    llm("developer", 30, 5)
    assert llm.calls == 1_000_001
    assert list(llm.groups.items()) == [(((Call("qa", 10, 2), 999), (Call("qa", 10, 2, model=1), 1)), 1000),
                                        (((Call("developer", 30, 5), 1),), 1)]
    assert llm.counts == {Call("qa", 10, 2): 999_000, Call("qa", 10, 2, model=1): 1000, Call("developer", 30, 5): 1}


def test_a_group_past_the_limit_is_refused_whole():
    llm = CallRecorder(limit=5)
    llm.group([Call("mutator", 10, 10)] * 3)
    with pytest.raises(TooManyCalls, match="more than 5 calls"):
        llm.group([Call("mutator", 10, 10)] * 3)
    assert llm.calls == 3 and sum(llm.groups.values()) == 1


@pytest.mark.parametrize("calls, message", [([], "at least one call"), ([Call("qa", 4, 0)], "at least one token")])
def test_a_group_holds_calls_that_read_and_write(calls, message):
    with pytest.raises(ValueError, match=message):
        CallRecorder().group(calls)
