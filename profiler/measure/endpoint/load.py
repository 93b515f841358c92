"""A served model under load, and whether it reuses a prefix: the concurrency sweep and the prefix-reuse probe of
an endpoint run (``profiler.measure.endpoint.sweep``).

Metrics, as vLLM's serving benchmark defines them (``calculate_metrics`` in ``vllm/benchmarks/serve.py``, chunk
times as ``vllm/benchmarks/lib/endpoint_request_func.py`` takes them), all timed at the client, in seconds:

- TTFT, time to first token: from sending the request to the first chunk that carries text (queueing,
  tokenising, the prefill and the network are all in it).
- ITL, inter-token latency: each gap between two successive chunks of a call (the first chunk's time is the TTFT,
  not a gap). A level's ITL percentiles are over the gaps of all its calls pooled. A server that sends several
  tokens in one chunk gives fewer, longer gaps.
- TPOT, time per output token: per call, ``(E2E - TTFT) / (output tokens - 1)``, the output tokens being the
  server's ``completion_tokens``; a call of fewer than 2 tokens has none. It is the mean of the call's gaps when
  every token comes in its own chunk.
- E2E (vLLM's E2EL): from sending the request to the end of its stream.
- Throughput of a level: its calls' output tokens (the server's ``completion_tokens``; the chunks with text where
  the server gives no usage) over the level's wall time, and its calls over the same time. The wall time runs
  from releasing the level's first round to the end of its last call; rounds run one after another, each ending
  with its slowest call, so this is a closed loop of ``C`` callers in step (vLLM sends at a rate instead).
- Percentiles: p50 and p99 over a level's calls (ITL: its gaps) by ``numpy.percentile`` with its default
  ``"linear"`` method (interpolating between the two nearest order statistics), as vLLM; with fewer than 100
  values p99 lies between the two largest.

The concurrency sweep: at each level ``C``, ``rounds`` rounds of ``C`` calls, each on its own thread, held at a
barrier and released together; every prompt is random words from its first token on (``PromptShape.prompt``),
so no two calls share a prefix a server could reuse. No round starts once the clock has passed the deadline; a
round begun runs to its end (each call bounded by the client's time-out and attempts).

The prefix-reuse probe: prompts of ``n_prefix`` tokens, one output token each: A (cold), B (fresh), A again (the
repeat), C (fresh). The server caches when the repeat's TTFT is under ``REUSE_RATIO`` times the fastest of the
three cold ones, or when it reports cached prompt tokens for the repeat. B stands between the two A's so the
repeat is not merely the next request after A; C, after the repeat, is a cold reference taken later. "no reuse
seen" is what was seen, not proof: a prefill short next to the server's overhead per call hides a cache, so the
probe is worth most at the longest prompt of the grid.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, fields

import numpy as np

from profiler.errors import UserError
from profiler.measure.endpoint.client import EndpointClient
from profiler.measure.endpoint.prompts import PromptShape
from profiler.measure.endpoint.streamed_call import StreamedCall

MAX_CONCURRENCY = 64  # callers at one level: threads and open connections
MAX_ROUNDS = 100
REUSE_RATIO = 0.5  # a repeat under half the fastest cold TTFT is a cache hit; noise alone does not halve a TTFT
CACHES, NO_REUSE = "caches", "no reuse seen"
Clock = Callable[[], float]  # seconds; only differences mean anything (timing.Clock, which imports torch)


@dataclass(frozen=True)
class ConcurrencyLevel:
    """What ``calls`` calls at ``concurrency`` together cost (seconds; throughput per second of wall time).
    A percentile is None where no call gave a value (TPOT and ITL of one-token calls, TTFT of calls without text)."""

    concurrency: int
    calls: int
    wall_s: float
    output_tokens_per_s: float
    requests_per_s: float
    ttft_p50_s: float | None
    ttft_p99_s: float | None
    tpot_p50_s: float | None
    tpot_p99_s: float | None
    itl_p50_s: float | None
    itl_p99_s: float | None
    e2e_p50_s: float
    e2e_p99_s: float

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, level: dict) -> ConcurrencyLevel:
        return cls(**{field.name: level[field.name] for field in fields(cls)})


@dataclass(frozen=True)
class PrefixProbe:
    """TTFTs (seconds) of prompts of ``n_prefix`` tokens: the three cold ones (A, B, C in the order sent), the
    repeat of A; the prompt tokens the server said it reused for the repeat (None: it did not say); the verdict."""

    n_prefix: int
    ttft_cold_s: tuple[float, float, float]
    ttft_repeat_s: float
    cached_tokens: int | None
    verdict: str

    def to_json(self) -> dict:
        return {**asdict(self), "ttft_cold_s": list(self.ttft_cold_s)}

    @classmethod
    def from_json(cls, probe: dict) -> PrefixProbe:
        return cls(**{**{field.name: probe[field.name] for field in fields(cls)},
                      "ttft_cold_s": tuple(probe["ttft_cold_s"])})


def concurrency_sweep(client: EndpointClient, shape: PromptShape, levels: list[int], n_in: int, n_out: int,
                      rounds: int, deadline_s: float, clock: Clock, rng: random.Random,
                      on_call: Callable[[int, StreamedCall], None]) -> list[ConcurrencyLevel]:
    """The levels measured, in the order asked, each of ``n_in``-token prompts asking ``n_out`` tokens
    (``client.complete``). ``deadline_s`` is a reading of ``clock``; a level no round of which began is left
    out. ``on_call(level, call)`` runs on the calling thread for every call as it ends. A call that fails (its
    attempts spent) ends the sweep with its error once the others of its round have ended and been passed on."""
    _check_load(levels, rounds, n_in, n_out)
    measured = []
    with ThreadPoolExecutor(max_workers=max(levels), thread_name_prefix="endpoint-load") as pool:
        for concurrency in levels:
            calls, started_s = [], clock()
            for _ in range(rounds):
                if clock() > deadline_s:
                    break
                prompts = [shape.prompt(n_in, rng) for _ in range(concurrency)]
                calls += _round(pool, client, prompts, n_out, lambda call, c=concurrency: on_call(c, call))
            if not calls:
                break
            measured.append(level_of(concurrency, calls, clock() - started_s))
    return measured


def _check_load(levels: list[int], rounds: int, n_in: int, n_out: int) -> None:
    """The sweep's size, checked before any call: one line each."""
    if not levels or any(isinstance(c, bool) or not isinstance(c, int) or not 1 <= c <= MAX_CONCURRENCY
                         for c in levels):
        raise UserError(f"concurrency levels {levels}: each a whole number from 1 to {MAX_CONCURRENCY}, at least one")
    if len(set(levels)) != len(levels):
        raise UserError(f"concurrency levels {levels}: each at most once")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or not 1 <= rounds <= MAX_ROUNDS:
        raise UserError(f"{rounds!r} rounds per concurrency level: a whole number from 1 to {MAX_ROUNDS}")
    for name, tokens in (("prompt", n_in), ("output", n_out)):
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
            raise UserError(f"{tokens!r} {name} tokens per call under load: a whole number, at least 1")


