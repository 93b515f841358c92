"""What an LLM call costs: the paper's primitive, or a fitted cost model.

A pricing answers ``price(role, n_in, n_out, size, cached)``: the cost of a call by the agent
``role`` that reads ``n_in`` tokens and writes ``n_out``, made by a model ``size`` times the
base model's size (the paper's ``m``, relative: the k-task generalist is ``k`` times a
specialist), the first ``cached`` tokens of its input already in that model's cache (prefix
reuse between calls, ``profiler.lba.prefix_cache``; 0 by default). Arguments broadcast as numpy
arrays; the result has their shape.

- ``PaperPrimitive``: the paper's Def. 2.2: every emitted token is a pass over the current
  string and a pass of a model of size ``m`` over ``n`` tokens costs ``m * n``:
  ``size * sum_{t=0}^{n_out-1} (n_in + t)``, in ``m*token`` (the base model's size times
  tokens). It has no notion of a KV cache, so ``cached`` changes nothing.
- ``FittedPricing``: a fitted ``CostModel`` (``profiler.costmodel.cost_model``) prices the call,
  with or without a KV cache, in its unit (seconds by default). A role may have its own
  cost model; another size than 1 is priced by the family's size law when there is one
  (``profiler.costmodel.family``), otherwise as ``size`` times the base model's cost -- the paper's
  linearity in ``m``, an assumption that ``assumptions`` then states. A cached prefix is priced by
  ``CostModel.call(..., cached=)`` (one extend pass over the tokens not cached, then the decode
  steps: latency with a KV cache only); at another size than its cost model's, a call saves what the
  base model's does: its own price times the base model's cached over uncached call time.

A pricing also answers ``batch(role, n_in, n_out, batch, size)``: a batch of ``batch`` such calls
run at once (static batching: every sequence reads ``n_in`` and writes ``n_out``), as ``(device
time, duration)``, and ``max_batch(role)``, the largest batch it prices without extrapolating
(``profiler.lba.schedule`` lays groups of calls out in batches):

- the paper's primitive counts work, not a device: a batch occupies ``batch`` times one call's
  device time and takes one call's time, so a parallel schedule's makespan is a program's depth;
  no limit to a batch;
- a fit prices it by its cost model's batched call (``CostModel.call_batch``, the surfaces fitted
  over batch and length), which is both the batch's device time and its duration; the limit is
  the largest batch measured.

``Pricing`` is what both answer: the exercises, the break-even and the validation take any.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from profiler.costmodel.cost_model import UNITS, CostModel, ExtrapolationWarning
from profiler.costmodel.family import FamilyCostModel

if TYPE_CHECKING:
    from profiler.lba.schedule import Schedule


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

    def price(self, role: str, n_in, n_out, size=1.0, cached=0) -> np.ndarray:
        """The cost of a call by ``role`` reading ``n_in`` tokens and writing ``n_out``, by a model
        ``size`` times the base model, the first ``cached`` (at most ``n_in - 1``) of its input tokens
        already in that model's cache; arguments broadcast, the result has their shape."""

    def batch(self, role: str, n_in, n_out, batch, size=1.0) -> tuple[np.ndarray, np.ndarray]:
        """``batch`` such calls run at once: (the device time they occupy, how long they take); arguments
        broadcast. At ``batch`` 1 both are ``price``."""

    def max_batch(self, role: str) -> float:
        """The largest batch of ``role``'s calls priced without extrapolating (``inf``: no limit)."""

    def longest_measured(self, role: str) -> float:
        """The most positions a call of ``role`` may need before its price is extrapolated."""

    def max_positions(self, role: str) -> float:
        """The most positions the model of ``role`` has (``inf``: no limit)."""

    def assumptions(self, resized: bool, schedule: Schedule | None = None) -> list[str]:
        """What the prices rest on beyond measurements, when some role's size is not 1 (``resized``) and
        calls are laid out by ``schedule`` (None: one at a time; its ``reuse``: prefix caching)."""


