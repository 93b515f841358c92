"""aalp-profiler: measure what one LLM forward pass really costs, on your own hardware."""

from profiler.architecture import Architecture
from profiler.catalog import ModelSource, resolve_model
from profiler.flops import count_flops, generate_flops, pass_flops
from profiler.loading import LoadedModel, load_model
from profiler.samples import COLUMNS, read_samples

__all__ = [
    "COLUMNS",
    "Architecture",
    "LoadedModel",
    "ModelSource",
    "count_flops",
    "generate_flops",
    "load_model",
    "pass_flops",
    "read_samples",
    "resolve_model",
]
