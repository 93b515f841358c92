"""What a typical LLM call costs here, with 95% intervals; and the calls the run measured whole.

A call reads ``n_in`` tokens and emits ``n_out`` (``CostModel.call``): with a KV cache, one
prefill and ``n_out - 1`` decode steps; without one, ``n_out`` full forward passes (the
paper's primitive, repeated). It needs ``n_in + n_out - 1`` positions (the last token
emitted is never fed back): a call needing more than the model's maximum positions cannot
run on that model, and the table says so instead of pricing it. A call reaching outside the
measured lengths is priced by the fitted curves carried beyond the data and marked
extrapolated. Intervals: ``profiler.costmodel.uncertainty``.
"""

from __future__ import annotations

import warnings

import numpy as np

from profiler.costmodel.cost_model import ExtrapolationWarning
from profiler.costmodel.uncertainty import CallIntervals
from profiler.lba.calls import positions_needed
from profiler.report.document import Table
from profiler.report.units import interval, quantity

TYPICAL_CALLS = ((128, 1), (128, 128), (1024, 1), (1024, 128), (4096, 1), (4096, 128))


def impossible(n_in: int, n_out: int, max_positions: int | None) -> bool:
    return bool(max_positions) and positions_needed(n_in, n_out) > max_positions


def extrapolated(calls: CallIntervals, n_in: int, n_out: int, cache: bool = True) -> bool:
    """Whether the call reaches outside the lengths its curves were fitted on (``CostModel.call`` warns)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ExtrapolationWarning)
        calls.cost_model.call(n_in, n_out, cache=cache)
    return any(issubclass(w.category, ExtrapolationWarning) for w in caught)


def measured_range(calls: CallIntervals) -> str:
    curves = [metrics["latency_s"] for metrics in calls.cost_model.curves.values() if "latency_s" in metrics]
    return f"{min(c.n_min for c in curves):,}-{max(c.n_max for c in curves):,} tokens"


def call_note(calls: CallIntervals, n_in: int, n_out: int, max_positions: int | None, model_name: str) -> str:
    if impossible(n_in, n_out, max_positions):
        return f"cannot run: needs {positions_needed(n_in, n_out):,} positions, {model_name} takes {max_positions:,}"
    if extrapolated(calls, n_in, n_out) or extrapolated(calls, n_in, n_out, cache=False):
        return f"extrapolated beyond the measured {measured_range(calls)}"
    return ""


def typical_grid(max_positions: int | None) -> list[tuple[int, int]]:
    """``TYPICAL_CALLS``, and when some of them cannot run on the model, the longest call with 128 tokens out
    that can."""
    grid = list(TYPICAL_CALLS)
    if any(impossible(n_in, n_out, max_positions) for n_in, n_out in grid) and max_positions > 128:
        grid.append((max_positions - 127, 128))
    return sorted(set(grid))


def typical_calls_table(calls: CallIntervals, max_positions: int | None, model_name: str) -> Table:
    has_memory = "peak_mem_bytes" in calls.cost_model.curves.get("prefill", {})
    rows = []
    for n_in, n_out in typical_grid(max_positions):
        note = call_note(calls, n_in, n_out, max_positions, model_name)
        if impossible(n_in, n_out, max_positions):
            rows.append((f"{n_in:,}", f"{n_out:,}", "-", "-", "-", "-", note))
            continue
        cached = interval(*calls.call(n_in, n_out), "s")
        uncached = interval(*calls.call(n_in, n_out, cache=False), "s")
        flops = (quantity(calls.call(n_in, n_out, metric="flops")[0], "FLOPs") if calls.cost_model.has_flops
                 else "-")  # a served model of unknown architecture: fitted from latency alone
        memory = interval(*calls.call(n_in, n_out, metric="peak_mem_bytes"), "bytes") if has_memory else "-"
        rows.append((f"{n_in:,}", f"{n_out:,}", cached, uncached, flops, memory, note))
    return Table(
        columns=("in", "out", "latency, KV cache", "latency, no cache", "FLOPs", "peak memory", "note"),
        rows=tuple(rows), numeric=(True, True, True, True, True, True, False),
        note="Tokens in and out; 95% intervals in brackets. KV cache: one prefill, then a decode step per further "
             "token. No cache: a full forward pass per token out, as the paper's primitive is priced. FLOPs: with "
             "the KV cache. Peak memory: the largest pass of the call.",
    )


def measured_calls_table(calls: CallIntervals, points) -> Table | None:
    """Each generate pair the run timed whole, against what the cost model predicts for it; None if none."""
    measured = points[points["phase"] == "generate"] if not points.empty else points
    if measured.empty:
        return None
    rows = []
    for row in measured.itertuples():
        value, low, high = calls.call(int(row.n_ctx), int(row.n_new))
        median, ci = row.median_latency_s, row.ci95_rel
        observed = interval(median, median * (1 - ci), median * (1 + ci), "s") if np.isfinite(ci) \
            else quantity(median, "s")
        rows.append((f"{int(row.n_ctx):,}", f"{int(row.n_new):,}", observed, interval(value, low, high, "s"),
                     f"{value / median - 1:+.1%}"))
    return Table(
        columns=("in", "out", "measured median", "predicted", "prediction off by"),
        rows=tuple(rows), numeric=(True,) * 5,
        note="Tokens in and out; 95% intervals in brackets. Whole calls (model.generate, greedy) timed during the "
             "run, against the cost model's prefill plus decode steps: how far the closed-form price can be trusted.",
    )
