"""A streaming client of an OpenAI-compatible completions endpoint that times every chunk and survives a flaky
server.

One call is a streamed ``POST {url}/completions`` (the legacy completions API: a prompt string, ``max_tokens``,
``stream: true``); the server-sent events are parsed by httpx2. Each event whose text is non-empty is a chunk:
its arrival is the clock's reading minus the reading taken just before the request was sent (seconds), so TTFT
includes connecting, queueing and prefill. Metric definitions follow vLLM's ``benchmark_serving``: TTFT the first
arrival, ITL the gaps between successive arrivals, TPOT ``(E2E - TTFT) / (completion_tokens - 1)``, E2E the time
to the end of the stream.

The output length is forced where the server allows it. Probed once, on first use, with a short request: vLLM and
SGLang take ``ignore_eos`` with ``min_tokens``; ``transformers serve`` takes a ``generation_config`` JSON string
with ``min_new_tokens``; a server that refuses both (a 400 or 422) gets neither, and the observed length is what
a call records. "Accepted" means not refused: a server that silently ignores the fields shows it in ``usage``,
which the caller checks. ``stream_options.include_usage`` (needed by OpenAI for usage in a stream) is sent unless
the probe finds it refused.

Retried with exponential backoff (``backoff_s * 2**(attempt - 1)``, or the server's ``Retry-After`` seconds when
longer, at most 30 s a wait): HTTP 429 and 5xx, time-outs, connection errors and dropped streams (the stream ends,
breaks or reports an error before a ``finish_reason``). Every failed attempt is a ``Failure``. Another 4xx, or
``max_attempts`` failures, is an ``EndpointError``: one line. No jitter: waits are deterministic for the tests.

The key is read from the named environment variable when each request is built and goes only into its
``Authorization`` header: never into an object, a message, a ``Failure`` (server text is scrubbed of it), and no
httpx2 exception (which may carry the request) is chained or kept.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable

import httpx2

from profiler.errors import UserError
from profiler.measure.endpoint.address import Endpoint
from profiler.measure.endpoint.streamed_call import Failure, StreamedCall

MAX_WAIT_S = 30.0  # the longest wait between two attempts, whatever Retry-After asks
DETAIL_CHARS = 200  # server text kept in a Failure or an error message
PROBE_PROMPT = "Hello"
_BEARER = re.compile(r"(?i)bearer\s+\S+")


class EndpointError(UserError):
    """The endpoint refused a request (a 4xx other than 429) or kept failing past the attempts allowed."""


def _server_words(text: str) -> str:
    """The message of an error body: FastAPI's ``detail``, OpenAI's ``error.message``, else the text itself."""
    try:
        document = json.loads(text)
    except ValueError:
        return text
    if isinstance(document, dict):
        error = document.get("error")
        words = document.get("detail") or (error.get("message") if isinstance(error, dict) else error)
        if words:
            return words if isinstance(words, str) else json.dumps(words)
    return text


class _Retryable(Exception):
    def __init__(self, kind: str, status: int | None, detail: str, retry_after_s: float | None = None):
        super().__init__(detail)
        self.kind, self.status, self.detail, self.retry_after_s = kind, status, detail, retry_after_s


class _Refused(Exception):
    """A 400 or 422: the server refused the request as written (``detail`` its words, scrubbed)."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


# Output forcing, most specific first: the extra request fields each way puts in a call of n output tokens.
_FORCING: dict[str, Callable[[int], dict]] = {
    "ignore_eos": lambda n: {"ignore_eos": True, "min_tokens": n},
    "generation_config": lambda n: {"generation_config": json.dumps({"min_new_tokens": n})},
    "none": lambda n: {},
}
_USAGE_OPTION = {"stream_options": {"include_usage": True}}


def max_events(max_tokens: int) -> int:
    """The events a call of ``max_tokens`` may stream before it is given up: a chunk a token, a few more (role,
    usage, finish), with room for a server that splits a token's text; a stream past it never ends otherwise, since
    the time-out bounds only the wait for each event."""
    return 4 * max_tokens + 16


