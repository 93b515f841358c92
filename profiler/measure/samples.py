"""``samples.csv``: one tidy row per timed pass, appended and flushed as it is measured.

Columns (units in the names):

- ``model, weights, device, dtype, phase``: what ran; ``weights`` is ``random`` (built from
  the config) or ``safetensors``; ``phase`` is prefill, decode, extend, forward or generate (extend: ``n_new``
  tokens appended to a cache of ``n_ctx``; prefill is an extend of an empty cache, decode one of a single token);
- ``batch``: the sequences in the pass (1, or more for prefill and decode only);
- ``n_ctx``: tokens in context before the pass, per sequence (prompt length for prefill and forward,
  cache length for decode and extend, ``n_in`` for generate);
- ``n_cached``: tokens already in the KV cache when the pass starts, per sequence: ``n_ctx`` for decode and
  extend, 0 for prefill, forward and generate (whose pass starts with no cache);
- ``n_new``: tokens the pass adds to each sequence (n for prefill and forward, 1 for decode, the tokens
  appended for extend, ``n_out`` for generate);
- ``repeat``: 0, 1, ... within one (phase, batch, n_ctx, n_new) point;
- ``latency_s``: wall time of the pass;
- ``flops``: the analytic FLOPs of the pass, of the whole batch (``batch`` times a sequence's,
  ``profiler.measure.flops``; empty only in an endpoint run, dtype ``served``, of a model whose config is not
  known locally);
- ``flops_counted``: FLOPs counted by FlopCounterMode on the point's warm-up pass, a check of ``flops``: every
  prefill length's (on its pilot pass) and the first ``items.COUNTED_WARM_UPS`` points' of each other phase and
  batch size; empty for the rest (the counter's cost per pass would come out of the budget) and for generate,
  whose counting would take longer than the generation;
- ``peak_mem_bytes``: GPU allocator peak, or CPU process peak RSS, during a pass of the point, read once a point
  on its first visit and written on that visit's rows (empty on a later visit's: ``profiler.measure.items``);
- ``peak_mem_reserved_bytes``: GPU allocator's reserved peak (empty on a CPU);
- ``kv_cache_bytes``: bytes of keys and values in the cache after the pass, every sequence's (0 for
  forward): a windowed layer's at most ``window - 1`` tokens, and any other state the cache holds
  (linear-attention states; ``memory.kv_cache_bytes``; empty in an endpoint run: a client sees no cache);
- ``energy_j``: joules the device's energy counter took during the pass (``profiler.measure.energy``: the whole
  package's or board's, not the pass's alone); empty where there is no counter or the pass was shorter than the
  counter can tell.

Raw values only: medians, intervals and rates are derived from these rows.

``read_samples`` is the one check of a samples file, for every command that reads one (``fit``,
``report``): anything wrong is a one-line ``UserError`` naming the file, line and column.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from profiler.errors import UserError
from profiler.files import SERVED_DTYPE
from profiler.measure.grid import MAX_BATCH_SIZE

# What each value of the ``phase`` column measures, as a title for tables and figures.
PHASE_TITLES = {
    "prefill": "prefill: n prompt tokens, builds the KV cache",
    "decode": "decode: one token with n_ctx tokens cached",
    "extend": "extend: n_new tokens appended to n_ctx tokens cached",
    "forward": "forward: n tokens, no cache (the paper's primitive)",
    "generate": "generate: n_new tokens after n_ctx prompt tokens",
}

COLUMNS = (
    "model",
    "weights",
    "device",
    "dtype",
    "phase",
    "batch",
    "n_ctx",
    "n_cached",
    "n_new",
    "repeat",
    "latency_s",
    "flops",
    "flops_counted",
    "peak_mem_bytes",
    "peak_mem_reserved_bytes",
    "kv_cache_bytes",
    "energy_j",
)
PHASES = ("prefill", "decode", "extend", "forward", "generate")
BATCHED_PHASES = ("prefill", "decode")  # the phases measured with more than one sequence in a pass
CACHED_PHASES = ("decode", "extend")  # the phases whose pass starts on a cache of n_ctx tokens


def cached_tokens(phase: str, n_ctx: int) -> int:
    """The ``n_cached`` of a row: ``n_ctx`` in ``CACHED_PHASES``, 0 otherwise."""
    return n_ctx if phase in CACHED_PHASES else 0


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
        """Append ``row`` (a dict by column; a missing or None cell is empty, a missing ``n_cached`` is
        ``cached_tokens`` of its phase and ``n_ctx``)."""
        if "n_cached" not in row:
            row = row | {"n_cached": cached_tokens(row["phase"], row["n_ctx"])}
        self._writer.writerow({key: ("" if row.get(key) is None else row[key]) for key in COLUMNS})
        self._file.flush()
        self.rows += 1

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "SampleWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# Columns a file may lack: added after the first runs (a reader needs none of them; a file without
# ``batch`` was written before batches were measured: every pass of one sequence; one without ``n_cached``
# before extend passes were: its cached tokens follow from the phase, ``cached_tokens``; one without ``energy_j``
# before energy was measured: no energy, the column added empty at the end).
OPTIONAL_COLUMNS = ("weights", "batch", "n_cached", "flops_counted", "peak_mem_reserved_bytes", "energy_j")
_TEXT = ("model", "weights", "device", "dtype", "phase")
_ONE_VALUE = ("model", "weights", "device", "dtype")  # a file is one run: one model on one device in one dtype
# Whole numbers and the least each may be; empty allowed where the run writes nothing (no peak memory
# measured, no FLOPs counted for generate, no reserved bytes on a CPU; an endpoint run
# (``profiler.measure.endpoint.rows``) sees no memory, and no FLOPs of a model whose config is not known locally).
_WHOLE = {"batch": 1, "n_ctx": 1, "n_cached": 0, "n_new": 1, "repeat": 0}
_WHOLE_OR_EMPTY = {"flops": 1, "flops_counted": 0, "peak_mem_bytes": 0, "peak_mem_reserved_bytes": 0,
                   "kv_cache_bytes": 0}
# A run writes one row per timed pass: a million is some 17 minutes of 1 ms passes, more than any default
# run. Reading is the part of a fit that grows with the file (about 4 s and 0.5 GB per million rows on a
# 2-core CPU), so it is bounded before it starts; the fit itself thins (profiler.costmodel.fit_run).
MAX_ROWS = 1_000_000
_EXACT_LIMIT = 2**53


def _shown(value) -> str:
    """A cell as typed, quoted if text, cut to 40 characters (one line, control characters escaped)."""
    text = repr(value.item() if hasattr(value, "item") else value)
    return text if len(text) <= 40 else text[:37] + "..."


def _first_bad(path: Path, frame, where, column: str, what: str, value: bool = True) -> UserError:
    """The error naming the first row of ``frame`` where ``where`` holds (line numbers count the header
    as 1), with the cell's ``value`` unless there is none to show."""
    row = int(where.to_numpy().nonzero()[0][0])
    cell = f" {_shown(frame[column].iloc[row])}" if value else ""
    return UserError(f"{path}: line {row + 2}: {column}{cell} {what}")


