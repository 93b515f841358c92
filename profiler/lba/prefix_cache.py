"""What each model keeps cached between calls: a tree of named segment paths, served and evicted.

A serving engine that reuses the KV cache of a shared prefix (vLLM's automatic prefix
caching, SGLang's RadixAttention) computes only the tokens of a call's input that no earlier
call of that model left in its cache. ``PrefixCache`` is that bookkeeping for an LbA's calls
(``profiler.lba.calls``), one per priced run: per model -- a key ``(role, model)``; calls of
two models never share -- a tree whose nodes are the named segments calls read (``Call.segments``)
and wrote (``Call.output``), each holding some tokens of its segment and the tick it was last
used at. ``serve(call)``:

1. **Match.** The call's segments are followed down its model's tree from the root: a segment
   found holding all the tokens the call reads counts whole and the match goes on; one holding
   fewer (an output, cached with ``n_out - 1`` tokens, read whole later) or more (the call
   reads the start of it) counts the tokens both have, and the match ends there; a segment not
   found ends it. The tokens counted, at most ``n_in - 1`` (a call always computes at least one
   token: its first output comes from the last position of its input), are what it returns:
   the call's cached prefix.
2. **Cache.** After the call its model holds its whole input, so its segments are added along
   the same path: a segment missing is added, one found holding fewer tokens grows to the
   call's (only a leaf: the continuations of a node follow the tokens it holds). Where a
   segment holds more tokens than the call reads, or fewer and has continuations, the path the
   call computed leaves the tree's, and nothing past it is added. The unnamed rest of an input
   is its own, never shared, so it is not kept; and as the call's output follows that rest, an
   output is added (a segment of ``n_out - 1`` tokens below the last input segment: the last
   token written is never fed back) only when the segments cover the whole input.
3. **Touch and evict.** Every node the call matched or added is touched (one tick each, in
   path order, so no two nodes share a tick); then, while the tokens held by all models
   together exceed ``capacity_tokens`` (None: unbounded), the least recently used leaf (a node
   without continuations) is evicted whole -- possibly what the call just added, when the
   capacity is smaller than one call.

Tokens are counted, not stored: what a call costs depends on its lengths and cached prefix
only (``profiler.lba.pricing``).
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass

from profiler.lba.calls import Call


@dataclass(frozen=True)
class Reuse:
    """Prefix caching between calls, sequential: each model keeps what its calls read and wrote, at most
    ``capacity_tokens`` tokens over all models together (None: unbounded), least recently used evicted."""

    capacity_tokens: int | None = None

    def __post_init__(self):
        capacity = self.capacity_tokens
        if capacity is not None and (isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1):
            raise ValueError(f"a prefix cache holds at least one token, not {capacity!r}")

    def describe(self) -> str:
        """In words, for a document's assumptions."""
        held = ("without a limit" if self.capacity_tokens is None
                else f"at most {self.capacity_tokens:,} tokens over all models, least recently used evicted")
        return (f"prefix caching: each model keeps the named segments its calls read and wrote ({held}); a call "
                "computes only the tokens of its input past the longest prefix its model holds (one at least)")

    def to_json(self) -> dict:
        return {"capacity_tokens": self.capacity_tokens}

    @classmethod
    def from_json(cls, reuse: dict) -> Reuse:
        return cls(capacity_tokens=reuse["capacity_tokens"])


class _Node:
    """A cached segment: ``tokens`` of ``name`` below ``parent``, last used at tick ``last_use``."""

    __slots__ = ("name", "tokens", "parent", "children", "last_use", "evicted")

    def __init__(self, name: str, tokens: int, parent: _Node | None):
        self.name, self.tokens, self.parent = name, tokens, parent
        self.children: dict[str, _Node] = {}
        self.last_use = 0
        self.evicted = False


class PrefixCache:
    """Per model ``(role, model)``, the segment paths its calls left cached; ``serve`` a call at a time (see
    the module doc). ``tokens_held``: the tokens of every node of every model."""

    def __init__(self, capacity_tokens: int | None = None):
        Reuse(capacity_tokens)  # the same check
        self.capacity_tokens = capacity_tokens
        self.tokens_held = 0
        self._roots: dict[tuple[str, int], _Node] = {}
        self._ticks = itertools.count(1)
        self._leaves: list[tuple[int, int, _Node]] = []  # (last use, entry number, node): lazily updated
        self._entries = itertools.count()

    def serve(self, call: Call) -> int:
        """The tokens at the start of ``call``'s input its model holds (at most ``n_in - 1``), then its segments
        and output cached, touched, and the least recently used leaves evicted while over capacity."""
        node = self._roots.setdefault((call.role, call.model), _Node("", 0, None))
        cached, matching = 0, True
        for name, tokens in call.segments:
            child = node.children.get(name)
            if child is None:
                matching = False
                child = self._add(node, name, tokens)
            elif child.tokens != tokens:
                if matching:
                    cached += min(child.tokens, tokens)
                    matching = False
                if child.tokens > tokens or child.children:  # the call's path leaves the tree here
                    self._touch(child)
                    break
                self._grow(child, tokens)
            elif matching:
                cached += tokens
            self._touch(child)
            node = child
        else:
            if call.output and call.n_out > 1 and sum(tokens for _, tokens in call.segments) == call.n_in:
                written = node.children.get(call.output)
                if written is None:
                    written = self._add(node, call.output, call.n_out - 1)
                elif written.tokens < call.n_out - 1 and not written.children:
                    self._grow(written, call.n_out - 1)
                self._touch(written)
        self._evict()
        return min(cached, call.n_in - 1)

    def held(self, role: str, model: int = 0) -> dict[tuple[str, ...], int]:
        """What the model ``(role, model)`` holds: each cached path (its segments' names from the root) with the
        tokens of its last segment."""
        paths: dict[tuple[str, ...], int] = {}
        stack = [((), self._roots.get((role, model), _Node("", 0, None)))]
        while stack:
            path, node = stack.pop()
            for name, child in node.children.items():
                paths[path + (name,)] = child.tokens
                stack.append((path + (name,), child))
        return paths

    def _add(self, parent: _Node, name: str, tokens: int) -> _Node:
        child = _Node(name, tokens, parent)
        parent.children[name] = child
        self.tokens_held += tokens
        return child

    def _grow(self, node: _Node, tokens: int) -> None:
        self.tokens_held += tokens - node.tokens
        node.tokens = tokens

    def _touch(self, node: _Node) -> None:
        node.last_use = next(self._ticks)
        if self.capacity_tokens is not None:
            heapq.heappush(self._leaves, (node.last_use, next(self._entries), node))

    def _evict(self) -> None:
        """Least recently used leaves, whole, while the tokens held exceed the capacity. The heap holds an entry
        per touch: one is current when its node is still cached, still a leaf and not touched since."""
        while self.capacity_tokens is not None and self.tokens_held > self.capacity_tokens:
            last_use, _, node = heapq.heappop(self._leaves)
            if node.evicted or node.children or node.last_use != last_use:
                continue
            node.evicted = True
            self.tokens_held -= node.tokens
            parent = node.parent
            del parent.children[node.name]
            if not parent.children and parent.parent is not None:  # a leaf now, at its own last use
                heapq.heappush(self._leaves, (parent.last_use, next(self._entries), parent))
