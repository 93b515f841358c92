"""A fitted pricing from known curves, for the exercise and break-even tests (no model run); with
``surfaces=True`` also known batch surfaces (``profiler.costmodel.surface``), measured at ``BATCHES``
over the curves' lengths, whose batch of one agrees with the curves within 0.2%; with ``extend=True``
the known extend surface ``EXTEND`` (``profiler.costmodel.extend``), which prices a cached prefix."""

import numpy as np

from profiler.costmodel.cost_model import CostModel
from profiler.costmodel.extend import ExtendFit
from profiler.costmodel.extend_forms import EXTEND_FORMS
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


# cache-read a + b*s + g*c + e*s*c + f*s^2 (times ``scale``): at c = 0 CURVES' prefill; at s = 1 a decode of
# CURVES' slope, 0.0108 s above it. Measured up to 1,024 cached and 1,024 appended tokens, 1,025 in all.
EXTEND = {"a": 0.04, "b": 8e-4, "g": 9.4e-6, "e": 6e-7, "f": 3e-7}


def extend_seconds(c, s, scale: float = 1.0):
    """``EXTEND`` at ``c`` cached and ``s`` appended tokens, by hand."""
    k = EXTEND
    return scale * (k["a"] + k["b"] * s + k["g"] * c + k["e"] * s * c + k["f"] * s**2)


def known_extend(scale: float = 1.0) -> dict:
    """``EXTEND`` (times ``scale``) as a fit document holds it: exact, so point intervals."""
    form = EXTEND_FORMS["cache-read"]
    theta = np.array([EXTEND[p] * scale for p in form.params])
    return ExtendFit(form=form, theta=theta, ci95=np.stack([theta, theta], axis=-1), correlation=np.eye(len(theta)),
                     r2=1.0, held_out_mape=0.0, held_out_points=30, points=30, samples=90,
                     candidates=[{"form": "cache-read", "params": dict(zip(form.params, map(float, theta))),
                                  "aicc": -1e4, "r2": 1.0, "converged": True}],
                     preferred="attention", c_max=1024, s_max=1024, positions_max=1025,
                     consistency={"prefill": 0.0, "decode": 0.3}).as_dict()


def cost_model(name: str = "base", scale: float = 1.0, params: float = 85e6, max_positions: int = 2048,
               surfaces: bool = False, extend: bool = False) -> CostModel:
    curves = {phase: {"latency_s": fit_curve(N, scale * f(N), "s").as_dict()} for phase, f in CURVES.items()}
    return CostModel.from_json({"model": {"name": name, "model_type": "gpt2", "non_embedding_params": params, "layers": 12,
                                "hidden": 768, "dtype": "float32", "max_positions": max_positions},
                      "hardware": {}, "hardware_slug": "cpu-test", "derived": {}, "curves": curves}
                     | ({"surfaces": {phase: known_surface(phase, scale) for phase in SURFACES}} if surfaces else {})
                     | ({"extend": known_extend(scale)} if extend else {}))


def pricing(**kwargs) -> FittedPricing:
    return FittedPricing(cost_model(), **kwargs)
