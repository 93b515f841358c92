"""aalp-profiler: measure what one LLM forward pass really costs, on your own hardware.

The package is layered along the data flow, each layer a subpackage that imports only the
ones before it: ``measure`` (passes timed -> ``samples.csv``) -> ``costmodel`` (fits ->
``fits/*.json``) -> ``lba`` (the paper's programs priced and run) -> ``report`` -> ``cli``.
The public names below are imported on first use, so ``import profiler`` loads neither torch
nor transformers; ``load_cost_model`` and ``CostModel`` never need them.
"""

from profiler.lazy import lazy_exports

_PUBLIC = {
    "Architecture": "profiler.measure.architecture",
    "COLUMNS": "profiler.measure.samples",
    "CostModel": "profiler.costmodel.cost_model",
    "CurveFit": "profiler.costmodel.fit",
    "ExtrapolationWarning": "profiler.costmodel.cost_model",
    "LoadedModel": "profiler.measure.loading",
    "ModelSource": "profiler.measure.catalog",
    "count_flops": "profiler.measure.flops",
    "fit_curve": "profiler.costmodel.fit",
    "generate_flops": "profiler.measure.flops",
    "load_cost_model": "profiler.costmodel.fit_file",
    "load_model": "profiler.measure.loading",
    "pass_flops": "profiler.measure.flops",
    "read_samples": "profiler.measure.samples",
    "resolve_model": "profiler.measure.catalog",
}

__all__ = sorted(_PUBLIC)

__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC)
