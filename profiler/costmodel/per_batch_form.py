"""The ``per-batch`` decode surface: each measured batch size's own per-pass cost, and one cost per cached token.

``a_B + b*B*n``: ``a_B`` seconds per pass at batch ``B`` (the weights read and the projections of ``B`` new
tokens), one coefficient per batch size measured (``a_1``, ``a_2``, ...); ``b`` seconds per cached token of
each sequence (its keys and values read, attended to), shared, as in the compute and roofline forms
(``profiler.costmodel.surface_forms``). Between two measured batch sizes ``a_B`` is linear in ``B``; beyond the
largest (below the smallest) it is that batch's ``a`` per sequence times ``B``, the cost of running the batch as
passes of the largest (smallest) size. Linear in its coefficients, so its fit has one optimum.

Why a decode form with no law in ``B``: a decode step's matrix products have ``B`` rows, and a CPU BLAS
chooses its kernel by the number of rows. With MKL 2024.2 on this project's 2-core AMD EPYC VM, a
768 x 3072 linear layer took 398, 871, 2,454 and 1,614 us at 1, 2, 4 and 8 rows (``benchmarks/batch.py``): a
matrix-vector product per row up to 4, then a matrix-product kernel that is cheaper at 8 than at 4. gpt2's
decode step follows it: linear in ``B`` up to 4, then flat or falling (73, 130, 207 and 217 ms at 8 cached
tokens in that run; 66, 106, 196 and 147 ms in a default ``run``). Neither the compute form (linear in ``B``)
nor the roofline (flat, then linear) can follow a cost that stops growing from 4 to 8 sequences, and a scheduler
that believes them prices 8 sequences at twice 4. A prefill's products have ``B*n`` rows, past that kernel choice
at every length of the grid, so it keeps the two forms.

A candidate only where the samples fix it with any one point held out (``fixes``): every batch size at two
lengths or more, or three batch sizes or more with one of them at two lengths (``b``). A batch measured at one
length has its ``a_B`` fixed by that point with ``b``; held out, its batch is not measured, and the refit is the
form over the other batches (``without_unmeasured``), which prices it as the others do (between them, or beyond
them as passes of the nearest): the held-out error says what an unmeasured batch size costs the form. Why not
every batch at two lengths: a default run often affords decode at 8 sequences on one context only, and the compute
form it would fall back on missed gpt2's measured step at 2 sequences by a third. It is the last resort
(``profiler.costmodel.surface.choose_form``): chosen only when its AICc is lower than the compute or roofline
form's by more than the margin, its extra coefficients weighed against the steps they explain; on a device where
batching is smooth it is not chosen.
"""

from __future__ import annotations

import re

import numpy as np

from profiler.costmodel.forms import NonNegative
from profiler.costmodel.power_sums import power_sum

NAME = "per-batch"
MAX_BATCHES = 32  # batch sizes a per-batch surface may have: its coefficients (and the fit's work) are bounded
_INTERCEPT = re.compile(r"^a_([1-9][0-9]{0,4})$")


def intercept_name(batch: int) -> str:
    return f"a_{batch}"


def batches_of(param_names) -> tuple[int, ...] | None:
    """The batch sizes a per-batch form's coefficient names say (``a_1``, ``a_2``, ..., then ``b``); None when
    they are not such names for two batch sizes or more, ascending and distinct."""
    names = list(param_names)
    if len(names) < 3 or names[-1] != "b":
        return None
    matches = [_INTERCEPT.match(name) for name in names[:-1]]
    if not all(matches):
        return None
    batches = tuple(int(m.group(1)) for m in matches)
    return batches if list(batches) == sorted(set(batches)) else None


def fixes(batch, n) -> bool:
    """Whether samples at ``(batch, n)`` fix a per-batch form with any one point held out: two batch sizes or
    more, at most ``MAX_BATCHES``, each measured at two lengths or more; or three or more, one of them at two
    lengths or more (module doc)."""
    points = np.unique(np.stack([np.asarray(batch, dtype=float), np.asarray(n, dtype=float)], axis=-1), axis=0)
    sizes, lengths = np.unique(points[:, 0], return_counts=True)
    if not 2 <= len(sizes) <= MAX_BATCHES:
        return False
    return bool(np.all(lengths >= 2)) or (len(sizes) >= 3 and bool(np.any(lengths >= 2)))


