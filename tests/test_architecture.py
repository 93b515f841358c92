import json

import pytest
import torch
from transformers import (AutoConfig, DbrxConfig, Gemma3nTextConfig, GraniteMoeConfig, JambaConfig, KimiLinearConfig,
                          LlamaConfig, LongcatFlashConfig, MambaConfig, MiMoV2FlashConfig, MiniMaxConfig)

from profiler.measure.catalog import ModelSource, named_models, resolve_model
from profiler.measure.config_check import config_problems
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


@pytest.mark.parametrize("widths, said", [
    ([128, 0, 128, 64], "intermediate_size = 0 (at least 1)"),
    ([128, 10**8, 128, 64], "intermediate_size = 100,000,000 (at most 10,000,000)"),
    ([128, 96, 128, -1], "intermediate_size = -1 (at least 1)"),
])
def test_each_width_of_a_per_layer_list_is_checked(widths, said, tmp_path, capfd, monkeypatch):
    """Gemma-3n gives its MLP a width per layer: each is checked as one number is, in one line."""
    from tests.families import save_family

    folder = save_family(tmp_path / "broken", "gemma3n_text")
    (folder / "config.json").write_text(json.dumps(_written(folder) | {"intermediate_size": widths}))
    stop_before_measuring(monkeypatch)
    assert user_error(capfd, run_argv(folder)) == f"profiler: error: broken: config.json: {said}"


@pytest.mark.parametrize("override, said", [
    ({"head_dim": 0}, "config.json: head_dim = 0 (at least 1)"),
    ({"head_dim": 10**8}, "config.json: head_dim = 100,000,000 (at most 100,000)"),
    ({"head_dim": 32, "num_key_value_heads": 3},
     "config.json: num_key_value_heads = 3 does not divide num_attention_heads = 4"),
    (None, "unreadable config.json ('list' object has no attribute 'items')"),  # a list where layers map to numbers
])
def test_the_numbers_a_heterogeneous_config_gives_some_layers_are_checked(override, said, tmp_path, capfd,
                                                                          monkeypatch):
    """Gemma-4's global layers have heads of their own (transformers' ``per_layer_config``): each layer's numbers are
    checked as the model's are, in one line, before anything is built."""
    from tests.families import save_family

    folder = save_family(tmp_path / "broken", "gemma4_text")
    per_layer = [1, 2] if override is None else {"1": override, "3": override}
    (folder / "config.json").write_text(json.dumps(_written(folder) | {"per_layer_config": per_layer}))
    stop_before_measuring(monkeypatch)
    assert user_error(capfd, run_argv(folder)) == f"profiler: error: broken: {said}"


def test_a_heterogeneous_config_is_read_layer_by_layer(tmp_path):
    """Gemma-4 from transformers' config class: its full-attention layers' heads of their own width (and, with keys as
    values, their own number) are each layer's; the other layers take the model's."""
    from tests.families import save_family

    arch = meta_architecture(ModelSource("gemma4", save_family(tmp_path / "gemma4", "gemma4_text"), "local"))
    assert (arch.head_dim, arch.layer_head_dims, arch.kv_heads, arch.layer_kv_heads) == (16, (16, 32, 16, 32), 2,
                                                                                         (2, 1, 2, 1))
    assert arch.values_from_keys == (1, 3) and arch.kv_shared == (2, 3) and arch.ffn_widths == (128, 128, 256, 256)
    assert arch.kv_elements_per_token == (2 * 2 * 16, 2 * 1 * 32, 0, 0)


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


# -- what the cost depends on beyond the shared numbers: windows, experts, latent attention -----------


def _family(tmp_path, family: str):
    from tests.families import save_family

    return meta_architecture(ModelSource(family, save_family(tmp_path / family, family), "local"))


def test_the_kv_bytes_of_a_windowed_layer_stop_growing_at_the_window(tmp_path):
    """Gemma-3's local layers (window 32) keep 31 tokens; past that only its global layer grows."""
    arch = _family(tmp_path, "gemma3_text")
    assert arch.windows == (32, None, 32)
    per_layer_token = 2 * arch.kv_heads * arch.head_dim * 4  # float32
    assert arch.kv_cache_bytes(10, torch.float32) == 10 * arch.kv_bytes_per_token(torch.float32) == 30 * per_layer_token
    assert arch.kv_cache_bytes(31, torch.float32) == 3 * 31 * per_layer_token
    assert arch.kv_cache_bytes(500, torch.float32) - arch.kv_cache_bytes(499, torch.float32) == per_layer_token
    assert arch.kv_cache_bytes(500, torch.float32) == (500 + 2 * 31) * per_layer_token


