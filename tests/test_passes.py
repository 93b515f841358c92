"""The timed passes with a batch: B sequences in one pass process B times the tokens (the FLOPs counted are B
times a sequence's), hold B sequences in their cache, and generate exactly n_out tokens for each; tiny real
models of the three architectures (tests/conftest.py)."""

import pytest
import torch

from profiler.measure.catalog import ModelSource
from profiler.measure.flops import count_flops, pass_flops
from profiler.measure.loading import load_model
from profiler.measure.memory import kv_cache_bytes
from profiler.measure.passes import Passes, cache_batch
from tests.families import family_config, save_lfm2

BATCHES = (2, 5)


@pytest.fixture
def passes(tiny_loaded) -> Passes:
    return Passes(tiny_loaded, seed=3)


def test_a_batch_is_distinct_seeded_sequences_led_by_the_single_prompt(passes, tiny_loaded):
    tokens = passes.tokens(8, 40)
    assert tokens.shape == (8, 40) and tokens.dtype == torch.long
    assert torch.equal(tokens[0], passes.prompt[0, :40])
    assert len({tuple(row.tolist()) for row in tokens}) == 8
    assert int(tokens.min()) >= 0 and int(tokens.max()) < tiny_loaded.architecture.vocab
    assert torch.equal(Passes(tiny_loaded, seed=3).tokens(8, 40), tokens)
    assert not torch.equal(Passes(tiny_loaded, seed=4).tokens(8, 40), tokens)
    # more sequences than positions: offsets come round again, the tokens shifted, still all distinct
    many = passes.tokens(2 * tiny_loaded.architecture.max_positions + 3, 6)
    assert len({tuple(row.tolist()) for row in many}) == len(many)


@pytest.mark.parametrize("batch", BATCHES)
def test_a_batched_prefill_is_batch_times_the_work_and_holds_batch_sequences(passes, tiny_loaded, batch):
    arch, n = tiny_loaded.architecture, 24
    single_cache, single_flops = count_flops(lambda: passes.prefill(n))
    cache, flops = count_flops(lambda: passes.prefill(n, batch=batch))
    assert single_flops == pytest.approx(pass_flops(arch, n, n), rel=1e-3)
    assert flops == batch * single_flops
    assert cache_batch(cache) == batch and cache.get_seq_length() == n
    assert kv_cache_bytes(cache) == batch * kv_cache_bytes(single_cache)
    assert kv_cache_bytes(cache) == batch * arch.kv_cache_bytes(n, torch.float32)
    assert cache.layers[0].keys.shape[0] == batch


@pytest.mark.parametrize("batch", (1, 2))
def test_a_one_token_cache_is_a_fresh_copy_of_one_prefill_per_batch(passes, tiny_loaded, batch, monkeypatch):
    prefills = []
    prefill = Passes.prefill
    monkeypatch.setattr(Passes, "prefill",
                        lambda self, n, batch=1: prefills.append((n, batch)) or prefill(self, n, batch))
    first, second = passes.one_token_cache(batch), passes.one_token_cache(batch)
    assert prefills == [(1, batch)]  # the prefill once, each cache a copy of its
    assert first is not second and cache_batch(first) == batch
    assert first.get_seq_length() == second.get_seq_length() == 1
    assert type(first) is type(second) is type(prefill(passes, 1, batch=batch))
    assert [type(layer) for layer in first.layers] == [type(layer) for layer in second.layers]
    for mine, yours in zip(first.layers, second.layers):
        assert torch.equal(mine.keys, yours.keys) and mine.keys.data_ptr() != yours.keys.data_ptr()
    passes.decode_step(first)  # a step on one leaves the next copy at one token
    assert first.get_seq_length() == 2 and passes.one_token_cache(batch).get_seq_length() == 1


@pytest.mark.parametrize("batch", BATCHES)
def test_a_batched_decode_step_adds_one_token_to_each_sequence(passes, tiny_loaded, batch):
    arch, n = tiny_loaded.architecture, 17
    single = passes.prefill(n)
    _, single_flops = count_flops(lambda: passes.decode_step(single))
    cache = passes.prefill(n, batch=batch)
    grown, flops = count_flops(lambda: passes.decode_step(cache))
    assert flops == batch * single_flops == pytest.approx(batch * pass_flops(arch, 1, n + 1), rel=1e-3)
    assert cache_batch(grown) == batch and grown.get_seq_length() == n + 1
    assert kv_cache_bytes(grown) == batch * arch.kv_cache_bytes(n + 1, torch.float32)
    # the batch given rather than read off the cache: the same step
    again = passes.decode_step(grown, batch=batch)
    assert again.get_seq_length() == n + 2


def _inputs_seen(model) -> list[tuple[int, ...]]:
    """The shape of ``input_ids`` of every forward pass ``model`` runs from now on."""
    seen = []
    model.register_forward_pre_hook(lambda module, args, kwargs: seen.append(tuple(kwargs["input_ids"].shape)
                                                                              if "input_ids" in kwargs
                                                                              else tuple(args[0].shape)),
                                    with_kwargs=True)
    return seen


@pytest.mark.parametrize("batch", (1, 3))
def test_generate_emits_exactly_n_out_tokens_for_each_sequence(passes, tiny_loaded, batch):
    n_in, n_out = 12, 6
    seen = _inputs_seen(tiny_loaded.model)
    cache = passes.generate(n_in, n_out, batch=batch)
    # a prefill of the batch, then a step of one token per sequence for every token after the first
    assert seen == [(batch, n_in)] + [(batch, 1)] * (n_out - 1)
    assert cache_batch(cache) == batch and cache.get_seq_length() == n_in + n_out - 1


def test_a_batch_of_one_is_the_single_sequence_pass(passes):
    assert torch.equal(passes.tokens(1, 30), passes.prompt[:, :30])
    one, single = passes.prefill(30, batch=1), passes.prefill(30)
    torch.testing.assert_close(one.layers[0].keys, single.layers[0].keys)


def test_a_batch_is_at_least_one_sequence_of_one_token(passes):
    with pytest.raises(ValueError, match="at least 1"):
        passes.tokens(0, 8)


def test_the_batch_of_a_cache_without_keys_is_read_off_its_linear_attention_states(tmp_path):
    """LFM2's convolution layer holds its states in dicts: read there when no layer holds keys (as in LFM3's models
    of convolution layers only; here the attention layer's keys and values taken away)."""
    folder = save_lfm2(tmp_path / "lfm2")
    passes = Passes(load_model(ModelSource("lfm2", folder, "local"), torch.device("cpu"), torch.float32))
    cache = passes.prefill(4, batch=3)
    cache.layers[1].keys = cache.layers[1].values = None
    assert cache_batch(cache) == 3


def test_the_batch_of_a_cache_of_lightning_layers_only_is_read_off_the_states_the_cache_keeps(tmp_path):
    """A MiniMax of lightning-attention layers only: its cache has no layer at all, its states are the cache's own
    ``linear_cache`` list (the sweep's first decode step stopped with a traceback)."""
    config = family_config("minimax")
    config.layer_types = ["linear_attention"] * config.num_hidden_layers
    config.save_pretrained(tmp_path / "minimax")
    passes = Passes(load_model(ModelSource("minimax", tmp_path / "minimax", "local"), torch.device("cpu"),
                               torch.float32))
    cache = passes.prefill(4, batch=3)
    assert not cache.layers and cache_batch(cache) == 3
    assert cache_batch(passes.decode_step(cache, batch=3)) == 3
