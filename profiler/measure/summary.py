"""Per-point statistics derived from the raw samples: what the console table and run.json show.

For each (phase, batch, n_ctx, n_new): repeats, median latency, the median's relative 95%
interval, unstable or not, tokens per second (``batch * n_new`` / median latency: every
sequence's), achieved FLOP/s (analytic FLOPs of the batch / median latency), the share of the
roofline reached, the peak memory (largest over repeats) and the KV-cache bytes (the batch's).

Roofline (Williams et al. 2009): a pass can take no less than
``max(flops / peak_flops_per_s, bytes / bandwidth_bytes_per_s)``. Bytes moved are counted
as the weights read once (a mixture of experts' active weights: each pass reads at least a
token's experts per layer, ``Architecture.active_params``) plus the KV cache read (what the
cache held before the pass; a sliding-window layer holds no more than its window) and written
(what a prefill leaves cached, one token per decode step); activations are assumed to stay in
cache. A pass of several sequences reads the weights once and each sequence's cache. The share of
roofline is that bound over the measured median: 1.0 is as fast as this device can go.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd

from profiler.measure.timing import RepeatPolicy, is_unstable, median_ci_rel


def roofline_latency_s(flops, bytes_moved, ceilings: dict):
    """The least time a pass of ``flops`` moving ``bytes_moved`` can take on this device (seconds)."""
    return max(flops / ceilings["peak_matmul_flops_per_s"], bytes_moved / ceilings["memory_bandwidth_bytes_per_s"])


def pass_bytes(phase: str, n_ctx, n_new, weight_bytes: int, kv_cache_bytes: Callable[[int], int], batch=1):
    """Bytes one pass moves at least: weights once per forward pass, KV cache read and written, of each of
    ``batch`` sequences.

    ``kv_cache_bytes(tokens)`` is what a sequence's cache holds at a context of ``tokens``
    (``Architecture.kv_cache_bytes``); one token's keys and values are ``kv_cache_bytes(1)``.
    ``generate`` runs one prefill and ``n_new - 1`` decode steps, each reading the weights.
    """
    n_ctx, n_new, batch = int(n_ctx), int(n_new), int(batch)
    if batch > 1:
        return weight_bytes + batch * (pass_bytes(phase, n_ctx, n_new, 0, kv_cache_bytes))
    if phase == "generate":  # step t = 1..n_new-1 reads the n_ctx + t - 1 tokens cached, writes one
        steps = n_new - 1
        read = sum(kv_cache_bytes(n_ctx + t - 1) for t in range(1, n_new))
        return (1 + steps) * weight_bytes + kv_cache_bytes(n_ctx) + read + steps * kv_cache_bytes(1)
    if phase in ("decode", "extend"):  # the cache of n_ctx read, n_new tokens' keys and values written
        return weight_bytes + kv_cache_bytes(n_ctx) + n_new * kv_cache_bytes(1)
    return weight_bytes + (0 if phase == "forward" else kv_cache_bytes(n_new))


def point_table(samples: pd.DataFrame, weight_bytes: int | None = None,
                kv_cache_bytes: Callable[[int], int] | None = None, ceilings: dict | None = None,
                policy: RepeatPolicy = RepeatPolicy()) -> pd.DataFrame:
    """One row per measured point, in phase order then by batch and length (``pass_bytes`` for the arguments).
    Without ``ceilings`` (an endpoint run: a client sees none of the server's devices) there is no roofline share;
    a point without FLOPs (a served model whose config is not known here) has no FLOP/s, and one without memory
    readings (an endpoint's) no memory."""
    rows = []
    samples = samples if "batch" in samples.columns else samples.assign(batch=1)  # a frame of single sequences
    for (phase, batch, n_ctx, n_new), group in samples.groupby(["phase", "batch", "n_ctx", "n_new"], sort=False):
        latencies = group["latency_s"].tolist()
        median_s = float(group["latency_s"].median())
        flops = float(group["flops"].iloc[0])
        bound_s = None if not ceilings else roofline_latency_s(
            flops, pass_bytes(phase, n_ctx, n_new, weight_bytes, kv_cache_bytes, batch), ceilings
        )
        peak, kv_bytes = group["peak_mem_bytes"].max(), group["kv_cache_bytes"].max()
        rows.append({
            "phase": phase, "batch": int(batch), "n_ctx": int(n_ctx), "n_new": int(n_new),
            "repeats": len(latencies), "median_latency_s": median_s, "ci95_rel": median_ci_rel(latencies),
            "unstable": is_unstable(latencies, policy), "tokens_per_s": batch * n_new / median_s,
            "flops_per_s": None if math.isnan(flops) else flops / median_s,
            "roofline_share": None if bound_s is None else bound_s / median_s,
            "peak_mem_bytes": None if pd.isna(peak) else peak,
            "kv_cache_bytes": None if pd.isna(kv_bytes) else int(kv_bytes),
        })
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    order = {"prefill": 0, "decode": 1, "extend": 2, "forward": 3, "generate": 4}
    return table.sort_values(["phase", "batch", "n_ctx", "n_new"],
                             key=lambda col: col.map(order) if col.name == "phase" else col)
