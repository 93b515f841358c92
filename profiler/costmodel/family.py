"""Cost against model size -- the ``m`` of the paper's ``m * n`` -- across one model family.

From the cost models of several models of one family (same architecture type, hardware
and dtype), each phase's latency is read as its quadratic candidate
``a + b n + c n^2`` (the one form every model shares; ``a`` is per-call overhead, ``b``
the per-token cost, ``c`` the attention-like quadratic term), and each coefficient is fitted
as a power law of the model's non-embedding parameter count ``m``:

    coefficient(m) = k * m^e      (least squares on log coefficient against log m)

The quadratic term is also fitted against ``layers * hidden`` -- what attention FLOPs
scale with -- and reported, since that is the physical driver. ``at_params(m)`` prices a
model of a size nobody profiled with the ``m`` laws (it needs nothing but ``m``);
``leave_one_out()`` says how well the family predicts each profiled model from the others.
A member whose parameters are not known (a served model fitted from latency alone, schema 1.8) has no
place on the laws: a family with one is refused (``ValueError``, one line naming it), as is one whose members all
have one size. Members that share ``layers * hidden`` (differing in their MLP only) have no law of it (None).
A coefficient that is zero for any member (a linear curve, as decode's quadratic term often
is, or a term under 1% of that member's cost across its measured lengths) has no law:
the family's law for it is zero. Fitting a law through the members where it
happens to be positive would follow noise (on this CPU it gave decode's quadratic term an
exponent of -14).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from profiler.costmodel.cost_model import PHASES, CostModel
from profiler.costmodel.fit import CurveFit
from profiler.costmodel.fit_document import FitDocument, FittedModel
from profiler.costmodel.forms import QUADRATIC


@dataclass(frozen=True)
class PowerLaw:
    """``y = k * x^e``; ``k == 0`` is the zero law."""

    k: float
    e: float

    def __call__(self, x):
        return self.k * np.asarray(x, dtype=float) ** self.e

    @classmethod
    def fit(cls, x, y) -> "PowerLaw | None":
        """The law through ``(x, y)``: the zero law where a ``y`` is 0 (see the module doc), None where every ``x``
        is one value (no law runs through points above one x)."""
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        if len(y) < 2 or np.any(y <= 0):
            return cls(0.0, 0.0)
        if np.ptp(x) == 0:
            return None
        e, log_k = np.polyfit(np.log(x), np.log(y), 1)
        return cls(float(np.exp(log_k)), float(e))


_NEGLIGIBLE_SHARE = 0.01


def _quadratic_coefficients(curve: CurveFit) -> np.ndarray:
    """``(a, b, c)`` of the curve's quadratic candidate; a term under 1% of the cost at both
    ends of the measured lengths (so everywhere between) is not resolved by the data and
    counts as zero."""
    quadratic = curve.candidate_params("quadratic")
    theta = np.array([quadratic["a"], quadratic["b"], quadratic["c"]])
    terms = theta * np.array([[float(curve.n_min)], [float(curve.n_max)]]) ** np.arange(3)  # (ends, terms)
    shares = terms / terms.sum(axis=1, keepdims=True)
    return np.where(shares.max(axis=0) >= _NEGLIGIBLE_SHARE, theta, 0.0)


class FamilyCostModel:
    """Latency laws per phase and coefficient, from two or more profiled models of one family."""

    def __init__(self, members: list[CostModel]):
        if len(members) < 2:
            raise ValueError("a family fit needs at least two models")
        kinds = {(m.hardware_slug, m.model.dtype) for m in members}
        if len(kinds) > 1:
            raise ValueError(f"family members must share hardware and dtype, got {sorted(kinds)}")
        unknown = [m.model.name for m in members if m.model.non_embedding_params is None or m.model.layers is None]
        if unknown:
            raise ValueError(f"a family's size law needs each model's parameters, and those of {', '.join(unknown)} "
                             "are not known here (a served model fitted from latency alone)")
        self.members = members
        self.params = np.array([m.model.non_embedding_params for m in members], dtype=float)
        if np.ptp(self.params) == 0:
            names = ", ".join(m.model.name for m in members)
            raise ValueError(f"a family's size law needs models of different sizes, and {names} all have "
                             f"{self.params[0]:,.0f} non-embedding parameters")
        self.layers_x_hidden = np.array([m.model.layers * m.model.hidden for m in members], dtype=float)
        self.coefficients = {phase: np.stack([_quadratic_coefficients(m.curve(phase, "latency_s")) for m in members])
                             for phase in PHASES}
        self.laws = {phase: [PowerLaw.fit(self.params, coefs[:, j]) for j in range(3)]
                     for phase, coefs in self.coefficients.items()}
        # None where every member has one layers * hidden (a family that differs in its MLP only)
        self.quadratic_vs_layers_x_hidden = {phase: PowerLaw.fit(self.layers_x_hidden, coefs[:, 2])
                                             for phase, coefs in self.coefficients.items()}
        self.n_min = max(m.curve(p, "latency_s").n_min for m in members for p in PHASES)
        self.n_max = min(m.curve(p, "latency_s").n_max for m in members for p in PHASES)

    def at_params(self, non_embedding_params: float) -> CostModel:
        """A cost model (latency only) for a family model of ``non_embedding_params`` parameters."""
        curves = {}
        for phase, laws in self.laws.items():
            theta = np.array([float(law(non_embedding_params)) for law in laws])
            curve = CurveFit(form=QUADRATIC, theta=theta, ci95=np.stack([theta, theta], axis=-1), unit="s",
                             r2=float("nan"), lolo_mape=None, n_min=self.n_min, n_max=self.n_max, samples=0,
                             candidates=[{"form": "quadratic", "params": dict(zip("abc", map(float, theta)))}])
            curves[phase] = {"latency_s": curve}
        base = self.members[0]
        return CostModel(FitDocument(
            model=FittedModel(name=f"family@{non_embedding_params:.3g}", non_embedding_params=non_embedding_params),
            curves=curves, hardware_slug=base.hardware_slug, hardware=base.hardware))

    def leave_one_out(self) -> list[dict]:
        """Each member predicted by the family of the others (needs three or more members; none where the others
        have one size): its per-token prefill cost, and its prefill and decode latency at the middle of the domain."""
        if len(self.members) < 3:
            return []
        n_mid = float(np.sqrt(self.n_min * self.n_max))
        report = []
        for i, member in enumerate(self.members):
            if np.ptp(np.delete(self.params, i)) == 0:
                continue
            others = FamilyCostModel([m for j, m in enumerate(self.members) if j != i])
            predicted = others.at_params(self.params[i])
            row = {"model": member.model.name, "non_embedding_params": int(self.params[i]), "n_ctx": n_mid}
            row["per_token_rel_error"] = float(
                others.laws["prefill"][1](self.params[i]) / self.coefficients["prefill"][i, 1] - 1)
            for phase in ("prefill", "decode"):
                measured = float(member.curve(phase, "latency_s").predict(n_mid))
                row[f"{phase}_rel_error"] = float(predicted.curve(phase, "latency_s").predict(n_mid) / measured - 1)
            report.append(row)
        return report
