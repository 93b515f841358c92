"""A KV cache of ``c`` tokens made without a prefill of ``c`` tokens: decode (and extend) passes at
any context length, even where the prefill that would build their cache is unaffordable.

A decode step's cost depends on the cache's length, shapes, dtype and device, never on the values
it holds. So the cache is the model's own: a copy of the one a prefill of a single prompt token builds
(``Passes.one_token_cache``: that prefill runs once, not at every fill; its class and its layers' classes, shapes,
dtypes and devices are whatever the model uses: grouped- or multi-query heads, DeepSeek-V3's compressed latent keys,
sliding-window layers), grown to ``c``
tokens through each layer's own ``update``, so its bookkeeping (``get_seq_length``, a sliding
layer's cumulative length, what a sliding layer keeps) is that of a real prefill of ``c`` tokens:
the next pass gets position ``c`` and attends to what it would after that prefill.

The ``c - 1`` tokens added are a seeded standard-normal block (std 1; values do not move a
pass's time: CPU attention over keys of std 0.02 to 4 times the same), drawn on the layer's
device once per tensor shape and dtype and copied into each layer (``update`` concatenates, so
every layer owns its storage, as after a prefill). A sliding-window layer keeps only its last
``window - 1`` tokens: it is fed its tokens in chunks of ``window - 1``, so no layer ever holds
more than twice its window (a real prefill leaves the whole prompt's tensor behind a view of its
tail until the next pass).

A layer caching a lightning indexer's keys beside its keys and values (DeepSeek-V3.2's, GLM-5's and HY-V4's
``DynamicIndexedLayer``, MiniMax-M3's sparse layers: ``INDEX_KEYS``) has them grown the same way, through the
layer's own method for them; a layer of GLM-5 or HY-V4 that reuses another's selection holds none, and gets none.
A cache with a layer of another kind (DeepSeek-V4's compressed layers) cannot be grown here: ``filled_cache``
builds it by a real prefill of ``c`` tokens instead, the same cache at a prefill's cost, which the pilot times as
the fill's (so the plan prices it), and ``fill_check`` says why.

A linear-attention layer (LFM2's convolutions, Qwen3-Next's gated delta rule) holds a state of fixed size, not
tokens (a layer holding both, Falcon-H1's, has its keys and values grown as above): the one-token prefill's state is
kept, and its count of tokens (from transformers 5.25 its own, which
``get_seq_length`` reads when the first layer is such a layer) is advanced to ``c``, as a prefill of ``c`` leaves it.
A fill whose cache then does not say ``c`` tokens is a prefill's instead too (``fill_check`` says so), rather than
measured at the wrong positions.

A batch: the one-token prefill is of ``batch`` sequences, so every layer's tensors (and the random blocks)
have ``batch`` rows; each sequence holds ``context_tokens`` tokens.

Memory: the cache's own bytes plus one block per distinct tensor shape (the block is freed when
the cache is made), both ``batch`` times a sequence's. On a CPU, where running out of memory kills the
process rather than raising, the bytes are checked against the kernel's ``MemAvailable`` before the fill
allocates any (with the free pages the process holds handed back, ``profiler.measure.allocator``, where they would
not fit without), and a cache that does not fit raises ``torch.OutOfMemoryError`` (what the sweep already handles);
a GPU raises it on its own.
"""

from __future__ import annotations

import torch

from profiler.measure.allocator import release_freed_memory
from profiler.measure.memory import meminfo_bytes
from profiler.measure.passes import Passes


def _held_tokens(layer, tokens: int) -> int:
    """How many of ``tokens`` tokens ``layer`` holds: all of them, or a sliding-window layer's last
    ``window - 1``. What it keeps after a prefill of ``tokens``, and what a fill adds per ``update``."""
    if layer.is_sliding:
        return min(tokens, layer.sliding_window - 1)
    return tokens


# A lightning indexer's keys, cached beside a layer's keys and values: the attribute holding them (``[batch, tokens,
# head_dim]`` or ``[batch, 1, tokens, head_dim]``) and the layer's method appending to it (DeepSeek-V3.2's, GLM-5's and
# HY-V4's ``DynamicIndexedLayer``, MiniMax-M3's ``MiniMaxM3VLSparseCacheLayer``)
INDEX_KEYS = {"indexer_keys": "update_indexer", "idx_keys": "update_index"}


