"""``samples.csv``: one tidy row per timed pass, appended and flushed as it is measured.

Columns (units in the names):

- ``model, weights, device, dtype, phase``: what ran; ``weights`` is ``random`` (built from
  the config) or ``safetensors``; ``phase`` is prefill, decode, forward or generate;
- ``n_ctx``: tokens in context before the pass (prompt length for prefill and forward,
  cache length for decode, ``n_in`` for generate);
- ``n_new``: tokens the pass adds (n for prefill and forward, 1 for decode, ``n_out`` for generate);
- ``repeat``: 0, 1, ... within one (phase, n_ctx, n_new) point;
- ``latency_s``: wall time of the pass;
- ``flops``: the analytic FLOPs of the pass (``profiler.measure.flops``);
- ``flops_counted``: FLOPs counted by FlopCounterMode on the point's warm-up pass (empty for
  generate, whose counting would take longer than the generation);
- ``peak_mem_bytes``: GPU allocator peak, or CPU process peak RSS, during the pass;
- ``peak_mem_reserved_bytes``: GPU allocator's reserved peak (empty on a CPU);
- ``kv_cache_bytes``: bytes of keys and values in the cache after the pass (0 for forward).

Raw values only: medians, intervals and rates are derived from these rows.
"""

from __future__ import annotations

import csv
from pathlib import Path

# What each value of the ``phase`` column measures, as a title for tables and figures.
PHASE_TITLES = {
    "prefill": "prefill: n prompt tokens, builds the KV cache",
    "decode": "decode: one token with n_ctx tokens cached",
    "forward": "forward: n tokens, no cache (the paper's primitive)",
    "generate": "generate: n_new tokens after n_ctx prompt tokens",
}

COLUMNS = (
    "model",
    "weights",
    "device",
    "dtype",
    "phase",
    "n_ctx",
    "n_new",
    "repeat",
    "latency_s",
    "flops",
    "flops_counted",
    "peak_mem_bytes",
    "peak_mem_reserved_bytes",
    "kv_cache_bytes",
)
PHASES = ("prefill", "decode", "forward", "generate")


class SampleWriter:
    """Appends rows to ``path`` (a new file with a header), flushing each one to disk."""

    def __init__(self, path: Path):
        self.path = path
        self._file = path.open("w", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=COLUMNS)
        self._writer.writeheader()
        self._file.flush()
        self.rows = 0

    def write(self, row: dict) -> None:
        self._writer.writerow({key: ("" if row.get(key) is None else row[key]) for key in COLUMNS})
        self._file.flush()
        self.rows += 1

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "SampleWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_samples(path: Path):
    """The samples as a pandas DataFrame."""
    import pandas as pd

    return pd.read_csv(path)
