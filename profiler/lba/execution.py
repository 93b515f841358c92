"""An LLM backend that runs a loaded model for real: the calls of an LbA executed, and timed.

``ModelBackend`` is an ``llm(role, n_in, n_out)`` and ``llm.group(calls)`` (``profiler.lba.calls``)
that runs each call as ``Passes.generate(n_in, n_out, batch)`` -- a prefill over ``n_in`` seeded
random prompt tokens per sequence that builds the KV cache, then ``n_out - 1`` cached decode
steps feeding back each sequence's argmax: exactly ``n_out`` tokens, no EOS stop (random
weights; forced output length). Cost does not depend on which tokens are read, so the history,
prefix and block structure of a program are its token counts. How a group runs is its
``schedule`` (``profiler.lba.schedule``), on this one device:

- sequential (the default): every call alone, one after another, each one generate of one
  sequence, so a call's latency is what the fitted ``CostModel.call(n_in, n_out, cache=True)``
  predicts;
- parallel: the group is cut into batches by the rule that prices it (``schedule.class_batches``:
  per role and model, longest first, at most ``max_batch`` calls a batch), and each batch runs
  as one batched generate padded to its longest input and output (static batching), what
  ``CostModel.call_batch(n_in, n_out, batch)`` predicts. The batches run one after another:
  on one device the group's makespan is their sum.

Under a schedule with ``reuse`` (``prefix_cache.Reuse``; sequential only) the backend keeps the
KV caches of its calls for real, as a serving engine with prefix caching does: every call's input
is token ids (named segments' seeded ids, outputs' generated ones: ``held_caches.SegmentTokens``),
its cached prefix is what a ``PrefixCache`` serves it (the rule the pricing replays, so measured
and priced hits agree by construction), realised on the model's own cache kept from earlier calls
(``held_caches.HeldCaches``: taken as it is when the call continues it exactly, else its prefix
copied), and the call runs as ``Passes.generate_from``: one pass over the rest of its input (an
extend), then ``n_out - 1`` decode steps. Its grown cache is kept for later calls, and whatever the
prefix cache evicted is dropped. Models whose cache layers cannot be cut to a prefix
(sliding-window, linear-attention) are refused with a ``ValueError``.

Each generate is timed by ``timing.time_pass`` (on ``clock``, the wall clock by default; device
synchronised; under reuse, the copy of a prefix too) and kept in ``batches`` (a sequential call is
a batch of one, with the ``cached`` tokens it read from a kept cache); the recorder records the
calls and groups issued, and ``calls`` every call in the order run. A call or batch that needs
more positions than the model has (``positions_needed``: ``n_in + n_out - 1``) is refused with
``TooLong`` before any of its group runs; one about to start after the ``deadline`` (a reading of ``clock``) raises
``OutOfTime``, so a run over budget ends between two generates.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import torch

from profiler.lba.calls import Call, CallRecorder, as_group, positions_needed
from profiler.lba.held_caches import HeldCaches, KeptCache, SegmentTokens, check_sliceable, held_path
from profiler.lba.prefix_cache import PrefixCache
from profiler.lba.schedule import SEQUENTIAL, Schedule, class_batches
from profiler.measure.loading import LoadedModel
from profiler.measure.passes import Passes
from profiler.measure.timing import Clock, time_pass

# The batch of the untimed warm-up under a parallel schedule (at most its limit): the batched path's lazy
# initialisation, in bounded memory (the largest batch of a default CPU sweep).
WARM_UP_BATCH = 8


class TooLong(Exception):
    """A call holds more tokens than the model's maximum positions."""


class OutOfTime(Exception):
    """A call was about to start after the backend's deadline."""


@dataclass(frozen=True)
class Batch:
    """One generate run: ``size`` sequences of ``role``'s model ``model``, each reading ``n_in`` tokens and
    emitting ``n_out`` (padded to the batch's longest), taking ``latency_s`` seconds; the first ``cached`` of the
    ``n_in`` read from a cache kept from earlier calls (reuse only)."""

    role: str
    model: int
    n_in: int
    n_out: int
    size: int
    latency_s: float
    cached: int = 0


