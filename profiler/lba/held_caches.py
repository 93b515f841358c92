"""What a reusing backend (``execution.ModelBackend`` under a schedule with ``reuse``) keeps between calls:
the token ids of a run's named contents, and the real KV caches its models hold.

- **Token ids** (``SegmentTokens``). Cost does not depend on which tokens a call reads, but a reused
  cache must hold exactly the tokens the later call reads, so every named content has its ids:
  an input segment's are seeded random ids, deterministic per name and seed (a segment read in
  part is the start of the same ids); an output's are the tokens the model generated, written
  once; the unnamed rest of an input is fresh seeded ids, its own.
- **Held caches** (``HeldCaches``). Per model ``(role, model)``, each sequence kept: the token ids
  its cache holds, the segment path they follow (the call's named segments, then its output where
  the prefix cache keeps one), and the model's own cache of them. ``take`` realises a cached prefix
  of ``hit`` tokens: the sequence whose ids begin with the call's first ``hit`` input ids, taken as
  it is when it holds exactly those (the conversation continued: nothing copied, and its grown cache
  holds them still), else a copy of only its first ``hit`` positions of each layer (a shared system
  prompt: the sequence stays for the others). ``prune`` keeps only what the prefix cache
  (``prefix_cache.PrefixCache``) still holds: each sequence cut to the tokens of its path still cached,
  dropped when none is, and dropped when another sequence holds the same ids and more.

Only caches of full-attention layers (transformers' ``DynamicLayer``) can be cut to a prefix: a
sliding-window layer has dropped the prefix's early tokens, a linear-attention layer keeps one
state for the whole sequence. ``check_sliceable`` refuses any other kind with a ``ValueError``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from profiler.lba.calls import Call


def check_sliceable(cache) -> None:
    """A ``ValueError`` unless every layer of ``cache`` is a full-attention ``DynamicLayer`` of a ``DynamicCache``:
    only those hold every token's keys and values, so that their first positions are a prefix's cache."""
    from transformers.cache_utils import DynamicCache, DynamicLayer

    if type(cache) is not DynamicCache:
        raise ValueError(f"a {type(cache).__name__} cannot be cut to a cached prefix: prefix reuse runs on models "
                         "whose cache is a DynamicCache of full-attention layers")
    for index, layer in enumerate(cache.layers):
        if type(layer) is not DynamicLayer:
            raise ValueError(f"cache layer {index} is a {type(layer).__name__}: it does not hold every token's keys "
                             "and values, so it cannot be cut to a cached prefix (prefix reuse runs on models of "
                             "full-attention layers only)")


@torch.inference_mode()
def prefix_copy(cache, tokens: int):
    """A new cache holding a copy of the first ``tokens`` positions of each layer of ``cache`` (only those copied)."""
    from transformers.cache_utils import DynamicCache

    return DynamicCache(ddp_cache_data=[(layer.keys[..., :tokens, :], layer.values[..., :tokens, :])
                                        for layer in cache.layers])


def crop(cache, tokens: int) -> None:
    """``cache`` cut to its first ``tokens`` positions, in place (views: the storage is freed when it next grows or is
    dropped)."""
    for layer in cache.layers:
        layer.keys, layer.values = layer.keys[..., :tokens, :], layer.values[..., :tokens, :]


class SegmentTokens:
    """The token ids of one program run's named contents (``vocab`` ids, ``max_positions`` at most a content),
    seeded by ``seed``; see the module doc."""

    def __init__(self, vocab: int, max_positions: int, seed: int):
        self.vocab, self.max_positions, self.seed = vocab, max_positions, seed
        self.named: dict[str, torch.Tensor] = {}
        self.written: set[str] = set()
        self._rest = np.random.default_rng([seed, 0])

    def _segment(self, name: str) -> torch.Tensor:
        if name not in self.named:  # ids drawn whole once, so a segment read in part is its start
            rng = np.random.default_rng([self.seed, 1, *name.encode()])
            self.named[name] = torch.from_numpy(rng.integers(self.vocab, size=self.max_positions))
        return self.named[name]

    def input_ids(self, call: Call) -> torch.Tensor:
        """The ``n_in`` ids ``call`` reads: its segments' (each the start of its content), then fresh ids."""
        pieces = []
        for name, tokens in call.segments:
            ids = self._segment(name)
            if tokens > len(ids):
                raise ValueError(f"{call.role} reads {tokens} tokens of {name!r}, which holds {len(ids)}")
            pieces.append(ids[:tokens])
        rest = call.n_in - sum(tokens for _, tokens in call.segments)
        pieces.append(torch.from_numpy(self._rest.integers(self.vocab, size=rest)))
        return torch.cat(pieces)

    def write(self, name: str, ids: torch.Tensor) -> None:
        """``ids`` (what a call generated) as the content ``name``; a ``ValueError`` where ``name`` was already read or
        written in this run (a name is one content)."""
        if name in self.named:
            what = "written" if name in self.written else "read"
            raise ValueError(f"output {name!r} was already {what} in this run: a name is one content")
        self.named[name] = ids.cpu()
        self.written.add(name)


