"""The record of one streamed completion (``profiler.measure.endpoint.client``): when each chunk arrived, the server's
token counts, and the attempts that failed before it succeeded; TTFT, ITL and TPOT derived from it as vLLM's
``benchmark_serving`` defines them. Times in seconds from sending the request, read at the client.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Failure:
    """One failed attempt: its number within its call (from 1), what went wrong (``http_429``, ``http_5xx``,
    ``timeout``, ``connect``, ``dropped_stream``), the HTTP status if one came, the seconds waited before the next
    attempt (0 after the last), and the server's or the library's words, trimmed, without the key."""

    attempt: int
    kind: str
    status: int | None
    waited_s: float
    detail: str

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class StreamedCall:
    """One successful streamed call. Times in seconds from sending the request; token counts from the server's
    ``usage`` (None where it sent none)."""

    max_tokens: int
    chunk_arrivals_s: tuple[float, ...]  # each chunk with non-empty text
    e2e_s: float  # to the end of the stream
    prompt_tokens: int | None
    completion_tokens: int | None
    cached_tokens: int | None  # usage.prompt_tokens_details.cached_tokens, where the server reports it
    finish_reason: str | None
    failures: tuple[Failure, ...]  # the attempts that failed before this one succeeded

    @property
    def ttft_s(self) -> float | None:
        """Time to first token: the first chunk's arrival (None when no chunk had text)."""
        return self.chunk_arrivals_s[0] if self.chunk_arrivals_s else None

    @property
    def itl_s(self) -> tuple[float, ...]:
        """Inter-token latencies: the gaps between successive chunk arrivals."""
        return tuple(b - a for a, b in zip(self.chunk_arrivals_s, self.chunk_arrivals_s[1:]))

    @property
    def tpot_s(self) -> float | None:
        """Time per output token after the first (vLLM's TPOT); None below 2 completion tokens."""
        if self.ttft_s is None or self.completion_tokens is None or self.completion_tokens < 2:
            return None
        return (self.e2e_s - self.ttft_s) / (self.completion_tokens - 1)