class PerBatchForm(NonNegative):
    """``a_B + b*B*n`` over points ``(B, n)`` (module doc), with what a surface form has (``params``, ``lower``,
    ``upper``, ``units``, ``evaluate``, ``jacobian``, ``initial``, ``starts``, ``steps_sum``)."""

    def __init__(self, batches):
        self.name, self.phase = NAME, "decode"
        self.batches = np.array(sorted(int(b) for b in batches), dtype=float)
        self.params = (*(intercept_name(int(b)) for b in self.batches), "b")
        self.index = {p: k for k, p in enumerate(self.params)}
        self.formula = f"a_B + b*B*n (a_B per batch measured: {', '.join(str(int(b)) for b in self.batches)})"

    def units(self) -> dict[str, str]:
        return {p: "s/token" if p == "b" else "s" for p in self.params}

    def without_unmeasured(self, x: np.ndarray, theta: np.ndarray) -> tuple[PerBatchForm, np.ndarray]:
        """The form over the batch sizes the points ``x`` (``(N, 2)``) measure, and ``theta``'s coefficients for
        it: this form and ``theta`` when they measure every one (a refit with one point held out: module doc)."""
        measured = np.unique(np.asarray(x, dtype=float)[:, 0])
        if len(measured) == len(self.batches):
            return self, theta
        kept = PerBatchForm(measured)
        return kept, np.asarray(theta, dtype=float)[[self.index[name] for name in kept.params]]

    def weights(self, batch) -> np.ndarray:
        """Each measured batch's share of ``a_B`` at ``batch`` (``(..., batches)``): linear between the two around
        it, ``B / B_end`` of the nearer end outside them."""
        batch = np.asarray(batch, dtype=float)
        sizes, count = self.batches, len(self.batches)
        upper = np.clip(np.searchsorted(sizes, batch, side="left"), 1, count - 1)
        lower = upper - 1
        share = np.clip((batch - sizes[lower]) / (sizes[upper] - sizes[lower]), 0.0, 1.0)
        columns = np.arange(count)
        weights = ((columns == lower[..., None]) * (1 - share)[..., None]
                   + (columns == upper[..., None]) * share[..., None])
        below, above = batch < sizes[0], batch > sizes[-1]
        weights = np.where(below[..., None], (columns == 0) * (batch / sizes[0])[..., None], weights)
        return np.where(above[..., None], (columns == count - 1) * (batch / sizes[-1])[..., None], weights)

    def _intercept(self, theta, batch):
        return np.sum(np.asarray(theta, dtype=float)[..., :-1] * self.weights(batch), axis=-1)

    def evaluate(self, theta, x):
        """Seconds of a pass at each point ``x`` (``(..., 2)``: B, n); ``theta``'s other axes broadcast against
        ``x``'s."""
        x = np.asarray(x, dtype=float)
        return self._intercept(theta, x[..., 0]) + np.asarray(theta, dtype=float)[..., -1] * x[..., 0] * x[..., 1]

    def jacobian(self, theta, x) -> np.ndarray:
        """d f / d theta at each point, shape (..., k): it does not depend on ``theta``."""
        x = np.asarray(x, dtype=float)
        shape = np.broadcast_shapes(np.shape(theta)[:-1], x.shape[:-1])
        columns = np.concatenate([self.weights(x[..., 0]), (x[..., 0] * x[..., 1])[..., None]], axis=-1)
        return np.broadcast_to(columns, (*shape, len(self.params)))

    def initial(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Relative least squares, clipped to the bounds."""
        basis = self.jacobian(np.zeros(len(self.params)), x) / y[:, None]
        solution, *_ = np.linalg.lstsq(basis, np.ones_like(y), rcond=None)
        return np.clip(solution, 0, None) + 1e-12 * np.max(y)

    def starts(self, x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
        return [self.initial(x, y)]

    def steps_sum(self, theta, batch, lo, hi):
        """``sum_{n=lo}^{hi} f(B, n)`` element-wise, in closed form; 0 for an empty range."""
        batch = np.asarray(batch, dtype=float)
        return (power_sum(lo, hi, 0) * self._intercept(theta, batch)
                + np.asarray(theta, dtype=float)[..., -1] * batch * power_sum(lo, hi, 1))
