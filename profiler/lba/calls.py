"""The interface between a language-based algorithm (LbA) and whatever carries out its LLM calls.

An LbA (the paper's term: a program some of whose steps are LLM calls) makes every call
through ``llm(role, n_in, n_out)``: the agent role making it (``"qa"``, ``"developer"``,
...), the tokens the call reads and the tokens it writes. Calls that do not depend on each
other's output it may issue at once, as a group: ``llm.group([Call(...), ...])`` (a single
call is a group of one). A group depends on every group before it; its calls on nothing in it.
Nothing else about a call matters to its cost, so the same program can be

- recorded (``CallRecorder``: the calls and the groups, for tests and for pricing each
  distinct call or group once),
- priced by a cost model (``profiler.lba.pricing``) under a schedule (``profiler.lba.schedule``:
  one call after another, or groups batched and spread over devices), or
- executed with a real model (a backend that runs ``n_in`` tokens in and forces ``n_out``
  tokens out).

A call's ``model`` says which model of its role makes it (the k-task specialist of task
``model``): only calls of one role and one model can share a batch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, order=True)
class Call:
    """One LLM call: ``role`` reads ``n_in`` tokens and writes ``n_out``, made by the role's model
    number ``model`` (0 where a role has one model)."""

    role: str
    n_in: int
    n_out: int
    model: int = 0


# A group of independent calls as recorded: its distinct calls (sorted) with how many of each.
Group = tuple[tuple[Call, int], ...]


def positions_needed(n_in, n_out):
    """Positions a call occupies: ``n_in`` read, then ``n_out - 1`` of its outputs fed back (the last
    emitted token is never read). Element-wise on numpy arrays."""
    return n_in + n_out - 1


class LLM(Protocol):
    def __call__(self, role: str, n_in: int, n_out: int) -> None:
        """One call, alone: a group of one."""

    def group(self, calls: Sequence[Call]) -> None:
        """Calls independent of each other, issued at once (at least one)."""


class TooManyCalls(Exception):
    """A recorded program made more calls than its recorder's limit."""


def as_group(calls: Sequence[Call]) -> Group:
    """``calls`` as a recorded group: each distinct call once, sorted, with its count. A ``ValueError``
    for an empty group or a call that reads or writes no token."""
    if not calls:
        raise ValueError("a group holds at least one call")
    counts = Counter(calls)
    for call in counts:
        if call.n_in < 1 or call.n_out < 1:
            raise ValueError(f"{call.role}: a call reads at least one token and writes at least one "
                             f"({call.n_in}, {call.n_out})")
    return tuple(sorted(counts.items()))


class CallRecorder:
    """An LLM backend that only records: how many times each distinct call was made (``counts``) and
    each distinct group issued (``groups``), in order of first appearance, so a program of millions
    of identical calls or groups stays small. With a ``limit`` on the calls, the group that would
    pass it raises ``TooManyCalls`` and is not recorded."""

    def __init__(self, limit: int | None = None):
        self.counts: Counter[Call] = Counter()
        self.groups: Counter[Group] = Counter()
        self.limit = limit
        self.calls = 0

    def __call__(self, role: str, n_in: int, n_out: int) -> None:
        self.group([Call(role, int(n_in), int(n_out))])

    def group(self, calls: Sequence[Call]) -> None:
        group = as_group(calls)
        size = sum(count for _, count in group)
        if self.limit is not None and self.calls + size > self.limit:
            raise TooManyCalls(f"more than {self.limit:,} calls")
        for call, count in group:
            self.counts[call] += count
        self.groups[group] += 1
        self.calls += size

    def by_role(self) -> dict[str, list[tuple[Call, int]]]:
        """The distinct calls of each role, with how often each was made."""
        roles: dict[str, list[tuple[Call, int]]] = {}
        for call, count in self.counts.items():
            roles.setdefault(call.role, []).append((call, count))
        return roles
