"""Drawing a fit's 95% call intervals and curve bands: vectorised, against the per-draw path it replaced.

What: a fit file (default the committed example, ``fits/example/gpt2--cpu-intel-xeon-processor-2t.json``,
schema 1.1: its draws use the design correlation) and the run beside it (its timed generate
calls). The work a report does with the draws (``profiler.costmodel.uncertainty``):

- draw: 1,000 coefficient vectors of every curve (``CallIntervals``);
- calls: the typical-call grid of the report and the run's timed generate calls, each with
  a KV cache and without (latency), with the cache in FLOPs and in peak memory: percentiles
  of the call priced with every draw;
- bands: every curve on the report's 200-length grid (to 4x the measured lengths), the
  latency curves also as tokens/s and FLOP/s (transformed draws).

Vectorised (as the report runs it), median of three; then once per draw, as the report did
before fit schema 1.2: the call priced by ``CostModel.call`` with one draw's coefficients at
a time (a copy of the cost model per draw), the curves evaluated draw by draw. The two must
agree to 1e-9. Prints a table, then one JSON line.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from profiler.costmodel.cost_model import CostModel, ExtrapolationWarning
from profiler.costmodel.fit_file import load_cost_model
from profiler.costmodel.uncertainty import PERCENTILES, CallIntervals, curve_draws
from profiler.report.calls import typical_grid

ROOT = Path(__file__).resolve().parent.parent
FIT = ROOT / "fits" / "example" / "gpt2--cpu-intel-xeon-processor-2t.json"
RUN = ROOT / "reports" / "example" / "cpu-intel-xeon-processor-2t" / "gpt2" / "run.json"
PRICINGS = ((True, "latency_s"), (False, "latency_s"), (True, "flops"), (True, "peak_mem_bytes"))
REPEATS = 3


def _band_lengths(cost_model: CostModel):
    """Each curve with the lengths its band is drawn at, and the transforms of it the report draws."""
    for phase, metrics in cost_model.curves.items():
        for metric, curve in metrics.items():
            n = np.geomspace(curve.n_min / 1.25, 4 * curve.n_max, 200)
            transforms = (None, lambda n, v: n / v, lambda n, v: 1e9 * n / v) if metric == "latency_s" else (None,)
            yield phase, metric, curve, n, transforms


def vectorised(cost_model: CostModel, calls: list[tuple[int, int]]) -> tuple[dict, list, list]:
    started = time.perf_counter()
    intervals = CallIntervals(cost_model)
    drawn_s = time.perf_counter() - started
    started = time.perf_counter()
    priced = [np.percentile(intervals.drawn(n_in, n_out, cache, metric), PERCENTILES)
              for n_in, n_out in calls for cache, metric in PRICINGS]
    calls_s = time.perf_counter() - started
    started = time.perf_counter()
    bands = []
    for phase, metric, curve, n, transforms in _band_lengths(cost_model):
        for transform in transforms:
            values = curve_draws(curve, intervals.draws[phase, metric], n)
            bands.append(np.percentile(values if transform is None else transform(n, values), PERCENTILES, axis=0))
    bands_s = time.perf_counter() - started
    return {"draw_s": drawn_s, "calls_s": calls_s, "bands_s": bands_s}, priced, bands


def per_draw(cost_model: CostModel, calls: list[tuple[int, int]]) -> tuple[dict, list, list]:
    """The same numbers one draw at a time (the draws themselves taken from ``CallIntervals``)."""
    draws = CallIntervals(cost_model).draws
    started = time.perf_counter()
    models = []
    for index in range(len(next(iter(draws.values())))):
        model = copy.copy(cost_model)
        model.curves = {phase: {metric: dataclasses.replace(curve, theta=draws[phase, metric][index])
                                for metric, curve in metrics.items()}
                        for phase, metrics in cost_model.curves.items()}
        models.append(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExtrapolationWarning)
        priced = [np.percentile([float(m.call(n_in, n_out, cache=cache, metric=metric)) for m in models], PERCENTILES)
                  for n_in, n_out in calls for cache, metric in PRICINGS]
    calls_s = time.perf_counter() - started
    started = time.perf_counter()
    bands = []
    for phase, metric, curve, n, transforms in _band_lengths(cost_model):
        for transform in transforms:
            values = np.array([curve.form.evaluate(theta, n) for theta in draws[phase, metric]])
            bands.append(np.percentile(values if transform is None else transform(n, values), PERCENTILES, axis=0))
    bands_s = time.perf_counter() - started
    return {"calls_s": calls_s, "bands_s": bands_s}, priced, bands


def main() -> int:
    fit = Path(sys.argv[1]) if len(sys.argv) > 1 else FIT
    run = Path(sys.argv[2]) if len(sys.argv) > 2 else RUN
    cost_model = load_cost_model(fit)
    timed = [(p["n_ctx"], p["n_new"]) for p in json.loads(run.read_text())["points"] if p["phase"] == "generate"] \
        if run.is_file() else []
    calls = typical_grid(cost_model.model.max_positions) + timed
    runs = [vectorised(cost_model, calls) for _ in range(REPEATS)]
    fast = {key: statistics.median(r[0][key] for r in runs) for key in runs[0][0]}
    slow, priced, bands = per_draw(cost_model, calls)
    agree = all(np.allclose(a, b, rtol=1e-9, atol=0) for a, b in zip(runs[0][1], priced)) and \
        all(np.allclose(a, b, rtol=1e-9, atol=0) for a, b in zip(runs[0][2], bands))
    fast_total, slow_total = sum(fast.values()), fast["draw_s"] + slow["calls_s"] + slow["bands_s"]
    print(f"{fit.name}: {len(calls)} calls x {len(PRICINGS)} pricings, {len(runs[0][2])} bands of 200 lengths, "
          "1,000 draws")
    print(f"{'what':<10} {'vectorised (s)':>15} {'per draw (s)':>13}")
    print(f"{'draw':<10} {fast['draw_s']:>15.4f} {'(same)':>13}")
    for key in ("calls_s", "bands_s"):
        print(f"{key[:-2]:<10} {fast[key]:>15.4f} {slow[key]:>13.3f}")
    print(f"{'total':<10} {fast_total:>15.4f} {slow_total:>13.3f}   agree to 1e-9: {agree}")
    print(json.dumps({"benchmark": "uncertainty_draws", "fit": str(fit), "calls": len(calls),
                      "pricings": len(PRICINGS), "bands": len(runs[0][2]), "vectorised_s": fast,
                      "per_draw_s": slow, "vectorised_total_s": fast_total, "per_draw_total_s": slow_total,
                      "agree": agree}))
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
