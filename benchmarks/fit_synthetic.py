"""Does the curve fit recover curves whose answer is known? Synthetic samples, many seeds.

What: for three latency-like curves on the default grid of a 1024-position model
(``profiler.measure.grid.default_lengths(1024)``: 15 lengths, 8..1024), 5 samples per length
(``--repeats``; about what a default gpt2 sweep gathers),

- affine     ``0.04 s + 8e-4 s/token * n``
- quadratic  ``0.04 s + 8e-4 s/token * n + 3e-7 s/token^2 * n^2``
- power      ``0.02 s + 1e-4 s/token^p * n^1.4``

each sample is the true value times ``(1 + 0.03 z)``, ``z`` standard normal (3%
multiplicative noise), and in each data set 3 samples, drawn at random, are multiplied by 3
(a pass caught by a slow spell). ``profiler.costmodel.fit.fit_curve(n, y, "s", seed=seed)`` fits every
data set, for seeds 0..S-1 per curve (the seed draws the data and the bootstrap). Reported
per curve: how often the true form was chosen by AICc; for each true coefficient, the
fraction of seeds whose 95% interval contains it (a seed that chose another form counts as
a miss: its intervals are of other coefficients); the worst and the median, over seeds, of
the mean relative error of the fitted curve against the true one over every integer ``n``
in 8..1024; the worst, over seeds, of the maximum
relative error of the fitted curve against the true one over every integer ``n`` in
8..1024, and the same for an oracle fit -- least squares of the true form, told which
samples are outliers and weighted by the true curve -- which is the noise floor: how close
these samples with 3% noise allow any fit to come; the median time of one ``fit_curve``
(bootstrap and held-out refits included).
Seed 0 is shown in full: coefficients with intervals, and every candidate's AICc.

Why: a cost curve is only worth exporting if, where the answer is known, the fit finds
the right shape, its intervals mean what they say and its predictions are close; the
outliers check that the robust loss keeps a slow spell from moving the curve.

Targets (from the issue): the true form is chosen in 90% of seeds or more; each true
coefficient lies inside its 95% interval in 80% of seeds or more (a calibrated 95%
interval covers about 95%; 20 or 40 seeds cannot tell 0.95 from 0.9, hence the margin);
the fitted curve is within 1% of the true one over the domain in every seed, judged by the
mean absolute relative error over its integer lengths. The largest error at any one length
is shown too, with the oracle's: 75 samples with 3% noise do not pin a curve to 1% at its
ends (even the oracle misses that in most seeds), so that reading of the issue's "within
1%" is out of any fit's reach; at 5 repeats even the oracle's mean error passes 1% in its
worst seed, at 10 neither does. Takes about 15-30 s on a
2-core CPU with the default 40 seeds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np
from scipy.optimize import least_squares

from profiler.costmodel.fit import fit_curve
from profiler.costmodel.forms import FORMS
from profiler.measure.grid import default_lengths

MAX_POSITIONS = 1024
DEFAULT_REPEATS = 5
NOISE = 0.03
OUTLIERS, OUTLIER_FACTOR = 3, 3.0
CURVES = {  # name: (true form, true coefficients in the form's order)
    "affine": ("affine", (0.04, 8e-4)),
    "quadratic": ("quadratic", (0.04, 8e-4, 3e-7)),
    "power": ("power", (0.02, 1e-4, 1.4)),
}
TARGET_FORM_SHARE, TARGET_COVERAGE, TARGET_ERROR = 0.90, 0.80, 0.01


def synthetic(form_name: str, theta, seed: int, repeats: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Samples ``(n, y)`` of the true curve with 3% multiplicative noise and 3 samples x3,
    and the indices of those 3 outliers."""
    rng = np.random.default_rng(seed)
    n = np.repeat(np.array(default_lengths(MAX_POSITIONS), dtype=float), repeats)
    y = FORMS[form_name].evaluate(theta, n) * (1 + NOISE * rng.standard_normal(n.size))
    outliers = rng.choice(n.size, size=OUTLIERS, replace=False)
    y[outliers] *= OUTLIER_FACTOR
    return n, y, outliers


