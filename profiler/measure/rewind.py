"""Put a KV cache back as it was before a decode step (or an extend pass), so that every timed pass runs at the
same context.

``Cache.crop`` cannot do it for every layer: a sliding-window layer that reached its window drops its
oldest token on each step and cannot be cropped back (``DynamicSlidingWindowLayer``), nor can a
linear-attention layer's recurrent state. ``Rewind`` works for any layer instead, from what the
cache holds: the attributes of the cache and of each of its layers (transformers 5: ``Cache.layers``;
model-specific caches add their own, such as MiniMax's ``linear_cache``), i.e. tensors, numbers, flags,
and lists, tuples or dicts of them. A decode step changes each tensor attribute in one of three ways (an extend
pass the same, by its tokens rather than one):

- it extends it: a new tensor, the old one followed by the step's token along one dimension (a full
  attention layer's ``torch.cat``, a window not yet full). Put back as a view of the new tensor's first
  positions, nothing held: the step's memory peak is that of generation, where the old tensor is freed.
- it replaces it by a tensor that does not begin with the old one (a full window drops its oldest
  token), or leaves it alone. Put back from the reference held: at most a window of tokens.
- it writes into it in place (the convolution and recurrent states of linear-attention layers, which
  ``copy_`` into fixed buffers, and from transformers 5.25 their token count, ``add_``-ed). Put back from
  a copy taken before the step; these states do not grow with the context. A write in place cannot be
  seen under ``torch.inference_mode`` (inference tensors keep no version counter), so every tensor of a
  linear-attention layer (known by its class) is copied, and those the step turns out to extend (a hybrid
  layer's keys and values) are put back as views like any other.

Which of the first two it is, per attribute, is learnt on the first step (for which every tensor is
held: the sweep's untimed warm-up, whose memory is not recorded), checked on the tokens themselves, and
holds for every step at the same context since each runs the same code; so does how far a tensor grows, which is
not always the tokens appended (DeepSeek-V4's compressed entries grow by one per so many tokens), and a later pass
that grows it otherwise is an error. Numbers, flags and containers are put back as they were (containers as fresh
copies). Only dynamic caches are handled, the kind a model builds for itself; a static cache's buffers are written in
place too and are not.
"""

from __future__ import annotations

import copy
from collections.abc import MutableMapping
from dataclasses import dataclass
from functools import partial

import torch


@dataclass(frozen=True)
class _Extended:
    """A tensor the step extended along ``dim`` by ``grown`` positions: put back as the new tensor's first
    ``length``."""

    dim: int
    length: int
    grown: int


@dataclass(frozen=True)
class _Copied:
    """A tensor the step writes in place: ``original`` gets ``saved`` back."""

    original: torch.Tensor
    saved: torch.Tensor


def _rebuilt(value, path: tuple, leaf):
    """``value`` with its lists, tuples and dicts copied and each tensor (or leaf put in its place) replaced by
    ``leaf(path, it)``."""
    if isinstance(value, (torch.Tensor, _Extended, _Copied)):
        return leaf(path, value)
    if isinstance(value, tuple):
        return tuple(_rebuilt(item, (*path, i), leaf) for i, item in enumerate(value))
    if isinstance(value, (list, MutableMapping)):
        rebuilt = copy.copy(value)
        for key in range(len(value)) if isinstance(value, list) else list(value):
            rebuilt[key] = _rebuilt(value[key], (*path, key), leaf)
        return rebuilt
    return value


def _at(state: dict, path: tuple):
    value = state
    for key in path:
        value = value[key]
    return value


def _extension(old: torch.Tensor, new: torch.Tensor) -> _Extended | None:
    """How ``new`` extends ``old`` (one dimension longer, the old tokens first), or None if it does not."""
    if new is old or new.ndim != old.ndim or new.dtype != old.dtype:
        return None
    longer = [d for d in range(old.ndim) if new.shape[d] != old.shape[d]]
    if len(longer) != 1 or new.shape[longer[0]] < old.shape[longer[0]]:
        return None
    dim, length = longer[0], old.shape[longer[0]]
    grown = new.shape[dim] - length
    return _Extended(dim, length, grown) if torch.equal(new.narrow(dim, 0, length), old) else None


def _writes_in_place(owner) -> bool:
    from transformers.cache_utils import LinearAttentionCacheLayerMixin

    return isinstance(owner, LinearAttentionCacheLayerMixin)


class Rewind:
    """Taken on a cache of ``c`` tokens; each call puts the cache back to them after a pass that appended tokens to
    each sequence (a decode step, an extend pass: the same tokens each time)."""

    def __init__(self, cache):
        self.owners = [cache, *cache.layers]
        self.states = [self._taken(owner) for owner in self.owners]
        self.learnt = False

    @staticmethod
    def _taken(owner) -> dict:
        if not _writes_in_place(owner):
            return _rebuilt(dict(vars(owner)), (), lambda path, tensor: tensor)
        return _rebuilt(dict(vars(owner)), (), lambda path, tensor: _Copied(tensor, tensor.clone()))

    @torch.inference_mode()
    def __call__(self) -> None:
        """Put the cache back to what it held when this was made. The first call also learns which tensors the
        pass extends, and drops its references to them (see the module doc)."""
        for i, (owner, state) in enumerate(zip(self.owners, self.states)):
            now = vars(owner)
            if not self.learnt:
                state = self.states[i] = _rebuilt(state, (), partial(self._learn, now))
            restored = _rebuilt(state, (), partial(self._restored, now))
            owner.__dict__.clear()
            owner.__dict__.update(restored)
        self.learnt = True

    @staticmethod
    def _learn(now: dict, path: tuple, held):
        """What to hold for ``held`` from now on: how the pass extended it, or ``held`` itself."""
        if isinstance(held, _Copied):
            before = held.saved
        elif isinstance(held, torch.Tensor):
            before = held
        else:
            return held
        try:
            current = _at(now, path)
        except (KeyError, IndexError, TypeError):
            return held
        replaced = isinstance(current, torch.Tensor) and not (isinstance(held, _Copied) and current is held.original)
        return (replaced and _extension(before, current)) or held

    @staticmethod
    def _restored(now: dict, path: tuple, held):
        if isinstance(held, _Extended):
            current = _at(now, path)
            if current.shape[held.dim] != held.length + held.grown:
                raise RuntimeError(f"cache attribute {path} grew by {current.shape[held.dim] - held.length} "
                                   f"in a pass, not by {held.grown} as the first pass did")
            return current.narrow(held.dim, 0, held.length)
        if isinstance(held, _Copied):
            return held.original.copy_(held.saved)
        return held