def test_latent_attention_caches_the_latent_not_the_heads(tmp_path):
    """DeepSeek-V3 (transformers 5) caches a kv_lora_rank latent and one rotary key per token and layer."""
    arch = _family(tmp_path, "deepseek_v3")
    mla = arch.latent_attention
    assert (mla.q_rank, mla.kv_rank, mla.nope_head_dim, mla.rope_head_dim, mla.v_head_dim) == (32, 16, 16, 8, 16)
    assert arch.kv_bytes_per_token(torch.bfloat16) == arch.layers * (16 + 8) * 2


def test_active_parameters_of_a_published_mixture(tmp_path):
    """granite-3.0-1b-a400m as published (1.3B parameters, 400M active): 8 of 32 experts a token."""
    folder = tmp_path / "granite-moe"
    GraniteMoeConfig(hidden_size=1024, intermediate_size=512, num_hidden_layers=24, num_attention_heads=16,
                     num_key_value_heads=8, num_local_experts=32, num_experts_per_tok=8, vocab_size=49155,
                     max_position_embeddings=4096, tie_word_embeddings=True).save_pretrained(folder)
    arch = meta_architecture(ModelSource("granite-moe", folder, "local"))
    assert arch.params == pytest.approx(1.33e9, rel=0.01)
    assert arch.active_params == pytest.approx(0.43e9, rel=0.01)
    assert arch.as_dict()["active_params"] == arch.active_params


def test_dbrx_as_published_has_its_experts_from_its_sub_configs(tmp_path):
    """DBRX as Databricks publishes it (40 layers 6,144 wide, 48 heads, 8 key-value heads and 16 experts of 10,752 with
    4 a token, the last three in sub-configs): 132B parameters, 36B active. Read as a dense model it was 131.6B all
    active, its MLP 4 times its width."""
    folder = tmp_path / "dbrx"
    DbrxConfig(vocab_size=100352, d_model=6144, n_heads=48, n_layers=40, max_seq_len=32768,
               attn_config=dict(kv_n_heads=8, rope_theta=500000.0, clip_qkv=8),
               ffn_config=dict(hidden_size=6144, ffn_hidden_size=10752, moe_num_experts=16,
                               moe_top_k=4)).save_pretrained(folder)
    arch = meta_architecture(ModelSource("dbrx", folder, "local"))
    assert arch.params == pytest.approx(131.6e9, rel=0.01) and arch.active_params == pytest.approx(36.5e9, rel=0.01)
    assert (arch.experts.count, arch.experts.per_token, arch.experts.ffn, arch.kv_heads) == (16, 4, 10752, 8)
    assert arch.experts.layers == tuple(range(40))


def test_kimi_linear_as_published_caches_tokens_in_its_attention_layers_alone(tmp_path):
    """Kimi-Linear-48B-A3B (transformers' KimiLinearConfig defaults): 49.1B parameters, 3.5B active with the embeddings
    and output head (Moonshot states 48B and 3B); 21 of its 27 layers Kimi Delta Attention (32 heads of 128), whose
    cache is a state per head and a convolution's last 4 inputs, the other 6 latent attention caching 512 + 64 numbers
    a token. Read before as 27 attention layers: 3.8 GiB of cache at 128K tokens in 16 bits, not 0.89."""
    folder = tmp_path / "kimi"
    KimiLinearConfig().save_pretrained(folder)
    arch = meta_architecture(ModelSource("kimi", folder, "local"))
    assert arch.params == pytest.approx(49.1e9, rel=0.01) and arch.active_params == pytest.approx(3.49e9, rel=0.01)
    assert len(arch.linear_attention.layers) == 21 and arch.linear_attention.channel_decay
    states = 21 * (32 * 128 * 128 * 4 + 3 * 32 * 128 * 4 * 2)
    assert arch.kv_cache_bytes(131072, torch.bfloat16) == 6 * 131072 * (512 + 64) * 2 + states


