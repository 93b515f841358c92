"""Extend-surface forms: the seconds of one pass that appends ``s`` new tokens to ``c`` cached ones.

Prefill is the extend of an empty cache, ``T(0, n)``; a decode step appends one token, ``T(c, 1)``. A
form is a sum of ``c^i s^j`` terms with non-negative coefficients, linear in them (its fit has one
optimum), and four compete:

- ``attention`` ``a + b*s + e*s*c + f*s^2``: the FLOP terms of the pass. ``a`` per pass, ``b`` each
  new token's projections and MLP, ``e`` each new token attending to every cached one, ``f`` the new
  tokens attending to each other (causal: about half of ``s^2``). At ``c = 0`` it is the quadratic
  prefill curve ``a + b*n + f*n^2``; at ``s = 1`` an affine decode ``(a + b + f) + e*c``.
- ``cache-read`` adds ``g*c``: the cached keys and values read once per pass whatever ``s`` (attention
  over a cache does about one FLOP per byte it reads, so a pass of few new tokens is bound by reading
  the cache, not by its FLOPs). At ``s = 1`` its decode slope is ``g + e``; ``g`` and ``e`` are told
  apart only by passes of several new tokens on a cache (extend points off the two axes).

- ``two-kernel`` (since schema 1.9) adds ``m*[s > 1]`` to attention's terms: what a pass of several new tokens
  costs beyond a single-token step, per pass. Its products have ``s`` rows, and a CPU's BLAS runs a one-row
  product as a matrix-vector product and several rows with matrix-product kernels of a higher fixed cost (MKL
  2024.2 on this project's 2-core AMD VM: a 768 x 3072 linear layer 398 us at 1 row, 1,614 us at 8, 2,427 us
  at 16, ``benchmarks/batch.py``; ``profiler.costmodel.per_batch_form`` has the batch analogue). A decode step
  then sits far below the line through the passes of several tokens (gpt2: 66 ms against a prefill of 8 at
  140 ms, of 256 at 0.69 s), and one per-pass ``a`` cannot pass through both.
- ``two-kernel-read`` (since schema 1.11) has both steps, ``m*[s > 1]`` and ``g*c``: the one-row kernels of a
  single-token step, and the cache copied whatever ``s`` (transformers' ``DynamicCache`` concatenates the new keys
  and values onto the cached ones, a copy of the whole cache in every layer at every pass). On this project's
  2-core AMD VM gpt2 pays about 7 to 12 us per cached token in a decode step and as much in an extend pass of 16
  tokens, so the attention terms alone cannot hold a decode step's slope and an extend pass's together (held-out
  error of three default runs 11.1, 4.1 and 7.2% with two-kernel, 5.5, 3.2 and 3.5% with it).

The two-kernel forms are the last resorts (``profiler.costmodel.surface.choose_form``): the one of lower AICc is
kept only where it is lower than the choice between attention and cache-read by more than the margin.

Coefficients, in the order every form lists them: ``a`` (s per pass), ``m`` (s per pass of several new
tokens), ``b`` (s per new token), ``g`` (s per cached token), ``e`` (s per new token per cached token), ``f``
(s per new token^2). A point ``x`` is an array whose last axis holds ``(c, s)``.
"""

from __future__ import annotations

import numpy as np

from profiler.costmodel.forms import NonNegative

_ORDER = ("a", "m", "b", "g", "e", "f")
_EXPONENTS = {"a": (0, 0), "b": (0, 1), "g": (1, 0), "e": (1, 1), "f": (0, 2)}  # c^i s^j each; m is [s > 1]
_TERM_TEXT = {"a": "a", "m": "m*[s>1]", "b": "b*s", "g": "g*c", "e": "e*s*c", "f": "f*s^2"}
_UNITS = {"a": "s", "m": "s", "b": "s/token", "g": "s/cached token", "e": "s/(token*cached token)", "f": "s/token^2"}


