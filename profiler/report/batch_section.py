"""The report's batch section: what a pass of several sequences costs, and what serving them together buys.

A run that measured batches (``batch`` above 1 in samples.csv) gets the batch figure
(``profiler.report.fig_batch``), a table of the fit's batch surfaces (form, coefficients with 95%
intervals, R^2, the held-out error over (B, n), the measured (B, n)), and in words what batching
buys at one measured length per phase, by the fit and as measured: decode tokens per second at the
largest batch against one sequence, and a batched prefill against as many prefills one after
another; and whether the fit saw a pass turn from memory-bound to compute-bound (or, for a per-batch surface,
each batch's own per-pass cost and the batch cheapest per sequence). A run without
batches gets one sentence saying how to measure them.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd

from profiler.costmodel import per_batch_form
from profiler.costmodel.cost_model import BATCH_PHASES, CostModel
from profiler.costmodel.surface import ChosenForm, SurfaceFit
from profiler.report.document import Bullets, ReportContext, Section, Table
from profiler.report.fig_batch import batch_figure, batched_phases, shown_lengths
from profiler.report.inputs import RunData
from profiler.report.units import quantity, scale, significant

TITLE = "Batches: several sequences in one pass"
NOT_MEASURED = ("This run timed passes of one sequence only, so this report cannot say what serving several at "
                "once costs: `python -m profiler run` measures batches of prefill and decode (its default grid, or "
                "--batch), and its fit prices groups of concurrent calls with them.")
_PER = {"a": "", "w": "", "d": "/sequence", "b": "/token", "c": "/token²"}


def _number(value: float) -> str:
    """Three significant digits; 0 for what rounds to nothing in the unit chosen (a coefficient at its bound)."""
    return significant(value) if abs(value) >= 5e-4 else "0"


def coefficients_text(surface: ChosenForm, per: dict[str, str] = _PER) -> str:
    """``a = 30.0 ms [29.1, 30.8]; d = 10.0 ms/sequence; ...; q = 4``: each coefficient of a batch surface (or
    the extend surface, with its own ``per``: what each coefficient is per) in the unit of the larger of its value
    and its interval's upper end, with its 95% interval where it is not a point."""
    parts = []
    for name, value, (low, high) in zip(surface.form.params, surface.theta, surface.ci95):
        factor, unit = (1.0, "") if name == "q" else scale(max(value, high), "s")
        low_text, high_text = _number(low / factor), _number(high / factor)
        text = f"{name} = {_number(value / factor)}{' ' + unit if unit else ''}{per.get(name, '')}"
        parts.append(text if low_text == high_text else f"{text} [{low_text}, {high_text}]")
    return "; ".join(parts)


def domain_text(surface: SurfaceFit) -> str:
    """The measured (B, n): ``B 1, 2, 4, 8 at n 8-1,024``, or each batch's lengths where they differ."""
    def lengths(lo: int, hi: int) -> str:
        return f"n {lo:,}" if lo == hi else f"n {lo:,}-{hi:,}"

    spans = {(int(lo), int(hi)) for _, lo, hi in surface.domain}
    if len(spans) == 1:
        (lo, hi), = spans
        return f"B {', '.join(str(int(b)) for b, _, _ in surface.domain)} at {lengths(lo, hi)}"
    return "; ".join(f"B {int(b)} at {lengths(int(lo), int(hi))}" for b, lo, hi in surface.domain)


def surfaces_table(cost_model: CostModel) -> Table:
    rows = tuple((phase, surface.form.name, surface.form.formula.replace("*", "·").replace("^2", "²"), coefficients_text(surface),
                  f"{surface.r2:.4f}", f"{surface.held_out_mape:.1%} ({surface.held_out_points:,} points)",
                  domain_text(surface))
                 for phase, surface in cost_model.surfaces.items())
    return Table(columns=("phase", "form", "formula", "coefficients [95%]", "R² (log)", "held-out error over (B, n)",
                          "measured"),
                 rows=rows, numeric=(False, False, False, False, True, True, False),
                 note="Seconds of one pass of B sequences of n tokens each (n: the prompt's length, or the tokens "
                      "cached). a: per pass; w: the weights read once per pass, whatever B; d: per sequence; b: per "
                      "token of each sequence; c: per token² of each (attention); q: how sharply the roofline form "
                      "turns from the weights' read to the work (1: they add, 16: the larger of the two); a_B: per "
                      "pass at batch B, the per-batch form's own for each batch measured (linear in B between two). "
                      "The compute form is kept unless the roofline's AICc is clearly lower, and the per-batch form "
                      "only where its AICc is clearly lower than both. Held-out error: each measured (B, n) "
                      "left out in turn and predicted by a refit (mean absolute percentage error).")


def _median_s(samples: pd.DataFrame, phase: str, batch: int, n: int) -> float:
    rows = samples[(samples["phase"] == phase) & (samples["batch"] == batch) & (samples["n_ctx"] == n)]
    return float(rows["latency_s"].median())