def test_longcat_flash_as_published_has_its_sublayers_experts_and_cache(tmp_path):
    """LongCat-Flash (transformers' LongcatFlashConfig defaults, Meituan's LongCat-Flash-Chat): 560B parameters; 28
    layers of two sublayers, which transformers counts as 56 (latent attention and a dense MLP each), a mixture of 512
    experts and 256 identity experts, 12 a token, beside every first sublayer's MLP. transformers computes all 12 picks
    (an identity's through a routed expert weighted 0): 32.2B active, Meituan's most (31.3B) with the embedding; its
    cache 512 + 64 numbers a token in each of the 56 attention sublayers. Refused before: no num_hidden_layers."""
    folder = tmp_path / "longcat"
    LongcatFlashConfig().save_pretrained(folder)
    assert "num_hidden_layers" not in json.loads((folder / "config.json").read_text())
    arch = meta_architecture(ModelSource("longcat", folder, "local"))
    assert arch.layers == 56 and arch.params == pytest.approx(560.7e9, rel=0.001)
    assert arch.active_params == pytest.approx(32.18e9, rel=0.001)
    experts = arch.experts
    assert (experts.count, experts.identities, experts.per_token, experts.ffn) == (512, 256, 12, 2048)
    assert experts.beside_dense and experts.layers == tuple(range(0, 56, 2)) and arch.ffn == 12288
    assert arch.kv_cache_bytes(131072, torch.bfloat16) == 56 * 131072 * (512 + 64) * 2


def test_a_number_in_a_sub_config_is_checked_as_its_own(tmp_path):
    """DBRX's experts a token, in its ``ffn_config``, are checked as any family's: one line naming the number."""
    folder = tmp_path / "dbrx"
    DbrxConfig(vocab_size=256, d_model=64, n_heads=4, n_layers=2, max_seq_len=128,
               attn_config=dict(kv_n_heads=2, clip_qkv=8),
               ffn_config=dict(hidden_size=64, ffn_hidden_size=96, moe_num_experts=6,
                               moe_top_k=9)).save_pretrained(folder)
    written = json.loads((folder / "config.json").read_text())
    assert config_problems(AutoConfig.from_pretrained(folder), written) == ["moe_top_k = 9 (1 to moe_num_experts = 6)"]


def test_jamba_as_published_has_its_parameters_and_cache(tmp_path):
    """Jamba-v0.1 (transformers' JambaConfig defaults) as AI21 describes it: 52B parameters, 12B active (2 of 16
    experts in every other layer), attention in one layer of 8 and Mamba in the others, a KV cache of 4GB at 256K
    tokens in 16 bits."""
    folder = tmp_path / "jamba"
    JambaConfig().save_pretrained(folder)
    arch = meta_architecture(ModelSource("jamba", folder, "local"))
    assert arch.params == pytest.approx(51.6e9, rel=0.01) and arch.active_params == pytest.approx(12.1e9, rel=0.01)
    assert arch.experts.layers == tuple(range(1, 32, 2))
    assert [layer for layer in range(32) if arch.attends(layer)] == [4, 12, 20, 28]
    assert (arch.mamba1.inner, arch.mamba1.state, arch.mamba1.dt_rank, len(arch.mamba1.layers)) == (8192, 16, 256, 28)
    assert arch.kv_cache_bytes(256 * 1024, torch.bfloat16) / 2**30 == pytest.approx(4.0, rel=0.01)


