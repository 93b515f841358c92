"""A filled KV cache is the cache a real prefill of the same length builds, in all but its values: for
every family of the architecture matrix (tests/families.py), below and above the sliding window. A
gated-delta-rule layer's states are those of the fill's one-token prefill: their shapes, not their values,
are a prefill's."""

from __future__ import annotations

import inspect

import pytest
import torch

from profiler.measure import memory
from profiler.measure.architecture import ATTENTION_FREE
from profiler.measure.cache_fill import fill_check, filled_cache
from profiler.measure.catalog import ModelSource
from profiler.measure.flops import count_flops
from profiler.measure.loading import load_model
from profiler.measure.memory import is_out_of_memory, kv_cache_bytes
from profiler.measure.passes import Passes
from tests.families import (EAGER, FAMILIES, NO_POSITIONS, SLIDING_WINDOW, save_deepseek_v4, save_falcon_h1,
                            save_family, save_lfm2)

# below the window, its kept length (window - 1), the window, beyond it
CONTEXTS = (20, SLIDING_WINDOW - 1, SLIDING_WINDOW, 40)
LONG_CONTEXT = 4 * SLIDING_WINDOW + 5


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def passes(request, tmp_path_factory) -> Passes:
    family = request.param
    folder = save_family(tmp_path_factory.mktemp(family), family, max_positions=256)
    attention = "eager" if family in EAGER else "sdpa"
    loaded = load_model(ModelSource(family, folder, "local"), torch.device("cpu"), torch.float32,
                        attn_implementation=attention)
    return Passes(loaded)


def _layers(cache) -> list[tuple]:
    """Everything about a cache's layers that a pass's cost can depend on: the shape, dtype and device of each tensor
    a layer holds (keys and values; a linear-attention layer's states), the tokens it says it holds (a placeholder
    layer for a block with no cache, Nemotron-H's MLP, says nothing), and an attention layer's mask sizes."""
    tensors = [[(t.shape, t.dtype, t.device) for t in memory._tensors(list(vars(layer).values())) if t.ndim]
               for layer in cache.layers]
    return [(type(layer).__name__, held, int(layer.get_seq_length()) if hasattr(layer, "get_seq_length") else None,
             layer.get_mask_sizes(1) if _holds_keys(layer) else None)
            for layer, held in zip(cache.layers, tensors)]


def _holds_keys(layer) -> bool:
    return torch.is_tensor(getattr(layer, "keys", None))


def _attention_layers(cache) -> list:
    """The layers that hold keys and values."""
    return [layer for layer in cache.layers if _holds_keys(layer)]


def _decode(passes: Passes, cache) -> torch.Tensor:
    """One token through the model on ``cache`` (which grows); its logits."""
    name = "cache" if "cache" in inspect.signature(passes.model.forward).parameters else "past_key_values"
    with torch.inference_mode():
        return passes.model(passes.prompt[:, :1], use_cache=True, **{name: cache}).logits


def _newest_first_layer_token(cache) -> tuple[torch.Tensor, torch.Tensor]:
    """The key and value the last pass wrote into the first layer, an attention layer in every family (they depend on
    the token and its position only)."""
    layer = cache.layers[0]
    return layer.keys[..., -1, :], layer.values[..., -1, :]


@pytest.mark.parametrize("context", CONTEXTS)
def test_a_filled_cache_is_a_prefilled_one_but_for_its_values(passes, context):
    prefilled, filled = passes.prefill(context), filled_cache(passes, context)
    assert type(filled) is type(prefilled)
    assert _layers(filled) == _layers(prefilled)
    assert filled.get_seq_length() == prefilled.get_seq_length() == context
    assert kv_cache_bytes(filled) == kv_cache_bytes(prefilled)


