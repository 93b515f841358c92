"""What an LLM call costs: the paper's primitive, or a fitted cost model.

A pricing answers ``price(role, n_in, n_out, size)``: the cost of a call by the agent
``role`` that reads ``n_in`` tokens and writes ``n_out``, made by a model ``size`` times the
base model's size (the paper's ``m``, relative: the k-task generalist is ``k`` times a
specialist). Arguments broadcast as numpy arrays; the result has their shape.

- ``PaperPrimitive``: the paper's Def. 2.2: every emitted token is a pass over the current
  string and a pass of a model of size ``m`` over ``n`` tokens costs ``m * n``:
  ``size * sum_{t=0}^{n_out-1} (n_in + t)``, in ``m*token`` (the base model's size times
  tokens). It has no notion of a KV cache.
- ``FittedPricing``: a fitted ``CostModel`` (``profiler.costmodel.cost_model``) prices the call,
  with or without a KV cache, in its unit (seconds by default). A role may have its own
  cost model; another size than 1 is priced by the family's size law when there is one
  (``profiler.costmodel.family``), otherwise as ``size`` times the base model's cost -- the paper's
  linearity in ``m``, an assumption that ``assumptions`` then states.

``Pricing`` is what both answer: the exercises, the break-even and the validation take any.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import numpy as np

from profiler.costmodel.cost_model import UNITS, CostModel, ExtrapolationWarning
from profiler.costmodel.family import FamilyCostModel


@runtime_checkable  # isinstance checks that every member is there, not their types
class Pricing(Protocol):
    """What a pricing answers. ``unit``: the unit of every price (``s``, ``flops``, ``m*token``);
    ``name``: a phrase for tables (``fitted gpt2 on <hardware>``); ``cache``: whether a call reuses
    a KV cache; ``role_models``: the roles priced by a cost model of their own (the others by the
    base model, at their size)."""

    unit: str
    name: str
    cache: bool
    role_models: Mapping[str, CostModel]

    def price(self, role: str, n_in, n_out, size=1.0) -> np.ndarray:
        """The cost of a call by ``role`` reading ``n_in`` tokens and writing ``n_out``, by a model
        ``size`` times the base model; arguments broadcast, the result has their shape."""

    def longest_measured(self, role: str) -> float:
        """The most positions a call of ``role`` may need before its price is extrapolated."""

    def max_positions(self, role: str) -> float:
        """The most positions the model of ``role`` has (``inf``: no limit)."""

    def assumptions(self, resized: bool) -> list[str]:
        """What the prices rest on beyond measurements, when some role's size is not 1 (``resized``)."""


class PaperPrimitive:
    """The paper's primitive (Def. 2.2): no cache, no length limit, one cost law for every size."""

    unit = "m*token"
    name = "the paper's primitive (m * n per emitted token)"
    cache = False
    role_models: Mapping[str, CostModel] = {}

    def price(self, role: str, n_in, n_out, size=1.0):
        n_in, n_out = np.asarray(n_in, dtype=float), np.asarray(n_out, dtype=float)
        return np.asarray(size, dtype=float) * (n_out * n_in + n_out * (n_out - 1) / 2)

    def longest_measured(self, role: str) -> float:
        return np.inf

    def max_positions(self, role: str) -> float:
        return np.inf

    def assumptions(self, resized: bool) -> list[str]:
        return []


class FittedPricing:
    """Calls priced by fitted cost models: ``base`` for every role and size 1, ``role_models``
    for named roles, ``family`` (or linear scaling) for other sizes."""

    def __init__(self, base: CostModel, *, role_models: dict[str, CostModel] | None = None,
                 family: FamilyCostModel | None = None, cache: bool = True, metric: str = "latency_s"):
        self.base = base
        self.role_models = role_models or {}
        self.family = family
        self.cache = cache
        self.metric = metric
        self.unit = UNITS[metric]
        self.name = f"fitted {base.model.name} on {base.hardware_slug}" + (
            "" if cache else ", no KV cache")
        if family is not None and metric != "latency_s":
            raise ValueError("the family size law prices latency only")

    def _call(self, cost_model: CostModel, n_in, n_out):
        with warnings.catch_warnings():  # extrapolation is reported per row by the caller (longest call)
            warnings.simplefilter("ignore", ExtrapolationWarning)
            return np.asarray(cost_model.call(n_in, n_out, cache=self.cache, metric=self.metric), dtype=float)

    def _sized(self, size: float) -> CostModel:
        return self.family.at_params(size * self.base.model.non_embedding_params)

    def price(self, role: str, n_in, n_out, size=1.0):
        if role in self.role_models:
            return self._call(self.role_models[role], n_in, n_out)
        n_in, n_out, size = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (n_in, n_out, size)))
        if np.all(size == 1):
            return self._call(self.base, n_in, n_out)
        if self.family is None:
            return size * self._call(self.base, n_in, n_out)
        cost = np.empty(size.shape)
        for s in np.unique(size):
            where = size == s
            cost[where] = self._call(self.base if s == 1 else self._sized(float(s)), n_in[where], n_out[where])
        return cost

    def longest_measured(self, role: str) -> float:
        """The longest context the role's cost model measured: longer calls are extrapolated."""
        cost_model = self.role_models.get(role, self.base)
        return float(min(curve.n_max for metrics in cost_model.curves.values() for curve in metrics.values()))

    def max_positions(self, role: str) -> float:
        """The longest context the role's model takes at all (fits since schema 1.1 record it)."""
        return float(self.role_models.get(role, self.base).model.max_positions or np.inf)

    def assumptions(self, resized: bool) -> list[str]:
        """What the prices rest on beyond the measurements, when some role's size is not 1."""
        if not resized:
            return []
        if self.family is None:
            return [f"a model s times {self.base.model.name}'s size is priced as s times its cost (the paper's "
                    "linearity in m: no fits of its family, for a measured size law)"]
        names = ", ".join(m.model.name for m in self.family.members)
        return [f"other model sizes priced by the size law of the family {names} (profiled: "
                f"{min(self.family.params) / 1e6:.0f}M to {max(self.family.params) / 1e6:.0f}M non-embedding "
                "parameters; beyond them it extrapolates)"]