def test_minimax_text_01_as_published_has_its_parameters_and_layers(tmp_path):
    """MiniMax-Text-01 by the numbers MiniMax publishes for it (80 layers 6,144 wide, 64 heads of 128, 32 experts of
    9,216 with 2 a token, a softmax-attention layer after every 7 lightning-attention layers, blocks of 256 tokens, a
    200,064-token vocabulary): 456B parameters, 45.9B active besides the embedding and the output head; only its 10
    softmax layers cache tokens, each lightning layer a state of 64 heads of 128 x 128."""
    folder = tmp_path / "minimax"
    MiniMaxConfig(
        hidden_size=6144, num_hidden_layers=80, num_attention_heads=64, num_key_value_heads=8, head_dim=128,
        intermediate_size=9216, num_local_experts=32, num_experts_per_tok=2, vocab_size=200064, block_size=256,
        layer_types=(["linear_attention"] * 7 + ["full_attention"]) * 10).save_pretrained(folder)
    arch = meta_architecture(ModelSource("minimax", folder, "local"))
    assert arch.params == pytest.approx(456e9, rel=0.01)
    assert arch.active_params - 2 * arch.vocab * arch.hidden == pytest.approx(45.9e9, rel=0.01)
    assert [layer for layer in range(80) if arch.attends(layer)] == list(range(7, 80, 8))
    assert (arch.lightning.heads, arch.lightning.head_dim, arch.lightning.block) == (64, 128, 256)
    state_bytes = 70 * 64 * 128 * 128 * 2
    assert arch.kv_cache_bytes(1, torch.bfloat16) == state_bytes + 10 * 2 * 8 * 128 * 2


def test_mimo_v2_flash_as_published_has_its_parameters_and_cache(tmp_path):
    """MiMo-V2-Flash (transformers' MiMoV2FlashConfig defaults) as Xiaomi describes it: 309B parameters, 15B active;
    full attention in the first layer and every sixth, the others a window of 128 tokens and the token itself with
    twice the key and value heads; keys 192 wide and values 128, so a token takes 4 x 320 cache elements in a full
    layer and 8 x 320 in a windowed one."""
    folder = tmp_path / "mimo_v2_flash"
    MiMoV2FlashConfig().save_pretrained(folder)
    arch = meta_architecture(ModelSource("mimo_v2_flash", folder, "local"))
    assert arch.params == pytest.approx(309e9, rel=0.01) and arch.active_params == pytest.approx(15e9, rel=0.05)
    full = [layer for layer in range(48) if arch.windows[layer] is None]
    assert full == [0, 5, 11, 17, 23, 29, 35, 41, 47] and set(arch.windows) == {None, 129}
    assert [arch.kv_heads_of(layer) for layer in (0, 1)] == [4, 8]
    assert (arch.head_dim_of(1), arch.value_dim_of(1)) == (192, 128)
    assert arch.kv_bytes_per_token(torch.bfloat16) == (9 * 4 * 320 + 39 * 8 * 320) * 2


def test_gemma_3n_caches_only_the_layers_before_those_that_share(tmp_path):
    """Gemma-3n E4B's text model (transformers' Gemma3nTextConfig defaults): its last 15 of 35 layers attend to earlier
    layers' keys and values, so 20 layers cache, 2 heads of 256 each; about 4B parameters beside its embeddings (the
    "effective" 4B), and 2.9B in the token table and the per-layer input table."""
    folder = tmp_path / "gemma3n"
    Gemma3nTextConfig().save_pretrained(folder)
    arch = meta_architecture(ModelSource("gemma3n", folder, "local"))
    assert arch.kv_shared == tuple(range(20, 35)) and arch.ffn_widths is None and arch.ffn == 16384
    assert arch.kv_bytes_per_token(torch.bfloat16) == 20 * 2 * 2 * 256 * 2
    assert arch.non_embedding_params == pytest.approx(3.95e9, rel=0.01)
    assert arch.embedding_params == 262400 * 2048 + 262144 * 35 * 256
    assert (arch.altup.inputs, arch.altup.laurel_rank, arch.per_layer_input) == (4, 64, 256)


def test_mamba_as_published_has_no_attention_and_a_state_of_fixed_size(tmp_path):
    """Mamba-130M (transformers' MambaConfig with its 24 layers): 129M parameters, no attention heads, no MLP, no
    position limit (its range taken as 2^20 tokens), and a cache of one state per layer, the same at any context:
    the convolution's last 4 inputs and a 1,536 x 16 state, float32."""
    from profiler.measure.architecture import UNBOUNDED_POSITIONS

    folder = tmp_path / "mamba"
    MambaConfig(num_hidden_layers=24).save_pretrained(folder)
    assert "max_position_embeddings" not in _written(folder) and "num_attention_heads" not in _written(folder)
    arch = meta_architecture(ModelSource("mamba", folder, "local"))
    assert arch.params == pytest.approx(129.1e6, rel=0.001) and (arch.heads, arch.kv_heads) == (0, 0)
    assert arch.max_positions == UNBOUNDED_POSITIONS == 2**20
    assert not any(arch.attends(layer) or arch.has_mlp(layer) for layer in range(24))
    state = 24 * (1536 * 4 + 1536 * 16) * 4
    assert arch.kv_bytes_per_token(torch.float32) == 0
    assert arch.kv_cache_bytes(8, torch.float32) == arch.kv_cache_bytes(10**6, torch.float32) == state