def _knee(phase: str, surface: SurfaceFit, n: int) -> str:
    """Where the fit turns from memory-bound to compute-bound at length ``n``, in words."""
    theta = dict(zip(surface.form.params, surface.theta))
    if surface.form.name == per_batch_form.NAME:
        return _per_batch(phase, surface)
    if surface.form.name != "roofline" or theta["w"] <= 0:
        return (f"The {phase} surface is the compute form: every term but the per-pass a grows with B, and no floor "
                "where reading the weights bounds a pass showed at these batches and lengths, so a batch shares only "
                "the overhead a.")
    work_per_sequence = theta["d"] + (theta.get("c", 0.0) * n**2 + theta["b"] * n if phase == "prefill" else 0.0)
    knee = theta["w"] / work_per_sequence
    where = (f"about B = {significant(knee, 2)}" if knee >= 1 else "below B = 1 (compute-bound throughout)")
    return (f"The {phase} surface is the roofline form: reading the weights takes w = "
            f"{quantity(theta['w'], 's')} a pass whatever B; at n = {n:,} the sequences' work reaches it at "
            f"{where}: below that a larger batch is nearly free (memory-bound), above it each sequence adds its own "
            "work (compute-bound).")


def _per_batch(phase: str, surface: SurfaceFit) -> str:
    """The per-batch form's per-pass costs, in words, and the batch that costs least a sequence."""
    batches = surface.form.batches.astype(int)
    per_pass = surface.theta[:len(batches)]
    cheapest = int(np.argmin(per_pass / batches))
    costs = ", ".join(f"{quantity(a, 's')} at B = {b}" for b, a in zip(batches, per_pass))
    return (f"The {phase} surface is the per-batch form: a pass's own cost at each batch measured ({costs}) follows no "
            "law in B, as where the matrix library picks its kernel by the number of rows a pass has (a CPU's BLAS: "
            "one matrix-vector product per row up to a few rows, then a matrix product), so a larger batch can cost "
            f"less than a smaller one. Per sequence the cheapest is B = {batches[cheapest]} "
            f"({quantity(per_pass[cheapest] / batches[cheapest], 's')} a sequence); between measured batches a pass "
            "is priced linearly in B, beyond the largest as passes of that size.")


def _buys(cost_model: CostModel, samples: pd.DataFrame, phase: str) -> list[str]:
    """What the largest batch measured buys over one sequence at the middle shown length, fitted and measured."""
    rows = samples[samples["phase"] == phase]
    batch = int(rows["batch"].max())
    lengths = [n for n in shown_lengths(samples, phase)
               if {1, batch} <= set(rows.loc[rows["n_ctx"] == n, "batch"])]
    if not lengths:
        return []
    n = lengths[len(lengths) // 2]
    fitted = {b: float(cost_model.batch_pass(phase, b, n)) for b in (1, batch)} \
        if phase in cost_model.surfaces else None
    measured = {b: _median_s(samples, phase, b, n) for b in (1, batch)}

    def gain(latency_s: dict) -> float:  # throughput of B sequences in one pass over one at a time
        return batch * latency_s[1] / latency_s[batch]

    by_fit = f"{gain(fitted):.2f}x by the fit, " if fitted else ""
    if phase == "decode":
        text = (f"Decode with {n:,} tokens cached: a step of {batch} sequences gives {by_fit}{gain(measured):.2f}x "
                f"measured the tokens per second of one sequence ({batch / measured[batch]:,.0f} against "
                f"{1 / measured[1]:,.0f} tokens/s measured).")
    else:
        text = (f"Prefill of {n:,} tokens: {batch} prompts in one pass take {quantity(measured[batch], 's')} "
                f"measured, against {quantity(batch * measured[1], 's')} for {batch} prefills one after another: "
                f"{by_fit}{gain(measured):.2f}x measured the throughput.")
    items = [text]
    if phase in cost_model.surfaces:
        items.append(_knee(phase, cost_model.surfaces[phase], n))
    return items


def batch_section(ctx: ReportContext, data: RunData) -> Section:
    """The section (see the module doc): the figure, the surfaces and what batching buys; or one sentence."""
    if data.batch_samples.empty:
        return Section(TITLE, (NOT_MEASURED,))
    cost_model = ctx.cost_model
    single = data.samples[data.samples["phase"].isin(BATCH_PHASES)]
    samples = pd.concat([single, data.batch_samples])
    points = pd.concat([data.points, data.batch_points])
    phases = batched_phases(samples)
    batches = sorted(int(b) for b in np.unique(samples["batch"]))
    blocks: list = [
        (f"Passes of B sequences at once, timed at B = {', '.join(map(str, batches))}: a prefill of B prompts of n "
         "tokens each, and a decode step of B sequences with n tokens cached each. Serving several inputs together "
         "runs them this way; the break-even section prices the programs' groups of independent calls with it."),
        ctx.save_figure(partial(batch_figure, cost_model, samples, points), "batch",
                        "Latency per pass (top) and tokens per second (bottom) against the batch B at a few lengths: "
                        "timed passes, the fitted batch surface with its 95% band, and each pass's roofline bound "
                        "(dotted; flat in B while the weights' read bounds it).")]
    if cost_model.surfaces:
        blocks.append(surfaces_table(cost_model))
        blocks.append(f"A group of concurrent calls is priced with these surfaces up to B = {cost_model.max_batch} "
                      "without extrapolating.")
    else:
        skipped = "; ".join(f"{phase} measured at {why}" for phase, why
                            in cost_model.fit.source.get("surfaces_skipped", {}).items())
        blocks.append("The fit has no batch surfaces" + (f" ({skipped})" if skipped else "") + ": refit the run "
                      f"with `python -m profiler fit {data.folder / 'samples.csv'}`, or measure more batches and "
                      "lengths; until then a batch is priced as its calls one after another.")
    items = [item for phase in phases for item in _buys(cost_model, samples, phase)]
    if items:
        blocks.append(Bullets(tuple(items)))
    return Section(TITLE, tuple(blocks))