def _parsed(path: Path, frame, column: str, empty_allowed: bool):
    """``column`` as float64: each cell a number, or empty where ``empty_allowed``."""
    import pandas as pd

    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce").astype("float64")
    if not pd.api.types.is_numeric_dtype(raw):  # some cell is not a number at all
        bad = values.isna() & raw.astype("string").fillna("").str.strip().ne("")
        if bad.any():
            raise _first_bad(path, frame, bad, column, "is not a number")
    if not empty_allowed and values.isna().any():
        raise _first_bad(path, frame, values.isna(), column, "is missing", value=False)
    infinite = values.abs().eq(math.inf)
    if infinite.any():
        raise _first_bad(path, frame, infinite, column, "is not finite")
    return values


def _whole_numbers(path: Path, frame, column: str, least: int, empty_allowed: bool):
    """``column`` checked: whole numbers of at least ``least`` (int64), or float64 with empty cells as NaN."""
    values = _parsed(path, frame, column, empty_allowed)
    for bad, what in ((values.ne(values.round()) & values.notna(), "is not a whole number"),
                      (values.lt(least), f"is less than {least}"),
                      (values.gt(_EXACT_LIMIT), "is beyond 2^53, past exact whole numbers in a float")):
        if bad.any():
            raise _first_bad(path, frame, bad, column, what)
    return values if values.isna().any() else values.astype("int64")