def test_an_attention_free_model_still_needs_its_width(tmp_path, capfd, monkeypatch):
    """No heads and no positions are a Mamba's own; no width is a mistake, said in one line."""
    folder = tmp_path / "mamba"
    MambaConfig(hidden_size=64, num_hidden_layers=2, vocab_size=256).save_pretrained(folder)
    written = _written(folder)
    del written["hidden_size"]
    (folder / "config.json").write_text(json.dumps(written))
    stop_before_measuring(monkeypatch)
    assert user_error(capfd, run_argv(folder)) == ("profiler: error: mamba: config.json: no hidden_size (hidden; "
                                                   "the library would take 768)")


def test_the_architecture_goes_to_json_as_it_is():
    """run.json and fits hold as_dict(): plain JSON values, the derived counts included."""
    arch = meta_architecture(resolve_model("smollm2-135m"))
    written = json.loads(json.dumps(arch.as_dict()))
    assert written["windows"] == [None] * 30 and written["experts"] is None
    assert written["kv_elements_per_token"] * 2 == arch.kv_bytes_per_token(torch.bfloat16)


def test_nemotron_h_counts_its_layers_from_its_blocks(tmp_path):
    """Nemotron-H's config derives its layer count from its list of blocks (``layers_block_type``, or the older
    ``hybrid_override_pattern``) and transformers writes no ``num_hidden_layers``: either list sets the number;
    neither is a missing number, not the class's default of 4."""
    from tests.families import save_family

    folder = save_family(tmp_path / "nemotron_h", "nemotron_h")
    written = _written(folder)
    assert "num_hidden_layers" not in written
    assert config_problems(AutoConfig.from_pretrained(folder), written) == []
    blocks = written.pop("layers_block_type")
    pattern = {"full_attention": "*", "linear_attention": "M", "mlp": "-", "moe": "E"}
    (folder / "config.json").write_text(json.dumps(written | {"hybrid_override_pattern": "".join(
        pattern[kind] for kind in blocks)}))
    assert config_problems(AutoConfig.from_pretrained(folder), _written(folder)) == []
    arch = meta_architecture(ModelSource("nemotron_h", folder, "local"))
    assert arch.blocks == ("attention", "mamba", "mlp", "moe") and arch.mamba.layers == (1,)
    assert (arch.experts.layers, arch.experts.gated, arch.experts.latent) == ((3,), False, 32)
    (folder / "config.json").write_text(json.dumps(written))
    assert config_problems(AutoConfig.from_pretrained(folder), written) == [
        "no num_hidden_layers (layers; the library would take 4)"]


@pytest.mark.parametrize("block, available_kb, said", [
    (0, 16384, "block_size = 0 (at least 1)"),
    (-1, 16384, "block_size = -1 (at least 1)"),
    # 1 lightning layer of 4 heads: 4 * 4 * (32^2 + 2 * 32 + 1) bytes of decay buffers, above 16 KiB
    (32, 16, "block_size = 32: the decay buffers of its lightning-attention layers need 17,424 bytes, 16,384 are "
             "available"),
])
def test_a_lightning_block_is_checked_before_its_decay_buffers_are_built(block, available_kb, said, tmp_path, capfd,
                                                                        monkeypatch):
    """MiniMax's lightning-attention layers build decay buffers of ``heads x block_size^2`` numbers with the model,
    even on the meta device: a block of 10^9 tokens was killed for memory (exit 137) while transformers built it.
    Each bad block is one line before anything is built."""
    from profiler.measure import memory
    from tests.families import save_family

    folder = save_family(tmp_path / "broken", "minimax")
    (folder / "config.json").write_text(json.dumps(_written(folder) | {"block_size": block}))
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(f"MemTotal:       16384 kB\nMemAvailable:       {available_kb} kB\n")
    monkeypatch.setattr(memory, "MEMINFO", meminfo)
    stop_before_measuring(monkeypatch)
    assert user_error(capfd, run_argv(folder)) == f"profiler: error: broken: config.json: {said}"


