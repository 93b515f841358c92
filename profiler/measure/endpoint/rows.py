"""What one streamed call of an endpoint gives ``samples.csv`` and ``concurrency.csv``, and the check of its usage.

A call of ``n`` prompt tokens (the server's ``prompt_tokens``) that streams ``k`` output tokens (its
``completion_tokens``) gives, in ``samples.csv``'s columns (``profiler.measure.samples``):

- one ``prefill`` row: ``n_ctx = n_new = n``, ``latency_s`` = TTFT (sending the request to the first chunk with
  text: queueing, tokenising, the prefill pass, sampling and the network, as the client pays it);
- one ``decode`` row, when every output token came in a chunk of its own (``k`` chunks with text, ``k >= 2``):
  the mean of the call's ``k - 1`` gaps between successive chunks (ITL: the last arrival less the first, over
  ``k - 1``) at the middle of their contexts. The ``j``-th gap (``j = 1 .. k - 1``) is the step that emits token
  ``j + 1``, fed token ``j`` on a cache of ``n + j - 1`` tokens; the steps' contexts run from ``n`` to ``n + k - 2``,
  so ``n_ctx = n + (k - 2) // 2`` (their mean, exactly for an even ``k``: the decode curve is affine, so the mean
  step costs the step at the mean context), ``n_new = 1``. Why the mean and not a row per gap: chunks reach the
  client in bursts (two events in one read arrive together), so a single gap can read 0.04 ms beside 6 ms steps,
  while the sum of the gaps is the steps' time whatever the bursts; a fit on relative residuals is pulled to such
  near-zero gaps (a decode curve 50 times too low on the test server). The gaps themselves are summarised in
  ``run.json`` (``endpoint.itl_p50_s``, ``itl_p99_s``). A server that sends several tokens in one chunk gives fewer
  chunks than tokens, and no decode row (``decode_rows_left_out`` counts those calls);
- one ``generate`` row: ``n_ctx = n``, ``n_new = k``, ``latency_s`` = E2E.

A call asking for one output token gives one ``forward`` row instead: ``n_ctx = n_new = n``, ``latency_s`` = E2E. The server
runs one pass over the whole prompt and no decode step, with nothing cached from an earlier call (every prompt is
fresh words from its first token on): the paper's primitive, a full pass with no cache, as a client pays for it.

FLOPs come from ``flops_of(phase, n_ctx, n_new)`` (the model's config, when it is known locally; ``None``
otherwise: the cell is left empty). Nothing on the server's memory is visible to a client: the memory columns
are empty.

A call whose usage differs from what was asked (``prompt_tokens`` not the prompt's length, or
``completion_tokens`` not ``max_tokens`` where the output length was forced, or above it where it was not, or
either count missing) gives no row: ``usage_mismatch`` says what differed, for ``run.json``.
"""

from __future__ import annotations

import csv
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from profiler.files import SERVED_DTYPE
from profiler.measure.samples import SampleWriter

FlopsOf = Callable[[str, int, int], "int | None"]  # (phase, n_ctx, n_new) -> FLOPs of the pass, None if unknown
SERVED = SERVED_DTYPE  # the weights, dtype and attention of a served model: the server's own, unseen by a client


@dataclass(frozen=True)
class UsageMismatch:
    """A call whose usage counts are not what was asked: where in the run (``part``: ``sweep``,
    ``concurrency``), the prompt's length asked and the server's count, ``max_tokens`` and the tokens it
    reports having written; ``forced``: whether the output length was forced."""

    part: str
    prompt_tokens_asked: int
    prompt_tokens: int | None
    max_tokens: int
    completion_tokens: int | None
    forced: bool

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, record: dict) -> UsageMismatch:
        return cls(**record)


def usage_mismatch(call, prompt_tokens_asked: int, forced: bool, part: str) -> UsageMismatch | None:
    """The mismatch of ``call`` (a ``streamed_call.StreamedCall``) against what was asked, or None when its usage is
    what was asked: the prompt's tokens exactly, and ``max_tokens`` exactly where forced (at most, and at least
    one, where not)."""
    completion = call.completion_tokens
    written = completion is not None and (completion == call.max_tokens if forced else 1 <= completion <= call.max_tokens)
    if call.prompt_tokens == prompt_tokens_asked and written:
        return None
    return UsageMismatch(part, prompt_tokens_asked, call.prompt_tokens, call.max_tokens, completion, forced)


class CallRows:
    """Writes each call's rows to ``samples.csv`` as the call ends (``SampleWriter`` flushes every row), numbering
    the repeats of each ``(phase, n_ctx, n_new)`` point; keeps the gaps of the calls it took a decode row of, and
    counts the calls whose chunks held several tokens."""

    def __init__(self, writer: SampleWriter, model: str, device: str, flops_of: FlopsOf):
        self.writer = writer
        self._identity = {"model": model, "weights": SERVED, "device": device, "dtype": SERVED, "batch": 1}
        self._flops_of = flops_of
        self._repeats: Counter = Counter()
        self.decode_rows_left_out = 0  # calls whose chunks were fewer than their tokens
        self.gaps_s: list[float] = []  # every gap of the calls with a decode row (seconds)

    def _row(self, phase: str, n_ctx: int, n_new: int, latency_s: float) -> None:
        point = (phase, n_ctx, n_new)
        self.writer.write(self._identity | {"phase": phase, "n_ctx": n_ctx, "n_new": n_new,
                                            "repeat": self._repeats[point], "latency_s": latency_s,
                                            "flops": self._flops_of(phase, n_ctx, n_new)})
        self._repeats[point] += 1

    def write(self, call) -> None:
        """The rows of ``call``, a checked call (``usage_mismatch`` found nothing) of its server-counted tokens."""
        n, k = call.prompt_tokens, call.completion_tokens
        if call.max_tokens == 1:
            self._row("forward", n, n, call.e2e_s)
            return
        if call.ttft_s is not None:  # no chunk with text: no first token to time
            self._row("prefill", n, n, call.ttft_s)
        if len(call.chunk_arrivals_s) == k and k >= 2:
            arrivals = call.chunk_arrivals_s
            self._row("decode", n + (k - 2) // 2, 1, (arrivals[-1] - arrivals[0]) / (k - 1))
            self.gaps_s.extend(call.itl_s)
        elif k >= 2:
            self.decode_rows_left_out += 1
        self._row("generate", n, k, call.e2e_s)


CONCURRENCY_COLUMNS = ("concurrency", "prompt_tokens", "completion_tokens", "chunks", "ttft_s", "tpot_s", "e2e_s",
                       "finish_reason")


class ConcurrencyWriter:
    """``concurrency.csv``: one row per call of the concurrency sweep, appended and flushed as the call ends
    (seconds as the client timed them; ``tpot_s`` empty for a call of one token). Calls end on the sweep's
    threads: one row at a time."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._file = path.open("w", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=CONCURRENCY_COLUMNS)
        self._writer.writeheader()
        self._file.flush()
        self.rows = 0

    def write(self, concurrency: int, call) -> None:
        with self._lock:
            self._write(concurrency, call)

    def _write(self, concurrency: int, call) -> None:
        self._writer.writerow({"concurrency": concurrency, "prompt_tokens": call.prompt_tokens,
                               "completion_tokens": call.completion_tokens, "chunks": len(call.chunk_arrivals_s),
                               "ttft_s": call.ttft_s, "tpot_s": "" if call.tpot_s is None else call.tpot_s,
                               "e2e_s": call.e2e_s, "finish_reason": call.finish_reason or ""})
        self._file.flush()
        self.rows += 1

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ConcurrencyWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
