"""Throughput (tokens/s) and achieved FLOP/s against context length, with the roofline.

Tokens per second of a pass: ``n / latency`` for prefill and forward (n tokens in one pass),
``1 / latency`` for decode (one token). Achieved FLOP/s: the pass's analytic FLOPs over its
latency. Points are the run's per-point medians with their 95% interval; curves the fitted
latency (and exact FLOPs) curves with the 95% band. The ceiling is the measured matmul peak;
each phase's dotted line is its roofline bound, ``max(FLOPs / peak, bytes / bandwidth)``
turned into FLOP/s (``profiler.measure.summary``): decode sits far below the peak because it is
bound by memory bandwidth, not arithmetic.
"""

from __future__ import annotations

import numpy as np
from matplotlib.lines import Line2D

from profiler.costmodel.cost_model import PHASES
from profiler.report import style
from profiler.report.curves import FitSeries, draw_fit, extrapolated_limit


def tokens_per_s(phase: str):
    """Latency (s) at length n -> tokens per second of that pass."""
    if phase == "decode":
        return lambda n, latency_s: 1.0 / latency_s
    return lambda n, latency_s: n / latency_s


def flops_per_s(series: FitSeries, phase: str):
    return lambda n, latency_s: series.curve(phase, "flops").predict(n) / latency_s


def _phases(series: FitSeries) -> list[str]:
    return [p for p in PHASES if series.has(p, "latency_s")]


def throughput_figure(series: FitSeries, points, ceilings: dict):
    """The report's figure: tokens/s (top) and FLOP/s against the roofline (bottom), every phase; tokens/s alone for
    a fit without FLOPs (a served model whose architecture is not known here)."""
    with_flops = any(series.has(phase, "flops") for phase in _phases(series))
    fig = style.figure(7.5, 7.2 if with_flops else 3.9)
    top, bottom = fig.subplots(2, 1, sharex=True) if with_flops else (fig.subplots(), None)
    curves = [series.curve(p, "latency_s") for p in _phases(series)]
    n_low = min(c.n_min for c in curves) / 1.25
    n_high = max(extrapolated_limit(c.n_max, series.max_positions) for c in curves) * 1.25
    tops, bottoms = [], []
    for phase in _phases(series):
        color = style.PHASE_COLORS[phase]
        rows = points[points["phase"] == phase]
        ci = rows["ci95_rel"].to_numpy(dtype=float)
        ci = np.where(np.isfinite(ci), np.clip(ci, 0, 0.9), 0.0)  # too few repeats for an interval: no bar
        for ax, column, transform, drawn in ((top, "tokens_per_s", tokens_per_s(phase), tops),
                                             (bottom, "flops_per_s", flops_per_s(series, phase), bottoms)):
            if ax is bottom and not series.has(phase, "flops"):
                continue
            values = rows[column].to_numpy()
            ax.errorbar(rows["n_ctx"], values, yerr=(values - values / (1 + ci), values / (1 - ci) - values),
                        fmt="o", markersize=3.5, color=color, elinewidth=1, capsize=0, alpha=0.8)
            drawn += [draw_fit(ax, series, phase, "latency_s", n_low, n_high, color=color, label=phase,
                               transform=transform)[1], values]
        if ceilings:  # none for a served model: its devices cannot be seen from the client
            bound = rows["flops_per_s"] / rows["roofline_share"]
            bottom.plot(rows["n_ctx"], bound, color=color, linestyle=":", linewidth=1.3)
            bottoms.append(bound.to_numpy())
    peaks = [ceilings["peak_matmul_flops_per_s"]] if ceilings else []
    for peak in peaks:
        bottom.axhline(peak, color=style.CEILING_COLOR, linewidth=1.3, linestyle="-.")
        bottom.annotate(f"measured matmul peak ({ceilings.get('matmul_dtype', '')})", (1.0, peak),
                        xycoords=("axes fraction", "data"), xytext=(-4, -3), textcoords="offset points", ha="right",
                        va="top", fontsize=8, color=style.CEILING_COLOR)
    unit = style.log_axis(top, "y", *style.span(tops), kind="tokens/s")
    top.set_ylabel(f"throughput ({unit}, log scale)")
    top.set_title("Throughput of one pass")
    style.legend(top, band=True)
    if bottom is None:
        style.length_axis(top, n_low, n_high)
        return fig
    unit = style.log_axis(bottom, "y", *style.span(bottoms + [peaks], pad=1.3), kind="FLOP/s")
    bottom.set_ylabel(f"achieved ({unit}, log scale)")
    bottom.set_title("Arithmetic rate against the roofline")
    handles = [Line2D([], [], color="#555555", marker="o", linestyle="none", markersize=4),
               Line2D([], [], color="#555555", linestyle=":", linewidth=1.3)]
    bottom.legend(handles, ["measured median, 95% CI", "dotted: roofline bound of the pass"], loc="upper left")
    style.length_axis(bottom, n_low, n_high)
    return fig


def comparison_throughput_figure(first: FitSeries, second: FitSeries):
    """``compare``'s figure: tokens/s (top row) and FLOP/s (bottom row) per phase, both fits; tokens/s alone when
    neither has FLOPs (served models whose architecture is not known here)."""
    phases = [p for p in _phases(first) if second.has(p, "latency_s")]
    rows = 2 if any(s.has(p, "flops") for s in (first, second) for p in phases) else 1
    fig = style.figure(3.2 * len(phases), 6.2 if rows == 2 else 3.4)
    axes = np.atleast_2d(fig.subplots(rows, len(phases), sharex="col").reshape(rows, len(phases)))
    for column, phase in enumerate(phases):
        curves = [s.curve(phase, "latency_s") for s in (first, second)]
        n_low, n_high = min(c.n_min for c in curves) / 1.25, max(c.n_max for c in curves) * 1.25
        for row, (make, kind, name) in enumerate(((lambda s: tokens_per_s(phase), "tokens/s", "throughput"),
                                                  (lambda s: flops_per_s(s, phase), "FLOP/s", "achieved"))[:rows]):
            ax = axes[row, column]
            drawn = [draw_fit(ax, s, phase, "latency_s", n_low, n_high, label=s.label, transform=make(s))[1]
                     for s in (first, second) if row == 0 or s.has(phase, "flops")]
            unit = style.log_axis(ax, "y", *style.span(drawn), kind=kind)
            ax.set_ylabel(f"{name} ({unit})")
            style.length_axis(ax, n_low, n_high, max_ticks=5)
            ax.set_xlabel("n (tokens, log scale)" if row == rows - 1 else "")
        axes[0, column].set_title(phase)
    style.legend(axes[0, 0], band=True, below=fig)
    return fig
