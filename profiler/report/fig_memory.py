"""Peak memory and KV-cache bytes against context length, with the device's memory marked.

Peak memory is what ``profiler.measure.memory`` measured: the GPU allocator's peak, or on a CPU the
process's peak resident memory (weights, the Python runtime and the pass's activations);
points are the largest over a point's repeats, curves the fitted ``peak_mem_bytes`` with the
95% band. The KV cache is the bytes of keys and values held after a prefill of n tokens.
The weights line is parameters times bytes per parameter; the device line is the GPU's
memory, or the machine's on a CPU.
"""

from __future__ import annotations

import numpy as np
from matplotlib.lines import Line2D

from profiler.costmodel.cost_model import PHASES
from profiler.report import style
from profiler.report.curves import FitSeries, draw_fit, extrapolated_limit

DTYPE_BYTES = {"float32": 4, "float64": 8, "bfloat16": 2, "float16": 2}


def device_memory_bytes(hardware: dict) -> int | None:
    return hardware.get("gpu_memory_bytes") if hardware.get("device") == "cuda" else hardware.get("memory_bytes")


def _level(ax, value: float, text: str, color: str, linestyle: str) -> None:
    ax.axhline(value, color=color, linewidth=1.2, linestyle=linestyle)
    ax.annotate(text, (1.0, value), xycoords=("axes fraction", "data"), xytext=(-4, 3), textcoords="offset points",
                ha="right", va="bottom", fontsize=8, color=color)


def memory_figure(series: FitSeries, points, hardware: dict, model: dict):
    """The report's figure: peak memory per phase, KV cache, weights and the device's memory."""
    fig = style.figure(7.5, 4.8)
    ax = fig.subplots()
    phases = [p for p in PHASES if series.has(p, "peak_mem_bytes")]
    lengths = [series.curve(p, "latency_s") for p in PHASES if series.has(p, "latency_s")]
    n_low = min(c.n_min for c in lengths) / 1.25
    n_high = max(extrapolated_limit(c.n_max, series.max_positions) for c in lengths) * 1.25
    drawn = []
    for phase in phases:
        rows = points[points["phase"] == phase].dropna(subset=["peak_mem_bytes"])
        color = style.PHASE_COLORS[phase]
        ax.scatter(rows["n_ctx"], rows["peak_mem_bytes"], color=color, s=14, alpha=0.8)
        drawn += [draw_fit(ax, series, phase, "peak_mem_bytes", n_low, n_high, color=color,
                           label=f"peak memory, {phase}")[1], rows["peak_mem_bytes"].to_numpy()]
    prefill = points[points["phase"] == "prefill"]
    ax.plot(prefill["n_ctx"], prefill["kv_cache_bytes"], color="#6a3d9a", marker="s", markersize=3.5, linewidth=1.4,
            label="KV cache after a prefill of n tokens")
    drawn.append(prefill["kv_cache_bytes"].to_numpy())
    weights_bytes = model["params"] * DTYPE_BYTES.get(model["dtype"], 4)
    _level(ax, weights_bytes, f"weights: {model['params'] / 1e6:,.0f}M parameters in {model['dtype']}",
           "#555555", "--")
    device = device_memory_bytes(hardware)
    levels = [[weights_bytes]]
    if device:
        _level(ax, device, "this device's memory", style.CEILING_COLOR, "-.")
        levels.append([device])
    unit = style.log_axis(ax, "y", *style.span(drawn + levels, pad=1.6), kind="bytes")
    ax.set_ylabel(f"memory ({unit}, log scale)")
    ax.set_title("Memory of one pass")
    style.legend(ax, band=True, loc="lower right")
    style.length_axis(ax, n_low, n_high)
    return fig


def comparison_memory_figure(first: FitSeries, second: FitSeries, hardware: tuple[dict, dict]):
    """``compare``'s figure: each phase's peak memory for both fits, and both devices' memory."""
    phases = [p for p in PHASES if first.has(p, "peak_mem_bytes") and second.has(p, "peak_mem_bytes")]
    fig = style.figure(3.2 * max(len(phases), 1), 3.6)
    axes = np.atleast_1d(fig.subplots(1, max(len(phases), 1), sharey=True))
    for ax, phase in zip(axes, phases):
        curves = [s.curve(phase, "peak_mem_bytes") for s in (first, second)]
        n_low, n_high = min(c.n_min for c in curves) / 1.25, max(c.n_max for c in curves) * 1.25
        drawn = [draw_fit(ax, s, phase, "peak_mem_bytes", n_low, n_high, label=s.label)[1] for s in (first, second)]
        for s, facts in zip((first, second), hardware):
            device = device_memory_bytes(facts)
            if device:
                ax.axhline(device, color=s.color, linewidth=1.1, linestyle="-.")
                drawn.append([device])
        unit = style.log_axis(ax, "y", *style.span(drawn, pad=1.6), kind="bytes")
        ax.set_title(phase)
        style.length_axis(ax, n_low, n_high, max_ticks=5)
        ax.set_xlabel("n (tokens, log scale)")
    axes[0].set_ylabel(f"peak memory ({unit}, log scale)")
    device_line = Line2D([], [], color="#555555", linestyle="-.", linewidth=1.1)
    style.legend(axes[0], band=True, below=fig, extra=[(device_line, "dash-dot: each fit's device memory")])
    return fig
