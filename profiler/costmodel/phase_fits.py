"""Which phases a metric's curves are fitted with, among which forms, preferring which.

- Latency and FLOPs (the work a pass does): prefill and forward do the same work over ``n`` tokens
  (prefill also fills the KV cache), so they are fitted together (``fit_phases``: one form, chosen
  by their joint AICc, each its own overhead and per-token cost, the growth beyond shared);
  decode alone. Each phase prefers the form of its FLOP terms (``STRUCTURED_FORMS``: quadratic for
  prefill and forward, affine for decode; ``ATTENTION_FREE_FORMS``, affine, for all of an attention-free
  model's) unless another fits clearly better
  (``profiler.costmodel.fit.choose``). Before, each phase chose its form alone by AICc: from a short
  range (8..256 tokens), prefill and forward, measured within 0.5% of each other, picked different
  forms and differed by 40% at 2,048.
- A time (latency, energy) grows beyond linear at most ``fit.FLOPS_GROWTH_MAX`` times as its phases' FLOPs do
  (``fit.growth_ceilings``), the FLOPs fitted first.
- Energy (joules a pass took, where the run had a counter): as latency, the device's power times the pass's time.
- Peak memory: each phase alone, the lower AICc of the two polynomials. Prefill holds a KV cache
  forward does not: their bytes per token differ by it, and a byte is not work.
"""

from __future__ import annotations

from profiler.costmodel.fit import CurveFit, fit_curve, fit_phases
from profiler.costmodel.forms import CURVE_FORMS, MEMORY_FORMS, STRUCTURED_FORMS

CANDIDATE_FORMS = {"latency_s": CURVE_FORMS, "flops": CURVE_FORMS, "peak_mem_bytes": MEMORY_FORMS,
                   "energy_j": CURVE_FORMS}
WORK_METRICS = ("latency_s", "flops", "energy_j")
JOINT_PHASES = ("prefill", "forward")


def fit_metric(samples: dict[str, tuple], metric: str, unit: str, seed: int = 0,
               structured: dict[str, str] = STRUCTURED_FORMS,
               flops_curvature: dict[str, float] | None = None) -> dict[str, CurveFit]:
    """The curves of ``metric`` for each phase in ``samples`` (``{phase: (n, y)}``), in that order; each work metric's
    preferring the form of its phase's FLOP terms, ``structured`` (``forms.structured_forms``), and a time's (latency,
    energy) growth beyond linear capped by its phases' FLOPs' (``flops_curvature``: phase -> the FLOPs' ``c / b``; the
    largest of a group's phases; none where not given)."""
    forms = CANDIDATE_FORMS[metric]
    if metric not in WORK_METRICS:
        return {phase: fit_curve(n, y, unit, forms=forms, seed=seed) for phase, (n, y) in samples.items()}
    together = [phase for phase in JOINT_PHASES if phase in samples]
    groups = [together] + [[phase] for phase in samples if phase not in together]
    fitted: dict[str, CurveFit] = {}
    for group in (g for g in groups if g):
        curvature = None if metric == "flops" or not flops_curvature else max(
            (flops_curvature.get(phase, 0.0) for phase in group), default=0.0)
        fitted |= fit_phases({phase: samples[phase] for phase in group}, unit, forms, seed,
                             preferred=structured[group[0]], flops_curvature=curvature)
    return {phase: fitted[phase] for phase in samples}