def oracle_error(form_name: str, theta_true, n: np.ndarray, y: np.ndarray, outliers: np.ndarray,
                 domain: np.ndarray) -> tuple[float, float]:
    """The noise floor: the max and mean relative error over ``domain`` of a fit that knows what
    ``fit_curve`` cannot -- the true form, which samples are outliers (dropped), and the true
    curve's scale for its weights (least squares of ``(f(n) - y) / f_true(n)``)."""
    form = FORMS[form_name]
    keep = np.ones(n.size, dtype=bool)
    keep[outliers] = False
    n, y = n[keep], y[keep]
    scale = form.evaluate(theta_true, n)
    fit = least_squares(lambda t: (form.evaluate(t, n) - y) / scale, np.asarray(theta_true, dtype=float),
                        jac=lambda t: form.jacobian(t, n) / scale[:, None], method="lm")
    errors = np.abs(form.evaluate(fit.x, domain) / form.evaluate(theta_true, domain) - 1)
    return float(np.max(errors)), float(np.mean(errors))


def one_curve(name: str, seeds: int, repeats: int) -> dict:
    form_name, theta_true = CURVES[name]
    form = FORMS[form_name]
    domain = np.arange(min(default_lengths(MAX_POSITIONS)), MAX_POSITIONS + 1)
    truth = form.evaluate(theta_true, domain)
    chosen, covered, fit_s, first = [], np.zeros(len(theta_true)), [], None
    max_errors, mean_errors, floors, mean_floors = [], [], [], []
    for seed in range(seeds):
        n, y, outliers = synthetic(form_name, theta_true, seed, repeats)
        floor, mean_floor = oracle_error(form_name, theta_true, n, y, outliers, domain)
        floors.append(floor)
        mean_floors.append(mean_floor)
        started = time.perf_counter()
        curve = fit_curve(n, y, "s", seed=seed)
        fit_s.append(time.perf_counter() - started)
        chosen.append(curve.form.name)
        if curve.form.name == form_name:
            covered += (curve.ci95[:, 0] <= theta_true) & (np.asarray(theta_true) <= curve.ci95[:, 1])
        errors = np.abs(curve.predict(domain) / truth - 1)
        max_errors.append(float(np.max(errors)))
        mean_errors.append(float(np.mean(errors)))
        if seed == 0:
            first = curve
    return {
        "curve": name, "true_form": form_name, "true_params": dict(zip(form.params, theta_true)),
        "seeds": seeds, "chosen": {f: chosen.count(f) for f in sorted(set(chosen))},
        "right_form_share": chosen.count(form_name) / seeds,
        "coverage": {p: float(c / seeds) for p, c in zip(form.params, covered)},
        "mean_rel_error_worst": max(mean_errors), "mean_rel_error_median": statistics.median(mean_errors),
        "oracle_mean_rel_error_worst": max(mean_floors),
        "max_rel_error_worst": max(max_errors), "max_rel_error_median": statistics.median(max_errors),
        "oracle_max_rel_error_worst": max(floors), "oracle_max_rel_error_median": statistics.median(floors),
        "error_over_oracle_median": statistics.median(e / f for e, f in zip(max_errors, floors)),
        "fit_s_median": statistics.median(fit_s), "fit_s_max": max(fit_s),
        "seed0": first.as_dict(),
    }


