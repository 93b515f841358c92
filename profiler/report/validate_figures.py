"""The validation figure of one exercise: measured against predicted, cost and ratio.

Left: each variant's cost along the varied parameter (log scale): the prediction as a line,
the measurement as markers -- for a stochastic exercise the measured runs' range as error
bars and the predicted 5-95% interval of the mean as a band. Right: the ratio
``optimistic / optimized``, predicted and measured, with 1 and both break-evens marked.
"""

from __future__ import annotations

from pathlib import Path

from profiler.lba.exercises import VARIANTS
from profiler.lba.validation_document import ValidationDocument
from profiler.report import style

COLOURS = {"optimistic": "#d62728", "optimized": "#1f77b4"}
PREDICTED, MEASURED = "#555555", "#2ca02c"


def _cost_panel(ax, document: ValidationDocument) -> None:
    for variant in VARIANTS:
        colour = COLOURS[variant]
        ax.plot(document.values(), [row.cost[variant] for row in document.rows], "-", color=colour,
                label=f"{variant}, predicted")
        intervals = [(row.value, *row.predicted_interval[variant]) for row in document.rows
                     if row.predicted_interval is not None]  # a stochastic run's values it reached
        if intervals:
            ax.fill_between(*zip(*intervals), color=colour, alpha=0.15, label="predicted 5-95% of the mean")
        measured = [(row.value, row.measured[variant], [run.latency_s for run in row.runs[variant]])
                    for row in document.rows if row.measured[variant] is not None]
        if not measured:
            continue
        xs, means, runs = zip(*measured)
        spread = [[m - min(r) for m, r in zip(means, runs)], [max(r) - m for m, r in zip(means, runs)]]
        ax.errorbar(xs, means, yerr=spread if document.stochastic else None, fmt="o", color=colour,
                    markerfacecolor="white", capsize=3, label=f"{variant}, measured")
    costs = [cost for row in document.rows for cost in row.cost.values()]
    costs += [run.latency_s for row in document.rows for runs in row.runs.values() for run in runs]
    costs += [bound for row in document.rows for pair in (row.predicted_interval or {}).values() for bound in pair]
    kind = document.unit if document.unit in ("s", "FLOPs", "bytes") else None  # m*token: plain numbers
    unit = style.log_axis(ax, "y", min(costs), max(costs), kind)
    ax.set_xlabel(document.vary)
    ax.set_ylabel(f"cost of a run ({unit or document.unit})")
    ax.legend(fontsize=8)


def _ratio_panel(ax, document: ValidationDocument) -> None:
    rows = document.rows
    ax.plot(document.values(), [row.ratio for row in rows], "-", color=PREDICTED, label="predicted")
    measured = [(row.value, row.measured_ratio) for row in rows if row.measured_ratio is not None]
    if measured:
        ax.plot(*zip(*measured), "o", color=MEASURED, markerfacecolor="white", label="measured")
    ax.axhline(1.0, color="black", linewidth=0.8)
    for value, which, colour, offset in ((document.breakeven, "predicted", PREDICTED, 6),
                                         (document.measured_breakeven, "measured", MEASURED, -22)):
        if value is not None:
            ax.axvline(value, color=colour, linestyle=":")
            ax.annotate(f"{which} break-even {document.vary} = {value:.3g}", (value, 1.0),
                        textcoords="offset points", xytext=(6, offset), fontsize=8, color=colour)
    ratios = [row.ratio for row in rows] + [ratio for _, ratio in measured]
    style.log_axis(ax, "y", min(*ratios, 0.9), max(*ratios, 1.1), None)
    ax.set_xlabel(document.vary)
    ax.set_ylabel("cost ratio: optimistic / optimized")
    ax.legend(fontsize=8)


def write_validation_figure(path: Path, document: ValidationDocument) -> None:
    """The figure of ``document`` in the house style (``profiler.report.style``), saved as the PNG ``path``."""
    with style.theme():
        fig = style.figure(12, 4.5)
        cost_ax, ratio_ax = fig.subplots(1, 2)
        _cost_panel(cost_ax, document)
        _ratio_panel(ratio_ax, document)
        fixed = ", ".join(f"{name}={value:g}" for name, value in document.params.items())
        fig.suptitle(f"{document.exercise} on {document.model} ({document.hardware_slug}): measured vs "
                     f"{document.pricing}\n{fixed}", fontsize=10)
        style.save(fig, path)