def test_a_config_whose_own_arithmetic_fails_on_a_number_is_one_line(tmp_path, capfd, monkeypatch):
    """Zamba2's config divides the model's width by ``n_mamba_heads`` as it loads: 0 was a ZeroDivisionError
    traceback."""
    from tests.families import save_family

    folder = save_family(tmp_path / "broken", "zamba2")
    (folder / "config.json").write_text(json.dumps(_written(folder) | {"n_mamba_heads": 0}))
    stop_before_measuring(monkeypatch)
    assert user_error(capfd, run_argv(folder)) == ("profiler: error: broken: unreadable config.json (integer division "
                                                   "or modulo by zero)")


@pytest.mark.parametrize("family, numbers, said", [
    ("mixtral", {"num_experts_per_tok": 0}, "num_experts_per_tok = 0 (1 to num_local_experts = 4)"),
    ("qwen2_moe", {"num_experts_per_tok": 5}, "num_experts_per_tok = 5 (1 to num_experts = 4)"),
    ("aria_text", {"moe_topk": -1}, "moe_topk = -1 (1 to moe_num_experts = 4)"),
    ("longcat_flash", {"moe_topk": 7}, "moe_topk = 7 (1 to n_routed_experts + zero_expert_num = 6)"),
    ("longcat_flash", {"zero_expert_num": -3}, "zero_expert_num = -3 (0 to 10,000,000)"),
    ("longcat_flash", {"zero_expert_num": 10**9}, "zero_expert_num = 1000000000 (0 to 10,000,000)"),
    ("mimo_v2_flash", {"v_head_dim": 0}, "v_head_dim = 0 (at least 1)"),
    ("mimo_v2_flash", {"v_head_dim": 10**9}, "v_head_dim = 1,000,000,000 (at most 100,000)"),
    ("deepseek_v32", {"index_n_heads": 0}, "index_n_heads = 0 (at least 1)"),
    ("glm_moe_dsa", {"index_head_dim": 10**9}, "index_head_dim = 1,000,000,000 (at most 100,000)"),
    ("minimax_m3_vl_text", {"index_block_size": 0}, "index_block_size = 0 (1 to max_position_embeddings = 512)"),
    ("minimax_m3_vl_text", {"index_block_size": 10**9},
     "index_block_size = 1,000,000,000 (1 to max_position_embeddings = 512)"),
])
def test_the_experts_a_token_is_routed_to_and_head_widths_are_checked(family, numbers, said, tmp_path, capfd,
                                                                      monkeypatch):
    """None routed ended a run with a traceback (its routing record divided by zero), more than there are with a
    failed first pass; a value width of 0 failed the first pass, and one of 10^9 the build; so did an indexer's heads
    and width; MiniMax-M3's blocks of 10^9 keys ran 42 s on a budget of 2 s (each pass pads its scores to a
    whole block): each is one line before anything is built, by the family's own names."""
    from tests.families import save_family

    folder = save_family(tmp_path / "broken", family)
    (folder / "config.json").write_text(json.dumps(_written(folder) | numbers))
    stop_before_measuring(monkeypatch)
    assert user_error(capfd, run_argv(folder)) == f"profiler: error: broken: config.json: {said}"


def test_a_family_that_names_no_position_limit_is_told_how_to_give_one(tmp_path, capfd, monkeypatch):
    """BLOOM's ALiBi bias is built for any length, and its config has no position limit at all; given one in its
    config.json it runs (and its FLOPs agree with the formula)."""
    from transformers import BloomConfig

    folder = tmp_path / "bloom"
    BloomConfig(vocab_size=256, hidden_size=64, n_layer=2, n_head=4).save_pretrained(folder)
    stop_before_measuring(monkeypatch)
    assert user_error(capfd, run_argv(folder)) == (
        "profiler: error: bloom: config.json: no max_position_embeddings (max_positions; bloom names no limit: give "
        "its config.json the length to measure up to)")
    (folder / "config.json").write_text(json.dumps(_written(folder) | {"max_position_embeddings": 128}))
    assert meta_architecture(ModelSource("bloom", folder, "local")).max_positions == 128
