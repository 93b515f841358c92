"""``python -m profiler show FIT``: a cost model's curves and derived figures, as tables.

A served model's fit (device ``endpoint``) says its weights are the server's own; one whose architecture is not
known here (schema 1.8: fitted from latency alone) has no parameter count and no FLOPs curves, and says so.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from profiler.cli.surface_table import print_extend, print_surfaces
from profiler.costmodel.cost_model import CostModel
from profiler.costmodel.family import FamilyCostModel
from profiler.report.facts import derived_lines


def _interval(value: float, low: float, high: float) -> str:
    return f"{value:.4g} [{low:.3g}, {high:.3g}]"


def print_cost_model(console: Console, cm: CostModel, title: str) -> None:
    model = cm.model
    served = cm.hardware.get("device") == "endpoint"
    weights = ("the server's own weights" if served else "random weights" if model.random_weights
               else "trained weights")
    size = "parameters not known here" if model.params is None else f"{model.params / 1e6:.1f}M parameters"
    console.print(f"[bold]{model.name}[/] ({size}, {model.dtype}, {weights}) on {cm.hardware_slug}"
                  + (f", serving {cm.hardware.get('served_model')} at {cm.hardware.get('endpoint')}" if served else ""))
    if cm.served_without_flops:
        console.print("[yellow]fitted from latency alone: the served model's architecture is not known here, so no "
                      "FLOPs curves (--config NAME on the run names a local config of its architecture)")
    table = Table(title=title, title_justify="left")
    for name in ("phase", "metric", "form", "coefficients (95% CI)", "R²", "held-out MAPE", "domain (tokens)"):
        left = name in ("phase", "metric", "form", "coefficients (95% CI)")
        table.add_column(name, justify="left" if left else "right")
    for phase, metrics in cm.curves.items():
        for metric, curve in metrics.items():
            coefficients = ", ".join(f"{name}={_interval(v, lo, hi)}"
                                     for name, v, (lo, hi) in zip(curve.form.params, curve.theta, curve.ci95))
            mape = "-" if curve.lolo_mape is None else f"{curve.lolo_mape:.1%}"
            table.add_row(phase, f"{metric} ({curve.unit})", curve.form.formula, coefficients, f"{curve.r2:.4f}", mape,
                          f"{curve.n_min}-{curve.n_max}")
    console.print(table)
    thinned = cm.fit.source.get("thinned", {})
    if thinned:
        console.print("[yellow]fitted on an even spread of fewer rows than measured (bounded work): " + ", ".join(
            f"{phase} {counts['fitted']:,} of {counts['rows']:,}" for phase, counts in thinned.items()))
    _print_joint_fits(console, cm)
    print_surfaces(console, cm)
    print_extend(console, cm)
    for line in derived_lines(cm, model.max_positions):
        console.print(line)


def _print_joint_fits(console: Console, cm: CostModel) -> None:
    """Which phases were fitted together (schema 1.4), and how far the latency bands open beyond the data."""
    together: dict[tuple, list[str]] = {}
    for metrics in cm.curves.values():
        for metric, curve in metrics.items():
            if curve.fitted_with:
                key = (tuple(curve.fitted_with["phases"]), tuple(curve.fitted_with["shared"]))
                together.setdefault(key, []).append(metric)
    for (phases, shared), metrics in together.items():
        console.print(f"{' and '.join(phases)} fitted together ({', '.join(dict.fromkeys(metrics))}): one form, "
                      "each its own a and b" + (f", {' and '.join(shared)} shared" if shared else ""))
    slopes = {phase: metrics["latency_s"].extrapolation_slope_sd for phase, metrics in cm.curves.items()
              if "latency_s" in metrics and metrics["latency_s"].extrapolation_slope_sd}
    if slopes:
        console.print("beyond the measured lengths, latency bands widen by a slope error (sd) of "
                      + ", ".join(f"{sd:.3f} ({phase})" for phase, sd in slopes.items())
                      + ": each draw times (n / n_max)^q")


def print_families(console: Console, cost_models: list[CostModel]) -> None:
    """For every two or more models of one architecture on one hardware and dtype, of two sizes or more: the size
    laws."""
    groups: dict[tuple, list[CostModel]] = {}
    for cm in cost_models:
        if cm.model.non_embedding_params is None:  # a served model of unknown architecture: no size to fit laws on
            continue
        key = (cm.model.model_type, cm.hardware_slug, cm.model.dtype)
        groups.setdefault(key, []).append(cm)
    for (model_type, hardware_slug, dtype), members in groups.items():
        if len({cm.model.non_embedding_params for cm in members}) >= 2:
            print_family(console, FamilyCostModel(members), f"{model_type} family on {hardware_slug} ({dtype})")


def print_family(console: Console, family: FamilyCostModel, title: str) -> None:
    names = ", ".join(f"{m.model.name} ({m.model.non_embedding_params / 1e6:.0f}M)" for m in family.members)
    table = Table(title=f"{title}: latency coefficient = k * m^e, m = non-embedding parameters; {names}",
                  title_justify="left")
    for name in ("phase", "overhead a (s)", "per token b (s/token)", "quadratic c (s/token^2)", "c vs layers*hidden"):
        table.add_column(name)
    for phase, laws in family.laws.items():
        cells = [f"{law.k:.3g} * m^{law.e:.3f}" if law.k else "0" for law in laws]
        by_shape = family.quadratic_vs_layers_x_hidden[phase]
        shape_cell = ("- (one L*d)" if by_shape is None else f"{by_shape.k:.3g} * (L*d)^{by_shape.e:.3f}" if by_shape.k
                      else "0")
        table.add_row(phase, *cells, shape_cell)
    console.print(table)
    for row in family.leave_one_out():
        console.print(f"left out {row['model']}: predicted per-token prefill cost off by "
                      f"{row['per_token_rel_error']:+.1%}, prefill at n={row['n_ctx']:.0f} off by "
                      f"{row['prefill_rel_error']:+.1%}, decode off by {row['decode_rel_error']:+.1%}")
