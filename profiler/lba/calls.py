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

A call may also say which earlier context its input continues, for prefix reuse
(``profiler.lba.prefix_cache``): ``segments`` names the leading pieces of its input, in order,
as ``(name, tokens)`` -- a name is one content within a program run (the system prompt is
``("system", s)``; a chat's code, report or rewrite), so two calls of one model whose inputs
begin with the same names share that prefix -- and ``output`` names what it writes, so a later
call can read it as a segment. Neither enters a call's equality, hash or order: recorded
counts and groups are the same with or without them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from numbers import Integral
from typing import Protocol


@dataclass(frozen=True, order=True)
class Call:
    """One LLM call: ``role`` reads ``n_in`` tokens and writes ``n_out``, made by the role's model
    number ``model`` (0 where a role has one model). ``segments``: the named leading pieces of its
    input, ``(name, tokens)`` in order, summing to at most ``n_in`` (the rest of its input is its own,
    never shared); ``output``: the name of what it writes (``""``: none). A ``ValueError`` for an
    empty name, a segment of no token or segments longer than the input."""

    role: str
    n_in: int
    n_out: int
    model: int = 0
    segments: tuple[tuple[str, int], ...] = field(default=(), compare=False)
    output: str = field(default="", compare=False)

    def __post_init__(self):
        if not isinstance(self.output, str):
            raise ValueError(f"{self.role}: a call's output is named by a string, not {self.output!r}")
        if self.segments:
            _check_segments(self)


def _check_segments(call: Call) -> None:
    """A ``ValueError`` unless ``call.segments`` is a tuple of ``(name, tokens)`` pairs, each a non-empty string and
    a whole number of at least 1, summing to at most ``n_in``. In C-level passes over the segments: a chat's
    calls name hundreds each."""
    segments = call.segments
    pairs = isinstance(segments, tuple) and set(map(type, segments)) == {tuple} and set(map(len, segments)) == {2}
    names, tokens = zip(*segments) if pairs else ((), ())
    if not (pairs and set(map(type, names)) == {str} and all(names)
            and all(issubclass(kind, Integral) and kind is not bool for kind in set(map(type, tokens)))
            and min(tokens) >= 1):
        raise ValueError(f"{call.role}: segments are a tuple of (non-empty name, at least one token), not "
                         f"{segments!r}")
    if sum(tokens) > call.n_in:
        raise ValueError(f"{call.role}: segments of {sum(tokens)} tokens in all, more than the {call.n_in} the call "
                         "reads")


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
