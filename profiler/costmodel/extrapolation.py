"""How far a fitted curve may be trusted beyond its longest measured length, measured on its own samples.

The bootstrap's intervals (``profiler.costmodel.refit``) say how well the samples fix the chosen
form's coefficients; they assume the form holds wherever the curve is drawn. Beyond the measured
lengths nothing checks that: a CPU's caches, a kernel switching algorithm at some length, an
attention term too small to see at short lengths all bend the real curve away from any form
fitted below them. So the fit asks its own samples how far the form misses one octave out:

- refit the chosen form (jointly, as it was chosen) to each phase's lengths up to half its longest
  one (the last octave held out); where fewer than the form's coefficient count would remain, hold
  out the longest length alone; where even that leaves too few, the curve is not calibrated (None);
- at every held-out length, the log error of that refit against the median measured there,
  ``e = ln(median / prediction)``, over the log distance from the refit's longest length,
  ``d = ln(n / n_top)``;
- the slope's standard deviation is the least-squares scale through the origin,
  ``sqrt(sum e^2 / sum d^2)``: an error in the log-log slope of the curve beyond its data.

``profiler.costmodel.uncertainty`` draws that slope error, ``q ~ N(0, sd^2)``, with every draw of the
coefficients, and multiplies the drawn curve beyond ``n_max`` by ``(n / n_max)^q``: the band is the
bootstrap's where measured and opens as a cone in log-log beyond it, as wide as the form's miss one
octave out says. It errs wide: the held-out error includes the coefficients' own error, which the
bootstrap draws again. Exact curves (FLOPs) have a slope error of 0.
"""

from __future__ import annotations

import numpy as np

from profiler.costmodel.joint import JointForm
from profiler.costmodel.refit import solve


def _held_out(lengths: np.ndarray, coefficients: int) -> np.ndarray | None:
    """The longest of a phase's sorted distinct ``lengths`` to hold out: the last octave, else the longest
    alone, so that at least ``coefficients`` lengths stay; None if even one is too many."""
    for held in (lengths[lengths > lengths[-1] / 2], lengths[-1:]):
        if len(lengths) - len(held) >= coefficients:
            return held
    return None


def slope_sd(form: JointForm, n: np.ndarray, y: np.ndarray, theta: np.ndarray) -> float | None:
    """The standard deviation of the log-log slope error beyond the data (see the module doc); None when
    a phase has too few lengths to hold any out."""
    keep = np.ones(len(n), dtype=bool)
    held: list[tuple[int, np.ndarray]] = []
    for g in range(form.groups):
        mine = form.group == g
        out = _held_out(np.unique(n[mine]), len(form.base.params))
        if out is None:
            return None
        keep &= ~(mine & np.isin(n, out))
        held.append((g, out))
    refit = solve(form.subset(keep), n[keep], y[keep], start=theta).x
    errors, distances = [], []
    for g, lengths in held:
        mine = form.group == g
        top = float(np.max(n[mine & keep]))
        for length in lengths:
            observed = float(np.median(y[mine & (n == length)]))
            predicted = float(form.base.evaluate(form.of_phase(refit, g), length))
            errors.append(np.log(observed / max(predicted, 1e-300)))
            distances.append(np.log(length / top))
    return float(np.sqrt(np.sum(np.square(errors)) / np.sum(np.square(distances))))
