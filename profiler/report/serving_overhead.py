"""The serving overhead of an endpoint run: the server's times against an in-process profile of the same model.

The in-process profile is a fit the user names (``report --in-process FIT``, ``run --endpoint ... --in-process
FIT``): a local run's fit (``python -m profiler run --model M``) of the model the endpoint run measured, made on
the machine that runs the server. Named, never looked for: only the user knows which machine serves the endpoint,
and a fit of the same model from another machine would give a wrong overhead without a word. ``load_in_process``
refuses, in one line, a fit of another model (the names must match: ``run --endpoint --config NAME`` names the
local model), an endpoint's own fit, and a fit without prefill and decode curves.

At each prompt length the endpoint measured, the first token's overhead is the median TTFT (the ``prefill`` rows)
less the in-process prefill curve at that length: the HTTP request, queueing, tokenising, the generation loop's
set-up and the first event's way back. At each context of its ``decode`` rows (a call's mean gap between tokens, at
the mean context of its steps: ``profiler.measure.endpoint.rows``), the per-token overhead is their median less the
in-process decode curve there: what the server adds to every token it streams. A length outside the in-process
curve's measured lengths is priced by the curve carried beyond them, and said so. The server's dtype and attention
cannot be seen from the client: the comparison assumes it runs the model as the in-process run did.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from profiler.costmodel.cost_model import CostModel
from profiler.costmodel.fit_file import load_cost_model
from profiler.errors import UserError
from profiler.measure.endpoint.endpoint_document import ENDPOINT_DEVICE
from profiler.report.units import quantity

PHASES = ("prefill", "decode")  # the first token against prefill, every later one against decode


@dataclass(frozen=True)
class OverheadRow:
    """At ``n_ctx`` tokens (the prompt's, or a decode step's context): the median of the endpoint's ``calls``
    times (seconds), the in-process curve there, and whether ``n_ctx`` lies inside that curve's measured lengths."""

    phase: str
    n_ctx: int
    calls: int
    endpoint_s: float
    in_process_s: float
    inside: bool

    @property
    def overhead_s(self) -> float:
        return self.endpoint_s - self.in_process_s


def load_in_process(path: Path, model_name: str) -> CostModel:
    """The fit at ``path`` as the in-process profile of ``model_name``; a one-line ``UserError`` otherwise."""
    cost_model = load_cost_model(Path(path))
    if cost_model.hardware.get("device") == ENDPOINT_DEVICE:
        raise UserError(f"--in-process {path}: the fit of an endpoint ({cost_model.hardware_slug}); give the fit of "
                        f"an in-process run (python -m profiler run --model {model_name})")
    if cost_model.model.name != model_name:
        raise UserError(f"--in-process {path}: a fit of {cost_model.model.name}, not of {model_name}, the endpoint "
                        "run's model (run --endpoint --config NAME names the local model it serves)")
    missing = [phase for phase in PHASES if "latency_s" not in cost_model.curves.get(phase, {})]
    if missing:
        raise UserError(f"--in-process {path}: no {' or '.join(missing)} latency curve in it")
    return cost_model


def serving_overhead(samples: pd.DataFrame, in_process: CostModel, phase: str) -> list[OverheadRow]:
    """Per length of ``phase``'s rows of the endpoint run's ``samples`` (one sequence), ascending."""
    curve = in_process.curve(phase, "latency_s")
    rows = samples[samples["phase"] == phase]
    return [OverheadRow(phase=phase, n_ctx=int(n_ctx), calls=len(group), endpoint_s=float(group.median()),
                        in_process_s=float(curve.predict(int(n_ctx))), inside=curve.in_domain(int(n_ctx)))
            for n_ctx, group in rows.groupby("n_ctx")["latency_s"]]


def overhead_summary(rows: list[OverheadRow]) -> str:
    """The median overhead over ``rows``' lengths, and its range."""
    overheads = [row.overhead_s for row in rows]
    return (f"{quantity(statistics.median(overheads), 's')} (from {quantity(min(overheads), 's')} to "
            f"{quantity(max(overheads), 's')} over {len(rows)} lengths)")
