"""The extend surface: what one pass appending ``s`` new tokens to ``c`` cached ones costs, and what the cache saves.

Left: seconds per pass against ``s`` (log-log) at a few cached lengths ``c``: ``c = 0`` (the
prefill, in the prefill's colour) and up to ``CONTEXTS`` of the cached lengths the run extended
(shortest, middle, longest; one shade of the extend colour each, darker longer). Lines are the
fitted surface ``T(c, s)`` (``profiler.costmodel.extend``) with its 95% band, dashed outside the
measured domain, drawn as far as the model's positions allow (``c + s`` at most its maximum);
points are the timed passes at that ``c``: prefills at ``c = 0`` (``s = n``), extend passes, and
decode steps at ``s = 1``.

Right: the share of the first pass's time a cached prefix saves, over ``(c, s)``: a call reading
``c + s`` tokens whose first ``c`` are cached pays ``extend(c, s)`` where an uncached one pays a
prefill of ``c + s`` (``CostModel.call(c + s, 1, cached=c)`` against ``call(c + s, 1)``: exactly
what pricing uses). White where ``c + s`` passes the model's positions; dotted, the measured
domain's edge; dots, the passes timed on a cache.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from profiler.costmodel.cost_model import CostModel, ExtrapolationWarning
from profiler.report import style
from profiler.report.uncertainty import surface_band
from profiler.report.units import tick

CONTEXTS = 3
SPREAD = 4  # the shown cached lengths differ by this factor at least
MAP_POINTS = 64  # per axis of the saving's map
EXTEND_PHASES = ("prefill", "decode", "extend")


def extend_samples(samples: pd.DataFrame) -> pd.DataFrame:
    """The batch-1 passes the extend surface is fitted on: prefills, decode steps and extend passes."""
    return samples[samples["phase"].isin(EXTEND_PHASES)]


def shown_contexts(samples: pd.DataFrame) -> list[int]:
    """Up to ``CONTEXTS`` of the cached lengths extend passes were timed at, among those with passes of several
    sizes ``s`` where there are any: the longest, then each next at most a ``SPREAD``-th of the one before (a
    short cache's passes lie on the prefill's; the cache shows at the longest), ascending."""
    rows = samples[samples["phase"] == "extend"]
    sizes = rows.groupby("n_cached")["n_new"].nunique()
    contexts = sorted((int(c) for c in (sizes.index[sizes > 1] if (sizes > 1).any() else sizes.index)), reverse=True)
    shown: list[int] = []
    for c in contexts:
        if len(shown) < CONTEXTS and (not shown or c * SPREAD <= shown[-1]):
            shown.append(c)
    return shown[::-1]


def positions_limit(cost_model: CostModel, max_positions: int | None) -> int:
    """The most positions ``c + s`` the figure draws: the model's maximum, else the most a pass measured."""
    return int(max_positions or cost_model.extend_surface().positions_max)


def savings(cost_model: CostModel, c, s) -> np.ndarray:
    """The share of a call's first pass saved by ``c`` cached tokens out of ``c + s``: ``1 - call(c + s, 1,
    cached=c) / call(c + s, 1)`` (``c >= 1``; arrays broadcast), extrapolated where it must be, silently."""
    c, s = np.broadcast_arrays(np.asarray(c, dtype=float), np.asarray(s, dtype=float))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExtrapolationWarning)
        return 1 - cost_model.call(c + s, 1, cached=c) / cost_model.call(c + s, 1)


def _passes_panel(ax, cost_model: CostModel, samples: pd.DataFrame, limit: int) -> None:
    surface = cost_model.extend_surface()
    contexts = [0, *shown_contexts(samples)]
    colours = [style.PHASE_COLORS["prefill"], *style.shades(style.PHASE_COLORS["extend"], len(contexts) - 1)]
    drawn = []
    for c, colour in zip(contexts, colours):
        at = samples[samples["n_cached"] == c]
        ax.scatter(at["n_new"], at["latency_s"], color=colour, s=14, alpha=0.6, edgecolor="none")
        s = np.unique(np.geomspace(1, max(limit - c, 1), 96).round())
        central = surface.predict(c, s)
        low, high = surface_band(surface, c, s)
        inside = np.array([not surface.outside(c, one) for one in s])
        ax.fill_between(s, low, high, color=colour, alpha=style.BAND_ALPHA, linewidth=0)
        ax.plot(s, np.where(inside, central, np.nan), color=colour, linewidth=1.8,
                label="c = 0 (prefill)" if c == 0 else f"c = {c:,}")
        if not inside.all():
            ax.plot(s, np.where(inside, np.nan, central), color=colour, linewidth=1.4, linestyle=style.EXTRAPOLATED)
        drawn += [at["latency_s"], central, low, high]
    unit = style.log_axis(ax, "y", *style.span(drawn), kind="s")
    ax.set_ylabel(f"latency per pass ({unit}, log scale)")
    style.log_axis(ax, "x", 1, limit, None, powers_of_two=True, snap=False)
    ax.set_xlim(1 / 1.15, limit * 1.15)
    ax.set_xlabel("new tokens s appended by the pass (log scale)")
    ax.set_title("one pass: s new tokens on c cached")
    ax.legend(loc="upper left", title="cached tokens")