def _index_keys(layer) -> str | None:
    """The attribute of ``INDEX_KEYS`` that ``layer`` has, or None."""
    return next((name for name in INDEX_KEYS if hasattr(layer, name)), None)


def _grows_by_update(layer) -> bool:
    """Whether ``layer`` holds keys and values a fill grows through its ``update``: a dynamic full or sliding-window
    layer, alone, beside a linear-attention state (Falcon-H1's ``LinearAttentionAndFullAttentionLayer``) or with an
    indexer's keys (``INDEX_KEYS``, a full-attention layer's)."""
    from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer, LinearAttentionCacheLayerMixin

    kinds = (DynamicLayer, DynamicSlidingWindowLayer)
    if type(layer) in kinds:
        return True
    indexed = isinstance(layer, DynamicLayer) and not layer.is_sliding and _index_keys(layer) is not None
    return indexed or (isinstance(layer, kinds) and isinstance(layer, LinearAttentionCacheLayerMixin))


def _token_tensors(layer) -> list[torch.Tensor]:
    """The tensors of ``layer`` that hold its tokens: its keys and values, and an indexer's keys where it holds some."""
    name = _index_keys(layer)
    index_keys = getattr(layer, name) if name is not None else None
    return [layer.keys, layer.values] + ([index_keys] if torch.is_tensor(index_keys) and index_keys.ndim else [])


def _fillable_layers(cache) -> list:
    """The layers that hold keys and values (a ``DummyLayer`` or a linear-attention layer holds none), all of them
    grown by ``update`` (``_fill_refusal`` None)."""
    return [layer for layer in cache.layers if _grows_by_update(layer)]


def _fill_refusal(cache) -> str | None:
    """Why a cache like ``cache`` cannot be filled without a prefill (its first layer that holds keys of a kind whose
    bookkeeping is not known here), or None when it can."""
    for index, layer in enumerate(cache.layers):
        if not _grows_by_update(layer) and getattr(layer, "keys", None) is not None:
            return f"cache layer {index} is a {type(layer).__name__}, which a fill cannot grow"
    return None


def _count_linear_layers_tokens(cache, added_tokens: int) -> None:
    """Advance each linear-attention layer's own count of tokens (transformers 5.25's ``cumulative_length_linear``;
    earlier versions keep none) by ``added_tokens``."""
    from transformers.cache_utils import LinearAttentionCacheLayerMixin

    for layer in cache.layers:
        if isinstance(layer, LinearAttentionCacheLayerMixin) and hasattr(layer, "cumulative_length_linear"):
            layer.cumulative_length_linear.add_(added_tokens)


def _bytes_per_token(tensor: torch.Tensor) -> int:
    """Bytes of one cached token of ``tensor`` (``[batch, heads, tokens, head_dim]``, or ``[batch, tokens,
    head_dim]``)."""
    return tensor[..., :1, :].numel() * tensor.element_size()


def _block_key(tensor: torch.Tensor) -> tuple:
    """What tensors sharing a random block agree on: every dimension but the tokens, dtype, device."""
    shape = tuple(tensor.shape)
    return shape[:-2] + shape[-1:], tensor.dtype, tensor.device


def _block_tokens(layers: list, added_tokens: int) -> dict[tuple, int]:
    """The random blocks a fill needs: tokens of each, by ``_block_key``."""
    tokens: dict[tuple, int] = {}
    for layer in layers:
        for tensor in _token_tensors(layer):
            key = _block_key(tensor)
            tokens[key] = max(tokens.get(key, 0), _held_tokens(layer, added_tokens))
    return tokens


def _needed_bytes(layers: list, context_tokens: int) -> dict[torch.device, int]:
    """Bytes a fill of ``layers`` (one token each) to ``context_tokens`` allocates on each device:
    every layer's keys and values (and indexer's keys) at the length it keeps, and the random blocks copied into
    them."""
    needed: dict[torch.device, int] = {}
    for layer in layers:
        for tensor in _token_tensors(layer):
            kept = _held_tokens(layer, context_tokens)
            needed[tensor.device] = needed.get(tensor.device, 0) + kept * _bytes_per_token(tensor)
    for (shape, dtype, device), tokens in _block_tokens(layers, context_tokens - 1).items():
        needed[device] += tokens * torch.Size(shape).numel() * dtype.itemsize
    return needed


