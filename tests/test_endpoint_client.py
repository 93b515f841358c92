"""The endpoint client against a real server (``transformers serve``, tests/serving.py) and, for faults, through a
real fault-injecting proxy in front of it (tests/fault_proxy.py): timings consistent with the stream, output
forced, usage read, 429s, 5xx, stalls and dropped streams retried and recorded, hopeless calls one-line errors, the
key in none of it. Waits between attempts go to an injected sleep, so no test waits for a backoff."""

from __future__ import annotations

import json
import threading
import traceback

import pytest
import transformers
from packaging.version import Version

from profiler.errors import UserError
from profiler.measure.endpoint.address import Endpoint, endpoint_slug, parse_endpoint
from profiler.measure.endpoint.client import MAX_WAIT_S, EndpointClient, EndpointError
from profiler.measure.endpoint.streamed_call import StreamedCall
from tests.fault_proxy import proxied
from tests.serving import free_port, served_model

KEY_ENV = "AALP_TEST_ENDPOINT_KEY"
SECRET = "sk-test-Zq7Vx93kLmQ0pTr5"  # distinctive: found only where it leaked


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with served_model(tmp_path_factory.mktemp("served")) as running:
        yield running


@pytest.fixture(scope="module")
def proxy(served):
    with proxied(served.url.removesuffix("/v1"), stall_s=3.0) as running:
        yield running


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)


class Sleeps(list):
    """An injected sleep: records each wait instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


class Ticks:
    """A clock that moves by one second at each reading."""

    def __init__(self):
        self.now_s = 0.0

    def __call__(self) -> float:
        self.now_s += 1.0
        return self.now_s


def client_of(url: str, model: str, **options) -> EndpointClient:
    return EndpointClient(parse_endpoint(url, model, KEY_ENV), **options)


def through_proxy(proxy, served, plan: list[str], retry_after_s: float = 7.0, **options):
    """A client whose forcing is probed before ``plan`` is set, so the plan's steps fall on the next call."""
    client = client_of(f"{proxy.url}/v1", served.model, sleep=Sleeps(), **options)
    assert client.forcing == "generation_config"
    proxy.plan(plan, retry_after_s)
    return client


@pytest.mark.slow
def test_a_call_times_each_chunk_on_the_clock_it_is_given(served):
    """With a clock that ticks one second a reading: the request's start, one reading per event (the chunks with
    text, then the finish event, and from transformers 5.25 a usage event of its own), the end: the arrivals and E2E
    are exactly those readings less the start. The 12 tokens come in 12 chunks, or fewer where the server sent two
    in one (transformers 5.25 does when its generation runs ahead of the stream)."""
    clock = Ticks()
    with client_of(served.url, served.model, clock=clock) as client:
        assert client.forcing == "generation_config"
        call = client.complete("the of and to in", 12)
    chunks = len(call.chunk_arrivals_s)
    assert 1 <= chunks <= 12 and call.completion_tokens == 12
    assert call.chunk_arrivals_s == tuple(float(i) for i in range(1, chunks + 1))
    assert call.e2e_s in (chunks + 2.0, chunks + 3.0)  # the finish event (and the usage event), then the end
    assert call.ttft_s == 1.0 and call.itl_s == (1.0,) * (chunks - 1)
    assert call.tpot_s == pytest.approx((call.e2e_s - 1.0) / 11)


@pytest.mark.slow
def test_a_streamed_call_on_the_wall_clock_is_consistent_and_forced(served):
    with client_of(served.url, served.model) as client:
        for max_tokens in (1, 5, 24):
            call = client.complete("the of and to in is that", max_tokens)
            assert (call.prompt_tokens, call.completion_tokens) == (7, max_tokens)
            # a chunk a token, or fewer chunks where the server sent two tokens in one (transformers 5.25)
            assert 1 <= len(call.chunk_arrivals_s) <= max_tokens == call.max_tokens
            assert call.finish_reason == "length" and call.failures == () and call.cached_tokens is None
            assert 0 < call.ttft_s <= call.e2e_s
            assert all(b > a for a, b in zip(call.chunk_arrivals_s, call.chunk_arrivals_s[1:]))
            assert call.e2e_s >= call.chunk_arrivals_s[-1]
            assert sum(call.itl_s) == pytest.approx(call.chunk_arrivals_s[-1] - call.ttft_s)
            assert (call.tpot_s is None) == (max_tokens == 1)
        assert client.failures == []


