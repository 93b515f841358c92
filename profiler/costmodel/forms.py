"""Cost-curve forms: each declares its terms, and evaluates, prints and sums itself.

``n`` is a context length in tokens; every coefficient is non-negative (no negative
per-call or per-token cost), ``p`` lies in [0.2, 3]:

- ``affine``     ``a + b n``
- ``quadratic``  ``a + b n + c n^2``   (Def. 2.2 of the paper is ``c = 0``)
- ``power``      ``a + b n^p``

Which forms compete depends on what is fitted: latency and FLOPs choose among all three
(``CURVE_FORMS``), peak memory between the two polynomials, whose terms it is made of
(``MEMORY_FORMS``). A phase's latency and FLOPs prefer the polynomial made of its FLOP terms
(``STRUCTURED_FORMS``) unless another form fits clearly better (``profiler.costmodel.fit``).

``sum_over(theta, lo, hi)`` is ``sum_{n=lo}^{hi} f(n)``: closed form for the polynomial
forms, and for the power form ``profiler.costmodel.power_sums`` (an exact table, then Euler-Maclaurin;
relative error below 1e-13); neither loops over ``n``, so a range may be 10^6 long and an
array of ranges is summed at once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from profiler.costmodel.power_sums import power_sum, sum_of_powers


class NonNegative:
    """The bounds of a form whose named coefficients (``params``) are each 0 or more: what a fit
    (``profiler.costmodel.refit``) reads of any form, a curve's or a surface's."""

    params: tuple[str, ...]

    @property
    def lower(self) -> np.ndarray:
        return np.zeros(len(self.params))

    @property
    def upper(self) -> np.ndarray:
        return np.full(len(self.params), np.inf)


class Form(NonNegative, ABC):
    """A curve ``f(theta, n)`` with named, non-negative coefficients."""

    name: str
    params: tuple[str, ...]
    formula: str

    @abstractmethod
    def evaluate(self, theta, n):
        """The curve at ``n`` (scalar or array). ``theta`` holds the coefficients on its last axis;
        its other axes broadcast against ``n``'s: a (B, 1, k) stack of curves at N lengths gives (B, N)."""

    @abstractmethod
    def jacobian(self, theta, n) -> np.ndarray:
        """d f / d theta at each ``n``, broadcast as in ``evaluate``: shape (len(n), k) for one curve."""

    @abstractmethod
    def initial(self, n: np.ndarray, y: np.ndarray) -> np.ndarray:
        """A starting point for the fit from the samples."""

    @abstractmethod
    def sum_over(self, theta, lo, hi):
        """``sum_{n=lo}^{hi} f(n)``, element-wise over arrays of ranges; 0 for an empty range."""

    @abstractmethod
    def describe(self, theta, unit: str) -> str:
        """The curve with its values and units, e.g. ``0.041 s + 0.00083 s/token * n``."""

    @abstractmethod
    def terms(self, theta) -> list[tuple[np.ndarray, np.ndarray]]:
        """The curve as a sum of ``coefficient * n^exponent``: (coefficient, exponent) pairs, each over
        ``theta``'s other axes (a (D, k) stack of curves gives arrays of D)."""


class Polynomial(Form):
    """``sum_j theta_j n^j`` for j = 0..degree."""

    def __init__(self, name: str, degree: int):
        self.name, self.degree = name, degree
        self.params = ("a", "b", "c")[: degree + 1]
        self.formula = " + ".join(("a", "b*n", "c*n^2")[: degree + 1])

    def _basis(self, n) -> np.ndarray:
        n = np.asarray(n, dtype=float)
        return np.stack([n**j for j in range(self.degree + 1)], axis=-1)

    def evaluate(self, theta, n):
        return np.sum(self._basis(n) * np.asarray(theta, dtype=float), axis=-1)

    def jacobian(self, theta, n) -> np.ndarray:
        basis = self._basis(n)
        return np.broadcast_to(basis, np.broadcast_shapes(basis.shape, np.shape(theta)))

    def initial(self, n, y) -> np.ndarray:
        basis = self._basis(n) / y[:, None]  # relative weighting, as in the fit
        theta, *_ = np.linalg.lstsq(basis, np.ones_like(y), rcond=None)
        return np.clip(theta, 0, None) + 1e-12 * np.max(y)

    def sum_over(self, theta, lo, hi):
        return sum(t * power_sum(lo, hi, j) for j, t in enumerate(np.asarray(theta, dtype=float)))

    def terms(self, theta) -> list[tuple[np.ndarray, np.ndarray]]:
        theta = np.asarray(theta, dtype=float)
        return [(theta[..., j], np.full(theta.shape[:-1], float(j))) for j in range(self.degree + 1)]

    def describe(self, theta, unit: str) -> str:
        units = (unit, f"{unit}/token", f"{unit}/token^2")
        terms = [f"{t:.4g} {u}" + ("" if j == 0 else " * n" if j == 1 else " * n^2")
                 for j, (t, u) in enumerate(zip(theta, units))]
        return " + ".join(terms)


