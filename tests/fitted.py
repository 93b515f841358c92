"""A fitted pricing from known curves, for the exercise and break-even tests (no model run); with
``surfaces=True`` also known batch surfaces (``profiler.costmodel.surface``), measured at ``BATCHES``
over the curves' lengths, whose batch of one agrees with the curves within 0.2%."""

import numpy as np

from profiler.costmodel.cost_model import CostModel
from profiler.costmodel.fit import fit_curve
from profiler.costmodel.surface import SurfaceFit
from profiler.costmodel.surface_forms import SURFACE_FORMS
from profiler.lba.pricing import FittedPricing

N = np.repeat([8, 16, 32, 64, 128, 256, 512, 1024], 2).astype(float)
CURVES = {"prefill": lambda n: 0.04 + 8e-4 * n + 3e-7 * n**2, "decode": lambda c: 0.03 + 1e-5 * c,
          "forward": lambda n: 0.041 + 8e-4 * n + 3e-7 * n**2}
BATCHES = (1, 2, 4, 8)
# prefill compute-bound throughout (its batch of one is CURVES' prefill); decode memory-bound up to its knee
# at B = w / d, about 3 (its batch of one is CURVES' decode plus 0.04 ms)
SURFACES = {"prefill": ("compute", {"a": 0.03, "d": 0.01, "b": 8e-4, "c": 3e-7}),
            "decode": ("roofline", {"a": 0.005, "w": 0.025, "d": 0.008, "b": 1e-5, "q": 4.0})}


def known_surface(phase: str, scale: float = 1.0) -> dict:
    """``phase``'s surface of ``SURFACES`` (times ``scale``, in seconds) as a fit document holds it: exact,
    so point intervals."""
    name, coefficients = SURFACES[phase]
    form = SURFACE_FORMS[phase][name]
    theta = np.array([coefficients[p] * (1.0 if p == "q" else scale) for p in form.params])
    lengths = np.unique(N)
    points = len(BATCHES) * len(lengths)
    return SurfaceFit(
        form=form, theta=theta, ci95=np.stack([theta, theta], axis=-1), correlation=np.eye(len(theta)), r2=1.0,
        held_out_mape=0.0, held_out_points=points, points=points, samples=points,
        domain=np.array([[b, lengths.min(), lengths.max()] for b in BATCHES], dtype=np.int64),
        candidates=[{"form": name, "params": dict(zip(form.params, map(float, theta))), "aicc": -1e4, "r2": 1.0,
                     "converged": True}], preferred="compute",
    ).as_dict()


def cost_model(name: str = "base", scale: float = 1.0, params: float = 85e6, max_positions: int = 2048,
               surfaces: bool = False) -> CostModel:
    curves = {phase: {"latency_s": fit_curve(N, scale * f(N), "s").as_dict()} for phase, f in CURVES.items()}
    return CostModel.from_json({"model": {"name": name, "model_type": "gpt2", "non_embedding_params": params, "layers": 12,
                                "hidden": 768, "dtype": "float32", "max_positions": max_positions},
                      "hardware": {}, "hardware_slug": "cpu-test", "derived": {}, "curves": curves}
                     | ({"surfaces": {phase: known_surface(phase, scale) for phase in SURFACES}} if surfaces else {}))


def pricing(**kwargs) -> FittedPricing:
    return FittedPricing(cost_model(), **kwargs)