def _saving_panel(fig, ax, cost_model: CostModel, samples: pd.DataFrame, limit: int) -> bool:
    """The map of the saving (module doc); whether it has the measured domain's edge."""
    surface = cost_model.extend_surface()
    axis = np.unique(np.geomspace(1, max(limit - 1, 1), MAP_POINTS).round())
    c, s = np.meshgrid(axis, axis)  # rows: s, columns: c
    runs = c + s <= limit
    saved = np.where(runs, savings(cost_model, c, s), np.nan)
    low = min(0.0, float(np.nanmin(saved)))
    mesh = ax.pcolormesh(axis, axis, 100 * saved, cmap="viridis", vmin=100 * low, vmax=100, shading="nearest")
    colourbar = fig.colorbar(mesh, ax=ax)
    colourbar.set_label("first pass's time saved (%)")
    levels = [level for level in (50, 90) if np.nanmin(100 * saved) < level < np.nanmax(100 * saved)]
    if levels:
        contour = ax.contour(axis, axis, 100 * saved, levels=levels, colors="white", linewidths=1.2)
        ax.clabel(contour, fmt={level: f"{level}%" for level in levels}, fontsize=8)
    outside = np.vectorize(surface.outside)(c, s)
    edge = bool(outside[runs].any() and not outside[runs].all())
    if edge:
        ax.contour(axis, axis, np.where(runs, outside, np.nan).astype(float), levels=[0.5], colors="black",
                   linewidths=1.0, linestyles="dotted")
    cached = samples[samples["n_cached"] > 0][["n_cached", "n_new"]].drop_duplicates()
    ax.scatter(cached["n_cached"], cached["n_new"], color="black", s=8, edgecolor="none")
    for which in ("x", "y"):
        style.log_axis(ax, which, 1, axis[-1], None, powers_of_two=True, snap=False)
    ax.set_xlabel("cached tokens c (log scale)")
    ax.set_ylabel("new tokens s (log scale)")
    ax.set_title(f"saved by a cached prefix: 1 - extend(c, s) / prefill(c + s), c + s ≤ {tick(limit)}")
    return edge


def extend_figure(cost_model: CostModel, samples: pd.DataFrame, max_positions: int | None):
    """The report's extend figure (module doc). ``samples``: the run's batch-1 passes (an ``n_cached`` column);
    ``max_positions``: the model's (None when not recorded: then the most positions a pass measured)."""
    samples = extend_samples(samples)
    limit = positions_limit(cost_model, max_positions)
    fig = style.figure(12.5, 5.2)
    fig.set_layout_engine("constrained")  # the one layout that makes room for a legend outside the axes (set
    # before the colour bar, which a layout engine cannot be changed after)
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.1]})
    _passes_panel(left, cost_model, samples, limit)
    edge = _saving_panel(fig, right, cost_model, samples, limit)
    handles = [Line2D([], [], color="#555555", marker="o", linestyle="none", markersize=4),
               Line2D([], [], color="#555555", linewidth=1.8),
               Patch(color="#555555", alpha=style.BAND_ALPHA, linewidth=0),
               Line2D([], [], color="#555555", linestyle=style.EXTRAPOLATED, linewidth=1.4)]
    labels = ["timed pass (c = 0: prefills; s = 1: decode steps; right: on a cache)", "fitted extend surface",
              "shaded: 95% band", "dashed: outside the measured (c, s)"]
    if edge:
        handles.append(Line2D([], [], color="black", linestyle=":", linewidth=1.0))
        labels.append("dotted (right): the measured (c, s)'s edge")
    fig.legend(handles, labels, loc="outside lower center", ncols=3)
    return fig
