"""The concurrency sweep and the prefix-reuse probe against a real server (``tests/serving.py``: transformers serve
over a tiny random GPT-2, one per module): every call counted and passed on, percentiles and throughput from the
calls themselves (numpy as the reference), the deadline read off a fake clock, and transformers serve, which has
no prefix cache on its default path, seen to reuse nothing."""

from __future__ import annotations

import random
import time

import numpy as np
import pytest

from profiler.errors import UserError
from profiler.measure.endpoint.address import Endpoint
from profiler.measure.endpoint.client import EndpointClient
from profiler.measure.endpoint.load import (
    CACHES,
    MAX_CONCURRENCY,
    MAX_ROUNDS,
    NO_REUSE,
    REUSE_RATIO,
    ConcurrencyLevel,
    PrefixProbe,
    concurrency_sweep,
    prefix_probe,
    reuse_verdict,
)
from profiler.measure.endpoint.prompts import calibrate
from tests.clock import FakeClock
from tests.serving import SERVED_MAX_POSITIONS, served_model

N_IN, N_OUT = 8, 4


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with served_model(tmp_path_factory.mktemp("served")) as running:
        yield running


@pytest.fixture(scope="module")
def client(served):
    with EndpointClient(Endpoint(url=served.url, model=served.model)) as opened:
        yield opened


@pytest.fixture(scope="module")
def shape(client):
    return calibrate(client)


@pytest.mark.slow
def test_sweep_counts_every_call_and_derives_its_figures_from_them(client, shape):
    seen: dict[int, list] = {}
    levels = concurrency_sweep(client, shape, [1, 2], N_IN, N_OUT, rounds=2, deadline_s=float("inf"),
                               clock=time.perf_counter, rng=random.Random(0),
                               on_call=lambda level, call: seen.setdefault(level, []).append(call))
    assert [level.concurrency for level in levels] == [1, 2]
    for level in levels:
        calls = seen[level.concurrency]
        assert level.calls == len(calls) == 2 * level.concurrency
        assert all(call.prompt_tokens == N_IN and call.completion_tokens == N_OUT for call in calls)
        # every call ran inside the level's wall time, which is no longer than the calls run one by one
        assert max(call.e2e_s for call in calls) <= level.wall_s
        assert level.output_tokens_per_s == pytest.approx(N_OUT * len(calls) / level.wall_s)
        assert level.requests_per_s == pytest.approx(len(calls) / level.wall_s)
        for name, values in (("ttft", [call.ttft_s for call in calls]), ("tpot", [call.tpot_s for call in calls]),
                             ("itl", [gap for call in calls for gap in call.itl_s]),
                             ("e2e", [call.e2e_s for call in calls])):
            p50, p99 = getattr(level, f"{name}_p50_s"), getattr(level, f"{name}_p99_s")
            assert 0 < p50 <= p99, name
            assert (p50, p99) == pytest.approx((np.percentile(values, 50), np.percentile(values, 99))), name
        assert level.itl_p50_s <= level.e2e_p50_s and level.ttft_p50_s <= level.e2e_p50_s
        # a gap between each two chunks: a chunk a token, or fewer where the server sent two in one (transformers 5.25)
        assert len([gap for call in calls for gap in call.itl_s]) <= len(calls) * (N_OUT - 1)
        assert ConcurrencyLevel.from_json(level.to_json()) == level


@pytest.mark.slow
@pytest.mark.parametrize("deadline_s, expected", [(5.0, [(1, 1)]), (15.0, [(1, 2)]), (25.0, [(1, 2), (2, 2)])])
def test_no_round_starts_past_the_deadline(client, shape, deadline_s, expected):
    """Each call ending moves the clock 10 s: a round begun before the deadline runs to its end, none after."""
    clock = FakeClock()

    def ended(level, call):
        clock.advance(10.0)

    levels = concurrency_sweep(client, shape, [1, 2], N_IN, N_OUT, rounds=2, deadline_s=deadline_s, clock=clock,
                               rng=random.Random(1), on_call=ended)
    assert [(level.concurrency, level.calls) for level in levels] == expected
    assert levels[0].wall_s == 10.0 * levels[0].calls


@pytest.mark.parametrize("levels, rounds", [([], 1), ([0], 1), ([MAX_CONCURRENCY + 1], 1), ([1, 1], 1),
                                            ([2.0], 1), ([1], 0), ([1], MAX_ROUNDS + 1)])
def test_the_sweep_is_bounded_before_any_call(levels, rounds):
    with pytest.raises(UserError) as raised:  # client None: any call would fail otherwise
        concurrency_sweep(None, None, levels, N_IN, N_OUT, rounds, float("inf"), time.perf_counter,
                          random.Random(0), on_call=lambda level, call: None)
    assert "\n" not in str(raised.value)


@pytest.mark.slow
def test_transformers_serve_reuses_no_prefix(client, shape):
    """Its default (non continuous-batching) path keeps no KV cache between requests (transformers'
    serving/utils.py says so: prefix caching for it is a TODO), so the repeat costs what a cold prompt does."""
    n_prefix = SERVED_MAX_POSITIONS // 2
    probe = prefix_probe(client, shape, n_prefix, random.Random(2))
    assert probe.n_prefix == n_prefix
    assert len(probe.ttft_cold_s) == 3 and all(ttft_s > 0 for ttft_s in (*probe.ttft_cold_s, probe.ttft_repeat_s))
    assert not probe.cached_tokens
    assert probe.verdict == NO_REUSE
    assert PrefixProbe.from_json(probe.to_json()) == probe


def test_reuse_verdict_rule():
    cold_s = (1.0, 0.8, 1.2)
    assert reuse_verdict(cold_s, REUSE_RATIO * 0.8 * 0.99, None) == CACHES
    assert reuse_verdict(cold_s, REUSE_RATIO * 0.8 * 1.01, None) == NO_REUSE
    assert reuse_verdict(cold_s, 0.9, 0) == NO_REUSE
    assert reuse_verdict(cold_s, 0.9, 112) == CACHES  # the server's word, whatever the timing