@pytest.mark.parametrize("context", CONTEXTS)
def test_a_decode_step_on_a_filled_cache_is_at_the_next_position_and_grows_it_alike(passes, context):
    prefilled, filled = passes.prefill(context), filled_cache(passes, context)
    logits = _decode(passes, filled)
    assert logits.shape == (1, 1, passes.model.config.vocab_size)
    _decode(passes, prefilled)
    assert _layers(filled) == _layers(prefilled)
    assert filled.get_seq_length() == context + 1
    if passes.model.config.model_type in ATTENTION_FREE:  # states alone: nothing a position is written into
        return
    # the first layer's new key and value: those of the same token at the same position (context) ...
    for written, expected in zip(_newest_first_layer_token(filled), _newest_first_layer_token(prefilled)):
        torch.testing.assert_close(written, expected)
    # ... and not those of the token one position earlier (where a key depends on its position)
    if passes.model.config.model_type in NO_POSITIONS:
        return
    earlier = passes.prefill(context - 1)
    _decode(passes, earlier)
    assert not all(torch.allclose(written, other) for written, other in
                   zip(_newest_first_layer_token(filled), _newest_first_layer_token(earlier)))


@pytest.mark.parametrize("context", CONTEXTS)
def test_a_decode_step_counts_the_same_flops_on_a_filled_cache(passes, context):
    prefilled, filled = passes.prefill(context), filled_cache(passes, context)
    assert count_flops(lambda: passes.decode_step(filled))[1] == count_flops(lambda: passes.decode_step(prefilled))[1]


def _skip_unfillable(passes: Passes) -> None:
    """A cache of layers a fill cannot grow (DeepSeek-V4's) is a prefill's: nothing of it is filled."""
    if fill_check(passes) is not None:
        pytest.skip("its cache is built by a prefill")


def test_a_sliding_window_layer_holds_at_most_two_windows_while_it_is_filled(passes):
    _skip_unfillable(passes)
    filled = filled_cache(passes, LONG_CONTEXT)
    assert _layers(filled) == _layers(passes.prefill(LONG_CONTEXT))
    windowed = [layer for layer in _attention_layers(filled) if layer.is_sliding]
    if not windowed:
        pytest.skip("no sliding-window layer")
    for layer in windowed:
        token_bytes = layer.keys[..., :1, :].numel() * layer.keys.element_size()
        assert layer.keys.untyped_storage().nbytes() // token_bytes <= 2 * (layer.sliding_window - 1)


def test_a_filled_cache_is_seeded(passes):
    if passes.model.config.model_type in ATTENTION_FREE:
        pytest.skip("no keys: its states are a one-token prefill's")
    _skip_unfillable(passes)
    first, again, other = filled_cache(passes, 40, seed=1), filled_cache(passes, 40, seed=1), filled_cache(passes, 40)
    for a, b, c in zip(*map(_attention_layers, (first, again, other))):
        assert torch.equal(a.keys, b.keys) and torch.equal(a.values, b.values)
        assert not torch.equal(a.keys, c.keys)
    keys = _attention_layers(first)[-1].keys[..., 1:, :]  # the filled tokens (the first is the real one)
    assert 0.8 < keys.std().item() < 1.2


@pytest.fixture
def tiny_llama(tmp_path) -> Passes:
    folder = save_family(tmp_path / "llama", "llama", max_positions=256)
    return Passes(load_model(ModelSource("llama", folder, "local"), torch.device("cpu"), torch.float32))


def test_a_cache_larger_than_the_memory_available_is_refused_before_it_is_allocated(tiny_llama, tmp_path,
                                                                                      monkeypatch):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16384 kB\nMemAvailable:       4 kB\n")  # 4 KiB: less than 100 tokens' keys
    monkeypatch.setattr(memory, "MEMINFO", meminfo)
    with pytest.raises(torch.OutOfMemoryError) as caught:
        filled_cache(tiny_llama, 100)
    assert is_out_of_memory(caught.value)
    meminfo.write_text("MemTotal:       16384 kB\nMemAvailable:       16384 kB\n")
    assert filled_cache(tiny_llama, 100).get_seq_length() == 100


def test_a_filled_cache_holds_a_token_at_least(tiny_llama):
    assert filled_cache(tiny_llama, 1).get_seq_length() == 1
    with pytest.raises(ValueError):
        filled_cache(tiny_llama, 0)