@pytest.mark.slow
def test_the_probe_is_made_once_whatever_the_number_of_threads(proxy, served):
    """Four threads call at once before any probe: two probe requests (ignore_eos refused with a 422, then
    generation_config accepted), then the four calls, each complete."""
    proxy.plan([])
    with client_of(f"{proxy.url}/v1", served.model) as client:
        calls: list[StreamedCall] = []
        threads = [threading.Thread(target=lambda: calls.append(client.complete("the of and", 6)))
                   for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [call.completion_tokens for call in calls] == [6] * 4
        assert proxy.seen()["requests"] == 2 + 4
        assert client.forcing == "generation_config" and client.failures == []


@pytest.mark.slow
def test_a_server_refusing_stream_options_is_sent_none(proxy, served):
    """ignore_eos refused by the server itself (422), then stream_options refused by the proxy (400 naming it):
    generation_config is kept and stream_options dropped from the calls. Usage is read where the server sends it
    unasked (transformers before 5.25); from 5.25 it sends it only when asked, as OpenAI does."""
    unasked = Version(transformers.__version__) < Version("5.25")
    proxy.plan(["pass", "refuse:stream_options"])
    with client_of(f"{proxy.url}/v1", served.model) as client:
        assert client.forcing == "generation_config" and proxy.seen()["requests"] == 3
        call = client.complete("the of", 4)
        assert call.completion_tokens == (4 if unasked else None) and call.finish_reason == "length"
        assert proxy.seen()["fields"] == ["generation_config", "max_tokens", "model", "prompt", "stream"]


@pytest.mark.slow
def test_a_server_refusing_every_forcing_records_the_observed_length(proxy, served):
    proxy.plan(["refuse:ignore_eos", "refuse:generation_config"])
    with client_of(f"{proxy.url}/v1", served.model) as client:
        assert client.forcing == "none" and proxy.seen()["requests"] == 3
        call = client.complete("the of", 5)
        assert proxy.seen()["fields"] == ["max_tokens", "model", "prompt", "stream", "stream_options"]
    assert 1 <= len(call.chunk_arrivals_s) <= call.completion_tokens <= 5  # two tokens may share a chunk


@pytest.mark.slow
def test_429_5xx_and_dropped_streams_are_retried_and_recorded(proxy, served):
    """A 429 (Retry-After 7 s honoured), a 503, a stream broken after 2 events and one ended cleanly after its first
    (no finish_reason: the finish is an event of its own; after 3, a server whose generation ran ahead of the stream,
    its tokens a few to a chunk, had sent it): four failures with their kinds, statuses and waits, then the call
    succeeds in full."""
    with through_proxy(proxy, served, ["429", "503", "cut:2", "end:1"], backoff_s=0.5) as client:
        call = client.complete("the of and to", 8)
        assert (call.completion_tokens, call.finish_reason) == (8, "length")
        assert 1 <= len(call.chunk_arrivals_s) <= 8  # a chunk a token, or fewer where two shared one
        assert [(f.attempt, f.kind, f.status, f.waited_s) for f in call.failures] == [
            (1, "http_429", 429, 7.0), (2, "http_5xx", 503, 1.0), (3, "dropped_stream", 200, 2.0),
            (4, "dropped_stream", 200, 4.0)]
        assert client._sleep == [7.0, 1.0, 2.0, 4.0]
        assert client.failures == list(call.failures)
        assert call.failures[3].detail in ("the stream ended after 0 chunks without a finish_reason",
                                           "the stream ended after 1 chunks without a finish_reason")


@pytest.mark.slow
def test_a_stream_that_does_not_end_is_given_up(proxy, served):
    """Every event sent 20 times: past ``max_events`` the call is an error, not a list that grows while the server
    keeps sending (the time-out bounds only the wait for each event)."""
    with through_proxy(proxy, served, ["repeat:20"]) as client, pytest.raises(EndpointError, match="more than 24"):
        client.complete("the of", 2)


@pytest.mark.slow
def test_retry_after_is_bounded(proxy, served):
    with through_proxy(proxy, served, ["429"], retry_after_s=3600.0) as client:
        call = client.complete("the", 2)
    assert [f.waited_s for f in call.failures] == [MAX_WAIT_S]


@pytest.mark.slow
def test_a_stalled_server_times_out_and_is_retried(proxy, served):
    with through_proxy(proxy, served, ["stall"], timeout_s=0.5) as client:
        call = client.complete("the of", 3)
    assert [(f.kind, f.status) for f in call.failures] == [("timeout", None)]
    assert call.completion_tokens == 3


@pytest.mark.slow
def test_attempts_exhausted_is_one_line_error(proxy, served):
    with through_proxy(proxy, served, ["503", "500", "503"], max_attempts=3) as client, \
            pytest.raises(EndpointError) as raised:
        client.complete("the", 2)
    message = str(raised.value)
    assert "\n" not in message and "3 attempts" in message and "http_5xx" in message
    assert [(f.attempt, f.status) for f in client.failures] == [(1, 503), (2, 500), (3, 503)]
    assert client.failures[-1].waited_s == 0.0 and client._sleep == [0.5, 1.0]


@pytest.mark.slow
def test_another_4xx_is_an_error_at_once(proxy, served):
    with through_proxy(proxy, served, ["401"]) as client:
        with pytest.raises(EndpointError, match="HTTP 401"):
            client.complete("the", 2)
        assert client.failures == [] and client._sleep == []


@pytest.mark.slow
def test_a_refused_request_is_an_error_with_the_servers_words(served):
    with client_of(served.url, "no-such-model-here") as client:
        with pytest.raises(EndpointError) as raised:
            _ = client.forcing
    assert "\n" not in str(raised.value) and str(raised.value).startswith(served.url)


def test_nothing_listening_is_connect_failures_then_an_error():
    sleeps = Sleeps()
    with client_of(f"http://127.0.0.1:{free_port()}/v1", "m", max_attempts=2, sleep=sleeps) as client:
        with pytest.raises(EndpointError, match="connect"):
            _ = client.forcing
        assert [f.kind for f in client.failures] == ["connect", "connect"] and sleeps == [0.5]


@pytest.mark.slow
def test_the_key_is_in_no_failure_message_or_repr(proxy, served):
    """The proxy echoes the Authorization header in each error body: the client keeps the server's words but
    not the key, and neither its errors (with their tracebacks) nor its reprs hold it."""
    with through_proxy(proxy, served, ["500", "429", "cut:1"]) as client:
        call = client.complete("the of", 4)
        proxy.plan(["403"])
        with pytest.raises(EndpointError) as refused:
            client.complete("the of", 4)
        proxy.plan(["503", "503"])
        client.max_attempts = 2
        with pytest.raises(EndpointError) as exhausted:
            client.complete("the of", 4)
        texts = [json.dumps([f.to_json() for f in client.failures]), repr(call), repr(client),
                 repr(client.endpoint), str(refused.value), repr(refused.value), str(exhausted.value),
                 "".join(traceback.format_exception(refused.value)),
                 "".join(traceback.format_exception(exhausted.value))]
    assert all(SECRET not in text for text in texts)
    assert "you sent Bearer ***" in client.failures[0].detail  # the echo was there, and scrubbed
    assert "you sent Bearer ***" in str(refused.value)


@pytest.mark.parametrize("url, model, variable", [
    ("ftp://example.com/v1", "m", KEY_ENV),
    ("http:///v1", "m", KEY_ENV),
    ("example.com/v1", "m", KEY_ENV),
    (f"https://user:{SECRET}@example.com/v1", "m", KEY_ENV),
    ("https://example.com/v1?key=abc", "m", KEY_ENV),
    ("https://example.com/v1#part", "m", KEY_ENV),
    ("http://example.com:99999/v1", "m", KEY_ENV),
    ("http://exa mple.com/v1", "m", KEY_ENV),
    ("http://example.com/v1", "", KEY_ENV),
    ("http://example.com/v1", "a\nb", KEY_ENV),
    ("http://example.com/v1", "m", "AALP_TEST_UNSET_VARIABLE"),
    ("http://example.com/v1", "m", SECRET),
])
def test_a_bad_endpoint_is_one_line_user_error(url, model, variable):
    with pytest.raises(UserError) as raised:
        parse_endpoint(url, model, variable)
    assert "\n" not in str(raised.value) and SECRET not in str(raised.value)


def test_a_key_a_header_cannot_carry_is_refused(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-with space")
    with pytest.raises(UserError, match=KEY_ENV):
        parse_endpoint("http://example.com/v1", "m", KEY_ENV)


def test_a_good_endpoint_and_its_slug():
    endpoint = parse_endpoint(" http://127.0.0.1:8765/v1/ ", " org/Model-7B ", KEY_ENV)
    assert endpoint == Endpoint("http://127.0.0.1:8765/v1", "org/Model-7B", KEY_ENV)
    assert endpoint_slug(endpoint) == "endpoint-127.0.0.1-8765"
    assert endpoint_slug(parse_endpoint("https://API.OpenAI.com/v1", "gpt", None)) == "endpoint-api.openai.com"
    assert endpoint_slug(parse_endpoint("http://[::1]:8000/v1", "m", None)) == "endpoint-__1-8000"
