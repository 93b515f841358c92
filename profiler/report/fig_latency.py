"""Latency of one pass against context length, one figure per phase, log-log.

The report's figure: every timed sample as a point (repeats at unstable points as crosses),
the fitted curve with its 95% band (solid where measured, dashed where extrapolated), the
linearity horizon (where the quadratic term reaches 10% and 50% of the cost) and the model's
maximum positions as vertical lines; below, each sample's residual against the curve, in %.

``compare``'s figure: the two fits' curves with bands, and below, the second over the first
with the 95% band of that ratio (the fits' draws paired at random: independent fits).
"""

from __future__ import annotations

import numpy as np

from profiler.costmodel.uncertainty import curve_draws
from profiler.measure.samples import PHASE_TITLES
from profiler.report import style
from profiler.report.curves import FitSeries, draw_fit, extrapolated_limit
from profiler.report.facts import formula
from profiler.report.uncertainty import independent_pairs
from profiler.report.units import significant


def _mark(ax, n: float, text: str, color: str = "#555555", linestyle: str = ":") -> None:
    ax.axvline(n, color=color, linewidth=1.1, linestyle=linestyle)
    ax.annotate(text, (n, 0.0), xycoords=("data", "axes fraction"), xytext=(-3, 4), textcoords="offset points",
                rotation=90, ha="right", va="bottom", fontsize=7.5, color=color)


def _horizons(ax, derived: dict, n_low: float, n_high: float) -> None:
    for share, horizon in derived.get("linearity_horizon", {}).items():
        n = horizon["n_ctx"]
        if n is not None and n_low < n < n_high:
            _mark(ax, n, f"quadratic term {share} of cost (n = {significant(n, 3)})")


def _max_positions(ax, series: list[FitSeries], n_high: float) -> None:
    """A line at each model's maximum positions within the axis, naming the models that share it."""
    by_limit: dict[int, list[str]] = {}
    for s in series:
        if s.max_positions and s.max_positions <= n_high:
            by_limit.setdefault(s.max_positions, []).append(s.cost_model.model.name)
    for limit, names in by_limit.items():
        _mark(ax, limit, f"{' and '.join(dict.fromkeys(names))}: at most {limit:,} positions",
              color=style.CEILING_COLOR, linestyle="-.")


def _residuals(ax, n: np.ndarray, residual_pct: np.ndarray, color) -> None:
    """Residuals in %, on an axis scaled to the bulk of them (at most +-100%): a sample beyond it is drawn at
    the edge as a triangle pointing the way it went, so one stray pass does not flatten the rest."""
    limit = min(max(2.0, 1.5 * float(np.percentile(np.abs(residual_pct), 90))), 100.0)
    ax.axhline(0, color=color, linewidth=1.2)
    inside = np.abs(residual_pct) <= limit
    ax.scatter(n[inside], residual_pct[inside], color=color, s=10, alpha=0.55, edgecolor="none")
    for sign, marker in ((1, "^"), (-1, "v")):
        beyond = ~inside & (np.sign(residual_pct) == sign)
        if beyond.any():
            ax.scatter(n[beyond], np.full(beyond.sum(), sign * limit * 0.92), marker=marker, color="#222222", s=16,
                       label=f"beyond {limit:.0f}%")
    ax.set_ylim(-limit, limit)
    ax.set_ylabel("residual (%)")
    if not inside.all():
        ax.legend(loc="lower right", fontsize=7)