class Power(Form):
    name = "power"
    params = ("a", "b", "p")
    formula = "a + b*n^p"

    @property
    def lower(self) -> np.ndarray:
        return np.array([0.0, 0.0, 0.2])

    @property
    def upper(self) -> np.ndarray:
        return np.array([np.inf, np.inf, 3.0])

    def evaluate(self, theta, n):
        a, b, p = np.moveaxis(np.asarray(theta, dtype=float), -1, 0)
        return a + b * np.asarray(n, dtype=float) ** p

    def jacobian(self, theta, n) -> np.ndarray:
        a, b, p = np.moveaxis(np.asarray(theta, dtype=float), -1, 0)
        n = np.asarray(n, dtype=float)
        n_p = n**p
        return np.stack([np.ones_like(n_p), n_p, b * n_p * np.log(n)], axis=-1)

    def initial(self, n, y) -> np.ndarray:
        a = 0.5 * float(np.min(y))
        return np.array([a, max(float(np.max(y)) - a, 1e-30) / float(np.max(n)), 1.0])

    def sum_over(self, theta, lo, hi):
        a, b, p = theta
        lo_arr, hi_arr = np.broadcast_arrays(np.asarray(lo, dtype=float), np.asarray(hi, dtype=float))
        result = a * np.maximum(hi_arr - lo_arr + 1, 0) + b * sum_of_powers(lo_arr, hi_arr, p)
        return result if result.ndim else float(result)

    def terms(self, theta) -> list[tuple[np.ndarray, np.ndarray]]:
        a, b, p = np.moveaxis(np.asarray(theta, dtype=float), -1, 0)
        return [(a, np.zeros_like(a)), (b, p)]

    def describe(self, theta, unit: str) -> str:
        a, b, p = theta
        return f"{a:.4g} {unit} + {b:.4g} {unit}/token^p * n^{p:.3f}"


AFFINE = Polynomial("affine", 1)
QUADRATIC = Polynomial("quadratic", 2)
POWER = Power()
FORMS = {form.name: form for form in (AFFINE, QUADRATIC, POWER)}

CURVE_FORMS = ("affine", "quadratic", "power")
"""Candidates for latency and FLOPs: the polynomials, and a power law for growth between them."""

MEMORY_FORMS = ("affine", "quadratic")
"""Candidates for peak memory, each term a kind of bytes: ``a`` what is resident whatever n (the
weights, plus on a CPU the runtime), ``b n`` what each token holds (KV cache, activations,
logits), ``c n^2`` attention scores where the kernel materialises them (eager attention; a
fused kernel does not). A free power ``n^p`` stands for none of these, and on flat or noisy
peaks its exponent runs to a bound."""

STRUCTURED_FORMS = {"prefill": "quadratic", "forward": "quadratic", "decode": "affine"}
"""Each phase's FLOP terms, as a form: a pass over ``n`` tokens costs a constant (the logits of one
position, the call itself), a linear term (every layer's projections and MLP per token) and a
quadratic one (attention: each token against every earlier one); a decode step with ``c`` tokens
cached a constant and a linear term (one token against ``c``). Beyond the measured lengths these
terms are what grows, so these forms are preferred to a power law that fits a short range a little
better (``profiler.costmodel.fit.choose``). Windowed attention flattens the quadratic term to a
linear one beyond the window: ``c`` is then near 0, still within the form."""
ATTENTION_FREE_FORMS = {"prefill": "affine", "forward": "affine", "decode": "affine"}
"""An attention-free model's FLOP terms (Mamba, Falcon-Mamba, Mamba-2: every layer a state-space mixer, whose work
per token is the same at any length, and no attention): a constant and a linear term in every phase. Mamba-2's
passing of states from chunk to chunk grows with the square of the chunks, a few percent of a pass at a million
tokens: left to the linear term."""


def structured_forms(heads: int | None) -> dict[str, str]:
    """The forms of each phase's FLOP terms for a model of ``heads`` attention heads (0: attention-free; None: a
    served model of unknown architecture, counted as attending)."""
    return ATTENTION_FREE_FORMS if heads == 0 else STRUCTURED_FORMS