class ModelBackend:
    """Runs every call on ``loaded`` as ``schedule`` lays its group out (on one device), reusing kept caches
    where it has ``reuse``; records the calls made and each generate run (``batches``, with its latency in
    seconds)."""

    def __init__(self, loaded: LoadedModel, seed: int = 0, deadline: float | None = None,
                 clock: Clock = time.perf_counter, schedule: Schedule = SEQUENTIAL):
        if schedule.parallel and (schedule.max_batch is None or schedule.devices != 1):
            raise ValueError(f"a backend runs on one device with a given batch limit, not {schedule.to_json()}")
        if schedule.parallel and schedule.reuse is not None:
            raise ValueError("a backend reuses kept caches under a sequential schedule only")
        self.passes = Passes(loaded, seed)
        self.device = loaded.device
        self.max_positions = loaded.architecture.max_positions
        self.deadline = deadline
        self.clock = clock
        self.schedule = schedule
        self.recorder = CallRecorder()
        self.batches: list[Batch] = []
        self.last_cache = None
        self.calls: list[Call] = []
        self.reuse = schedule.reuse
        if self.reuse is not None:
            check_sliceable(self.passes.prefill(1))
            self.prefix_cache = PrefixCache(self.reuse.capacity_tokens)
            self.tokens = SegmentTokens(loaded.architecture.vocab, self.max_positions, seed)
            self.held = HeldCaches()

    @property
    def latencies_s(self) -> list[float]:
        """Each generate's latency, seconds, in the order run."""
        return [batch.latency_s for batch in self.batches]

    def __call__(self, role: str, n_in: int, n_out: int) -> None:
        self.group([Call(role, int(n_in), int(n_out))])

    def group(self, calls: Sequence[Call]) -> None:
        """Independent calls, recorded as one group and run as the schedule lays them out, each generate timed."""
        if self.schedule.parallel:
            runs = [(role, model, n_in, n_out, size) for (role, model), batches in
                    class_batches(as_group(calls), lambda role: self.schedule.max_batch).items()
                    for n_in, n_out, size, times in batches for _ in range(times)]
        else:
            runs = [(call.role, call.model, call.n_in, call.n_out, 1) for call in calls]
        for role, _, n_in, n_out, size in runs:
            if positions_needed(n_in, n_out) > self.max_positions:
                what = "call" if size == 1 else f"batch of {size} calls"
                raise TooLong(f"{role} {what} of {n_in} + {n_out} tokens needs {positions_needed(n_in, n_out)} "
                              f"positions: beyond the model's {self.max_positions}")
        for i, (role, model, n_in, n_out, size) in enumerate(runs):
            if self.deadline is not None and self.clock() > self.deadline:
                raise OutOfTime(f"{role} generate at {len(self.batches) + 1}: past the deadline")
            if i == 0:
                self.recorder.group(calls)
                self.calls.extend(calls)
            cached = 0
            if self.reuse is None:
                self.last_cache, latency_s = time_pass(partial(self.passes.generate, n_in, n_out, batch=size),
                                                       self.device, self.clock)
            else:
                self.last_cache, cached, latency_s = self._reusing(calls[i])
            self.batches.append(Batch(role, model, n_in, n_out, size, latency_s, cached))

    def _reusing(self, call: Call) -> tuple[object, int, float]:
        """Run ``call`` on its cached prefix (see the module doc): its cache, the tokens it read from a kept cache
        and its latency in seconds (taking the kept cache, extend and decode)."""
        key = (call.role, call.model)
        input_ids = self.tokens.input_ids(call)
        hit = self.prefix_cache.serve(call)

        def run():
            cache = self.held.take(key, input_ids, hit)
            cached = 0 if cache is None else cache.get_seq_length()
            return self.passes.generate_from(cache, input_ids[None, hit:], call.n_out), cached

        ((cache, emitted), cached), latency_s = time_pass(run, self.device, self.clock)
        emitted = emitted[0].cpu()
        if call.output:
            self.tokens.write(call.output, emitted)
        self.held.keep(key, KeptCache(torch.cat([input_ids, emitted[:-1]]), held_path(call), cache))
        self.held.prune(self.prefix_cache.held)
        return cache, cached, latency_s

    def warm_up(self, n_in: int = 16, n_out: int = 4) -> None:
        """One untimed call (and under a parallel schedule one untimed batch at its limit, under reuse one on a
        cached half of its input), so the first timed one does not pay for lazy initialisation."""
        n_in = min(n_in, self.max_positions - n_out)
        self.passes.generate(n_in, n_out)
        if self.reuse is not None and n_in > 1:  # the same call after a cached half of its input: an extend pass
            half = n_in // 2
            self.passes.generate_from(self.passes.prefill(half), self.passes.tokens(1, n_in)[:, half:], n_out)
        if self.schedule.parallel and self.schedule.max_batch > 1:
            self.passes.generate(n_in, n_out, batch=min(self.schedule.max_batch, WARM_UP_BATCH))
