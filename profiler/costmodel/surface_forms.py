"""Batch-surface forms: the latency of one pass of ``B`` sequences against ``B`` and the context length ``n``.

``n`` is per sequence: the prompt length of a prefill, the tokens cached before a decode step. A
form is a sum of ``B^i n^j`` terms with non-negative coefficients, and two forms compete per phase:

- ``compute`` (DistServe's fitted prefill and decode, with a per-sequence term): every term grows
  with the sequences in the pass, as their FLOPs do; nothing is shared by the batch but the per-pass
  overhead ``a``.

  - prefill ``a + d*B + b*B*n + c*B*n^2``: ``d`` each sequence's one position of logits, ``b`` each
    prompt token's projections and MLP, ``c`` attention (each token against every earlier one);
  - decode ``a + d*B + b*B*n``: ``d`` each sequence's one token through the projections and MLP,
    ``b`` each cached token of each sequence (its keys and values read, attended to).

  At batch 1 these are the single-sequence curves' structured forms (``forms.STRUCTURED_FORMS``:
  quadratic prefill, affine decode). Exact when a pass is compute-bound throughout, as on a CPU at
  moderate lengths; linear in its coefficients, so its fit has one optimum.

- ``roofline``: a pass reads the weights once, whatever ``B``; the work the sequences do grows with
  ``B``. Time is the larger of the two (a roofline), joined smoothly,
  ``J(w, U) = (w^q + U^q)^(1/q)`` with ``q`` fitted in [1, 16] (1: they add; 16: within 4.4% of the
  larger), so a pass is memory-bound (flat in ``B``) while ``U < w`` and compute-bound (linear in
  ``B``) beyond, the knee where the work reaches the weight-read time ``w``:

  - prefill ``a + J(w, d*B + b*B*n + c*B*n^2)``: all of a prefill's work is matrix products;
  - decode ``a + b*B*n + J(w, d*B)``: the cached tokens' term stays outside the join, because
    attention over a cache does about one FLOP per byte it reads, so reading ``B`` caches is
    memory-bound at any batch and adds to whichever bound the weights and projections are under.
    It also keeps a call's sum over its decode steps closed form (``steps_sum``).

  With ``w = 0`` a roofline is its phase's compute form: the two are nested, and AICc weighs
  the two coefficients (``w``, ``q``) the roofline adds against the knee they explain.

Coefficients, in the order every form lists them: ``a`` (s per pass), ``w`` (s per pass, the weight
read), ``d`` (s per sequence), ``b`` (s per token), ``c`` (s per token^2 of one sequence), ``q``.
A point ``x`` is an array whose last axis holds ``(B, n)``.
"""

from __future__ import annotations

import numpy as np

from profiler.costmodel.power_sums import power_sum

Q_BOUNDS = (1.0, 16.0)
_ORDER = ("a", "w", "d", "b", "c", "q")
_UNITS = {"a": "s", "w": "s", "d": "s/sequence", "b": "s/token", "c": "s/token^2", "q": ""}
_TERM_TEXT = {"d": "d*B", "b": "b*B*n", "c": "c*B*n^2"}
_EXPONENTS = {"d": (1, 0), "b": (1, 1), "c": (1, 2)}  # each term is B^i n^j


def _monomial(x, name: str) -> np.ndarray:
    i, j = _EXPONENTS[name]
    x = np.asarray(x, dtype=float)
    return x[..., 0] ** i * x[..., 1] ** j


def join(w, work, q):
    """``(w^q + work^q)^(1/q)``, scaled by the larger of the two so that no power under- or overflows; 0 where
    both are 0."""
    w, work, q = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (w, work, q)))
    larger = np.maximum(w, work)
    safe = np.where(larger > 0, larger, 1.0)
    return np.where(larger > 0, safe * ((w / safe) ** q + (work / safe) ** q) ** (1 / q), 0.0)


def _join_derivatives(w, work, q):
    """d J / d w, d J / d work and d J / d q (see the module doc), element-wise."""
    joined = join(w, work, q)
    safe = np.where(joined > 0, joined, 1.0)
    share_w, share_work = (w / safe) ** q, (work / safe) ** q  # they add up to 1
    d_w = np.where(joined > 0, (w / safe) ** (q - 1), 1.0)
    d_work = np.where(joined > 0, (work / safe) ** (q - 1), 1.0)
    log_w = np.where(w > 0, np.log(np.where(w > 0, w, 1.0)), 0.0)
    log_work = np.where(work > 0, np.log(np.where(work > 0, work, 1.0)), 0.0)
    d_q = np.where(joined > 0, joined / q * (share_w * log_w + share_work * log_work - np.log(safe)), 0.0)
    return d_w, d_work, d_q


