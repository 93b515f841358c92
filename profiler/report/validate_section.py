"""The report's validation section: what ``python -m profiler validate`` measured in this run's folder.

For each ``validate-<exercise>.json`` beside the report: per grid value, the predicted and
the measured cost of both variants with the prediction's error (predicted / measured - 1),
the predicted and measured ratio, and the two break-evens; its figure
(``validate-<exercise>.png``) is shown as it is. A report without validation files has no
such section.
"""

from __future__ import annotations

from profiler.lba.validation_document import ValidationDocument, ValidationRow
from profiler.report.units import format_cost
from profiler.lba.exercises import EXERCISES, VARIANTS
from profiler.report.document import Figure, ReportContext, Section, Table


def _breakeven(value, winner) -> str:
    if value is not None:
        return f"{value:.3g}"
    return f"none ({winner} throughout)" if winner else "none"


def _measured(row: ValidationRow, variant: str, unit: str) -> str:
    """Measured cost and the prediction's error; for a stochastic exercise, whether the mean over
    seeds lies in the predicted 5-95% interval, the error of pricing the calls actually made, and where those
    calls' prices lie among the simulated means."""
    measured = row.measured[variant]
    if measured is None:
        return "-"
    if row.predicted_interval is None:
        return f"{format_cost(measured, unit)} ({row.error[variant]:+.1%})"
    low, high = row.predicted_interval[variant]
    where = "inside" if low <= measured <= high else "outside"
    quantile = row.draw_quantile[variant]
    drawn = "" if quantile is None else f", their draw at percentile {100 * quantile:.1f} of the simulated means"
    return (f"{format_cost(measured, unit)}, {where} {format_cost(low, unit)} - {format_cost(high, unit)}; "
            f"calls made {row.error_given_calls[variant]:+.1%}{drawn}")


def _validation_blocks(document: ValidationDocument, folder) -> list:
    exercise = EXERCISES[document.exercise]
    fixed = ", ".join(f"{name}={value:g}" for name, value in document.params.items())
    targets = document.targets
    blocks = [
        f"{exercise.title.capitalize()} ({fixed}), {document.executed_by}: {targets.costs_met} of "
        f"{targets.costs_checked} costs on target ({targets.costs_unsteady} left out: the machine's speed "
        f"changed during the run); break-even predicted {_breakeven(document.breakeven, document.winner_throughout)}, "
        f"measured {_breakeven(document.measured_breakeven, document.measured_winner_throughout)}. "
        f"Fit: {document.fit}."]
    unit = document.unit
    rows = tuple(
        (f"{row.value:g}", *(cell for variant in VARIANTS
                             for cell in (format_cost(row.cost[variant], unit), _measured(row, variant, unit))),
         f"{row.ratio:.3g}", "-" if row.measured_ratio is None else f"{row.measured_ratio:.3g}")
        for row in document.rows)
    columns = (document.vary, "optimistic predicted", "measured (error)", "optimized predicted",
               "measured (error)", "ratio predicted", "measured")
    skipped = "; ".join(f"{s.value:g}" + (f" {s.variant} seed {s.seed}" if s.variant else "") + f": {s.reason}"
                        for s in document.skipped)
    note = "error: predicted / measured - 1" + (
        "; for seeded draws, the mean over seeds against the predicted 5-95% interval of that mean, and the "
        "error of pricing the calls the runs made" if document.stochastic else "") + "."
    blocks.append(Table(columns, rows, numeric=(True,) * len(columns),
                        note=note + (f" Skipped: {skipped}." if skipped else "")))
    figure = f"validate-{exercise.name}.png"
    if (folder / figure).is_file():
        blocks.append(Figure(figure, f"{exercise.title}: predicted and measured cost and ratio along "
                                     f"{document.vary}."))
    return blocks


def validation_sections(ctx: ReportContext) -> list[Section]:
    documents = [ValidationDocument.read(path) for path in sorted(ctx.folder.glob("validate-*.json"))]
    if not documents:
        return []
    blocks: list = ["Each exercise's programs run with this model for real (every call reads and writes exactly "
                    "the tokens the program states) and are timed whole, against the fitted cost model's "
                    "prediction (the validate command)."]
    for document in documents:
        blocks += _validation_blocks(document, ctx.folder)
    return [Section("Predictions checked against real runs", tuple(blocks))]
