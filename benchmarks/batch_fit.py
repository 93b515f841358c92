"""How well do the batch surfaces fit a real run? Held-out error over (B, n) per phase, and each point.

What: ``python -m profiler run --model M --batch LIST`` (default gpt2 from ``models/``, batches
1,2,4,8, the run's own lengths and budget unless ``--lengths`` or ``--budget`` are given; ``--out``
and ``--fits`` in a temporary folder), as a subprocess, wall-clocked; or, with ``--run DIR``, a run
folder already written (its ``samples.csv``, ``run.json``, ``hardware.json``). Then the run is fitted
in this process (``profiler.costmodel.fit_run.fit_run``, timed) and, per batched phase (prefill,
decode):

- its surface: the form chosen and every candidate's AICc, the coefficients with 95% intervals, and
  the held-out error: each (B, n) point left out in turn, the surface refitted to the rest, the mean
  absolute percentage error of its prediction of the point's median (``profiler.costmodel.surface``);
- each (B, n) point: the samples, the measured median latency, the surface's prediction (fitted on
  every point) and the held-out one's error; at batch 1 also the single-sequence curve's prediction
  (what ``call`` prices with); and the predicted and measured latency per sequence against batch 1
  (what batching saves).

The load average before and after: the machine is shared, and other processes on its cores move
timings by more than the target (``--threads 1`` there). Last line: one JSON document.

Why (issue 14): a batched call is priced by the surfaces, so they must hold over (B, n), measured
points left out.

Target: held-out error 5% or less per phase. Exits non-zero only if the run failed or made no
surface, not when the target is missed.
"""

from __future__ import annotations

import argparse
import json
import sys

from fitted_run import fitted_run, run_arguments

from profiler.costmodel.cost_model import BATCH_PHASES, CostModel
from profiler.costmodel.fit_run import thinned
from profiler.costmodel.surface import held_out_errors

TARGET = 0.05


def _points(cm: CostModel, phase: str, rows) -> list[dict]:
    """Each measured (B, n) point of ``phase``: median, predictions, the held-out miss."""
    surface = cm.surface(phase)
    fitted = thinned(rows, point=("batch", "n_ctx", "n_new"))  # as fit_run fits them
    x = fitted[["batch", "n_ctx"]].to_numpy(dtype=float)
    y = fitted["latency_s"].to_numpy(dtype=float)
    held, errors = held_out_errors(surface.form, x, y, surface.theta)
    held_out = {(int(b), int(n)): float(e) for (b, n), e in zip(held, errors)}
    single = {int(n): float(m) for n, m in rows[rows["batch"] == 1].groupby("n_ctx")["latency_s"].median().items()}
    points = []
    for (batch, n), group in rows.groupby(["batch", "n_ctx"]):
        measured = float(group["latency_s"].median())
        predicted = float(surface.predict(batch, n))
        curve = float(cm.curve(phase, "latency_s").predict(n)) if batch == 1 else None
        points.append({
            "phase": phase, "batch": int(batch), "n": int(n), "samples": len(group), "measured_s": measured,
            "predicted_s": predicted, "error": predicted / measured - 1, "held_out_error": held_out.get((batch, n)),
            "curve_s": curve,
            "per_sequence_vs_batch_1": measured / batch / single[n] if n in single else None,
            "predicted_per_sequence_vs_batch_1": predicted / batch / float(surface.predict(1, n)),
        })
    return points


def _print_surface(cm: CostModel, phase: str, points: list[dict]) -> None:
    surface = cm.surface(phase)
    scores = ", ".join(f"{c['form']} {c['aicc']:.1f}" for c in surface.candidates)
    verdict = "within" if surface.held_out_mape <= TARGET else "MISSES"
    print(f"\n{phase}: {surface.form.name} surface, {surface.form.formula} (AICc: {scores})")
    print("  " + ", ".join(f"{name}={v:.4g} [{lo:.3g}, {hi:.3g}]"
                           for name, v, (lo, hi) in zip(surface.form.params, surface.theta, surface.ci95)))
    print(f"  held-out error over {surface.held_out_points} (B, n) points: {surface.held_out_mape:.2%} "
          f"({verdict} the {TARGET:.0%} target); R² {surface.r2:.4f}; {surface.samples} samples")
    print(f"  {'B':>3} {'n':>6} {'samples':>7} {'measured':>10} {'surface':>10} {'error':>7} {'held out':>8} "
          f"{'curve':>10} {'per seq vs B=1':>15} {'predicted':>9}")
    for p in points:
        held = "-" if p["held_out_error"] is None else f"{p['held_out_error']:.1%}"
        curve = "" if p["curve_s"] is None else f"{p['curve_s'] * 1e3:8.2f}ms"
        per_sequence = "-" if p["per_sequence_vs_batch_1"] is None else f"{p['per_sequence_vs_batch_1']:.3f}"
        print(f"  {p['batch']:>3} {p['n']:>6} {p['samples']:>7} {p['measured_s'] * 1e3:8.2f}ms "
              f"{p['predicted_s'] * 1e3:8.2f}ms {p['error']:+7.1%} {held:>8} {curve:>10} {per_sequence:>15} "
              f"{p['predicted_per_sequence_vs_batch_1']:>9.3f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    run_arguments(parser)
    parser.add_argument("--batch", default="1,2,4,8", help="the run's --batch")
    args = parser.parse_args(argv)
    run = fitted_run(args, parser, ["--batch", args.batch])
    if run is None:
        return 1
    fit, samples, folder, run_s, fit_s = run.fit, run.samples, run.folder, run.run_s, run.fit_s
    cm = CostModel(fit)
    print(run.headline())
    if not cm.surfaces:
        print("no batch surface: the run measured no batch above 1 " + json.dumps(fit.source.get("surfaces_skipped", {})))
        return 1
    points = []
    for phase in BATCH_PHASES:
        if phase in cm.surfaces:
            rows = samples[samples["phase"] == phase]
            points += _points(cm, phase, rows)
            _print_surface(cm, phase, [p for p in points if p["phase"] == phase])
    print(json.dumps({
        "model": fit.model.name, "hardware": fit.hardware_slug, "run": str(folder), "run_s": run_s, "fit_s": fit_s,
        "load_average": list(run.load_average), "target": TARGET,
        "surfaces": {phase: {"form": s.form.name, "held_out_mape": s.held_out_mape, "points": s.points,
                             "within_target": s.held_out_mape <= TARGET} for phase, s in cm.surfaces.items()},
        "points": points,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
