"""The sweep of an endpoint run: calls over the length grid, then the prefix-reuse probe and the concurrency sweep,
all within the run's budget.

Order and shares of ``budget_s`` (seconds by ``clock``, from the sweep's start):

1. Calibration (``prompts.calibrate``: a few one-token calls that also probe how the output length is forced).
2. The length sweep, until ``SWEEP_SHARE`` of the budget: rounds over the lengths, each length one call asking
   ``n_out`` tokens (its prefill, decode and generate rows) and one asking one token (its forward row:
   ``rows.CallRows``). The first round visits the lengths longest, shortest, then the middle of the widest gap
   left, and so on (``coverage_order``), so a budget that ends it early still leaves lengths spread over the
   range; later rounds are shuffled (``seed``). At most ``MAX_ROUNDS`` rounds.
3. The prefix-reuse probe (``load.prefix_probe``: four one-token calls at the longest length measured) when its
   cost, predicted from the one-token calls measured there, ends within ``SWEEP_SHARE + PROBE_SHARE`` of the budget.
4. The concurrency sweep (``load.concurrency_sweep``) at the grid's middle length, ``n_out`` tokens a call, with
   what is left: as many rounds per level (1 to ``MAX_LOAD_ROUNDS``) as fit if the server ran every call of a
   round one after another (the generating calls' median E2E there, times the sum of the levels).

No call starts once its stage's deadline has passed; so the run ends within the budget plus one call (a round of
the concurrency sweep, planned to fit, is its calls at once). Each call's usage is checked (``rows.usage_mismatch``)
and its rows written as it ends; a call whose usage differs is kept out of every file and listed.

Ctrl-C ends the sweep with what was written (``interrupted``); a ``UserError`` (the endpoint refusing, or failing
past its attempts) ends it too, its line kept (``stopped``). Torch-free.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx2

from profiler.errors import UserError
from profiler.measure.endpoint.load import ConcurrencyLevel, PrefixProbe, concurrency_sweep, prefix_probe
from profiler.measure.endpoint.prompts import PromptShape, calibrate
from profiler.measure.endpoint.rows import CallRows, ConcurrencyWriter, UsageMismatch, usage_mismatch

N_OUT = 16  # tokens a generating call asks for: 15 decode gaps, and a call as the local run's shorter generate pair
SWEEP_SHARE = 0.65
PROBE_SHARE = 0.10
MAX_ROUNDS = 100  # calls per length and kind: 100 x (1 + 16 + 1) rows per length at most
MAX_LOAD_ROUNDS = 10
PROBE_CALLS = 4
MODELS_TIMEOUT_S = 10.0
MAX_POSITIONS = 2**24  # the most a server's max_model_len is taken at: prompts are built as text, word by word


def served_entry(endpoint) -> dict | None:
    """What ``GET {url}/models`` says of the served model: its entry, with ``max_model_len`` kept only where it is
    a whole number from 2 to ``MAX_POSITIONS`` (vLLM and SGLang give it); None where the server lists no such model
    or answers the request with an error. The run's first request, sent once: an endpoint that cannot be reached,
    or that refuses the key, is a one-line ``UserError`` before anything is written."""
    try:
        response = httpx2.get(f"{endpoint.url}/models", timeout=MODELS_TIMEOUT_S, headers=endpoint.headers())
    except httpx2.TimeoutException:
        raise UserError(f"{endpoint.url}: no answer within {MODELS_TIMEOUT_S:g} s") from None
    except httpx2.RequestError as err:  # its text may hold the request: only its kind is said
        raise UserError(f"{endpoint.url}: cannot reach the endpoint ({type(err).__name__})") from None
    if response.status_code in (401, 403):
        raise UserError(f"{endpoint.url}: HTTP {response.status_code}: the endpoint refused the key"
                        + ("" if endpoint.api_key_env else " (none was sent: --api-key-env VAR names the variable that holds it)"))
    try:
        listed = response.json().get("data") if response.status_code == 200 else None
    except (ValueError, AttributeError):  # not JSON, or not an object
        listed = None
    entry = next((item for item in listed or () if isinstance(item, dict) and item.get("id") == endpoint.model), None)
    if entry is None:
        return None
    length = entry.get("max_model_len")
    fits = isinstance(length, int) and not isinstance(length, bool) and 2 <= length <= MAX_POSITIONS
    return {"id": endpoint.model, **({"max_model_len": length} if fits else {})}


def coverage_order(lengths: list[int]) -> list[int]:
    """``lengths`` (ascending) so that every prefix of the order spreads over them: the longest, the shortest,
    then each time the middle of the widest gap between those taken (by position in the list; the earlier of
    two equal gaps first)."""
    if len(lengths) <= 1:
        return list(lengths)
    taken = [len(lengths) - 1, 0]
    while len(taken) < len(lengths):
        ordered = sorted(taken)
        lo, hi = max(zip(ordered, ordered[1:]), key=lambda gap: (gap[1] - gap[0], -gap[0]))
        taken.append((lo + hi) // 2)
    return [lengths[i] for i in taken]


@dataclass(frozen=True)
class EndpointPlan:
    """What to measure: prompt lengths (tokens, ascending, each leaving ``n_out`` positions free), the budget
    (seconds), the concurrency levels and the seed of the prompts' words and the rounds' order."""

    lengths: list[int]
    budget_s: float
    concurrency_levels: list[int]
    seed: int = 0
    n_out: int = N_OUT


@dataclass
class EndpointOutcome:
    """What the sweep did: the lengths with rows written and those without (``{"n_ctx", "reason"}``), the calls
    of the length sweep, the seconds it took, interrupted or stopped by an error (its line), the prompt shape,
    the calls kept out for their usage, the concurrency levels measured (or why none) and the prefix probe (or
    why none)."""

    lengths: list[int] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    calls: int = 0
    elapsed_s: float = 0.0
    interrupted: bool = False
    stopped: str | None = None
    shape: PromptShape | None = None
    mismatches: list[UsageMismatch] = field(default_factory=list)
    concurrency: list[ConcurrencyLevel] = field(default_factory=list)
    concurrency_n_in: int | None = None
    concurrency_rounds: int | None = None
    concurrency_skipped: str | None = "not reached"
    prefix_probe: PrefixProbe | None = None
    prefix_probe_skipped: str | None = "not reached"


class EndpointSweep:
    """Runs ``plan`` against ``client`` (``client.EndpointClient``), writing each checked call's rows to ``rows``
    and each call under load to ``load_rows``; ``say`` gets a line at each stage."""

    def __init__(self, client, rows: CallRows, load_rows: ConcurrencyWriter, plan: EndpointPlan,
                 clock: Callable[[], float] = time.perf_counter, say: Callable[[str], None] = lambda line: None):
        self.client, self.rows, self.load_rows, self.plan = client, rows, load_rows, plan
        self.clock, self.say = clock, say
        self.rng = random.Random(plan.seed)
        self.outcome = EndpointOutcome()
        self._e2e_s: dict[tuple[int, int], list[float]] = {}  # (prompt tokens, max_tokens) -> E2E of checked calls
        self._forced = False
        self._started = 0.0

    def run(self) -> EndpointOutcome:
        self._started = self.clock()
        try:
            self.outcome.shape = calibrate(self.client)
            self._forced = self.client.forcing != "none"
            self.say(f"calibrated: {len(self.outcome.shape.words)} one-token words, {self.outcome.shape.overhead_tokens}"
                     f" tokens added by the server; output length forced by {self.client.forcing}")
            self._length_sweep()
            self._probe()
            self._load()
        except KeyboardInterrupt:
            self.outcome.interrupted = True
        except UserError as err:
            self.outcome.stopped = str(err)
        measured = set(self.outcome.lengths)
        self.outcome.lengths = sorted(measured)
        self.outcome.skipped = [{"n_ctx": n, "reason": "time budget"} for n in self.plan.lengths if n not in measured]
        self.outcome.elapsed_s = self.clock() - self._started
        return self.outcome

    def _deadline(self, share: float) -> float:
        return self._started + share * self.plan.budget_s

    def _length_sweep(self) -> None:
        deadline = self._deadline(SWEEP_SHARE)
        order = coverage_order(self.plan.lengths)
        for done in range(MAX_ROUNDS):
            if not self._round(order, deadline):
                break
            order = self.rng.sample(order, len(order))
        self.say(f"length sweep: {self.outcome.calls} calls in {done + 1} rounds (at most {MAX_ROUNDS})")

    def _round(self, order: list[int], deadline: float) -> bool:
        """One call of each kind at each length of ``order``; False once the deadline has passed."""
        for n in order:
            for max_tokens in (self.plan.n_out, 1):
                if self.clock() >= deadline:
                    return False
                self._call(n, max_tokens)
        return True

    def _call(self, n: int, max_tokens: int) -> None:
        call = self.client.complete(self.outcome.shape.prompt(n, self.rng), max_tokens)
        self.outcome.calls += 1
        mismatch = usage_mismatch(call, n, self._forced, "sweep")
        if mismatch:
            self.outcome.mismatches.append(mismatch)
            return
        self.rows.write(call)
        self._e2e_s.setdefault((n, max_tokens), []).append(call.e2e_s)
        if n not in self.outcome.lengths:
            self.outcome.lengths.append(n)

    def _predicted_s(self, n: int, max_tokens: int) -> float | None:
        measured = self._e2e_s.get((n, max_tokens))
        return statistics.median(measured) if measured else None

    def _probe(self) -> None:
        if not self.outcome.lengths:
            self.outcome.prefix_probe_skipped = "no length measured"
            return
        top = max(self.outcome.lengths)
        one_call_s = self._predicted_s(top, 1)
        if one_call_s is None:
            self.outcome.prefix_probe_skipped = f"no one-token call measured at {top} tokens to predict it by"
            return
        predicted_s = PROBE_CALLS * one_call_s
        if self.clock() + predicted_s > self._deadline(SWEEP_SHARE + PROBE_SHARE):
            self.outcome.prefix_probe_skipped = f"time budget (predicted {predicted_s:.1f} s)"
            return
        self.outcome.prefix_probe_skipped = None
        self.outcome.prefix_probe = prefix_probe(self.client, self.outcome.shape, top, self.rng)
        self.say(f"prefix probe at {top} tokens: {self.outcome.prefix_probe.verdict}")

    def _load(self) -> None:
        levels, n_out = self.plan.concurrency_levels, self.plan.n_out
        n_in = self.plan.lengths[len(self.plan.lengths) // 2]
        self.outcome.concurrency_n_in = n_in
        call_s = self._predicted_s(n_in, n_out)
        if call_s is None:
            self.outcome.concurrency_skipped = f"no call of {n_in} tokens measured to predict the rounds by"
            return
        left_s = self._deadline(1.0) - self.clock()
        round_s = call_s * sum(levels)  # one round of every level, were the server to run its calls one by one
        rounds = min(MAX_LOAD_ROUNDS, int(left_s // round_s))
        if rounds < 1:
            self.outcome.concurrency_skipped = (f"time budget (one round of every level predicted {round_s:.1f} s, "
                                                f"{max(left_s, 0):.1f} s left)")
            return
        self.outcome.concurrency_skipped, self.outcome.concurrency_rounds = None, rounds

        def on_call(level: int, call) -> None:
            mismatch = usage_mismatch(call, n_in, self._forced, "concurrency")
            if mismatch:
                self.outcome.mismatches.append(mismatch)
            else:
                self.load_rows.write(level, call)

        self.outcome.concurrency = concurrency_sweep(self.client, self.outcome.shape, levels, n_in, n_out, rounds,
                                                     self._deadline(1.0), self.clock, self.rng, on_call)
        self.say("concurrency: " + ", ".join(f"{level.concurrency} x {level.calls} calls, "
                                             f"{level.output_tokens_per_s:,.0f} tokens/s"
                                             for level in self.outcome.concurrency))
