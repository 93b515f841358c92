import json

import pytest
import torch
from transformers import AutoConfig, LlamaConfig

from profiler.measure.architecture import config_problems
from profiler.measure.catalog import ModelSource, named_models, resolve_model
from profiler.measure.loading import meta_architecture
from tests.conftest import save_tiny
from tests.user_error import run_argv, stop_before_measuring, user_error


def test_gpt2_numbers_match_the_published_model():
    arch = meta_architecture(resolve_model("gpt2"))
    assert (arch.layers, arch.hidden, arch.heads, arch.kv_heads, arch.head_dim) == (12, 768, 12, 12, 64)
    assert (arch.ffn, arch.vocab, arch.max_positions, arch.gated_mlp) == (3072, 50257, 1024, False)
    assert arch.params == 124_439_808  # tied LM head counted once
    assert arch.non_embedding_params == 124_439_808 - 50257 * 768 - 1024 * 768


def test_modern_decoders_have_grouped_query_attention_and_gated_mlps():
    smol = meta_architecture(resolve_model("smollm2-135m"))
    qwen = meta_architecture(resolve_model("qwen2.5-0.5b"))
    assert (smol.model_type, smol.layers, smol.hidden, smol.heads, smol.kv_heads, smol.ffn) == ("llama", 30, 576, 9, 3, 1536)
    assert (qwen.model_type, qwen.layers, qwen.hidden, qwen.heads, qwen.kv_heads, qwen.ffn) == ("qwen2", 24, 896, 14, 2, 4864)
    assert smol.gated_mlp and qwen.gated_mlp
    assert smol.params == 134_515_008 and qwen.params == 494_032_768


def test_kv_bytes_per_token_counts_keys_and_values_of_every_layer():
    smol = meta_architecture(resolve_model("smollm2-135m"))
    assert smol.kv_bytes_per_token(torch.bfloat16) == 2 * 30 * 3 * 64 * 2


# -- checking a config's numbers before any model is built -----------------------------------





def _written(folder):
    return json.loads((folder / "config.json").read_text())


def _broken(folder, kind: str, drop=(), **numbers):
    """A tiny ``kind`` config.json as transformers writes it, with ``drop`` taken out and ``numbers`` set."""
    written = _written(save_tiny(folder, kind))
    for name in drop:
        del written[name]
    (folder / "config.json").write_text(json.dumps(written | numbers))
    return folder


BROKEN = {  # id: (kind, dropped, set, what the line must say)
    "vocab 0": ("gpt2", (), {"vocab_size": 0}, ["vocab_size = 0 (at least 1)"]),
    "one position": ("gpt2", (), {"n_positions": 1}, ["n_positions = 1 (at least 2: a decode step needs"]),
    "no layers": ("gpt2", (), {"n_layer": 0}, ["n_layer = 0 (at least 1)"]),
    "negative layers": ("gpt2", (), {"n_layer": -2}, ["n_layer = -2 (at least 1)"]),
    "no heads": ("gpt2", (), {"n_head": 0}, ["n_head = 0 (at least 1)"]),
    "zero hidden": ("gpt2", (), {"n_embd": 0}, ["n_embd = 0 (at least 1)"]),
    "negative hidden": ("llama", (), {"hidden_size": -64}, ["hidden_size = -64 (at least 1)"]),
    "zero ffn": ("gpt2", (), {"n_inner": 0}, ["n_inner = 0 (at least 1)"]),
    "zero head_dim": ("llama", (), {"head_dim": 0}, ["head_dim = 0 (at least 1)"]),
    "hidden not split by heads": ("gpt2", (), {"n_embd": 66}, ["n_embd = 66 does not split into n_head = 4 heads"]),
    "kv not dividing heads": ("llama", (), {"num_key_value_heads": 3},
                              ["num_key_value_heads = 3 does not divide num_attention_heads = 4"]),
    "more kv than heads": ("qwen2", (), {"num_key_value_heads": 8},
                           ["num_key_value_heads = 8 does not divide num_attention_heads = 4"]),
    "llama without heads": ("llama", ("num_attention_heads",), {},
                            ["no num_attention_heads (heads; the library would take 32)"]),
    "gpt2 without heads": ("gpt2", ("n_head",), {}, ["no n_head (heads; the library would take 12)"]),
    "llama with gpt2's spelling": ("llama", ("num_attention_heads",), {"n_head": 4},
                                   ["no num_attention_heads (heads; the library would take 32)"]),
    "llama without ffn": ("llama", ("intermediate_size",), {},
                          ["no intermediate_size (ffn; the library would take 11008)"]),
    "without vocab": ("gpt2", ("vocab_size",), {}, ["no vocab_size (vocab; the library would take 50257)"]),
    "without positions": ("qwen2", ("max_position_embeddings",), {}, ["no max_position_embeddings (max_positions"]),
    "layers as text": ("gpt2", (), {"n_layer": "2"}, ["unreadable config.json", "n_layer", "expected int, got str"]),
    "hidden fractional": ("gpt2", (), {"n_embd": 64.5}, ["unreadable config.json", "n_embd", "got float"]),
    "layers as true": ("gpt2", (), {"n_layer": True}, ["n_layer", "got bool"]),
    "three at once": ("gpt2", ("n_head",), {"vocab_size": 0, "n_layer": -1},
                      ["no n_head", "vocab_size = 0", "n_layer = -1"]),
    # building grows with the numbers: bounded before anything is built (10^30 layers never finished)
    "layers beyond any model": ("gpt2", (), {"n_layer": 10**30}, ["n_layer = 1,000,000,000,000,", "(at most 10,000)"]),
    "vocab beyond any model": ("llama", (), {"vocab_size": 10**9}, ["vocab_size = 1,000,000,000 (at most 100,000,000)"]),
    "too many parameters": ("gpt2", (), {"n_layer": 9000, "n_embd": 100_000},
                            ["about 1.1e+15 parameters (at most 1e+13 are built)"]),
}