class EndpointClient:
    """Streams completions from one endpoint over one shared httpx2 client; ``complete`` may be called from
    several threads at once. A context manager: closing it closes the connections."""

    def __init__(self, endpoint: Endpoint, *, timeout_s: float = 60.0, max_attempts: int = 5,
                 backoff_s: float = 0.5, clock: Callable[[], float] = time.perf_counter,
                 sleep: Callable[[float], None] = time.sleep):
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.endpoint = endpoint
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.failures: list[Failure] = []  # every failed attempt of every call so far
        self._clock, self._sleep = clock, sleep
        self._http = httpx2.Client(timeout=timeout_s)
        self._probe_lock = threading.Lock()  # one probe, whoever asks first
        self._failures_lock = threading.Lock()
        self._forcing: str | None = None
        self._usage_option = True

    def __enter__(self) -> EndpointClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def __repr__(self) -> str:
        return f"EndpointClient({self.endpoint!r})"

    @property
    def forcing(self) -> str:
        """How the output length is forced: ``ignore_eos``, ``generation_config`` or ``none`` (probed once)."""
        with self._probe_lock:
            if self._forcing is None:
                self._forcing = self._probe()
            return self._forcing

    def complete(self, prompt: str, max_tokens: int) -> StreamedCall:
        """Stream one completion of ``prompt`` with ``max_tokens`` output tokens (forced where the server
        allows), retrying what is worth retrying; an ``EndpointError`` when it cannot succeed."""
        fields = _FORCING[self.forcing](max_tokens)
        try:
            return self._with_retries(self._body(prompt, max_tokens, fields, self._usage_option))
        except _Refused as refused:
            raise EndpointError(self._line(f"the endpoint refused a request: HTTP {refused.status}: "
                                           f"{refused.detail}")) from None

    def _probe(self) -> str:
        """The first way of forcing the server accepts (a 400 or 422 naming its fields, or any 400/422 while
        optional fields are sent, moves on); ``stream_options`` dropped when refused. At most four requests."""
        usage_option = True
        for forcing, fields in _FORCING.items():
            while True:
                body = self._body(PROBE_PROMPT, 1, fields(1), usage_option)
                try:
                    self._with_retries(body)
                except _Refused as refused:
                    if usage_option and ("stream_options" in refused.detail or not fields(1)):
                        usage_option = False
                        continue
                    if fields(1):
                        break
                    raise EndpointError(self._line(f"the endpoint refused a request: HTTP {refused.status}: "
                                                   f"{refused.detail}")) from None
                self._usage_option = usage_option
                return forcing
        raise AssertionError("unreachable: 'none' sends no optional field")

    def _body(self, prompt: str, max_tokens: int, fields: dict, usage_option: bool) -> dict:
        return {"model": self.endpoint.model, "prompt": prompt, "max_tokens": max_tokens, "stream": True,
                **(_USAGE_OPTION if usage_option else {}), **fields}

    def _with_retries(self, body: dict) -> StreamedCall:
        failures: list[Failure] = []
        for attempt in range(1, self.max_attempts + 1):
            try:
                call = self._attempt(body)
            except _Retryable as failed:
                last = attempt == self.max_attempts
                wait_s = 0.0 if last else min(MAX_WAIT_S, max(self.backoff_s * 2 ** (attempt - 1),
                                                              failed.retry_after_s or 0.0))
                failure = Failure(attempt, failed.kind, failed.status, wait_s, failed.detail)
                failures.append(failure)
                with self._failures_lock:
                    self.failures.append(failure)
                if last:
                    raise EndpointError(self._line(f"the endpoint failed {attempt} attempts in a row; the last: "
                                                   f"{failed.kind} {failed.detail}")) from None
                self._sleep(wait_s)
            else:
                return StreamedCall(max_tokens=body["max_tokens"], failures=tuple(failures), **call)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _attempt(self, body: dict) -> dict:
        """One streamed request: the StreamedCall's measured fields, or ``_Retryable`` / ``_Refused`` /
        ``EndpointError``."""
        headers = self.endpoint.headers()
        arrivals: list[float] = []
        usage: dict = {}
        finish_reason = None
        streaming = False
        start = self._clock()
        try:
            with self._http.sse(f"{self.endpoint.url}/completions", method="POST", json=body,
                                headers=headers) as events:
                response = events.response
                if response.status_code != 200:
                    response.read()
                    self._refuse(response.status_code, response.headers.get("retry-after"),
                                 self._scrub(_server_words(response.text)))
                streaming = True
                for count, event in enumerate(events, start=1):
                    now = self._clock()
                    if event.data.strip() == "[DONE]":
                        break
                    if count > max_events(body["max_tokens"]):
                        raise EndpointError(self._line(f"the endpoint sent more than {max_events(body['max_tokens'])} "
                                                       f"events for {body['max_tokens']} tokens: not a completion "
                                                       "stream that ends"))
                    try:
                        payload = json.loads(event.data)
                    except ValueError:
                        raise EndpointError(self._line(f"the endpoint sent an event that is not JSON: "
                                                       f"{self._scrub(event.data)}")) from None
                    if not isinstance(payload, dict):
                        raise EndpointError(self._line("the endpoint sent an event that is not a JSON object"))
                    if payload.get("error"):
                        raise _Retryable("dropped_stream", 200, "the stream reported an error: "
                                         + self._scrub(json.dumps(payload["error"])))
                    for choice in payload.get("choices") or ():
                        if choice.get("text"):
                            arrivals.append(now - start)
                        finish_reason = choice.get("finish_reason") or finish_reason
                    usage = payload.get("usage") or usage
                end = self._clock()
        except httpx2.SSEError as error:  # 200 but no event stream: a server that does not stream
            raise EndpointError(self._line(f"the endpoint did not stream: {self._scrub(str(error))}")) from None
        except httpx2.TimeoutException as error:
            raise _Retryable("timeout", None, self._scrub(f"{type(error).__name__}: {error}")) from None
        except httpx2.RequestError as error:  # connection refused or reset, a broken or undecodable stream
            kind = "dropped_stream" if streaming else "connect"
            raise _Retryable(kind, 200 if streaming else None,
                             self._scrub(f"{type(error).__name__}: {error}")) from None
        if finish_reason is None:
            raise _Retryable("dropped_stream", 200, f"the stream ended after {len(arrivals)} chunks without a "
                                                    "finish_reason")
        details = usage.get("prompt_tokens_details") or {}
        return {"chunk_arrivals_s": tuple(arrivals), "e2e_s": end - start,
                "prompt_tokens": usage.get("prompt_tokens"), "completion_tokens": usage.get("completion_tokens"),
                "cached_tokens": details.get("cached_tokens"), "finish_reason": finish_reason}

    def _refuse(self, status: int, retry_after: str | None, detail: str) -> None:
        """Raise what a status other than 200 means: retry (429, 5xx), refused (400, 422) or an error."""
        if status == 429 or status >= 500:
            try:
                retry_after_s = float(retry_after) if retry_after else None
            except ValueError:  # an HTTP date: the backoff decides
                retry_after_s = None
            raise _Retryable("http_429" if status == 429 else "http_5xx", status, detail, retry_after_s)
        if status in (400, 422):
            raise _Refused(status, detail)
        raise EndpointError(self._line(f"the endpoint answered HTTP {status}: {detail}"))

    def _scrub(self, text: str) -> str:
        """Server or library text made safe to keep: the key and any bearer token removed, one line, trimmed."""
        key = self.endpoint.key()
        if key:
            text = text.replace(key, "***")
        text = _BEARER.sub("Bearer ***", text)
        text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
        return text if len(text) <= DETAIL_CHARS else text[:DETAIL_CHARS - 3] + "..."

    def _line(self, message: str) -> str:
        """An error message: the endpoint's URL and ``message`` (its server text already scrubbed), one line."""
        key = self.endpoint.key()
        message = message.replace(key, "***") if key else message
        return f"{self.endpoint.url}: {' '.join(message.split())}"
