"""The record of a streamed call (``profiler.measure.endpoint.streamed_call``): TTFT, ITL and TPOT against their
definitions on arrivals of known times, and a failed attempt as JSON."""

from __future__ import annotations

import pytest

from profiler.measure.endpoint.streamed_call import Failure, StreamedCall


def test_streamed_call_metrics_follow_their_definitions():
    call = StreamedCall(max_tokens=4, chunk_arrivals_s=(0.5, 0.7, 1.0, 1.2), e2e_s=1.3, prompt_tokens=9,
                        completion_tokens=4, cached_tokens=None, finish_reason="length",
                        failures=(Failure(1, "http_429", 429, 2.0, "slow down"),))
    assert call.ttft_s == 0.5 and call.itl_s == pytest.approx((0.2, 0.3, 0.2))
    assert call.tpot_s == pytest.approx((1.3 - 0.5) / 3)
    assert call.failures[0].to_json() == {"attempt": 1, "kind": "http_429", "status": 429, "waited_s": 2.0,
                                          "detail": "slow down"}
    one = StreamedCall(1, (0.4,), 0.5, 9, 1, None, "length", ())
    empty = StreamedCall(1, (), 0.5, 9, 0, None, "stop", ())
    assert one.tpot_s is None and one.itl_s == () and empty.ttft_s is None and empty.tpot_s is None
