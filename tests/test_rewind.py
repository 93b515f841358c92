"""A cache put back after each decode step holds what it held before, for every cache layer type, and every
step decodes at the same context: real tiny models of every family (tests/families.py) and a hybrid with
linear-attention (convolution) layers, whose states are written in place."""

import gc
import weakref

import pytest
import torch

from profiler.measure.catalog import ModelSource
from profiler.measure.loading import load_model
from profiler.measure.passes import Passes
from profiler.measure.rewind import Rewind
from tests.families import FAMILIES, SLIDING_WINDOW, save_falcon_h1, save_family, save_lfm2


def _load(folder, name: str):
    return load_model(ModelSource(name, folder, "local"), torch.device("cpu"), torch.float32)


def _state(value):
    """Every tensor, number and flag ``value`` holds (through lists, tuples and dicts), tensors cloned."""
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, dict):
        return {key: _state(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_state(item) for item in value]
    return value


def _layer_states(cache) -> list[dict]:
    return [{key: _state(item) for key, item in vars(layer).items()} for layer in cache.layers]


def _assert_same(before, after, where=""):
    if isinstance(before, torch.Tensor):
        assert before.shape == after.shape and torch.equal(before, after), where
    elif isinstance(before, dict):
        assert before.keys() == after.keys(), where
        for key in before:
            _assert_same(before[key], after[key], f"{where}.{key}")
    elif isinstance(before, list):
        assert len(before) == len(after), where
        for i, (x, y) in enumerate(zip(before, after)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert before == after, where


@torch.inference_mode()
def _steps_at(loaded, context: int, steps: int = 3):
    """``steps`` decode steps on a cache of ``context`` tokens, put back after each: the next-token logits
    of each step, and the cache's state before the first and after each put-back."""
    passes = Passes(loaded)
    cache = passes.prefill(context)
    states, logits = [_layer_states(cache)], []
    rewind = Rewind(cache)
    for _ in range(steps):
        out = loaded.model(passes.prompt[:, :1], use_cache=True, **{passes._cache: cache})
        assert out[passes._cache] is cache and cache.get_seq_length() == context + 1
        logits.append(out.logits)
        rewind()
        assert cache.get_seq_length() == context
        states.append(_layer_states(cache))
    return logits, states


def _assert_every_step_at_the_same_context(loaded, context):
    logits, states = _steps_at(loaded, context)
    for state in states[1:]:
        _assert_same(states[0], state)
    for step in logits[1:]:
        assert torch.equal(step, logits[0])


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_decodes_at_one_context_below_and_past_the_window(family, tmp_path):
    loaded = _load(save_family(tmp_path / family, family), family)
    for context in (SLIDING_WINDOW - 12, SLIDING_WINDOW - 1, SLIDING_WINDOW + 8):
        _assert_every_step_at_the_same_context(loaded, context)


@pytest.mark.parametrize("family, save", [("lfm2", save_lfm2), ("falcon_h1", save_falcon_h1)])
def test_linear_attention_states_written_in_place_are_put_back(tmp_path, family, save):
    """LFM2's convolution states; Falcon-H1's Mamba states held beside keys and values in the same layers."""
    loaded = _load(save(tmp_path / family), family)
    _assert_every_step_at_the_same_context(loaded, 20)


@torch.inference_mode()
def test_a_full_layer_is_put_back_without_holding_its_old_tensors_a_full_window_with_them(tmp_path):
    """What generation frees stays freed (the decode step's memory peak is generation's): a full-attention
    layer's old keys are not held once the first step showed the step extends them; a full window's are, since
    the step drops a token of them."""
    loaded = _load(save_family(tmp_path / "gemma3_text", "gemma3_text"), "gemma3_text")
    passes = Passes(loaded)
    cache = passes.prefill(SLIDING_WINDOW + 8)
    assert [layer.is_sliding for layer in cache.layers] == [True, False, True]
    old = [weakref.ref(layer.keys) for layer in cache.layers]
    rewind = Rewind(cache)
    for _ in range(2):
        passes.decode_step(cache)
        rewind()
    gc.collect()
    assert [ref() is not None for ref in old] == [True, False, True]
    assert cache.layers[0].keys is old[0]() and cache.layers[1].keys.shape[-2] == SLIDING_WINDOW + 8


@pytest.mark.parametrize("family", ["llama", "gemma3_text"])
def test_a_batched_cache_is_put_back_after_each_step(family, tmp_path):
    """Three sequences in the cache, full and windowed layers: each step grows every sequence by one token and
    the cache is put back to what it held, so every step decodes at the same context."""
    loaded = _load(save_family(tmp_path / family, family), family)
    passes, context = Passes(loaded), SLIDING_WINDOW + 8
    with torch.inference_mode():
        cache = passes.prefill(context, batch=3)
        before, rewind, logits = _layer_states(cache), Rewind(cache), []
        for _ in range(3):
            out = loaded.model(passes.tokens(3, 1), use_cache=True, **{passes._cache: cache})
            assert cache.get_seq_length() == context + 1 and cache.layers[0].keys.shape[0] == 3
            logits.append(out.logits)
            rewind()
            _assert_same(before, _layer_states(cache))
    assert logits[0].shape[0] == 3 and all(torch.equal(step, logits[0]) for step in logits[1:])
