"""Latency per pass and tokens per second against the batch ``B``, at a few lengths, with the roofline.

One column per batched phase (prefill: ``B`` prompts of ``n`` tokens; decode: a step of ``B``
sequences with ``n`` tokens cached each), at up to ``LENGTHS`` of the lengths the run measured at
batches above 1 (shortest, middle, longest; one shade of the phase's colour each, darker longer).
Top: seconds per pass; bottom: tokens per second, ``B * n_new`` tokens a pass (``n`` for a prefill,
one per sequence for a decode step). Points are the timed passes (batch 1 included); lines the
fitted batch surface (``profiler.costmodel.surface``) with its 95% band, dashed outside the
measured (batch, length) domain; dotted, each measured point's roofline bound,
``max(FLOPs / peak, bytes / bandwidth)`` with the run's measured ceilings as the run computed it
for ``run.json`` (``profiler.measure.summary``; here the median latency times the share of the
roofline reached). A bound flat in ``B`` is memory-bound (the weights are read once whatever the
batch); one rising with ``B`` is compute-bound: where it turns is where batching stops being free.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from profiler.costmodel.cost_model import BATCH_PHASES, CostModel
from profiler.report import style
from profiler.report.uncertainty import surface_band

LENGTHS = 3
COLUMN_TITLES = {"prefill": "prefill: B prompts of n tokens", "decode": "decode: B sequences, n cached each"}


def batched_phases(samples: pd.DataFrame) -> list[str]:
    """The batched phases that ``samples`` (every batch) measured at a batch above 1."""
    return [phase for phase in BATCH_PHASES if ((samples["phase"] == phase) & (samples["batch"] > 1)).any()]


def shown_lengths(samples: pd.DataFrame, phase: str) -> list[int]:
    """Up to ``LENGTHS`` of the lengths ``phase`` was measured at with batches above 1: shortest, middle,
    longest."""
    lengths = np.unique(samples.loc[(samples["phase"] == phase) & (samples["batch"] > 1), "n_ctx"])
    return [int(n) for n in np.unique(lengths[np.linspace(0, len(lengths) - 1, min(len(lengths), LENGTHS))
                                              .round().astype(int)])]


def roofline_bound_s(points: pd.DataFrame) -> pd.Series:
    """Each run.json point's roofline bound in seconds: its median latency times the share of the roofline
    it reached (``profiler.measure.summary``: that share is the bound over the median)."""
    return points["median_latency_s"] * points["roofline_share"]


def _inside(surface, batches: np.ndarray, n: int) -> np.ndarray:
    return np.array([not surface.outside(b, n, n) for b in batches])


def _draw_surface(axes, surface, batches: np.ndarray, n: int, tokens_per_sequence: int, color) -> list:
    """The surface at length ``n`` over ``batches`` in both panels (band, solid inside the measured domain,
    dashed outside); the values drawn."""
    central = surface.predict(batches, n)
    low, high = surface_band(surface, batches, n)
    inside = _inside(surface, batches, n)
    drawn = []
    for ax, to_value in ((axes[0], lambda s: s), (axes[1], lambda s: batches * tokens_per_sequence / s)):
        values, band = to_value(central), (to_value(low), to_value(high))
        ax.fill_between(batches, *band, color=color, alpha=style.BAND_ALPHA, linewidth=0)
        ax.plot(batches, np.where(inside, values, np.nan), color=color, linewidth=1.8)
        if not inside.all():
            ax.plot(batches, np.where(inside, np.nan, values), color=color, linewidth=1.4,
                    linestyle=style.EXTRAPOLATED)
        drawn.append([values, *band])
    return drawn


def batch_figure(cost_model: CostModel, samples: pd.DataFrame, points: pd.DataFrame):
    """The report's batch figure. ``samples``: the run's prefill and decode passes of every batch (batch 1
    included; a ``batch`` column); ``points``: the run.json points of those passes (a ``batch`` column), for
    the roofline."""
    phases = batched_phases(samples)
    fig = style.figure(4.1 * len(phases) + 0.6, 7.4)
    axes = np.asarray(fig.subplots(2, len(phases), sharex="col")).reshape(2, len(phases))
    for column, phase in enumerate(phases):
        top, bottom = axes[:, column]
        rows = samples[samples["phase"] == phase]
        lengths = shown_lengths(samples, phase)
        b_max = int(rows["batch"].max())
        batches = np.geomspace(1, b_max, 64)
        drawn: dict[str, list] = {"top": [], "bottom": []}
        for n, color in zip(lengths, style.shades(style.PHASE_COLORS[phase], len(lengths))):
            at = rows[rows["n_ctx"] == n]
            tokens = int(at["n_new"].iloc[0])  # per sequence: n for a prefill, 1 for a decode step
            top.scatter(at["batch"], at["latency_s"], color=color, s=14, alpha=0.6, edgecolor="none",
                        label=f"n = {n:,}")
            bottom.scatter(at["batch"], at["batch"] * tokens / at["latency_s"], color=color, s=14, alpha=0.6,
                           edgecolor="none")
            drawn["top"].append(at["latency_s"])
            drawn["bottom"].append(at["batch"] * tokens / at["latency_s"])
            if phase in cost_model.surfaces:
                surface_top, surface_bottom = _draw_surface((top, bottom), cost_model.surfaces[phase], batches, n,
                                                            tokens, color)
                drawn["top"] += surface_top
                drawn["bottom"] += surface_bottom
            bound = points[(points["phase"] == phase) & (points["n_ctx"] == n)].sort_values("batch")
            if not bound.empty:
                bound_s = roofline_bound_s(bound)
                top.plot(bound["batch"], bound_s, color=color, linestyle=":", linewidth=1.3)
                bottom.plot(bound["batch"], bound["batch"] * tokens / bound_s, color=color, linestyle=":",
                            linewidth=1.3)
                drawn["top"].append(bound_s)
                drawn["bottom"].append(bound["batch"] * tokens / bound_s)
        unit = style.log_axis(top, "y", *style.span(drawn["top"]), kind="s")
        top.set_ylabel(f"latency per pass ({unit}, log scale)")
        top.set_title(COLUMN_TITLES[phase])
        top.legend(loc="upper left", title="length" if phase == "prefill" else "cached")
        unit = style.log_axis(bottom, "y", *style.span(drawn["bottom"]), kind="tokens/s")
        bottom.set_ylabel(f"throughput ({unit}, log scale)")
        style.log_axis(bottom, "x", 1, b_max, None, powers_of_two=True, snap=False)
        bottom.set_xlim(1 / 1.15, b_max * 1.15)
        bottom.set_xlabel("batch B (sequences per pass, log scale)")
    handles = [Line2D([], [], color="#555555", marker="o", linestyle="none", markersize=4),
               Line2D([], [], color="#555555", linewidth=1.8),
               Patch(color="#555555", alpha=style.BAND_ALPHA, linewidth=0),
               Line2D([], [], color="#555555", linestyle=style.EXTRAPOLATED, linewidth=1.4),
               Line2D([], [], color="#555555", linestyle=":", linewidth=1.3)]
    labels = ["timed pass", "fitted batch surface", "shaded: 95% band", "dashed: outside the measured (B, n)",
              "dotted: roofline bound of the pass"]
    fig.set_layout_engine("constrained")  # the one layout that makes room for a legend outside the axes
    fig.legend(handles, labels, loc="outside lower center", ncols=3)
    return fig
