"""The extend pass: ``s`` tokens appended to a cache of ``c`` in one pass compute what a prefill of the same
``c + s`` tokens computes at its last position, and a cache put back after each extend holds what it held, so
every timed extend runs at the same ``c``. Real tiny models (fp32, the same weights for both passes)."""

from contextlib import contextmanager

import pytest
import torch
from transformers import Lfm2Config

from profiler.measure.catalog import ModelSource
from profiler.measure.loading import load_model
from profiler.measure.passes import Passes, cache_batch
from profiler.measure.rewind import Rewind
from tests.families import SLIDING_WINDOW, save_deepseek_v4, save_family
from tests.test_rewind import _assert_same, _layer_states

# fp32 on a CPU: the extend and the full prefill sum the same products in different blocks (the keys come in two
# pieces), a difference of float rounding only, some 1e-7 on logits of order 1
ATOL = 1e-5


def _load(folder, name: str):
    return load_model(ModelSource(name, folder, "local"), torch.device("cpu"), torch.float32)


@contextmanager
def _logits_of_each_pass(model):
    """The logits of every forward pass ``model`` runs within the block."""
    seen = []
    hook = model.register_forward_hook(lambda module, args, output: seen.append(output.logits.clone()))
    try:
        yield seen
    finally:
        hook.remove()


@torch.inference_mode()
def _assert_extend_is_the_prefill_s_last_position(loaded, c: int, s: int) -> None:
    passes = Passes(loaded, seed=5)
    cache = passes.prefill(c)
    with _logits_of_each_pass(loaded.model) as seen:
        grown = passes.extend(cache, s)
    assert grown.get_seq_length() == c + s and cache_batch(grown) == 1
    (extend_logits,) = seen
    full = loaded.model(passes.prompt[:, :c + s], use_cache=True)
    assert extend_logits.shape == (1, 1, loaded.architecture.vocab)  # the last position only
    torch.testing.assert_close(extend_logits[:, -1], full.logits[:, -1], atol=ATOL, rtol=0)
    # the cache too: what the full prefill leaves (a windowed layer its last tokens)
    for ours, theirs in zip(grown.layers, full[passes._cache].layers):
        torch.testing.assert_close(ours.keys, theirs.keys, atol=ATOL, rtol=0)
        torch.testing.assert_close(ours.values, theirs.values, atol=ATOL, rtol=0)


@pytest.mark.parametrize("c, s", [(1, 1), (7, 16), (40, 64)])
def test_an_extend_computes_what_a_prefill_of_the_same_tokens_does(tiny_loaded, c, s):
    _assert_extend_is_the_prefill_s_last_position(tiny_loaded, c, s)


@pytest.mark.parametrize("family", ["mistral", "gemma3_text"])
def test_an_extend_past_a_sliding_window_computes_what_the_prefill_does(family, tmp_path):
    loaded = _load(save_family(tmp_path / family, family, max_positions=128), family)
    for c, s in ((SLIDING_WINDOW + 8, 16), (12, SLIDING_WINDOW + 4)):
        _assert_extend_is_the_prefill_s_last_position(loaded, c, s)


@torch.inference_mode()
def _assert_every_extend_at_the_same_context(loaded, c: int, s: int, repeats: int = 3) -> None:
    passes = Passes(loaded, seed=5)
    cache = passes.prefill(c)
    before, rewind = _layer_states(cache), Rewind(cache)
    with _logits_of_each_pass(loaded.model) as seen:
        for _ in range(repeats):
            assert passes.extend(cache, s) is cache and cache.get_seq_length() == c + s
            rewind()
            assert cache.get_seq_length() == c
            _assert_same(before, _layer_states(cache))
    assert len(seen) == repeats and all(torch.equal(logits, seen[0]) for logits in seen[1:])


@pytest.mark.parametrize("family", ["gpt2", "llama", "gemma3_text"])
def test_a_cache_is_put_back_after_each_extend(family, tmp_path):
    loaded = _load(save_family(tmp_path / family, family, max_positions=128), family)
    for c, s in ((SLIDING_WINDOW - 12, 8), (SLIDING_WINDOW + 8, 16), (5, SLIDING_WINDOW + 4)):
        _assert_every_extend_at_the_same_context(loaded, c, s)


def test_linear_attention_states_are_put_back_after_an_extend(tmp_path):
    folder = tmp_path / "lfm2"
    Lfm2Config(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
               num_key_value_heads=2, max_position_embeddings=128,
               layer_types=["conv", "full_attention"]).save_pretrained(folder)
    _assert_every_extend_at_the_same_context(_load(folder, "lfm2"), 20, 16)


@pytest.mark.parametrize("c, s", [(40, 64), (100, 8)])
def test_a_compressed_cache_grown_by_fewer_entries_than_tokens_is_put_back(c, s, tmp_path):
    """DeepSeek-V4's heavily compressed layers keep one entry per 128 tokens: an extend of 64 grows them by one entry
    or none, not by 64 (a run stopped on it with "grew by 1 tokens in a pass, not by 64")."""
    loaded = _load(save_deepseek_v4(tmp_path / "deepseek_v4", max_positions=256), "deepseek_v4")
    _assert_every_extend_at_the_same_context(loaded, c, s)


@torch.inference_mode()
def test_a_rewind_refuses_a_pass_that_grows_the_cache_otherwise_than_the_first(tiny_loaded):
    passes = Passes(tiny_loaded)
    cache = passes.prefill(10)
    rewind = Rewind(cache)
    passes.extend(cache, 4)
    rewind()
    passes.extend(cache, 2)
    with pytest.raises(RuntimeError, match="grew by 2 in a pass, not by 4 as the first pass did"):
        rewind()


@torch.inference_mode()
def test_an_extend_stays_within_the_positions(tiny_loaded):
    passes = Passes(tiny_loaded)
    positions = tiny_loaded.architecture.max_positions
    cache = passes.prefill(positions - 4)
    with pytest.raises(ValueError, match=f"at most {positions} positions"):
        passes.extend(cache, 5)
    assert passes.extend(cache, 4).get_seq_length() == positions
