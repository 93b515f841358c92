import time

import pytest
import torch

from profiler.measure import timing
from profiler.measure.timing import RepeatPolicy, enough_repeats, is_unstable, median_ci_rel, time_pass
from tests.clock import FakeClock


def test_time_pass_reads_the_clock_after_synchronising_on_both_sides_of_the_pass(monkeypatch):
    events, clock = [], FakeClock(100.0)
    monkeypatch.setattr(timing, "synchronize", lambda device: events.append("synchronize"))

    def run_pass():
        events.append("pass")
        clock.advance(0.25)
        return "done"

    def read():
        events.append("clock")
        return clock()

    result, latency_s = time_pass(run_pass, torch.device("cuda"), read)
    assert result == "done" and latency_s == 0.25  # exactly the time the pass took
    # queued GPU work before the pass stays out of its interval, and the pass's own is inside it
    assert events == ["synchronize", "clock", "pass", "synchronize", "clock"]


def test_time_pass_measures_a_sleep_by_the_wall_clock():
    started = time.perf_counter()
    result, latency_s = time_pass(lambda: time.sleep(0.05) or "done", torch.device("cpu"))
    around_s = time.perf_counter() - started
    assert result == "done"
    assert 0.05 <= latency_s <= around_s  # seconds of wall time, not CPU time; whatever else the machine runs


def test_time_pass_holds_garbage_collection_off_during_the_pass_and_leaves_it_as_found():
    import gc

    seen = []
    assert gc.isenabled()
    time_pass(lambda: seen.append(gc.isenabled()), torch.device("cpu"))
    assert seen == [False] and gc.isenabled()
    gc.disable()
    try:
        time_pass(lambda: seen.append(gc.isenabled()), torch.device("cpu"))
        assert seen == [False, False] and not gc.isenabled()  # a caller's own pause is kept
        with pytest.raises(RuntimeError):
            time_pass(lambda: (_ for _ in ()).throw(RuntimeError("out of memory")), torch.device("cpu"))
        assert not gc.isenabled()
    finally:
        gc.enable()
    with pytest.raises(RuntimeError):
        time_pass(lambda: (_ for _ in ()).throw(RuntimeError("out of memory")), torch.device("cpu"))
    assert gc.isenabled()  # back on after a pass that raised


def test_median_interval_shrinks_with_repeats_and_ignores_one_outlier():
    steady = [1.00, 1.01, 0.99, 1.02, 0.98]
    assert median_ci_rel(steady * 4) < median_ci_rel(steady)
    assert median_ci_rel(steady + [5.0]) < 0.03  # one stray repeat barely widens it
    assert median_ci_rel([1.0]) == float("inf")


def test_stop_rule():
    policy = RepeatPolicy(min_repeats=3, ci_min_repeats=5, max_repeats=10, target_ci_rel=0.02)
    tight = [1.0, 1.001, 0.999, 1.0005, 0.9995]
    assert not enough_repeats(tight[:2], spent_s=100, share_s=1, policy=policy)  # below the minimum
    assert not enough_repeats(tight[:4], spent_s=0, share_s=1, policy=policy)  # CI not trusted yet
    assert enough_repeats(tight, spent_s=0, share_s=1, policy=policy)
    noisy = [1.0, 1.5, 0.7, 1.3, 0.8]
    assert not enough_repeats(noisy, spent_s=0.5, share_s=1, policy=policy)
    assert enough_repeats(noisy, spent_s=1.5, share_s=1, policy=policy)  # share spent
    assert enough_repeats(noisy * 2, spent_s=0, share_s=1, policy=policy)  # max repeats


@pytest.mark.parametrize("latencies, unstable", [([1.0, 1.02, 0.98], False), ([1.0, 1.3, 0.8], True), ([1.0], False)])
def test_unstable_at_ten_percent_spread(latencies, unstable):
    assert is_unstable(latencies) is unstable