def _round(pool: ThreadPoolExecutor, client: EndpointClient, prompts: list[str], n_out: int,
           on_call: Callable[[StreamedCall], None]) -> list[StreamedCall]:
    """One call per prompt, all released at once; the calls in the order they ended."""
    release = threading.Barrier(len(prompts))

    def send(prompt: str):
        release.wait()
        return client.complete(prompt, n_out)

    futures = [pool.submit(send, prompt) for prompt in prompts]
    ended, failure = [], None
    for future in as_completed(futures):
        if future.exception() is not None:
            failure = failure or future.exception()
            continue
        ended.append(future.result())
        on_call(ended[-1])
    if failure is not None:
        raise failure
    return ended


def level_of(concurrency: int, calls: list[StreamedCall], wall_s: float) -> ConcurrencyLevel:
    """A level's figures from its calls (``StreamedCall``) and its wall time, by the definitions above."""
    output_tokens = sum(len(call.chunk_arrivals_s) if call.completion_tokens is None else call.completion_tokens
                        for call in calls)
    tpots = [call.tpot_s for call in calls if call.tpot_s is not None]
    gaps = [gap for call in calls for gap in call.itl_s]
    ttfts = [call.ttft_s for call in calls if call.ttft_s is not None]
    e2es = [call.e2e_s for call in calls]
    return ConcurrencyLevel(
        concurrency=concurrency, calls=len(calls), wall_s=wall_s, output_tokens_per_s=output_tokens / wall_s,
        requests_per_s=len(calls) / wall_s, ttft_p50_s=_percentile(ttfts, 50), ttft_p99_s=_percentile(ttfts, 99),
        tpot_p50_s=_percentile(tpots, 50), tpot_p99_s=_percentile(tpots, 99), itl_p50_s=_percentile(gaps, 50),
        itl_p99_s=_percentile(gaps, 99), e2e_p50_s=_percentile(e2es, 50), e2e_p99_s=_percentile(e2es, 99))


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def prefix_probe(client: EndpointClient, shape: PromptShape, n_prefix: int, rng: random.Random) -> PrefixProbe:
    """A, B, A again, C: four calls of ``n_prefix`` prompt tokens and one output token, one after another."""
    if isinstance(n_prefix, bool) or not isinstance(n_prefix, int) or n_prefix < 1:
        raise UserError(f"a prefix of {n_prefix!r} tokens: a whole number, at least 1")
    repeated = shape.prompt(n_prefix, rng)
    first = client.complete(repeated, 1)
    fresh = client.complete(shape.prompt(n_prefix, rng), 1)
    repeat = client.complete(repeated, 1)
    later = client.complete(shape.prompt(n_prefix, rng), 1)
    cold_s = (_first_s(first), _first_s(fresh), _first_s(later))
    return PrefixProbe(n_prefix=n_prefix, ttft_cold_s=cold_s, ttft_repeat_s=_first_s(repeat),
                       cached_tokens=repeat.cached_tokens,
                       verdict=reuse_verdict(cold_s, _first_s(repeat), repeat.cached_tokens))


def _first_s(call: StreamedCall) -> float:
    """The call's TTFT; its E2E when no chunk had text (the server stopped at once: the stream's end is its
    first and only answer)."""
    return call.e2e_s if call.ttft_s is None else call.ttft_s


def reuse_verdict(ttft_cold_s: tuple[float, ...], ttft_repeat_s: float, cached_tokens: int | None) -> str:
    """"caches" when the server reports reused prompt tokens for the repeat, or the repeat's TTFT is under
    ``REUSE_RATIO`` times the fastest cold one; else "no reuse seen"."""
    if (cached_tokens or 0) > 0 or ttft_repeat_s < REUSE_RATIO * min(ttft_cold_s):
        return CACHES
    return NO_REUSE
