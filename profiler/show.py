"""``python -m profiler show FIT``: a cost model's curves and derived figures, as tables."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from profiler.cost_model import CostModel


def _interval(value: float, low: float, high: float) -> str:
    return f"{value:.4g} [{low:.3g}, {high:.3g}]"


def print_cost_model(console: Console, cm: CostModel, title: str) -> None:
    model = cm.model
    weights = "random weights" if model["random_weights"] else "trained weights"
    console.print(f"[bold]{model['name']}[/] ({model['params'] / 1e6:.1f}M parameters, {model['dtype']}, {weights}) "
                  f"on {cm.document['hardware_slug']}")
    table = Table(title=title, title_justify="left")
    for name in ("phase", "metric", "form", "coefficients (95% CI)", "R²", "held-out MAPE", "domain (tokens)"):
        table.add_column(name, justify="left" if name in ("phase", "metric", "form", "coefficients (95% CI)") else "right")
    for phase, metrics in cm.curves.items():
        for metric, curve in metrics.items():
            coefficients = ", ".join(f"{name}={_interval(v, lo, hi)}"
                                     for name, v, (lo, hi) in zip(curve.form.params, curve.theta, curve.ci95))
            mape = "-" if curve.lolo_mape is None else f"{curve.lolo_mape:.1%}"
            table.add_row(phase, f"{metric} ({curve.unit})", curve.form.formula, coefficients, f"{curve.r2:.4f}", mape,
                          f"{curve.n_min}-{curve.n_max}")
    console.print(table)
    for phase, derived in cm.derived.items():
        line = (f"{phase}: per-call overhead {derived['overhead_s'] * 1e3:.2f} ms, "
                f"{derived['cost_per_token_s'] * 1e3:.4f} ms per token")
        for share, horizon in derived.get("linearity_horizon", {}).items():
            if horizon["n_ctx"] is None:
                line += f"; quadratic term never {share} (linear)"
            else:
                where = "" if horizon["within_measured_range"] else " (beyond the measured range)"
                line += f"; quadratic term {share} of the cost at n={horizon['n_ctx']:,.0f}{where}"
        console.print(line)
