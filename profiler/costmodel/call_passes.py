"""A priced call's arguments as the passes it runs, and what a price's checks and warnings need of them.

``call_passes(n_in, n_out, cache)`` is a call reading ``n_in`` tokens and emitting ``n_out`` as its passes (the
module doc of ``profiler.costmodel.cost_model`` counts them); ``batches`` checks a batch of sequences, ``outside``
whether a range of context lengths (tokens) leaves a curve's measured domain, and ``shown`` writes the values an
``ExtrapolationWarning`` names. Arrays broadcast.
"""

from __future__ import annotations

import numpy as np

from profiler.costmodel.fit import CurveFit


def batches(batch) -> np.ndarray:
    """``batch`` as an array of whole numbers of at least 1; a ``ValueError`` otherwise."""
    batch = np.asarray(batch)
    if np.any(batch < 1) or np.any(batch != np.round(batch)):
        raise ValueError("a batch is a whole number of sequences, at least 1")
    return batch


def call_passes(n_in, n_out, cache: bool) -> tuple[str | None, str, np.ndarray, np.ndarray]:
    """The passes of a call reading ``n_in`` tokens and emitting ``n_out >= 1`` (see the module doc): the
    phase of its one first pass (None without a cache), the phase of the passes it repeats, and the
    range ``lo..hi`` of context lengths those run at (empty for one token out with a cache)."""
    n_in, n_out = np.asarray(n_in), np.asarray(n_out)
    if np.any(n_out < 1) or np.any(n_in < 1):
        raise ValueError("a call reads at least one token and emits at least one")
    if cache:
        return "prefill", "decode", n_in, n_in + n_out - 2
    return None, "forward", n_in, n_in + n_out - 1


def shown(values) -> str:
    """A number as such, an array as its range: a warning's text is made even when the warning is filtered out,
    and printing a whole break-even map's array costs more than pricing it."""
    values = np.asarray(values)
    return f"{values}" if values.ndim == 0 else f"{values.min()}..{values.max()} ({values.size:,} values)"


def outside(curve: CurveFit, lo, hi) -> bool:
    """Whether any non-empty range lo..hi leaves the curve's measured domain."""
    return bool(np.any((hi >= lo) & ((lo < curve.n_min) | (hi > curve.n_max))))
