"""A fitted pricing from known curves, for the exercise and break-even tests (no model run)."""

import numpy as np

from profiler.costmodel.cost_model import CostModel
from profiler.costmodel.fit import fit_curve
from profiler.lba.pricing import FittedPricing

N = np.repeat([8, 16, 32, 64, 128, 256, 512, 1024], 2).astype(float)
CURVES = {"prefill": lambda n: 0.04 + 8e-4 * n + 3e-7 * n**2, "decode": lambda c: 0.03 + 1e-5 * c,
          "forward": lambda n: 0.041 + 8e-4 * n + 3e-7 * n**2}


def cost_model(name: str = "base", scale: float = 1.0, params: float = 85e6, max_positions: int = 2048) -> CostModel:
    curves = {phase: {"latency_s": fit_curve(N, scale * f(N), "s").as_dict()} for phase, f in CURVES.items()}
    return CostModel.from_json({"model": {"name": name, "model_type": "gpt2", "non_embedding_params": params, "layers": 12,
                                "hidden": 768, "dtype": "float32", "max_positions": max_positions},
                      "hardware": {}, "hardware_slug": "cpu-test", "derived": {}, "curves": curves})


def pricing(**kwargs) -> FittedPricing:
    return FittedPricing(cost_model(), **kwargs)