def latency_figure(series: FitSeries, samples, unstable: set[int], phase: str):
    """The report's latency figure of ``phase``: samples, fit, band, horizons, residuals."""
    curve = series.curve(phase, "latency_s")
    rows = samples[samples["phase"] == phase]
    n_low, n_high = curve.n_min / 1.25, extrapolated_limit(curve.n_max, series.max_positions) * 1.25
    fig = style.figure(7.5, 5.4)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    color = style.PHASE_COLORS[phase]
    n, central, low, high = draw_fit(top, series, phase, "latency_s", n_low, n_high, color=color,
                                     label=f"fit: {formula(curve)}, 95% band")
    steady = rows[~rows["n_ctx"].isin(unstable)]
    shaky = rows[rows["n_ctx"].isin(unstable)]
    top.scatter(steady["n_ctx"], steady["latency_s"], color=color, s=14, alpha=0.55, edgecolor="none",
                label=f"samples ({len(rows)})")
    if not shaky.empty:
        top.scatter(shaky["n_ctx"], shaky["latency_s"], marker="x", color="#222222", s=18, linewidths=1,
                    label="samples at unstable points")
    _horizons(top, series.cost_model.derived.get(phase, {}), n_low, n_high)
    _max_positions(top, [series], n_high)
    unit = style.log_axis(top, "y", *style.span([rows["latency_s"], central, low, high]), kind="s")  # the whole band
    top.set_ylabel(f"latency per pass ({unit}, log scale)")
    top.set_title(PHASE_TITLES[phase])
    style.legend(top)
    n_ctx = rows["n_ctx"].to_numpy()
    _residuals(bottom, n_ctx, 100 * (rows["latency_s"].to_numpy() / curve.predict(n_ctx) - 1), color)
    style.length_axis(bottom, n_low, n[-1] * 1.05)
    return fig


def _ratio_band(first: FitSeries, second: FitSeries, phase: str, metric: str, n: np.ndarray):
    a_curve, b_curve = first.curve(phase, metric), second.curve(phase, metric)
    a = curve_draws(a_curve, first.draws(phase, metric), n, first.slopes(phase, metric))
    b = curve_draws(b_curve, second.draws(phase, metric), n, second.slopes(phase, metric))
    ratio = b[independent_pairs(len(b))] / a  # independent fits: their draws pair independently
    low, high = np.percentile(ratio, (2.5, 97.5), axis=0)
    return b_curve.predict(n) / a_curve.predict(n), low, high


def comparison_latency_figure(first: FitSeries, second: FitSeries, phase: str):
    """``compare``'s latency figure of ``phase``: both fits with bands, and the second over the first."""
    curves = [s.curve(phase, "latency_s") for s in (first, second)]
    n_low = min(c.n_min for c in curves) / 1.25
    n_high = max(c.n_max for c in curves) * 1.25
    fig = style.figure(7.5, 5.4)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    drawn = [part for s in (first, second)  # each curve and its band
             for part in draw_fit(top, s, phase, "latency_s", n_low, n_high, label=s.label)[1:]]
    _max_positions(top, [first, second], n_high)
    unit = style.log_axis(top, "y", *style.span(drawn), kind="s")
    top.set_ylabel(f"latency per pass ({unit}, log scale)")
    top.set_title(PHASE_TITLES[phase])
    style.legend(top, band=True)
    both = (max(c.n_min for c in curves), min(c.n_max for c in curves))
    n = style.grid(n_low, min(s.reach(n_high) for s in (first, second)))
    ratio, low, high = _ratio_band(first, second, phase, "latency_s", n)
    color = second.color
    bottom.fill_between(n, low, high, color=color, alpha=style.BAND_ALPHA, linewidth=0)
    inside = (n >= both[0]) & (n <= both[1])
    bottom.plot(np.where(inside, n, np.nan), ratio, color=color, linewidth=1.8)
    bottom.plot(np.where(inside, np.nan, n), ratio, color=color, linewidth=1.4, linestyle=style.EXTRAPOLATED)
    bottom.axhline(1, color=first.color, linewidth=1)
    style.log_axis(bottom, "y", *style.span([low, high, [1.0]], pad=1.1), kind=None)
    bottom.set_ylabel(f"{second.label} / {first.label}" if len(first.label + second.label) < 24 else "second / first")
    style.length_axis(bottom, n_low, n_high)
    return fig