@dataclass
class KeptCache:
    """A cache kept: the ``ids`` it holds (1-D, on the CPU), along ``path`` (``(name, tokens)`` segments)."""

    ids: torch.Tensor
    path: tuple[tuple[str, int], ...]
    cache: object


def held_path(call: Call) -> tuple[tuple[str, int], ...]:
    """The segment path of what ``call`` leaves cached: its segments, then its output's ``n_out - 1`` fed-back tokens
    where the prefix cache keeps them (the segments cover the whole input)."""
    path = tuple(call.segments)
    if call.output and call.n_out > 1 and sum(tokens for _, tokens in path) == call.n_in:
        path += ((call.output, call.n_out - 1),)
    return path


def cached_tokens(path: tuple[tuple[str, int], ...], held: dict[tuple[str, ...], int]) -> int:
    """The tokens at the start of ``path`` that ``held`` (``PrefixCache.held``: names from the root -> tokens of the
    last) still caches: followed while each segment is held with the tokens the path reads; one held with other
    tokens counts what both have and ends it."""
    names, tokens_held = (), 0
    for name, tokens in path:
        names += (name,)
        if names not in held:
            break
        tokens_held += min(tokens, held[names])
        if held[names] != tokens:
            break
    return tokens_held


def _holds(one: KeptCache, other: KeptCache) -> bool:
    """Whether ``one``'s ids begin with all of ``other``'s."""
    return len(one.ids) >= len(other.ids) and torch.equal(one.ids[:len(other.ids)], other.ids)


class HeldCaches:
    """Per model ``(role, model)``, the sequences kept (``KeptCache``); see the module doc."""

    def __init__(self):
        self.sequences: dict[tuple[str, int], list[KeptCache]] = {}

    def take(self, key: tuple[str, int], input_ids: torch.Tensor, hit: int):
        """The cache of the first ``hit`` of ``input_ids`` for model ``key`` (None for ``hit`` 0): a kept sequence
        of exactly those ids, removed from the kept ones (it is the call's to grow), or a copy of the first ``hit``
        positions of a longer one. A ``RuntimeError`` where none holds them: the prefix cache's bookkeeping and the
        caches kept disagree."""
        if hit == 0:
            return None
        prefix = input_ids[:hit]
        kept = self.sequences.get(key, [])
        covering = [s for s in kept if len(s.ids) >= hit and torch.equal(s.ids[:hit], prefix)]
        if not covering:
            raise RuntimeError(f"{key[0]} (model {key[1]}): no cache kept holds the {hit} tokens the prefix cache "
                               "says are cached")
        exact = [s for s in covering if len(s.ids) == hit]
        if exact:
            kept.remove(exact[0])
            return exact[0].cache
        return prefix_copy(covering[0].cache, hit)

    def keep(self, key: tuple[str, int], sequence: KeptCache) -> None:
        self.sequences.setdefault(key, []).append(sequence)

    def prune(self, held) -> None:
        """Keep only what the prefix cache holds: ``held(role, model)`` is ``PrefixCache.held``. Each sequence is cut
        to the tokens of its path still cached (``cached_tokens``), dropped at none, and dropped when another holds
        its ids and more."""
        for key, kept in self.sequences.items():
            tokens_of = held(*key)
            for sequence in kept:
                tokens = cached_tokens(sequence.path, tokens_of)
                if tokens < len(sequence.ids):
                    crop(sequence.cache, tokens)
                    sequence.ids = sequence.ids[:tokens]
            kept[:] = [s for i, s in enumerate(kept) if len(s.ids) and not any(
                j != i and _holds(o, s) and (len(o.ids) > len(s.ids) or j < i) for j, o in enumerate(kept))]

    def tokens(self, key: tuple[str, int]) -> list[int]:
        """The tokens each sequence kept for ``key`` holds, in the order kept."""
        return [len(s.ids) for s in self.sequences.get(key, [])]
