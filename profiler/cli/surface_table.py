"""The batch surfaces (schema 1.5) and the extend surface (1.6) of a cost model, as tables beside its curves
(``fit``, ``show``)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from profiler.costmodel.cost_model import BATCH_PHASES, CostModel


def _domain(rows) -> str:
    """``B 1, 2, 4, 8; n 8-1024`` when every batch spans the same lengths, else each batch's."""
    spans = {(int(n_min), int(n_max)) for _, n_min, n_max in rows}
    if len(spans) == 1:
        (n_min, n_max), = spans
        return f"B {', '.join(str(int(b)) for b, _, _ in rows)}; n {n_min}-{n_max}"
    return "; ".join(f"B {int(b)}: n {int(n_min)}-{int(n_max)}" for b, n_min, n_max in rows)


def _coefficients(fit) -> str:
    return ", ".join(f"{name}={v:.4g} [{lo:.3g}, {hi:.3g}]" for name, v, (lo, hi) in zip(fit.form.params, fit.theta,
                                                                                        fit.ci95))


def print_surfaces(console: Console, cm: CostModel) -> None:
    """Each surface's form, coefficients with intervals, R², held-out error over (B, n) and domain; and the
    phases measured at batches above 1 whose points fixed no surface."""
    if cm.surfaces:
        table = Table(title="batch surfaces: seconds of one pass of B sequences of n tokens "
                            "(n: prompt length, or tokens cached)", title_justify="left")
        for name in ("phase", "form", "formula", "coefficients (95% CI)", "R²", "held-out MAPE", "domain"):
            table.add_column(name, justify="right" if name in ("R²", "held-out MAPE") else "left")
        for phase, surface in cm.surfaces.items():
            table.add_row(phase, surface.form.name, escape(surface.form.formula), _coefficients(surface),
                          f"{surface.r2:.4f}",
                          f"{surface.held_out_mape:.1%} ({surface.held_out_points} points)", _domain(surface.domain))
        console.print(table)
        missing = [phase for phase in BATCH_PHASES if phase not in cm.surfaces]
        if missing:
            console.print(f"[yellow]no batched call is priced without a {' or '.join(missing)} surface")
        else:
            console.print(f"a batched call is priced without extrapolating up to a batch of {cm.max_batch}")
    for phase, why in cm.fit.source.get("surfaces_skipped", {}).items():
        console.print(f"[yellow]no {phase} batch surface: measured at {why}")


def print_extend(console: Console, cm: CostModel) -> None:
    """The extend surface's form, coefficients with intervals, R², held-out error over (c, s), domain and
    distance from the prefill and decode curves; or why the run's extend passes fixed none."""
    extend = cm.extend_fit
    if extend is not None:
        table = Table(title="extend surface: seconds of one pass appending s tokens to c cached ones "
                            "(a call with a cached prefix)", title_justify="left")
        for name in ("form", "formula", "coefficients (95% CI)", "R²", "held-out MAPE"):
            table.add_column(name, justify="right" if name in ("R²", "held-out MAPE") else "left")
        table.add_row(extend.form.name, escape(extend.form.formula), _coefficients(extend), f"{extend.r2:.4f}",
                      f"{extend.held_out_mape:.1%} ({extend.held_out_points} points)")
        console.print(table)
        console.print(f"extend measured at c 0-{extend.c_max} cached, s 1-{extend.s_max} appended, c + s <= "
                      f"{extend.positions_max} tokens; off the prefill curve by {extend.consistency['prefill']:.1%} "
                      f"at c = 0 and the decode curve by {extend.consistency['decode']:.1%} at s = 1 (mean absolute)")
    why = cm.fit.source.get("extend_skipped")
    if why:
        console.print(f"[yellow]no extend surface, so no price for a cached prefix: {why}")
