"""One default ``python -m profiler run`` in this process, for the benchmarks that set two versions of the sweep side by
side: its held-out errors and what it measured.

``held_out_run(model)`` runs the CLI (``profiler.cli.main.main``, console output dropped, ``--out`` and ``--fits`` in a
temporary folder) with every other option at its default, and returns a row: the prefill lengths measured (of one
sequence), each latency curve's held-out error (leave-one-length-out MAPE) for prefill, decode and forward, the extend
surface's (None where none was fitted), the sweep's seconds (``run.json`` ``done.elapsed_s``) and its timed passes,
its reference passes (``references``) and their seconds (``references_s``), how far they were off their median on
average (``reference_spread``: the machine's own variation, the least a held-out error can be on that run; None with
too few), each latency curve's fitted value (s) at the lengths its phase measured of one sequence (``fitted_s``:
phase -> length -> seconds), and the samples themselves under ``"samples"``. A run that exits other than 0 ends the
benchmark.

A helper module of the scripts in ``benchmarks/`` (each runs with this folder first on its path).
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from pathlib import Path

from profiler.cli.main import main
from profiler.costmodel.fit_file import load_cost_model
from profiler.measure.disturbance import Disturbance
from profiler.measure.samples import read_samples

PHASES = ("prefill", "decode", "forward")
HELD_OUT = (*PHASES, "extend")


def held_out_run(model: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        code = main(["run", "--model", model, "--out", f"{tmp}/reports", "--fits", f"{tmp}/fits"])
        if code != 0:
            raise SystemExit(f"the run of {model} exited {code}")
        cost_model = load_cost_model(next(Path(tmp, "fits").glob(f"{model}--*.json")))
        folder = next(Path(tmp, "reports").glob(f"*/{model}"))
        samples = read_samples(folder / "samples.csv")
        done = json.loads((folder / "run.json").read_text())["done"]
    single = samples[(samples.phase == "prefill") & (samples.batch == 1)]
    disturbance = Disturbance.from_json(done["disturbance"])
    row = {"prefill_lengths": sorted(set(single.n_ctx.astype(int))), "elapsed_s": done["elapsed_s"],
           "passes": len(samples), "references": len(disturbance.reference_latencies_s),
           "references_s": sum(disturbance.reference_latencies_s), "reference_spread": disturbance.reference_spread}
    for phase in PHASES:
        row[f"{phase}_held_out"] = cost_model.curve(phase, "latency_s").lolo_mape
    row["fitted_s"] = {phase: {int(n): float(getattr(cost_model, phase)(n)) for n in
                               sorted(set(samples.n_ctx[(samples.phase == phase) & (samples.batch == 1)]))}
                       for phase in PHASES}
    row["extend_held_out"] = cost_model.extend_fit.held_out_mape if cost_model.has_extend else None
    return row | {"samples": samples}


def held_out_figures(row: dict) -> str:
    """``prefill 3.1%, decode ...``: the held-out errors of a ``held_out_run`` row."""
    return ", ".join(f"{name} {row[f'{name}_held_out']:.1%}" for name in HELD_OUT
                     if row[f"{name}_held_out"] is not None)
