"""The break-even figure of one exercise: the ratio along its main variable, and a 2-D map.

Left: ``optimistic / optimized`` against the main variable on a log scale, priced by the
fitted costs and by the paper's primitive, with 1 (break-even) and the fitted break-even
marked; in the report also by the fitted costs under a parallel schedule, in makespan (each
group of independent calls batched, ``profiler.lba.schedule``), with its own break-even. Right: the fitted ratio over two parameters as a colour map (log scale, centred on
1: blue where the decomposition wins, red where it loses), with the break-even contour and,
dotted, the boundary beyond which a call is longer than any the cost model measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from profiler.lba.breakeven_document import BreakevenDocument
from profiler.report import style
from profiler.report.saving import save_all
from profiler.report.units import tick

FITTED_COLOUR, PAPER_COLOUR, PARALLEL_COLOUR = "#1f77b4", "#7f7f7f", "#029e73"


def _mark_breakeven(ax, document: BreakevenDocument, colour: str, below: int) -> None:
    if document.breakeven is not None:
        ax.axvline(document.breakeven, color=colour, linestyle=":")
        ax.annotate(f"break-even {document.vary} = {document.breakeven:.3g}", (document.breakeven, 1.0),
                    textcoords="offset points", xytext=(6, below), fontsize=9, color=colour)


def _ratio_panel(ax, fitted: BreakevenDocument, paper: BreakevenDocument,
                 parallel: tuple[BreakevenDocument, str] | None) -> None:
    values = fitted.values()
    ax.plot(values, [row.ratio for row in fitted.rows], "o-", color=FITTED_COLOUR,
            label=f"fitted costs ({fitted.unit})" + (", sequential sum" if parallel else ""))
    drawn = [fitted, paper]
    if parallel:
        document, layout = parallel
        ax.plot(values, [row.ratio for row in document.rows], "^-", color=PARALLEL_COLOUR,
                label=f"fitted costs, parallel makespan ({layout})")
        drawn.append(document)
    ax.plot(values, [row.ratio for row in paper.rows], "s--", color=PAPER_COLOUR, label="paper's primitive m*n")
    ratios = [row.ratio for document in drawn for row in document.rows]
    style.log_axis(ax, "y", min(*ratios, 0.9), max(*ratios, 1.1), None)
    ax.axhline(1.0, color="black", linewidth=0.8)
    _mark_breakeven(ax, fitted, FITTED_COLOUR, -14)
    if parallel and parallel[0].breakeven != fitted.breakeven:
        _mark_breakeven(ax, parallel[0], PARALLEL_COLOUR, 6)
    ax.set_xlabel(fitted.vary)
    ax.set_ylabel("cost ratio: optimistic / optimized")
    ax.legend(loc="upper left", fontsize=9)


def _map_panel(fig, ax, ratio_map: dict) -> None:
    log_ratio = np.log10(ratio_map["ratio"])
    finite = log_ratio[np.isfinite(log_ratio)]
    norm = TwoSlopeNorm(vcenter=0.0, vmin=min(float(finite.min()), -1e-3), vmax=max(float(finite.max()), 1e-3))
    xs, ys = ratio_map["xs"], ratio_map["ys"]
    mesh = ax.pcolormesh(xs, ys, log_ratio, cmap="RdBu", norm=norm, shading="nearest")
    colourbar = fig.colorbar(mesh, ax=ax)
    decades = list(range(int(np.ceil(finite.min())), int(np.floor(finite.max())) + 1))
    ticks = decades[:: -(-len(decades) // 7)] if decades else [0.0]  # powers of ten inside the range, 7 at most
    colourbar.set_ticks(ticks, labels=[tick(10.0**t) for t in ticks])
    colourbar.set_label("ratio (above 1: the decomposition wins)")
    if finite.min() < 0 < finite.max():
        contour = ax.contour(xs, ys, log_ratio, levels=[0.0], colors="black", linewidths=1.5)
        ax.clabel(contour, fmt={0.0: "break-even"}, fontsize=8)
    if ratio_map["extrapolated"].any() and not ratio_map["extrapolated"].all():
        ax.contour(xs, ys, ratio_map["extrapolated"].astype(float), levels=[0.5], colors="black",
                   linewidths=1.0, linestyles="dotted")
    style.log_axis(ax, "y", float(ys.min()), float(ys.max()), None, powers_of_two=True, snap=False)
    ax.set_xlabel(ratio_map["x"])
    ax.set_ylabel(f"{ratio_map['y']} (tokens)")
    if not ratio_map.get("replayed", np.True_).all():  # prefix reuse: cells past the replay's work limit
        ax.set_title("blank: too many calls to replay through the prefix cache", fontsize=9)


def breakeven_figure(title: str, fitted: BreakevenDocument, paper: BreakevenDocument, ratio_map: dict,
                     parallel: tuple[BreakevenDocument, str] | None = None) -> Figure:
    """The ratio along the main variable (``fitted`` and ``paper`` are ``breakeven.sweep``
    documents over the same grid) and the fitted 2-D map (``breakeven.ratio_map``); with ``parallel``,
    (the fitted makespan's document over the same grid, its schedule in a few words), that curve too."""
    with style.theme():
        fig = style.figure(12, 4.8)
        left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.15]})
        _ratio_panel(left, fitted, paper, parallel)
        _map_panel(fig, right, ratio_map)
        fixed = ", ".join(f"{name}={value:g}" for name, value in fitted.params.items())
        fig.suptitle(f"{title}\n{fixed}" + ("; dotted: calls beyond the measured lengths"
                                            if ratio_map["extrapolated"].any() else ""), fontsize=10)
    return fig


def write_breakeven_figures(figures: Sequence[tuple[Path, str, BreakevenDocument, BreakevenDocument, dict]]) -> None:
    """``breakeven_figure(title, fitted, paper, ratio_map)`` of each (path, title, fitted, paper, ratio_map),
    made and saved as the PNG ``path``, together on every core (``profiler.report.saving.save_all``: every
    figure tried, then the first error raised)."""
    save_all([(partial(breakeven_figure, title, fitted, paper, ratio_map), path)
              for path, title, fitted, paper, ratio_map in figures])