def _a(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def _latencies(path: Path, frame):
    """``latency_s`` checked: a pass takes a finite, positive time."""
    values = _parsed(path, frame, "latency_s", False)
    if values.le(0).any():
        raise _first_bad(path, frame, values.le(0), "latency_s", "is not a positive time")
    return values


def _energies(path: Path, frame):
    """``energy_j`` checked: empty, or finite joules of at least 0 (empty, float64, in a file without it)."""
    if "energy_j" not in frame.columns:
        return math.nan
    values = _parsed(path, frame, "energy_j", True)
    if values.lt(0).any():
        raise _first_bad(path, frame, values.lt(0), "energy_j", "is negative: a pass takes energy")
    return values


def read_samples(path: Path, model: str | None = None, dtype: str | None = None):
    """The samples in ``path`` as a pandas DataFrame, checked; a one-line ``UserError`` for anything else.

    Checked: readable CSV text with every column but ``OPTIONAL_COLUMNS``; at most ``MAX_ROWS`` rows;
    ``phase`` one of ``PHASES``; batches, lengths, repeats, FLOPs and bytes whole numbers (``batch``,
    ``n_ctx`` and ``n_new`` at least 1, ``batch`` at most ``grid.MAX_BATCH_SIZE``; FLOPs at least 1), ``batch``
    above 1 only in ``BATCHED_PHASES``
    (a file without the column: batch 1, the int64 column added after ``phase``); ``n_cached`` as
    ``cached_tokens`` says (a file without it, from before extend passes: derived, the int64 column added after
    ``n_ctx``); ``latency_s`` finite and
    positive seconds; ``energy_j`` empty or finite non-negative joules (a file without it, from before energy was
    measured: the float64 column added empty at the end); one model, device, dtype (and weights) in the whole file,
    and ``model`` and ``dtype`` the ones given (its run's). A file with a header and no rows is valid (a run stopped before its first
    pass): an empty frame.
    """
    import pandas as pd

    path = Path(path)
    numeric = (*_WHOLE, *_WHOLE_OR_EMPTY, "latency_s", "energy_j")
    try:  # text as written (a model may be called "nan"); numbers parsed, an empty cell missing
        frame = pd.read_csv(path, nrows=MAX_ROWS + 1, dtype={c: str for c in _TEXT}, keep_default_na=False,
                            na_values={c: [""] for c in numeric}, low_memory=False)
    except FileNotFoundError:
        raise UserError(f"{path}: not found") from None
    except IsADirectoryError:
        raise UserError(f"{path}: a folder, not a samples file") from None
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: empty, not a samples file (no header)") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a samples file (not text)") from None
    except (OSError, ValueError) as err:  # ValueError: pandas' ParserError (a row of the wrong width...)
        message = str(getattr(err, "strerror", None) or err).strip().splitlines()
        raise UserError(f"{path}: not a samples file ({message[-1] if message else type(err).__name__})") from None
    missing = [c for c in COLUMNS if c not in frame.columns and c not in OPTIONAL_COLUMNS]
    if missing:
        raise UserError(f"{path}: not a samples file: no column {', '.join(missing)}")
    if len(frame) > MAX_ROWS:
        raise UserError(f"{path}: more than {MAX_ROWS:,} rows, the most a samples file may hold (a run writes one "
                        "per timed pass)")
    if "batch" not in frame.columns:
        frame.insert(frame.columns.get_loc("phase") + 1, "batch", 1)
    derive_cached = "n_cached" not in frame.columns
    for column, least in (*_WHOLE.items(), *_WHOLE_OR_EMPTY.items()):
        if column in frame.columns:
            frame[column] = _whole_numbers(path, frame, column, least, column in _WHOLE_OR_EMPTY)
    unknown_flops = frame["flops"].isna() & frame["dtype"].ne(SERVED_DTYPE)  # only a served model's may be unknown
    if unknown_flops.any():
        raise _first_bad(path, frame, unknown_flops, "flops", "is missing", value=False)
    frame["latency_s"] = _latencies(path, frame)
    frame["energy_j"] = _energies(path, frame)
    for column in (c for c in _TEXT if c in frame.columns):
        frame[column] = frame[column].fillna("").astype(str)
    unknown = ~frame["phase"].isin(PHASES)
    if unknown.any():
        raise _first_bad(path, frame, unknown, "phase", f"is not a phase ({', '.join(PHASES)})")
    too_large = frame["batch"].gt(MAX_BATCH_SIZE)
    if too_large.any():
        raise _first_bad(path, frame, too_large, "batch", f"is more sequences than a run measures ({MAX_BATCH_SIZE:,})")
    unbatched = frame["batch"].gt(1) & ~frame["phase"].isin(BATCHED_PHASES)
    if unbatched.any():
        raise _first_bad(path, frame, unbatched, "batch",
                         f"in {_a(frame['phase'][unbatched].iloc[0])} pass: only {' and '.join(BATCHED_PHASES)} "
                         "are measured with more than one sequence")
    cached = frame["n_ctx"].where(frame["phase"].isin(CACHED_PHASES), 0)
    if derive_cached:
        frame.insert(frame.columns.get_loc("n_ctx") + 1, "n_cached", cached.astype("int64"))
    wrong = frame["n_cached"].ne(cached)
    if wrong.any():
        phase = frame["phase"][wrong].iloc[0]
        rule = "its n_ctx" if phase in CACHED_PHASES else "0"
        raise _first_bad(path, frame, wrong, "n_cached", f"in {_a(phase)} pass: {phase} starts with {rule} tokens "
                         "cached")
    for column in (c for c in _ONE_VALUE if c in frame.columns):
        given = {"model": model, "dtype": dtype}.get(column)
        values = list(dict.fromkeys(frame[column]))
        if len(values) > 1:
            raise UserError(f"{path}: {len(values)} values of {column} ({', '.join(map(_shown, values[:3]))}"
                            f"{', ...' if len(values) > 3 else ''}): a samples file is one run")
        if values == [""]:
            raise _first_bad(path, frame, frame[column].eq(""), column, "is empty", value=False)
        if given is not None and values and values[0] != given:
            raise UserError(f"{path}: samples of {column} {_shown(values[0])}, but its run.json is of {_shown(given)}")
    return frame