def print_seed0(result: dict) -> None:
    fit = result["seed0"]
    print(f"\nseed 0, {result['curve']} (true {result['true_form']}): chose {fit['form']}, "
          f"R^2 {fit['r2']:.3f}, lolo MAPE {fit['lolo_mape']:.2%}")
    true = result["true_params"] if fit["form"] == result["true_form"] else {}
    print(f"  {'coef':<4} {'true':>11} {'fitted':>11} {'95% interval':>27} {'inside':>6}")
    for param, entry in fit["params"].items():
        lo, hi = entry["ci95"]
        t = true.get(param)
        inside = "-" if t is None else ("yes" if lo <= t <= hi else "NO")
        t_text = "-" if t is None else f"{t:.4g}"
        print(f"  {param:<4} {t_text:>11} {entry['value']:>11.4g}   [{lo:>11.4g}, {hi:>11.4g}] {inside:>6}")
    print("  AICc: " + ", ".join(f"{c['form']} {c['aicc']:.1f}" for c in fit["candidates"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=40, help="data sets per curve (default 40)")
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS,
                        help=f"samples per length (default {DEFAULT_REPEATS}, the sweep's minimum is 3)")
    args = parser.parse_args()

    started = time.perf_counter()
    results = [one_curve(name, args.seeds, args.repeats) for name in CURVES]
    elapsed_s = time.perf_counter() - started

    lengths = default_lengths(MAX_POSITIONS)
    print(f"fit_curve on synthetic samples: {len(lengths)} lengths {lengths[0]}..{lengths[-1]} x {args.repeats} repeats, "
          f"{NOISE:.0%} multiplicative noise, {OUTLIERS} samples x{OUTLIER_FACTOR:g}; {args.seeds} seeds per curve")
    print("max rel err: over n = 8..1024, worst / median over seeds; oracle: the same for a fit told the true "
          "form and the outliers (the noise floor)")
    print(f"{'curve':<10} {'right form':>10} {'chosen':<18} {'coverage of true coefs':<24} "
          f"{'mean rel err':>15} {'max rel err':>15} {'oracle max':>15} {'fit/oracle':>10} {'fit s':>6}")
    for r in results:
        chosen = ", ".join(f"{f} {k}" for f, k in r["chosen"].items())
        coverage = ", ".join(f"{p} {c:.2f}" for p, c in r["coverage"].items())
        mean_error = f"{r['mean_rel_error_worst']:.2%} / {r['mean_rel_error_median']:.2%}"
        error = f"{r['max_rel_error_worst']:.2%} / {r['max_rel_error_median']:.2%}"
        floor = f"{r['oracle_max_rel_error_worst']:.2%} / {r['oracle_max_rel_error_median']:.2%}"
        print(f"{r['curve']:<10} {r['right_form_share']:>10.0%} {chosen:<18} {coverage:<24} "
              f"{mean_error:>15} {error:>15} {floor:>15} {r['error_over_oracle_median']:>10.2f} {r['fit_s_median']:>6.3f}")
    for r in results:
        print_seed0(r)

    form_ok = all(r["right_form_share"] >= TARGET_FORM_SHARE for r in results)
    coverage_ok = all(c >= TARGET_COVERAGE for r in results for c in r["coverage"].values())
    error_ok = all(r["mean_rel_error_worst"] <= TARGET_ERROR for r in results)
    verdict = {True: "met", False: "NOT met"}
    print()
    shares = ", ".join(f"{r['curve']} {r['right_form_share']:.0%}" for r in results)
    print(f"right form chosen in >= {TARGET_FORM_SHARE:.0%} of seeds, every curve: {verdict[form_ok]} ({shares})")
    lowest = min((c, f"{r['curve']}.{p}") for r in results for p, c in r["coverage"].items())
    print(f"true coefficients inside their 95% intervals in >= {TARGET_COVERAGE:.0%} of seeds, every coefficient: "
          f"{verdict[coverage_ok]} (lowest {lowest[1]} {lowest[0]:.2f}; ~0.95 expected of a calibrated interval)")
    print(f"prediction within {TARGET_ERROR:.0%} of the true curve over n = {lengths[0]}..{MAX_POSITIONS} "
          f"(mean over the domain), every seed: {verdict[error_ok]} "
          f"(worst {max(r['mean_rel_error_worst'] for r in results):.2%}; the oracle's worst "
          f"{max(r['oracle_mean_rel_error_worst'] for r in results):.2%})")
    print(f"  for information, the largest error at any one n: worst seed "
          f"{max(r['max_rel_error_worst'] for r in results):.2%}, median seed "
          f"{max(r['max_rel_error_median'] for r in results):.2%}; the oracle's worst "
          f"{max(r['oracle_max_rel_error_worst'] for r in results):.2%}")
    print(f"{3 * args.seeds} fits in {elapsed_s:.1f} s")
    print(json.dumps({
        "benchmark": "fit_synthetic", "lengths": lengths, "repeats": args.repeats, "noise": NOISE,
        "outliers": OUTLIERS, "outlier_factor": OUTLIER_FACTOR, "seeds": args.seeds, "elapsed_s": elapsed_s,
        "curves": {r["curve"]: {key: value for key, value in r.items() if key != "curve"} for r in results},
        "targets": {"right_form_share": TARGET_FORM_SHARE, "coverage": TARGET_COVERAGE,
                    "mean_rel_error": TARGET_ERROR},
        "met": {"right_form": form_ok, "coverage": coverage_ok, "mean_rel_error": error_ok,
                "all": form_ok and coverage_ok and error_ok},
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
