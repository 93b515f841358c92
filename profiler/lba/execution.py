"""An LLM backend that runs a loaded model for real: the calls of an LbA executed, and timed.

``ModelBackend`` is an ``llm(role, n_in, n_out)`` (``profiler.lba.calls``; a group's calls are run one
after another): each call runs
``Passes.generate(n_in, n_out)`` -- a prefill over ``n_in`` seeded random prompt tokens that
builds the KV cache, then ``n_out - 1`` cached decode steps feeding back the argmax: exactly
``n_out`` tokens, no EOS stop (random weights; forced output length). Cost does not depend on
which tokens are read, so the history, prefix and block structure of a program are its token
counts. Each call is timed by ``timing.time_pass`` (on ``clock``, the wall clock by default;
device synchronised), so a call's latency is what the fitted ``CostModel.call(n_in, n_out,
cache=True)`` predicts.

A call that needs more positions than the model has (``positions_needed``: ``n_in + n_out - 1``)
is refused with ``TooLong``; a call started after the ``deadline`` (a reading of ``clock``)
raises ``OutOfTime``, so a run over budget ends between two calls.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from profiler.lba.calls import Call, CallRecorder, positions_needed
from profiler.measure.loading import LoadedModel
from profiler.measure.passes import Passes
from profiler.measure.timing import Clock, time_pass


class TooLong(Exception):
    """A call holds more tokens than the model's maximum positions."""


class OutOfTime(Exception):
    """A call was about to start after the backend's deadline."""


class ModelBackend:
    """Runs every call on ``loaded``; records the calls made and their latencies (seconds)."""

    def __init__(self, loaded: LoadedModel, seed: int = 0, deadline: float | None = None,
                 clock: Clock = time.perf_counter):
        self.passes = Passes(loaded, seed)
        self.device = loaded.device
        self.max_positions = loaded.architecture.max_positions
        self.deadline = deadline
        self.clock = clock
        self.recorder = CallRecorder()
        self.latencies_s: list[float] = []
        self.last_cache = None

    def __call__(self, role: str, n_in: int, n_out: int) -> None:
        self.group([Call(role, int(n_in), int(n_out))])

    def group(self, calls: Sequence[Call]) -> None:
        """Independent calls, recorded as one group and run one after another (each timed alone)."""
        for call in calls:
            if positions_needed(call.n_in, call.n_out) > self.max_positions:
                raise TooLong(f"{call.role} call of {call.n_in} + {call.n_out} tokens needs "
                              f"{positions_needed(call.n_in, call.n_out)} positions: beyond the model's "
                              f"{self.max_positions}")
        for i, call in enumerate(calls):
            if self.deadline is not None and self.clock() > self.deadline:
                raise OutOfTime(f"{call.role} call at {len(self.latencies_s) + 1}: past the deadline")
            if i == 0:
                self.recorder.group(calls)
            self.last_cache, latency_s = time_pass(lambda c=call: self.passes.generate(c.n_in, c.n_out), self.device,
                                                   self.clock)
            self.latencies_s.append(latency_s)

    def warm_up(self, n_in: int = 16, n_out: int = 4) -> None:
        """One untimed call, so the first timed one does not pay for lazy initialisation."""
        self.passes.generate(min(n_in, self.max_positions - n_out), n_out)
