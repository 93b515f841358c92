"""The endpoint backend against a real server (``transformers serve``, tests/serving.py, one per module) and, where
a call must come back wrong, through the real fault proxy in front of it (tests/fault_proxy.py): each call one
streamed completion of the program's token counts, recorded, timed by its E2E and checked against the server's
usage; ``TooLong`` by the served context; ``OutOfTime`` by a deadline on a fake clock."""

from __future__ import annotations

import pytest

from profiler.errors import UserError
from profiler.lba.calls import Call
from profiler.lba.endpoint_backend import EndpointBackend, UsageMismatchError, endpoint_runner
from profiler.lba.execution import OutOfTime, TooLong
from profiler.lba.prefix_cache import Reuse
from profiler.lba.schedule import Schedule
from profiler.measure.endpoint.address import parse_endpoint
from profiler.measure.endpoint.client import EndpointClient
from profiler.measure.endpoint.prompts import calibrate
from tests.clock import FakeClock
from tests.fault_proxy import proxied
from tests.serving import SERVED_MAX_POSITIONS, served_model


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with served_model(tmp_path_factory.mktemp("served")) as running:
        yield running


@pytest.fixture(scope="module")
def client(served):
    with EndpointClient(parse_endpoint(served.url, served.model, None)) as running:
        yield running


@pytest.fixture(scope="module")
def runner(client):
    return endpoint_runner(client, calibrate(client), "served", SERVED_MAX_POSITIONS)


@pytest.fixture(scope="module")
def proxy(served):
    with proxied(served.url.removesuffix("/v1")) as running:
        yield running


class Ticks:
    """A clock that moves by one second at each reading, from 0."""

    def __init__(self):
        self.now_s = -1.0

    def __call__(self) -> float:
        self.now_s += 1.0
        return self.now_s


def test_a_call_is_one_streamed_completion_of_its_token_counts_timed_by_its_e2e(runner):
    backend = runner.backend(seed=3)
    backend("qa", 12, 5)
    (streamed,) = backend.streamed
    assert (streamed.prompt_tokens, streamed.completion_tokens, streamed.max_tokens) == (12, 5, 5)
    assert backend.calls == [Call("qa", 12, 5)] and backend.recorder.calls == 1
    (batch,) = backend.batches
    assert (batch.role, batch.n_in, batch.n_out, batch.size, batch.cached) == ("qa", 12, 5, 1, 0)
    assert backend.latencies_s == [streamed.e2e_s] and streamed.e2e_s >= streamed.chunk_arrivals_s[-1] > 0
    assert backend.mismatches == [] and backend.failures == 0


def test_a_group_is_recorded_once_and_sent_call_by_call(runner):
    backend = runner.backend()
    calls = [Call("specialist", 6, 2, model=1), Call("specialist", 9, 3, model=0), Call("delegator", 4, 1)]
    backend.group(calls)
    assert sum(backend.recorder.groups.values()) == 1 and backend.recorder.calls == 3 and backend.calls == calls
    assert [(b.role, b.model, b.n_in, b.n_out, b.size) for b in backend.batches] == [
        ("specialist", 1, 6, 2, 1), ("specialist", 0, 9, 3, 1), ("delegator", 0, 4, 1, 1)]
    assert [(s.prompt_tokens, s.completion_tokens) for s in backend.streamed] == [(6, 2), (9, 3), (4, 1)]


def test_the_warm_up_is_sent_and_not_recorded(runner):
    backend = runner.backend()
    backend.warm_up()
    assert len(backend.streamed) == 1 and backend.batches == [] and backend.recorder.calls == 0


def test_a_call_beyond_the_served_context_is_refused_before_its_group_is_sent(runner):
    # the server holds the prompt and max_tokens: 500 + 12 = 512 positions fit, 500 + 13 do not
    assert runner.max_positions == SERVED_MAX_POSITIONS - 1
    backend = runner.backend()
    with pytest.raises(TooLong, match="513|512 positions"):
        backend.group([Call("qa", 8, 2), Call("qa", 500, 13)])
    assert backend.streamed == [] and backend.recorder.calls == 0
    backend("qa", 500, 12)  # the largest that fits: the server takes it, its usage as asked
    assert (backend.streamed[0].prompt_tokens, backend.streamed[0].completion_tokens) == (500, 12)


def test_a_call_past_the_deadline_is_not_sent(runner):
    clock = FakeClock(10.0)
    backend = runner.backend(deadline=5.0, clock=clock)
    with pytest.raises(OutOfTime):
        backend("qa", 8, 2)
    assert backend.streamed == [] and backend.recorder.calls == 0


def test_a_deadline_passing_within_a_group_stops_it_before_its_next_call(served):
    ticks = Ticks()  # the client's readings move it too: past the deadline once the first call has streamed
    with EndpointClient(parse_endpoint(served.url, served.model, None), clock=ticks) as ticking:
        backend = endpoint_runner(ticking, calibrate(ticking), "served", SERVED_MAX_POSITIONS).backend(
            deadline=ticks() + 1.5, clock=ticks)
        with pytest.raises(OutOfTime):
            backend.group([Call("qa", 8, 2), Call("qa", 8, 2)])
    assert len(backend.streamed) == 1 and len(backend.batches) == 1
    assert sum(backend.recorder.groups.values()) == 1  # the group was issued: its first call ran
    assert backend.batches[0].latency_s == backend.streamed[0].e2e_s > 0  # on the client's (ticking) clock


def test_a_call_whose_usage_differs_is_refused_and_kept(served, proxy):
    with EndpointClient(parse_endpoint(f"{proxy.url}/v1", served.model, None)) as proxied_client:
        backend = endpoint_runner(proxied_client, calibrate(proxied_client), "served",
                                  SERVED_MAX_POSITIONS).backend()
        proxy.plan(["nousage"])
        with pytest.raises(UsageMismatchError) as refused:
            backend("qa", 8, 3)
    assert "\n" not in str(refused.value) and "not counted" in str(refused.value)
    assert isinstance(refused.value, UserError)  # one line, exit 2
    (mismatch,) = backend.mismatches
    assert (mismatch.part, mismatch.prompt_tokens_asked, mismatch.prompt_tokens, mismatch.max_tokens,
            mismatch.completion_tokens, mismatch.forced) == ("validate", 8, None, 3, None, True)
    assert backend.batches == []  # never counted


def test_a_server_that_cannot_force_the_output_length_is_refused(served, proxy):
    proxy.plan(["refuse:ignore_eos", "refuse:generation_config"])
    with EndpointClient(parse_endpoint(f"{proxy.url}/v1", served.model, None)) as unforced:
        assert unforced.forcing == "none"
        with pytest.raises(UserError, match="cannot be run as they are priced"):
            endpoint_runner(unforced, calibrate(unforced), "served", SERVED_MAX_POSITIONS)


@pytest.mark.parametrize("schedule", [Schedule("parallel", max_batch=4), Schedule(reuse=Reuse(None))])
def test_only_the_sequential_schedule(client, runner, schedule):
    with pytest.raises(ValueError, match="every call alone"):
        runner.backend(schedule=schedule)
    with pytest.raises(ValueError):
        EndpointBackend(client, None, 100, schedule=schedule)
