"""aalp-profiler: measure what one LLM forward pass really costs, on your own hardware."""

from profiler.architecture import Architecture
from profiler.catalog import ModelSource, resolve_model
from profiler.cost_model import CostModel, ExtrapolationWarning
from profiler.export import load_cost_model
from profiler.fit import CurveFit, fit_curve
from profiler.flops import count_flops, generate_flops, pass_flops
from profiler.loading import LoadedModel, load_model
from profiler.samples import COLUMNS, read_samples

__all__ = [
    "COLUMNS",
    "Architecture",
    "CostModel",
    "CurveFit",
    "ExtrapolationWarning",
    "LoadedModel",
    "ModelSource",
    "count_flops",
    "fit_curve",
    "generate_flops",
    "load_cost_model",
    "load_model",
    "pass_flops",
    "read_samples",
    "resolve_model",
]
