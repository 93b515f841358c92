"""An LLM backend that runs an LbA's calls on a served model: each call one streamed completion from an endpoint.

``EndpointBackend`` has ``execution.ModelBackend``'s interface (``llm(role, n_in, n_out)``, ``llm.group(calls)``,
``recorder``, ``calls``, ``batches``, ``latencies_s``, ``warm_up``; ``TooLong``, ``OutOfTime``), so
``validate.validate`` runs the programs against a server as it runs them in process. A call is one
``EndpointClient.complete`` of a prompt of exactly ``n_in`` tokens by the server's count (``PromptShape.prompt``:
random words drawn from a generator seeded by the backend's seed, fresh from the first word on, so no call shares a
prefix a server could cache) with ``max_tokens = n_out``, the output length forced (a server that cannot force it
is refused before anything runs: ``endpoint_runner``). Its latency (``Batch.latency_s``) is the call's E2E: seconds
from sending the request to the end of its stream, on the client's clock; a retried call's failed attempts and
waits are not in it (they are in the run's wall time, and in ``failures``).

Only the sequential schedule (every call alone, one after another, as the paper counts): an endpoint's fit has no
batch or extend surface (a client cannot see the server's batches or cache), and load is measured by ``run
--endpoint``'s concurrency sweep. Groups run call by call.

- **Usage checked.** Every call's ``usage`` is set against what was asked (``rows.usage_mismatch``: the prompt's
  tokens exactly, ``completion_tokens == n_out``); a call that differs is kept in ``mismatches`` and refused with
  ``UsageMismatchError`` (one line): a run whose calls were not the program's is never counted.
- **Positions.** A server holds a call's prompt and its ``max_tokens`` within its context (vLLM's check:
  ``prompt_tokens + max_tokens <= max_model_len``), one position more than a local generate needs
  (``positions_needed``: ``n_in + n_out - 1``, the last token never read). So a served context of ``P`` positions
  is ``P - 1`` by the local rule (``Runner.max_positions``), and a call or group beyond it raises ``TooLong`` before
  any of the group is sent.
- **Deadline.** A call about to start after ``deadline`` (a reading of ``clock``) raises ``OutOfTime``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from functools import partial

from profiler.errors import UserError
from profiler.lba.calls import Call, CallRecorder, positions_needed
from profiler.lba.execution import Batch, OutOfTime, TooLong
from profiler.lba.schedule import SEQUENTIAL, Schedule
from profiler.lba.validate import Runner
from profiler.measure.endpoint.client import EndpointClient
from profiler.measure.endpoint.prompts import PromptShape
from profiler.measure.endpoint.rows import UsageMismatch, usage_mismatch
from profiler.measure.endpoint.streamed_call import StreamedCall
from profiler.measure.timing import Clock

PART = "validate"  # where a usage mismatch happened, as run.json's endpoint records name it


class UsageMismatchError(UserError):
    """A call's usage counts differ from what the program asked: its run is not the program's."""


class EndpointBackend:
    """Runs every call alone as one streamed completion from ``client`` (``shape``'s prompts, words drawn with
    ``seed``); ``max_positions`` is the served context in the local rule (see the module doc). Records the calls
    made, each call as a batch of one with its E2E, the streamed calls and their usage mismatches."""

    def __init__(self, client: EndpointClient, shape: PromptShape, max_positions: int, seed: int = 0,
                 deadline: float | None = None, clock: Clock = time.perf_counter, schedule: Schedule = SEQUENTIAL):
        if schedule.parallel or schedule.reuse is not None:
            raise ValueError(f"an endpoint backend runs every call alone, not {schedule.to_json()}")
        self.client, self.shape, self.max_positions = client, shape, max_positions
        self.rng = random.Random(seed)
        self.deadline, self.clock = deadline, clock
        self.recorder = CallRecorder()
        self.calls: list[Call] = []
        self.batches: list[Batch] = []
        self.streamed: list[StreamedCall] = []
        self.mismatches: list[UsageMismatch] = []

    @property
    def latencies_s(self) -> list[float]:
        """Each call's E2E, seconds, in the order run."""
        return [batch.latency_s for batch in self.batches]

    @property
    def failures(self) -> int:
        """Failed attempts retried before the calls made succeeded."""
        return sum(len(call.failures) for call in self.streamed)

    def __call__(self, role: str, n_in: int, n_out: int) -> None:
        self.group([Call(role, int(n_in), int(n_out))])

    def group(self, calls: Sequence[Call]) -> None:
        """Independent calls, recorded as one group and sent one after another, each checked and timed."""
        for call in calls:
            if positions_needed(call.n_in, call.n_out) > self.max_positions:
                raise TooLong(f"{call.role} call of {call.n_in} + {call.n_out} tokens: beyond the server's context "
                              f"of {self.max_positions + 1} positions for a prompt and its output")
        for i, call in enumerate(calls):
            if self.deadline is not None and self.clock() > self.deadline:
                raise OutOfTime(f"{call.role} call at {len(self.batches) + 1}: past the deadline")
            if i == 0:
                self.recorder.group(calls)
                self.calls.extend(calls)
            self.batches.append(Batch(call.role, call.model, call.n_in, call.n_out, 1, self._send(call).e2e_s))

    def _send(self, call: Call) -> StreamedCall:
        streamed = self.client.complete(self.shape.prompt(call.n_in, self.rng), call.n_out)
        self.streamed.append(streamed)
        mismatch = usage_mismatch(streamed, call.n_in, True, PART)
        if mismatch is not None:
            self.mismatches.append(mismatch)
            raise UsageMismatchError(
                f"{self.client.endpoint.url}: a {call.role} call of {call.n_in} + {call.n_out} tokens came back as "
                f"{mismatch.prompt_tokens} + {mismatch.completion_tokens} by the server's usage: the run is not the "
                "program's, so it is not counted")
        return streamed

    def warm_up(self, n_in: int = 16, n_out: int = 4) -> None:
        """One untimed call, so the first timed one does not pay for the server's or the connection's start."""
        n_in = max(1, min(n_in, self.max_positions - n_out + 1))
        self._send(Call("warm-up", n_in, n_out))


def endpoint_runner(client: EndpointClient, shape: PromptShape, model: str, served_positions: int) -> Runner:
    """What runs ``validate``'s programs on ``client``'s endpoint with prompts of ``shape`` (``prompts.calibrate``):
    ``model`` (the name its fit goes by) with a served context of ``served_positions`` tokens. A one-line
    UserError where the server cannot force a call's output length: the programs' calls would not be the ones
    priced."""
    endpoint = client.endpoint
    if client.forcing == "none":
        raise UserError(f"{endpoint.url}: the server does not let a call's output length be forced (neither "
                        "ignore_eos with min_tokens nor generation_config), so the programs' calls cannot be run "
                        "as they are priced")
    return Runner(model=model, max_positions=served_positions - 1,
                  calls=f"streamed completions from {endpoint.model} at {endpoint.url}, one call at a time (E2E: "
                        f"request to end of stream), output lengths forced by {client.forcing}, prompts of exact "
                        "token counts checked against the server's usage",
                  backend=partial(EndpointBackend, client, shape, served_positions - 1))