def _term(x: np.ndarray, name: str) -> np.ndarray:
    if name == "m":
        return (x[..., 1] > 1).astype(float)
    i, j = _EXPONENTS[name]
    return x[..., 0] ** i * x[..., 1] ** j


def monomials(x, params: tuple[str, ...]) -> np.ndarray:
    """The terms of ``params`` (``c^i s^j``, and ``[s > 1]`` for ``m``) at each point ``x`` (``(..., 2)``: c, s),
    shape ``(..., k)``."""
    x = np.asarray(x, dtype=float)
    return np.stack([_term(x, p) for p in params], axis=-1)


class ExtendForm(NonNegative):
    """``sum_p theta_p c^i s^j`` over the form's terms (see the module doc).

    It has what ``profiler.costmodel.refit``'s solve, bootstrap and batched refits, and
    ``profiler.costmodel.surface``'s choice of a form, use of one (``params``, ``lower``, ``upper``,
    ``evaluate``, ``jacobian``, ``initial``, ``starts``), with a point's ``(c, s)`` where a curve has its ``n``."""

    def __init__(self, name: str, params: tuple[str, ...]):
        self.name = name
        self.params = tuple(p for p in _ORDER if p in params)
        self.formula = " + ".join(_TERM_TEXT[p] for p in self.params)

    def units(self) -> dict[str, str]:
        return {p: _UNITS[p] for p in self.params}

    def evaluate(self, theta, x):
        """Seconds of a pass at each point ``x`` (``(..., 2)``: c, s); ``theta``'s other axes broadcast against
        ``x``'s as in ``forms.Form.evaluate`` (a ``(B, 1, k)`` stack at N points gives ``(B, N)``)."""
        return np.sum(np.asarray(theta, dtype=float) * monomials(x, self.params), axis=-1)

    def jacobian(self, theta, x) -> np.ndarray:
        """d f / d theta at each point, shape ``(..., k)``: the terms themselves (the form is linear)."""
        shape = np.broadcast_shapes(np.shape(theta)[:-1], np.shape(x)[:-1]) + (len(self.params),)
        return np.broadcast_to(monomials(x, self.params), shape)

    def initial(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Relative least squares, clipped to the bounds (a hair above 0, so no coefficient starts pinned)."""
        basis = monomials(x, self.params) / y[:, None]
        solution, *_ = np.linalg.lstsq(basis, np.ones_like(y), rcond=None)
        return np.clip(solution, 0, None) + 1e-12 * np.max(y)

    def starts(self, x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
        """One start: the robust relative least squares of a linear form has one optimum."""
        return [self.initial(x, y)]

    def fixed_by(self, points: np.ndarray) -> bool:
        """Whether distinct ``points`` (``(P, 2)``) fix the form: more of them than coefficients, and terms that
        are not linear combinations of each other over them (prefill and decode points alone cannot tell ``g``
        from ``e``: both are the decode slope)."""
        if len(points) <= len(self.params):
            return False
        basis = monomials(points, self.params)
        basis = basis / np.max(np.abs(basis), axis=0)  # columns decades apart: the rank is of their directions
        return int(np.linalg.matrix_rank(basis)) == len(self.params)


EXTEND_FORMS = {
    "attention": ExtendForm("attention", ("a", "b", "e", "f")),
    "cache-read": ExtendForm("cache-read", ("a", "b", "g", "e", "f")),
    "two-kernel": ExtendForm("two-kernel", ("a", "m", "b", "e", "f")),
    "two-kernel-read": ExtendForm("two-kernel-read", ("a", "m", "b", "g", "e", "f")),
}
"""The candidate forms of the extend surface (see the module doc)."""

LAST_RESORT_EXTEND = ("two-kernel", "two-kernel-read")
"""The lower AICc of the two kept only when lower than the choice among the others by more than ``fit.AICC_MARGIN``
(module doc)."""

PREFERRED_EXTEND = "attention"
"""The form kept unless cache-read's AICc is lower by more than ``fit.AICC_MARGIN``: its terms are the pass's
FLOP terms, and at the axes it is the prefill and decode curves' own forms (quadratic, affine)."""
