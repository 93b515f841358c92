"""One form fitted to several phases' samples at once: each phase its own overhead and per-token cost,
the terms that shape the curve's growth shared.

Prefill and forward do the same work over ``n`` tokens (the same layers, the same attention, the
logits of one position); prefill also writes each layer's keys and values into the KV cache, a
copy per token. So their curves differ at most in the constant (per-call overhead: making a cache)
and the linear term (per-token cost: filling it), never in how the cost grows beyond that. A
``JointForm`` of a form with coefficients ``(a, b, rest...)`` has, for phases ``0..G-1``,

    (a_0, b_0, a_1, b_1, ..., a_{G-1}, b_{G-1}, rest...)

phase ``g`` evaluating the form at ``(a_g, b_g, rest...)``: the quadratic's ``c`` (attention) or the
power's ``p`` is shared, an affine curve shares nothing but its form. Their ratio beyond the data
then tends to ``b_1 / b_0`` (affine, power) or to 1 (quadratic), each fixed where they were measured,
so two phases measured alike cannot diverge outside the data. With one phase it is the form itself.

A shared coefficient may have a ceiling below its form's upper bound (``ceilings``: the growth the phases' FLOPs
allow, ``profiler.costmodel.fit.growth_ceilings``); every refit of the form keeps it.

It is for fitting only: it has what ``profiler.costmodel.refit``'s solve, bootstrap and batched refits
use of a form (``params``, bounds, ``evaluate``, ``jacobian``, ``initial``), each sample's phase
bound at construction (``group``, aligned with the samples' ``n``; ``subset`` for a subset of them).
"""

from __future__ import annotations

import numpy as np

from profiler.costmodel.forms import Form

OWN = 2  # each phase's own coefficients: the first two of every form, a (per call) and b (per token)


class JointForm:
    """``base`` over ``groups`` phases, sample ``i`` of phase ``group[i]`` (see the module doc)."""

    def __init__(self, base: Form, group: np.ndarray, groups: int, ceilings: dict[str, float] | None = None):
        self.base, self.groups, self.ceilings = base, groups, dict(ceilings or {})
        self.group = np.asarray(group, dtype=int)
        shared = np.arange(OWN * groups, OWN * groups + len(base.params) - OWN)
        self.columns = [np.concatenate([OWN * g + np.arange(OWN), shared]) for g in range(groups)]
        self.params = tuple(f"{name}{g}" for g in range(groups) for name in base.params[:OWN]) + base.params[OWN:]
        self.shared = base.params[OWN:]

    @property
    def name(self) -> str:
        return self.base.name

    @property
    def lower(self) -> np.ndarray:
        return self.joined([self.base.lower] * self.groups)

    @property
    def upper(self) -> np.ndarray:
        """The base form's upper bounds, a shared coefficient's lowered to its ceiling where it has one."""
        upper = self.joined([self.base.upper] * self.groups)
        for name, ceiling in self.ceilings.items():
            k = self.params.index(name)
            upper[k] = min(upper[k], ceiling)
        return upper

    def joined(self, per_phase: list[np.ndarray]) -> np.ndarray:
        """The joint coefficients of per-phase ones (each in the base form's order); shared ones averaged."""
        per_phase = [np.asarray(theta, dtype=float) for theta in per_phase]
        return np.concatenate([theta[:OWN] for theta in per_phase] + [np.mean([t[OWN:] for t in per_phase], axis=0)])

    def of_phase(self, theta, g: int) -> np.ndarray:
        """Phase ``g``'s coefficients in the base form's order (on the last axis of ``theta``)."""
        return np.asarray(theta, dtype=float)[..., self.columns[g]]

    def subset(self, keep: np.ndarray) -> JointForm:
        return JointForm(self.base, self.group[keep], self.groups, self.ceilings)

    def evaluate(self, theta, n):
        """The curve of each sample's phase at its ``n`` (``n`` aligned with ``group``); ``theta``'s other axes
        broadcast as in ``Form.evaluate``."""
        values = self.base.evaluate(self.of_phase(theta, 0), n)
        for g in range(1, self.groups):
            values = np.where(self.group == g, self.base.evaluate(self.of_phase(theta, g), n), values)
        return values

    def jacobian(self, theta, n) -> np.ndarray:
        parts = [self.base.jacobian(self.of_phase(theta, g), n) for g in range(self.groups)]
        jacobian = np.zeros(parts[0].shape[:-1] + (len(self.params),))
        for g, part in enumerate(parts):
            jacobian[..., self.columns[g]] += np.where((self.group == g)[:, None], part, 0.0)
        return jacobian

    def initial(self, n: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Each phase's own starting point (``Form.initial``), shared coefficients averaged."""
        return self.joined([self.base.initial(n[self.group == g], y[self.group == g]) for g in range(self.groups)])