def _batch_of(layers: list) -> int:
    return int(layers[0].keys.shape[0])


def _check_fits(layers: list, context_tokens: int) -> None:
    for device, needed in _needed_bytes(layers, context_tokens).items():
        available = meminfo_bytes("MemAvailable") if device.type == "cpu" else None
        if available is not None and needed > available and release_freed_memory():  # the free pages held count
            available = meminfo_bytes("MemAvailable")
        if available is not None and needed > available:
            raise torch.OutOfMemoryError(
                f"a filled KV cache of {context_tokens} tokens ({_batch_of(layers)} sequences) needs {needed} bytes "
                f"on the CPU, {available} are available: out of memory"
            )


def _draw_blocks(layers: list, added_tokens: int, seed: int) -> dict[tuple, torch.Tensor]:
    """Seeded standard-normal blocks ``[batch, heads, tokens, head_dim]`` (or ``[batch, tokens, head_dim]``), one per
    ``_block_key``."""
    blocks = {}
    for (shape, dtype, device), tokens in _block_tokens(layers, added_tokens).items():
        gen = torch.Generator(device=device).manual_seed(seed)
        blocks[(shape, dtype, device)] = torch.randn(*shape[:-1], tokens, shape[-1], generator=gen, dtype=dtype,
                                                     device=device)
    return blocks


def _grow(layer, added_tokens: int, blocks: dict[tuple, torch.Tensor]) -> None:
    """``added_tokens`` more tokens through ``layer.update`` (and an indexer's keys through its own method), in chunks
    of what the layer holds."""
    chunk = _held_tokens(layer, added_tokens)
    keys, values, *index_keys = (blocks[_block_key(tensor)] for tensor in _token_tensors(layer))
    append_index_keys = getattr(layer, INDEX_KEYS[_index_keys(layer)]) if index_keys else None
    for start in range(0, added_tokens, chunk):
        tokens = min(chunk, added_tokens - start)
        layer.update(keys[..., :tokens, :], values[..., :tokens, :])
        if append_index_keys is not None:
            append_index_keys(index_keys[0][..., :tokens, :])


def _grown(cache, context_tokens: int, seed: int):
    """``cache`` (of one token a sequence) grown to ``context_tokens``, or None where it then does not say so."""
    layers = _fillable_layers(cache)
    _check_fits(layers, context_tokens)
    blocks = _draw_blocks(layers, context_tokens - 1, seed)
    for layer in layers:
        _grow(layer, context_tokens - 1, blocks)
    _count_linear_layers_tokens(cache, context_tokens - 1)
    return cache if int(cache.get_seq_length()) == context_tokens else None


@torch.inference_mode()
def filled_cache(passes: Passes, context_tokens: int, seed: int = 0, batch: int = 1):
    """The model's KV cache of ``batch`` sequences holding ``context_tokens`` tokens each (at least 1): a
    one-token prefill's cache grown by ``context_tokens - 1`` seeded random tokens per layer. A pass on it sees
    position ``context_tokens`` next, as after a prefill of that length. A cache that cannot be filled
    (``fill_check``) is a prefill's of ``context_tokens``."""
    if context_tokens < 1:
        raise ValueError(f"a filled cache holds at least 1 token, not {context_tokens}")
    cache = passes.one_token_cache(batch)
    if context_tokens == 1:
        return cache
    filled = None if _fill_refusal(cache) is not None else _grown(cache, context_tokens, seed)
    del cache
    return filled if filled is not None else passes.prefill(context_tokens, batch=batch)


@torch.inference_mode()
def fill_check(passes: Passes) -> str | None:
    """Why the model's caches cannot be filled (``_fill_refusal``, or a cache filled to 2 tokens that says another
    count: its layers keep one a fill does not know), or None when they can. A one-token prefill and a fill of one
    more token."""
    cache = passes.one_token_cache()
    refusal = _fill_refusal(cache)
    if refusal is None and _grown(cache, 2, seed=0) is None:
        refusal = (f"a cache filled to 2 tokens says {int(cache.get_seq_length())}: its layers keep a count a fill "
                   "does not know")
    return refusal