@pytest.mark.parametrize("case", BROKEN.values(), ids=BROKEN.keys())
def test_impossible_or_missing_numbers_end_the_run_in_one_line_before_anything_is_built(
        case, tmp_path, capfd, monkeypatch):
    kind, dropped, numbers, expected = case
    folder = _broken(tmp_path / "broken", kind, dropped, **numbers)
    stop_before_measuring(monkeypatch)
    lengths = ["--lengths", "1"] if "n_positions" in numbers else []
    line = user_error(capfd, run_argv(folder) + lengths)
    assert line.startswith("profiler: error: broken: ")
    for words in expected:
        assert words in line, line


def test_the_tiny_and_shipped_configs_have_no_problems(tiny_dir):
    """Configs transformers wrote, and the published ones under models/, pass as they are."""
    for folder in [tiny_dir, *(source.path for source in named_models())]:
        assert config_problems(AutoConfig.from_pretrained(folder), _written(folder)) == [], folder


def test_a_written_head_dim_is_the_one_used(tmp_path):
    """Llama projects to heads x head_dim: a head_dim written in config.json (Gemma-like, not hidden / heads)
    is read, and the parameters counted agree with the projections' shapes."""
    folder = tmp_path / "wide-heads"
    LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=4,
                num_key_value_heads=2, head_dim=32, max_position_embeddings=32, vocab_size=256).save_pretrained(folder)
    assert config_problems(AutoConfig.from_pretrained(folder), _written(folder)) == []
    arch = meta_architecture(ModelSource("wide-heads", folder, "local"))
    assert (arch.hidden, arch.heads, arch.kv_heads, arch.head_dim) == (64, 4, 2, 32)
    # one layer: q (64 -> 128), k and v (64 -> 64 each), o (128 -> 64), gate/up/down (64 x 128 each), two norms
    layer = 64 * 128 + 2 * 64 * 64 + 128 * 64 + 3 * 64 * 128 + 2 * 64
    assert arch.params == 2 * 256 * 64 + layer + 64  # untied embedding and head, final norm


def test_a_family_reads_the_generic_spelling_through_its_attribute_map(tmp_path):
    """GPT2Config maps hidden_size to n_embd: written either way, the number is there."""
    folder = _broken(tmp_path / "generic", "gpt2", ("n_embd", "n_layer"), hidden_size=64, num_hidden_layers=2)
    config = AutoConfig.from_pretrained(folder)
    assert (config.n_embd, config.n_layer) == (64, 2)
    assert config_problems(config, _written(folder)) == []


def test_heads_derived_by_the_family_rule_are_not_missing(tmp_path):
    """num_key_value_heads and head_dim left out follow from heads and hidden (multi-head attention)."""
    folder = _broken(tmp_path / "mha", "llama", ("num_key_value_heads", "head_dim"))
    config = AutoConfig.from_pretrained(folder)
    assert config_problems(config, _written(folder)) == []
    arch = meta_architecture(ModelSource("mha", folder, "local"))
    assert (arch.heads, arch.kv_heads, arch.head_dim) == (4, 4, 16)