def _shaped(cost, cached):
    """``cost`` broadcast with an array of ``cached`` prefixes that changed none of it."""
    if np.ndim(cached) == 0:
        return cost
    return np.broadcast_to(cost, np.broadcast_shapes(np.shape(cost), np.shape(cached))).copy()


def _batched_lengths(cost_model: CostModel) -> str:
    """Where the batch surfaces measured more than one sequence, in words: beyond those lengths a batch's price is
    the surfaces' extrapolation."""
    spans = []
    for phase in ("prefill", "decode"):
        domain = cost_model.surface(phase).domain
        batched = domain[domain[:, 0] > 1]
        lo, hi = int(batched[:, 1].min()), int(batched[:, 2].max())
        spans.append(f"{lo:,}" if lo == hi else f"{lo:,} to {hi:,}")
    return (f"; more than one sequence measured only at prompts of {spans[0]} and contexts of {spans[1]} tokens: a "
            "batch of longer calls is extrapolated")


class PaperPrimitive:
    """The paper's primitive (Def. 2.2): no cache, no length limit, one cost law for every size."""

    unit = "m*token"
    name = "the paper's primitive (m * n per emitted token)"
    cache = False
    role_models: Mapping[str, CostModel] = {}

    def price(self, role: str, n_in, n_out, size=1.0, cached=0):
        """``size * (n_out * n_in + n_out * (n_out - 1) / 2)``; ``cached`` is ignored (no cache), but broadcasts."""
        n_in, n_out = np.asarray(n_in, dtype=float), np.asarray(n_out, dtype=float)
        return _shaped(np.asarray(size, dtype=float) * (n_out * n_in + n_out * (n_out - 1) / 2), cached)

    def batch(self, role: str, n_in, n_out, batch, size=1.0):
        one = self.price(role, n_in, n_out, size)
        device, duration = np.broadcast_arrays(np.asarray(batch, dtype=float) * one, one)
        return device, np.array(duration)

    def max_batch(self, role: str) -> float:
        return math.inf

    def longest_measured(self, role: str) -> float:
        return np.inf

    def max_positions(self, role: str) -> float:
        return np.inf

    def assumptions(self, resized: bool, schedule: Schedule | None = None) -> list[str]:
        if schedule is not None and schedule.reuse is not None:
            return ["the paper's primitive has no cache: prefix reuse changes none of its prices (a cached token "
                    "costs what a token read costs)"]
        if schedule is None or not schedule.parallel:
            return []
        return [("a batch of B calls occupies B times one call's device time and takes one call's time (the "
                 "primitive counts passes, not a device's time): the makespan counts the program's depth")]


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

    def _call(self, cost_model: CostModel, n_in, n_out, cached=None):
        """``cost_model``'s call; with a ``cached`` prefix (None: none), its extend pass in place of the prefill."""
        reused = {} if cached is None else {"cached": cached}
        with warnings.catch_warnings():  # extrapolation is reported per row by the caller (longest call)
            warnings.simplefilter("ignore", ExtrapolationWarning)
            return np.asarray(cost_model.call(n_in, n_out, cache=self.cache, metric=self.metric, **reused),
                              dtype=float)

    def _sized(self, size: float) -> CostModel:
        return self.family.at_params(size * self.base.model.non_embedding_params)

    def price(self, role: str, n_in, n_out, size=1.0, cached=0):
        if np.any(np.asarray(cached) != 0):
            return self._price_cached(role, n_in, n_out, size, cached)
        return _shaped(self._price(role, n_in, n_out, size), cached)

    def _price(self, role: str, n_in, n_out, size):
        """``price`` without a cached prefix."""
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

    def _price_cached(self, role: str, n_in, n_out, size, cached):
        """``price`` with a ``cached`` prefix: the role's cost model's call with it; at another size than the base
        model's, the uncached price times the base model's cached over uncached call time."""
        if role in self.role_models:
            return self._call(self.role_models[role], n_in, n_out, cached)
        n_in, n_out, size, cached = np.broadcast_arrays(*(np.asarray(x, dtype=float)
                                                          for x in (n_in, n_out, size, cached)))
        with_prefix = self._call(self.base, n_in, n_out, cached)
        if np.all(size == 1):
            return with_prefix
        return np.where(size == 1, with_prefix,
                        self._price(role, n_in, n_out, size) * with_prefix / self._call(self.base, n_in, n_out))

    def batch(self, role: str, n_in, n_out, batch, size=1.0):
        """The cost model's batched call (``CostModel.call_batch``): both the device time and the duration.
        Another size than the role's model batches as the base model does: its own call's price (the size
        law, or linear) times the base model's batch factor ``call_batch(batch) / call(1)``."""
        if not self.cache or self.metric != "latency_s":
            raise ValueError("batched calls are priced in latency with a KV cache")
        single = self.price(role, n_in, n_out, size)
        batch = np.asarray(batch, dtype=float)
        if np.all(batch == 1):
            return single, single
        model = self.role_models.get(role, self.base)
        with warnings.catch_warnings():  # extrapolation is reported by the caller
            warnings.simplefilter("ignore", ExtrapolationWarning)
            seconds = np.asarray(model.call_batch(n_in, n_out, batch), dtype=float)
        if role not in self.role_models and np.any(np.asarray(size) != 1):
            seconds = seconds * single / self._call(self.base, n_in, n_out)
        seconds = np.where(batch == 1, single, seconds)
        return seconds, seconds

    def max_batch(self, role: str) -> float:
        """The largest batch the role's cost model measured (1 without batch surfaces)."""
        return float(self.role_models.get(role, self.base).max_batch)

    def longest_measured(self, role: str) -> float:
        """The longest context the role's cost model measured: longer calls are extrapolated."""
        cost_model = self.role_models.get(role, self.base)
        return float(min(curve.n_max for metrics in cost_model.curves.values() for curve in metrics.values()))

    def max_positions(self, role: str) -> float:
        """The longest context the role's model takes at all (fits since schema 1.1 record it)."""
        return float(self.role_models.get(role, self.base).model.max_positions or np.inf)

    def assumptions(self, resized: bool, schedule: Schedule | None = None) -> list[str]:
        """What the prices rest on beyond the measurements, when some role's size is not 1 and calls are
        batched by a parallel ``schedule``."""
        notes = []
        if resized and self.family is None:
            notes.append(f"a model s times {self.base.model.name}'s size is priced as s times its cost (the "
                         "paper's linearity in m: no fits of its family, for a measured size law)")
        elif resized:
            names = ", ".join(m.model.name for m in self.family.members)
            notes.append(f"other model sizes priced by the size law of the family {names} (profiled: "
                         f"{min(self.family.params) / 1e6:.0f}M to {max(self.family.params) / 1e6:.0f}M "
                         "non-embedding parameters; beyond them it extrapolates)")
        if schedule is not None and schedule.reuse is not None:
            notes.append("a call whose first p input tokens its model holds cached is priced as one extend pass of "
                         "its other n_in - p tokens over the p cached (the fit's extend surface), then its n_out - 1 "
                         "decode steps")
            if resized:
                notes.append(f"a model of another size saves what {self.base.model.name} saves: its own call's "
                             f"price times {self.base.model.name}'s cached over uncached call time")
        if schedule is None or not schedule.parallel:
            return notes
        measured = int(self.base.max_batch)
        if measured == 1:
            notes.append("the fit measured one sequence a pass, no batch: every call is a batch of its own")
        else:
            notes.append(f"a batch of calls priced by the fit's batched calls (prefill and decode surfaces over batch "
                         f"and length, measured up to {measured} sequences{_batched_lengths(self.base)}), padded to "
                         "its longest input and output (static batching); a batch's device time is its duration")
        if schedule.max_batch is not None and schedule.max_batch > measured:
            notes.append(f"batches of up to {schedule.max_batch:,} calls: beyond the {measured} measured, "
                         "the surfaces extrapolate")
        if resized:
            notes.append(f"a model of another size batches as {self.base.model.name} does: its batched call costs "
                         f"its own call's price times {self.base.model.name}'s batched over single call time")
        return notes
