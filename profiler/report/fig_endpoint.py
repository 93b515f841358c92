"""The figures of an endpoint run's report: the server under load, and the server against the same model in process.

``concurrency_figure``: left, output throughput (tokens/s, the server's ``completion_tokens`` over a level's wall
time) and calls per second against the callers at once; right, the p50 (solid) and p99 (dashed) of TTFT, TPOT and
E2E against them (``profiler.measure.endpoint.load`` defines each). Both axes log scale, callers at powers of two.

``overhead_figure``: left, every call's TTFT (the ``prefill`` rows) and their median per prompt length against the
in-process fit's prefill curve with its 95% band; right, every call's mean gap between tokens (the ``decode`` rows,
at the mean context of its steps) and their medians against the in-process decode curve. The vertical distance
between a median and the curve is the serving overhead (``profiler.report.serving_overhead``).
"""

from __future__ import annotations

import pandas as pd
from matplotlib.legend_handler import HandlerTuple
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from profiler.measure.endpoint.load import ConcurrencyLevel
from profiler.report import style
from profiler.report.curves import FitSeries, draw_fit

_LATENCIES = (("TTFT", "ttft", style.PHASE_COLORS["prefill"]), ("TPOT", "tpot", style.PHASE_COLORS["decode"]),
              ("E2E", "e2e", style.PHASE_COLORS["forward"]))
ENDPOINT_COLOR = "#3b3b3b"  # the server's calls: dark grey beside the in-process curve's phase colour
CALLS_COLOR = style.PHASE_COLORS["extend"]
PHASES = ("prefill", "decode")


def concurrency_figure(levels: list[ConcurrencyLevel]):
    fig = style.figure(7.5, 4.0)
    left, right = fig.subplots(1, 2)
    callers = [level.concurrency for level in levels]
    throughput = [level.output_tokens_per_s for level in levels]
    requests = [level.requests_per_s for level in levels]
    left.plot(callers, throughput, "o-", color=ENDPOINT_COLOR)
    left.plot(callers, requests, "s-", color=CALLS_COLOR)
    style.log_axis(left, "y", *style.span([throughput, requests], pad=1.3), kind="tokens/s")
    left.set_ylabel("per second (log scale)")
    left.set_title("Throughput")
    drawn = []
    for _, key, color in _LATENCIES:
        for percentile, dash in (("p50", "-"), ("p99", "--")):
            shown = [(c, getattr(level, f"{key}_{percentile}_s")) for c, level in zip(callers, levels)
                     if getattr(level, f"{key}_{percentile}_s") is not None]
            if shown:
                right.plot(*zip(*shown), marker="o", markersize=4, linestyle=dash, color=color)
                drawn.append([value for _, value in shown])
    unit = style.log_axis(right, "y", *style.span(drawn, pad=1.3), kind="s")
    right.set_ylabel(f"latency ({unit}, log scale)")
    right.set_title("Latency percentiles")
    for ax in (left, right):
        style.log_axis(ax, "x", min(callers) / 1.3, max(callers) * 1.3, None, powers_of_two=True, snap=False)
        ax.set_xlabel("calls at once (log scale)")
    handles = [Line2D([], [], color=ENDPOINT_COLOR, marker="o"), Line2D([], [], color=CALLS_COLOR, marker="s"),
               *(Line2D([], [], color=color, marker="o", markersize=4) for _, _, color in _LATENCIES),
               Line2D([], [], color="#555555"), Line2D([], [], color="#555555", linestyle="--")]
    labels = ["output tokens/s", "calls/s", *(name for name, _, _ in _LATENCIES), "solid: p50", "dashed: p99"]
    fig.set_layout_engine("constrained")  # the one layout that makes room for a legend outside the axes
    fig.legend(handles, labels, loc="outside lower center", ncols=4)
    return fig


def overhead_figure(samples: pd.DataFrame, in_process: FitSeries):
    """``samples``: the endpoint run's rows of one sequence; ``in_process``: the in-process fit as a series."""
    fig = style.figure(7.5, 4.2)
    panels = fig.subplots(1, 2)
    for ax, phase in zip(panels, PHASES):
        rows = samples[samples["phase"] == phase]
        medians = rows.groupby("n_ctx")["latency_s"].median()
        ax.plot(rows["n_ctx"], rows["latency_s"], "o", markersize=2.5, alpha=0.35, color=ENDPOINT_COLOR)
        ax.plot(medians.index, medians.to_numpy(), "D", markersize=5, color=ENDPOINT_COLOR)
        curve = in_process.curve(phase, "latency_s")
        n_low = min(rows["n_ctx"].min(), curve.n_min) / 1.25
        n_high = max(rows["n_ctx"].max(), curve.n_max) * 1.25
        _, central, low, high = draw_fit(ax, in_process, phase, "latency_s", n_low, n_high,
                                         color=style.PHASE_COLORS[phase])
        unit = style.log_axis(ax, "y", *style.span([rows["latency_s"], central, low, high]), kind="s")
        ax.set_ylabel(f"seconds ({unit}, log scale)")
        style.length_axis(ax, n_low, n_high, max_ticks=6)
    panels[0].set_title("First token")
    panels[0].set_xlabel("prompt tokens (log scale)")
    panels[1].set_title("Each later token")
    panels[1].set_xlabel("tokens in context (log scale)")
    handles = [Line2D([], [], color=ENDPOINT_COLOR, marker="o", linestyle="none", markersize=3, alpha=0.5),
               Line2D([], [], color=ENDPOINT_COLOR, marker="D", linestyle="none", markersize=5),
               tuple(Line2D([], [], color=style.PHASE_COLORS[phase], linewidth=1.8) for phase in PHASES),
               Line2D([], [], color="#555555", linestyle=style.EXTRAPOLATED, linewidth=1.4),
               Patch(color="#555555", alpha=style.BAND_ALPHA, linewidth=0)]
    labels = ["endpoint: each call", "endpoint: median", "in process: fitted prefill, decode",
              "dashed: beyond the measured lengths", "shaded: 95% band"]
    fig.set_layout_engine("constrained")  # the one layout that makes room for a legend outside the axes
    fig.legend(handles, labels, loc="outside lower center", ncols=3, handler_map={tuple: HandlerTuple(ndivide=None)})
    return fig
