"""The interface between a language-based algorithm (LbA) and whatever carries out its LLM calls.

An LbA (the paper's term: a program some of whose steps are LLM calls) makes every call
through ``llm(role, n_in, n_out)``: the agent role making it (``"qa"``, ``"developer"``,
...), the tokens the call reads and the tokens it writes. Nothing else about a call
matters to its cost, so the same program can be

- recorded (``CallRecorder``: the calls, for tests and for pricing each distinct call once),
- priced by a cost model (``profiler.lba.pricing``), or
- executed with a real model (a backend that runs ``n_in`` tokens in and forces ``n_out``
  tokens out).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Call:
    """One LLM call: ``role`` reads ``n_in`` tokens and writes ``n_out``."""

    role: str
    n_in: int
    n_out: int


def positions_needed(n_in, n_out):
    """Positions a call occupies: ``n_in`` read, then ``n_out - 1`` of its outputs fed back (the last
    emitted token is never read). Element-wise on numpy arrays."""
    return n_in + n_out - 1


class LLM(Protocol):
    def __call__(self, role: str, n_in: int, n_out: int) -> None: ...


class TooManyCalls(Exception):
    """A recorded program made more calls than its recorder's limit."""


class CallRecorder:
    """An LLM backend that only records: how many times each distinct call was made, in order
    of first appearance (a program of millions of identical calls stays small). With a
    ``limit``, the call past it raises ``TooManyCalls``."""

    def __init__(self, limit: int | None = None):
        self.counts: Counter[Call] = Counter()
        self.limit = limit
        self.calls = 0

    def __call__(self, role: str, n_in: int, n_out: int) -> None:
        if n_in < 1 or n_out < 1:
            raise ValueError(f"{role}: a call reads at least one token and writes at least one ({n_in}, {n_out})")
        if self.limit is not None and self.calls >= self.limit:
            raise TooManyCalls(f"more than {self.limit:,} calls")
        self.counts[Call(role, int(n_in), int(n_out))] += 1
        self.calls += 1

    def by_role(self) -> dict[str, list[tuple[Call, int]]]:
        """The distinct calls of each role, with how often each was made."""
        roles: dict[str, list[tuple[Call, int]]] = {}
        for call, count in self.counts.items():
            roles.setdefault(call.role, []).append((call, count))
        return roles
