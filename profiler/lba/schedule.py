"""How a program's calls are laid out on devices, and what that costs: device time and makespan.

A program issues its calls in groups (``profiler.lba.calls``): the calls of a group are
independent of each other, and a group depends on every group before it, so the critical path
runs through every group, one after another.

- ``sequential`` (the paper's count, the default): every call alone, one after another on one
  device; device time and makespan are both the sum of the calls' prices.
- ``parallel``: a group's calls are split by (role, model) -- only calls of one model share a
  batch -- into batches of at most ``max_batch`` calls (``None``: the pricing's
  ``max_batch(role)``, the largest batch a fit measured, unlimited for the paper's primitive).
  Batching is static: a batch is padded to its longest input and its longest output, as one
  batched generate runs it; the calls of a (role, model) are sorted by length, longest first,
  and cut into batches in that order. The batches are list-scheduled on ``devices`` devices,
  longest first (LPT: each batch to the least loaded device); any device runs any model.
  A batch costs ``Pricing.batch(role, n_in, n_out, batch, size)``: device time (what it
  occupies) and duration (how long it takes). The group's makespan is its schedule's length,
  the program's the sum over its groups; its device time the sum over its batches.

``measure`` says which of the two prices a schedule gives (``device_time`` or ``makespan``);
a sequential schedule gives the same number either way.

``reuse`` (``profiler.lba.prefix_cache.Reuse``, sequential only): prefix caching between calls,
each model keeping what its calls read and wrote. A call's price then depends on the calls before
it, so a schedule with reuse is priced by replaying the programs (``profiler.lba.reuse``), not by
the closed forms nor the recorded groups below, which refuse it. It is sequential only: the extend pass that prices a
cached prefix is measured at batch 1.

Three ways to price, which agree (tests hold them equal):

- ``price_groups``: a recorded program's groups (``CallRecorder.groups``), per role (``price_runs``:
  the totals of several runs);
- ``group``: a group of identical calls of one role and model, vectorised over numpy arrays
  of parameters (a whole break-even grid or map at once), in closed form;
- ``spread_group``: ``inputs`` identical calls spread over ``models`` models of one role in
  equal shares (the k-task specialists), by an exact list schedule per distinct grid cell.

The list schedule itself (longest first, exact, in work that grows with the number of distinct
durations, not with their counts or the devices) is ``profiler.lba.list_schedule``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from profiler.lba.calls import Group
from profiler.lba.list_schedule import lpt_makespan, one_class_makespan
from profiler.lba.prefix_cache import Reuse

if TYPE_CHECKING:  # the pricing imports the cost model; a schedule only calls it
    from profiler.lba.pricing import Pricing

KINDS = ("sequential", "parallel")
MEASURES = ("device_time", "makespan")
MEASURE_NAMES = {"device_time": "device time", "makespan": "makespan"}


@dataclass(frozen=True)
class Schedule:
    """Sequential (every call alone, one after another) or parallel (groups batched up to ``max_batch``
    calls, ``None``: the pricing's limit, over ``devices`` devices), priced in ``measure``; sequential with
    ``reuse``: each model keeps a prefix cache between calls."""

    kind: str = "sequential"
    max_batch: int | None = None
    devices: int = 1
    measure: str = "device_time"
    reuse: Reuse | None = None

    def __post_init__(self):
        if self.kind not in KINDS or self.measure not in MEASURES:
            raise ValueError(f"schedule {self.kind!r} in {self.measure!r}: one of {KINDS}, in one of {MEASURES}")
        if self.kind == "sequential" and (self.max_batch is not None or self.devices != 1):
            raise ValueError("a sequential schedule runs one call at a time on one device")
        if self.max_batch is not None and self.max_batch < 1 or self.devices < 1:
            raise ValueError(f"a batch holds at least one call and there is at least one device "
                             f"({self.max_batch}, {self.devices})")
        if self.parallel and self.reuse is not None:
            raise ValueError("prefix reuse is priced sequentially: the extend pass of a cached prefix is measured at "
                             "batch 1 only")

    @property
    def parallel(self) -> bool:
        return self.kind == "parallel"

    def priced_in(self, measure: str) -> Schedule:
        """This schedule, giving ``measure``."""
        return replace(self, measure=measure)

    def batch_limit(self, pricing: Pricing, role: str) -> float:
        """The most calls of ``role`` one batch holds (``inf``: unlimited)."""
        return float(self.max_batch if self.max_batch is not None else pricing.max_batch(role))

    def describe(self, pricing: Pricing, roles: Iterable[str]) -> str:
        """The schedule in words, for tables and a document's assumptions: its batch limit for ``roles``
        priced by ``pricing``."""
        if not self.parallel:
            return "sequential: every call alone, one after another (the paper's sum)" + (
                "" if self.reuse is None else f", with {self.reuse.describe()}")
        limits = sorted({self.batch_limit(pricing, role) for role in roles})
        if math.isinf(limits[-1]) and len(limits) == 1:
            limit = "no limit on a batch"
        else:
            most = " to ".join(f"{n:,.0f}" for n in dict.fromkeys((limits[0], limits[-1])))
            limit = f"at most {most} calls a batch" + (" (the largest batch measured)" if self.max_batch is None
                                                       else "")
        devices = "one device" if self.devices == 1 else f"{self.devices:,} devices"
        return (f"parallel: each group of independent calls split by role and model into batches, {limit} (static "
                f"batching: a batch padded to its longest input and output), batches list-scheduled longest first on "
                f"{devices}; each group waits for the one before")

    def to_json(self) -> dict:
        """Kind, batch limit and devices; ``reuse`` (its capacity) where prefix caching is on."""
        schedule = {"kind": self.kind, "max_batch": self.max_batch, "devices": self.devices}
        return schedule | ({} if self.reuse is None else {"reuse": self.reuse.to_json()})

    def _without_reuse(self) -> None:
        if self.reuse is not None:
            raise ValueError("a schedule with prefix reuse is priced by replaying the programs' calls in order "
                             "(lba.reuse), not in closed form nor by recorded groups")

    # -- a group of identical calls, vectorised ---------------------------------------------------------

    def group(self, pricing: Pricing, role: str, n_in, n_out, calls, size=1.0) -> np.ndarray:
        """``calls`` identical calls of ``role`` by one model (``size`` times the base model), issued as one
        group, in this schedule's measure; arguments broadcast as numpy arrays."""
        self._without_reuse()
        calls = np.asarray(calls, dtype=float)
        if not self.parallel:
            return calls * pricing.price(role, n_in, n_out, size)
        limit = self.batch_limit(pricing, role)
        full, rest = _split(calls, limit)
        full_device, full_s = _batch(pricing, role, n_in, n_out, np.where(full > 0, limit, 1), size, full > 0)
        rest_device, rest_s = _batch(pricing, role, n_in, n_out, np.where(rest > 0, rest, 1), size, rest > 0)
        if self.measure == "device_time":
            return full * full_device + rest_device
        return one_class_makespan(full_s, full, rest_s, self.devices)

    def spread_group(self, pricing: Pricing, role: str, n_in, n_out, inputs, models, size=1.0) -> np.ndarray:
        """``inputs`` identical calls of ``role`` spread over ``models`` models in equal shares (``inputs //
        models`` each, the first ``inputs % models`` one more), issued as one group: batches never mix
        models. Vectorised over arrays; the makespan scheduled exactly per distinct cell (``lpt_makespan``)."""
        self._without_reuse()
        inputs, models = np.asarray(inputs, dtype=float), np.asarray(models, dtype=float)
        if not self.parallel:
            return inputs * pricing.price(role, n_in, n_out, size)
        shape = np.broadcast_shapes(inputs.shape, models.shape, np.shape(n_in), np.shape(n_out), np.shape(size))
        limit = self.batch_limit(pricing, role)
        share, more = np.floor(inputs / models), np.mod(inputs, models)  # more models get share + 1
        counts = {"low": models - more, "high": more}
        full, rest = {}, {}
        for name, calls in (("low", share), ("high", share + 1)):
            full[name], rest[name] = _split(calls, limit)
        full_batches = full["low"] * counts["low"] + full["high"] * counts["high"]
        priced = {"full": _batch(pricing, role, n_in, n_out, np.where(full_batches > 0, limit, 1), size,
                                 full_batches > 0)}
        for name, models_of in list(counts.items()):
            used = (rest[name] > 0) & (models_of > 0)
            priced[name] = _batch(pricing, role, n_in, n_out, np.where(used, rest[name], 1), size, used)
            counts[name] = np.where(used, models_of, 0)
        if self.measure == "device_time":
            return (full_batches * priced["full"][0] + counts["low"] * priced["low"][0]
                    + counts["high"] * priced["high"][0])
        columns = [np.broadcast_to(x, shape).ravel() for x in (
            priced["full"][1], full_batches, priced["low"][1], counts["low"], priced["high"][1], counts["high"])]
        table = np.stack(columns, axis=1)
        cells, where = np.unique(table, axis=0, return_inverse=True)
        lengths = np.array([lpt_makespan(((a, qa), (b, qb), (c, qc)), self.devices)
                            for a, qa, b, qb, c, qc in cells])
        return lengths[where.ravel()].reshape(shape)

    # -- a recorded program ------------------------------------------------------------------------------

    def price_groups(self, groups: Iterable[tuple[Group, int]], pricing: Pricing, sizes: dict) -> dict[str, float]:
        """A recorded program's groups (each distinct group with how often it was issued) priced per role in
        this schedule's measure. A group's makespan is shared among its roles in proportion to their batches'
        durations (exact for a group of one role, as every exercise's is)."""
        return self._priced(groups, pricing, sizes, {})

    def price_runs(self, runs: Iterable[Iterable[tuple[Group, int]]], pricing: Pricing, sizes: dict) -> list[float]:
        """The total cost of each of several recorded runs (``price_groups`` summed over roles), each distinct
        group priced once over all of them."""
        known: dict[Group, dict[str, float]] = {}
        return [sum(self._priced(groups, pricing, sizes, known).values()) for groups in runs]

    def _priced(self, groups, pricing: Pricing, sizes: dict, known: dict) -> dict[str, float]:
        self._without_reuse()
        roles: dict[str, float] = defaultdict(float)
        for group, times in groups:
            if group not in known:
                known[group] = self._one_group(group, pricing, sizes)
            for role, cost in known[group].items():
                roles[role] += times * cost
        return dict(roles)

    def _one_group(self, group: Group, pricing: Pricing, sizes: dict) -> dict[str, float]:
        if not self.parallel:
            roles: dict[str, float] = defaultdict(float)
            for call, count in group:
                roles[call.role] += count * float(pricing.price(call.role, call.n_in, call.n_out, sizes[call.role]))
            return dict(roles)
        device, duration, jobs = defaultdict(float), defaultdict(float), []
        for (role, _), cut in class_batches(group, lambda role: self.batch_limit(pricing, role)).items():
            for n_in, n_out, batch, times in cut:
                device_s, length_s = (float(x) for x in pricing.batch(role, n_in, n_out, batch, sizes[role]))
                device[role] += times * device_s
                duration[role] += times * length_s
                jobs.append((length_s, times))
        if self.measure == "device_time":
            return dict(device)
        length, total = lpt_makespan(jobs, self.devices), sum(duration.values())
        return {role: length * part / total if total > 0 else 0.0 for role, part in duration.items()}


SEQUENTIAL = Schedule()


def _classes(group: Group) -> dict[tuple[str, int], list[tuple[int, int, int]]]:
    """A group's calls by (role, model): ``(n_in, n_out, count)``, longest first."""
    classes: dict[tuple[str, int], list[tuple[int, int, int]]] = defaultdict(list)
    for call, count in group:
        classes[(call.role, call.model)].append((call.n_in, call.n_out, count))
    return {key: sorted(calls, reverse=True) for key, calls in classes.items()}


def class_batches(group: Group, limit: Callable[[str], float]) -> dict[tuple[str, int], list[tuple[int, ...]]]:
    """A group's batches per (role, model): the calls of each, longest first, cut into batches of at most
    ``limit(role)`` calls (``batches``). The one rule both pricing and execution (``lba.execution``) follow."""
    return {key: batches(calls, limit(key[0])) for key, calls in _classes(group).items()}


def batches(calls: list[tuple[int, int, int]], limit: float) -> list[tuple[int, int, int, int]]:
    """``calls`` of one role and model (``(n_in, n_out, count)``, longest first) cut in that order into batches
    of at most ``limit``: ``(n_in, n_out, batch, times)``, each batch padded to its longest input and output,
    identical batches counted once."""
    out: list[tuple[int, int, int, int]] = []
    open_in = open_out = open_size = 0  # the batch being filled
    for n_in, n_out, count in calls:
        while count:
            if open_size == 0 and count >= limit:
                whole = int(count // limit)
                out.append((n_in, n_out, int(limit), whole))
                count -= whole * int(limit)
                continue
            take = int(min(count, limit - open_size))
            open_in, open_out, open_size = max(open_in, n_in), max(open_out, n_out), open_size + take
            count -= take
            if open_size == limit:
                out.append((open_in, open_out, open_size, 1))
                open_in = open_out = open_size = 0
    if open_size:
        out.append((open_in, open_out, open_size, 1))
    return out


def _split(calls: np.ndarray, limit: float) -> tuple[np.ndarray, np.ndarray]:
    """Full batches of ``limit`` calls and the calls left for one last batch (``limit`` may be ``inf``)."""
    if math.isinf(limit):
        return np.zeros_like(calls), calls
    full = np.floor(calls / limit)
    return full, calls - full * limit


def _batch(pricing: Pricing, role: str, n_in, n_out, batch, size, used) -> tuple[np.ndarray, np.ndarray]:
    """``Pricing.batch``, zero where no such batch is ``used``."""
    device, length = pricing.batch(role, n_in, n_out, batch, size)
    return np.where(used, device, 0.0), np.where(used, length, 0.0)
