"""A fitted cost model as a per-call cost table: what one call costs over a grid of input and output lengths.

``call_grid(cost_model)`` lays out the calls, inside what the fit measured only: input lengths
``n_in`` the powers of two between the prefill curve's shortest and longest measured length, and both
ends; for each, output lengths ``n_out`` 1 and the powers of two up to the longest its decode steps
stay inside the decode curve's measured contexts (a call's steps run at ``n_in .. n_in + n_out - 2``),
and that longest too, within the model's positions (``n_in + n_out - 1``). At most some 35 lengths each
way (powers of two up to 2^31): the table is bounded whatever the fit.

``cost_table(cost_model, usd_per_device_hour)`` prices them, a row a call (``COLUMNS``):

- ``latency_s``: ``CostModel.call(n_in, n_out)`` (a KV cache: one prefill, then ``n_out - 1`` decode
  steps), with ``latency_s_low`` and ``latency_s_high``, its 95% interval from the fit's joint
  coefficient draws (``profiler.costmodel.uncertainty.CallIntervals``);
- ``flops``: the same call in FLOPs (empty where the fit has no FLOPs curves: an endpoint run of a model
  not known locally);
- with a rate, ``usd``, ``usd_low``, ``usd_high``: the seconds times ``usd_per_device_hour / 3600``
  (the device billed only while it computes the call).
"""

from __future__ import annotations

import csv
import io
import warnings

import numpy as np

from profiler.costmodel.cost_model import CostModel, ExtrapolationWarning
from profiler.costmodel.uncertainty import PERCENTILES, CallIntervals
from profiler.lba.dollars import SECONDS_PER_HOUR

COLUMNS = ("n_in", "n_out", "latency_s", "latency_s_low", "latency_s_high", "flops")
USD_COLUMNS = ("usd", "usd_low", "usd_high")


def lengths_between(lo: int, hi: int) -> list[int]:
    """``lo``, the powers of two strictly between, and ``hi`` (``lo <= hi``)."""
    powers = [2**k for k in range(max(int(lo), 1).bit_length(), int(hi).bit_length()) if lo < 2**k < hi]
    return sorted({int(lo), *powers, int(hi)})


def longest_output(cost_model: CostModel, n_in: int) -> int:
    """The most tokens a call reading ``n_in`` may write with every pass inside the measured lengths and the
    model's positions (at least 1: a call of one token out is its prefill alone)."""
    decode = cost_model.curve("decode", "latency_s")
    if n_in < decode.n_min:
        return 1
    most = decode.n_max - n_in + 2
    if cost_model.model.max_positions:
        most = min(most, cost_model.model.max_positions - n_in + 1)
    return max(int(most), 1)


def call_grid(cost_model: CostModel) -> tuple[np.ndarray, np.ndarray]:
    """The calls of the table (see the module doc), as arrays of ``n_in`` and ``n_out``."""
    prefill = cost_model.curve("prefill", "latency_s")
    calls = [(n_in, n_out) for n_in in lengths_between(prefill.n_min, prefill.n_max)
             for n_out in lengths_between(1, longest_output(cost_model, n_in))]
    n_in, n_out = np.array(calls, dtype=np.int64).T
    return n_in, n_out


def cost_table(cost_model: CostModel, usd_per_device_hour: float | None = None) -> tuple[tuple[str, ...], list[list]]:
    """The table's columns and rows (see the module doc); ``flops`` None where the fit has no FLOPs curves."""
    n_in, n_out = call_grid(cost_model)
    with warnings.catch_warnings():  # the grid is inside the measured lengths; a rounding at an end is no news
        warnings.simplefilter("ignore", ExtrapolationWarning)
        seconds = np.asarray(cost_model.call(n_in, n_out), dtype=float)
        flops = (np.asarray(cost_model.call(n_in, n_out, metric="flops"), dtype=float)
                 if all("flops" in cost_model.curves.get(phase, {}) for phase in ("prefill", "decode")) else None)
    low, high = np.percentile(CallIntervals(cost_model).drawn(n_in, n_out), PERCENTILES, axis=0)
    columns = COLUMNS + (USD_COLUMNS if usd_per_device_hour is not None else ())
    rows = []
    for i in range(len(n_in)):
        row = [int(n_in[i]), int(n_out[i]), float(seconds[i]), float(low[i]), float(high[i]),
               None if flops is None else float(flops[i])]
        if usd_per_device_hour is not None:
            row += [value * usd_per_device_hour / SECONDS_PER_HOUR for value in row[2:5]]
        rows.append(row)
    return columns, rows


def table_csv(columns: tuple[str, ...], rows: list[list]) -> str:
    """The table as CSV text: a header, then a row a call; numbers in full (``repr``), an empty cell for None."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if value is None else repr(value) for value in row])
    return text.getvalue()