def test_a_cache_layer_of_another_kind_is_built_by_a_prefill(tmp_path, tiny_llama):
    """DeepSeek-V4's layers cache compressed entries, which a fill does not know how to grow: the cache is a real
    prefill's of the same length, and ``fill_check`` says why; a cache the fill can grow has no refusal."""
    folder = save_deepseek_v4(tmp_path / "deepseek-v4")
    passes = Passes(load_model(ModelSource("deepseek-v4", folder, "local"), torch.device("cpu"), torch.float32))
    assert fill_check(passes) == "cache layer 0 is a DeepseekV4HCACache, which a fill cannot grow"
    built, prefilled = filled_cache(passes, 10), passes.prefill(10)
    assert [type(layer) for layer in built.layers] == [type(layer) for layer in prefilled.layers]
    assert built.get_seq_length() == 10 and torch.equal(built.layers[0].keys, prefilled.layers[0].keys)
    assert fill_check(tiny_llama) is None


@pytest.mark.parametrize("family, save", [("lfm2", save_lfm2), ("falcon_h1", save_falcon_h1)])
def test_a_cache_with_linear_attention_layers_is_filled_and_counts_its_tokens(tmp_path, family, save):
    """LFM2 (a convolution layer first, then attention) and Falcon-H1 (layers holding a Mamba state beside their keys):
    the filled cache says ``c`` tokens, as the prefilled one does (from transformers 5.25 a linear-attention layer's
    own count is what the cache reads), and a decode step moves both to ``c + 1`` with every layer's keys alike."""
    passes = Passes(load_model(ModelSource(family, save(tmp_path / family), "local"), torch.device("cpu"),
                               torch.float32))
    context = 40
    prefilled, filled = passes.prefill(context), filled_cache(passes, context)
    assert fill_check(passes) is None
    assert int(filled.get_seq_length()) == int(prefilled.get_seq_length()) == context
    _decode(passes, prefilled)
    _decode(passes, filled)
    assert int(filled.get_seq_length()) == int(prefilled.get_seq_length()) == context + 1
    keys = [[getattr(layer, "keys", None) for layer in cache.layers] for cache in (filled, prefilled)]
    assert [k.shape for k in keys[0] if k is not None] == [k.shape for k in keys[1] if k is not None] != []


@pytest.mark.parametrize("context", (20, LONG_CONTEXT))
def test_a_filled_cache_of_a_batch_is_a_batched_prefill_but_for_its_values(passes, context):
    batch = 3
    prefilled, filled = passes.prefill(context, batch=batch), filled_cache(passes, context, batch=batch)
    assert _layers(filled) == _layers(prefilled)
    assert all(shape[0] == batch for _, held, _, _ in _layers(filled) for shape, _, _ in held)
    assert filled.get_seq_length() == context
    assert kv_cache_bytes(filled) == kv_cache_bytes(prefilled) == batch * kv_cache_bytes(filled_cache(passes, context))
    passes.decode_step(filled)
    assert filled.get_seq_length() == context + 1


def test_the_memory_a_fill_needs_grows_with_its_batch(tiny_llama, tmp_path, monkeypatch):
    """Memory enough for one sequence's fill of 100 tokens, not for four sequences': keys and values of 2 layers x
    2 heads x 16 dimensions x 4 bytes, 512 bytes a token, and the random block's 128, each a sequence (62 KiB for
    one, 250 KiB for four; 200 KiB available)."""
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16384 kB\nMemAvailable:       200 kB\n")
    monkeypatch.setattr(memory, "MEMINFO", meminfo)
    assert filled_cache(tiny_llama, 100).get_seq_length() == 100
    with pytest.raises(torch.OutOfMemoryError, match="4 sequences"):
        filled_cache(tiny_llama, 100, batch=4)


def test_a_fill_whose_cache_says_another_count_is_a_prefill_and_the_check_says_why(tiny_llama, monkeypatch):
    """A layer keeping a count the fill does not know (here: one token too many put in the first layer) gives a
    real prefill's cache rather than a pass at the wrong positions, and ``fill_check`` names the count."""
    from profiler.measure import cache_fill

    def one_too_many(cache, added_tokens):
        layer = cache.layers[0]
        layer.update(layer.keys[..., :1, :], layer.values[..., :1, :])

    monkeypatch.setattr(cache_fill, "_count_linear_layers_tokens", one_too_many)
    built, prefilled = filled_cache(tiny_llama, 12), tiny_llama.prefill(12)
    assert built.get_seq_length() == 12 and torch.equal(built.layers[0].keys, prefilled.layers[0].keys)
    assert fill_check(tiny_llama) == ("a cache filled to 2 tokens says 3: its layers keep a count a fill does not "
                                      "know")