class SurfaceForm:
    """``a + sum(added terms) [+ J(w, sum(joined terms); q)]`` over points ``(B, n)`` (see the module doc).

    It has what ``profiler.costmodel.refit``'s solve, bootstrap and batched refits use of a form
    (``params``, ``lower``, ``upper``, ``evaluate``, ``jacobian``, ``initial``), with a point's
    ``(B, n)`` where a curve has its ``n``."""

    def __init__(self, name: str, phase: str, added: tuple[str, ...], joined: tuple[str, ...] = ()):
        self.name, self.phase, self.added, self.joined = name, phase, added, joined
        present = {"a", *added, *joined} | ({"w", "q"} if joined else set())
        self.params = tuple(p for p in _ORDER if p in present)
        self.index = {p: k for k, p in enumerate(self.params)}
        outside = " + ".join(["a", *(_TERM_TEXT[t] for t in added)])
        work = " + ".join(_TERM_TEXT[t] for t in joined)
        self.formula = outside + (f" + (w^q + ({work})^q)^(1/q)" if joined else "")

    @property
    def lower(self) -> np.ndarray:
        return np.array([Q_BOUNDS[0] if p == "q" else 0.0 for p in self.params])

    @property
    def upper(self) -> np.ndarray:
        return np.array([Q_BOUNDS[1] if p == "q" else np.inf for p in self.params])

    def units(self) -> dict[str, str]:
        return {p: _UNITS[p] for p in self.params}

    def _coefficient(self, theta, name: str) -> np.ndarray:
        return np.asarray(theta, dtype=float)[..., self.index[name]]

    def _work(self, theta, x):
        return sum(self._coefficient(theta, t) * _monomial(x, t) for t in self.joined)

    def evaluate(self, theta, x):
        """Seconds of a pass at each point ``x`` (``(..., 2)``: B, n); ``theta``'s other axes broadcast against
        ``x``'s as in ``forms.Form.evaluate``."""
        value = self._coefficient(theta, "a") + sum(self._coefficient(theta, t) * _monomial(x, t) for t in self.added)
        if self.joined:
            value = value + join(self._coefficient(theta, "w"), self._work(theta, x), self._coefficient(theta, "q"))
        return value

    def jacobian(self, theta, x) -> np.ndarray:
        """d f / d theta at each point, shape (..., k)."""
        shape = np.broadcast_shapes(np.shape(theta)[:-1], np.shape(x)[:-1])
        columns = {"a": np.ones(shape)}
        for t in self.added:
            columns[t] = np.broadcast_to(_monomial(x, t), shape)
        if self.joined:
            d_w, d_work, d_q = _join_derivatives(self._coefficient(theta, "w"), self._work(theta, x),
                                                 self._coefficient(theta, "q"))
            columns["w"], columns["q"] = np.broadcast_to(d_w, shape), np.broadcast_to(d_q, shape)
            for t in self.joined:
                columns[t] = np.broadcast_to(d_work * _monomial(x, t), shape)
        return np.stack([columns[p] for p in self.params], axis=-1)

    def initial(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The compute form's relative least squares (every term added, ``w = 0``), clipped to the bounds; a
        roofline from there with ``q = 2`` (``starts`` gives more)."""
        terms = (*self.added, *self.joined)
        basis = np.stack([np.ones(len(y))] + [_monomial(x, t) for t in terms], axis=-1) / y[:, None]
        solution, *_ = np.linalg.lstsq(basis, np.ones_like(y), rcond=None)
        solution = np.clip(solution, 0, None) + 1e-12 * np.max(y)
        theta = dict(zip(("a", *terms), solution)) | {"w": 0.0, "q": 2.0}
        return np.array([theta[p] for p in self.params])

    def starts(self, x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
        """Starting points for the fit: ``initial``, and for a roofline the memory floor at half and at nine
        tenths of the least latency measured, each with a soft (``q = 2``) and a sharp (``q = 8``) join: a
        knee is a local feature, and one start can settle on the wrong side of it."""
        first = self.initial(x, y)
        if not self.joined:
            return [first]
        starts = [first]
        for floor in (0.5, 0.9):
            for q in (2.0, 8.0):
                theta = first.copy()
                theta[self.index["w"]] = floor * float(np.min(y))
                theta[self.index["a"]] = (1 - floor) * float(np.min(y))
                theta[self.index["q"]] = q
                starts.append(theta)
        return starts

    def steps_sum(self, theta, batch, lo, hi):
        """``sum_{n=lo}^{hi} f(B, n)``, element-wise over arrays of ``batch`` and ranges, in closed form (no loop
        over ``n``); 0 for an empty range. Only for forms whose joined work does not depend on ``n`` (decode's):
        the sum of a join over ``n`` has no closed form."""
        if any(_EXPONENTS[t][1] for t in self.joined):
            raise ValueError(f"the {self.phase} {self.name} surface has no closed-form sum over n")
        batch = np.asarray(batch, dtype=float)
        count = power_sum(lo, hi, 0)
        total = count * self._coefficient(theta, "a")
        for t in self.added:
            i, j = _EXPONENTS[t]
            total = total + self._coefficient(theta, t) * batch**i * power_sum(lo, hi, j)
        if self.joined:
            x = np.stack(np.broadcast_arrays(batch, np.ones_like(batch)), axis=-1)  # the work does not read n
            total = total + count * join(self._coefficient(theta, "w"), self._work(theta, x),
                                         self._coefficient(theta, "q"))
        return total


SURFACE_FORMS = {
    "prefill": {"compute": SurfaceForm("compute", "prefill", added=("d", "b", "c")),
                "roofline": SurfaceForm("roofline", "prefill", added=(), joined=("d", "b", "c"))},
    "decode": {"compute": SurfaceForm("compute", "decode", added=("d", "b")),
               "roofline": SurfaceForm("roofline", "decode", added=("b",), joined=("d",))},
}
"""Each batched phase's candidate forms (see the module doc)."""

PREFERRED_SURFACE = "compute"
"""The form kept unless the roofline's AICc is lower by more than ``fit.AICC_MARGIN``: its terms are the
sequences' FLOP terms and it is linear in them, while the roofline's ``w`` and ``q`` are fixed only by a
knee the data clearly show (``profiler.costmodel.surface``)."""
