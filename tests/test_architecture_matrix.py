"""The architecture matrix: every family of tests/families.py (68 decoder families transformers ships) is
built as ``run`` builds it, runs every phase, and its analytic FLOPs (``pass_flops``, read from the config
by ``Architecture``) agree with the independent count (FlopCounterMode with the SDPA and grouped-matmul
formulas) within 1%, and its analytic KV-cache bytes equal the bytes a real cache holds.

Contexts are chosen around the sliding window (32) of Mistral, Gemma-2, Gemma-3 and Starcoder2: a prefill
of 16 (inside it) and of 100 (past it), a decode step at a context of 100 (its windowed layers attend to
the 31 tokens their cache kept and the new one), extends of 20 and 70 tokens onto 40 (the gated delta rule's
chunks are 64 tokens), a forward of 100 and a short generation.
"""

import dataclasses

import pytest
import torch
import transformers
from packaging.version import Version

from profiler.measure.architecture import HyperConnections, Indexer
from profiler.measure.catalog import ModelSource
from profiler.measure.flops import count_flops, generate_flops, pass_flops
from profiler.measure.loading import load_model
from profiler.measure.memory import kv_cache_bytes
from profiler.measure.passes import Passes
from tests.families import EAGER, FAMILIES, SLIDING_WINDOW, save_family

AGREEMENT = 0.01  # the issue's bound; these families agree to the FLOP (rotary matmuls aside)
LONG = 100  # past every window


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_runs_and_its_analytic_count_is_what_runs(family, tmp_path):
    folder = save_family(tmp_path / family, family, max_positions=2 * LONG)
    attention = "eager" if family in EAGER else "sdpa"
    loaded = load_model(ModelSource(family, folder, "local"), torch.device("cpu"), torch.float32,
                        attn_implementation=attention)
    arch, passes = loaded.architecture, Passes(loaded)

    _, short = count_flops(lambda: passes.prefill(16))
    cache, long = count_flops(lambda: passes.prefill(LONG))
    assert short == pytest.approx(pass_flops(arch, 16, 16), rel=AGREEMENT)
    assert long == pytest.approx(pass_flops(arch, LONG, LONG), rel=AGREEMENT)
    assert kv_cache_bytes(cache) == arch.kv_cache_bytes(LONG, torch.float32)

    cache, decode = count_flops(lambda: passes.decode_step(cache))
    assert decode == pytest.approx(pass_flops(arch, 1, LONG + 1), rel=AGREEMENT)
    assert kv_cache_bytes(cache) == arch.kv_cache_bytes(LONG + 1, torch.float32)

    for appended in (20, 70):  # an extend onto 40 cached tokens: within a delta-rule chunk, and past one
        cached = passes.prefill(40)
        _, extend = count_flops(lambda: passes.extend(cached, appended))
        assert extend == pytest.approx(pass_flops(arch, appended, 40 + appended), rel=AGREEMENT)

    _, forward = count_flops(lambda: passes.forward(LONG))
    assert forward == pytest.approx(pass_flops(arch, LONG, LONG), rel=AGREEMENT)
    _, generate = count_flops(lambda: passes.generate(40, 3))
    assert generate == pytest.approx(generate_flops(arch, 40, 3), rel=AGREEMENT)


def test_the_matrix_has_the_features_the_issue_names(tmp_path):
    """Windows below the contexts measured, alternating local and global layers, experts with shared ones
    and dense first layers, latent attention, multi-query attention, lightning indexers: each read from its family's
    config."""
    from profiler.measure.loading import meta_architecture

    arch = {family: meta_architecture(ModelSource(family, save_family(tmp_path / family, family), "local"))
            for family in ("mistral", "gemma3_text", "qwen2_moe", "deepseek_v3", "gpt_bigcode", "falcon", "phi3",
                           "llama4_text", "deepseek_v32", "glm_moe_dsa", "minimax_m3_vl_text", "cohere2_moe",
                           "afmoe", "hy_v4", "deepseek_v4")}
    assert arch["mistral"].windows == (SLIDING_WINDOW, SLIDING_WINDOW) and SLIDING_WINDOW < LONG
    assert arch["gemma3_text"].windows == (SLIDING_WINDOW, None, SLIDING_WINDOW)
    qwen_moe, deepseek = arch["qwen2_moe"].experts, arch["deepseek_v3"].experts
    assert (qwen_moe.count, qwen_moe.per_token, qwen_moe.ffn, qwen_moe.shared_ffn, qwen_moe.shared_gate) == (
        4, 2, 32, 64, True)
    assert (deepseek.layers, deepseek.shared_ffn, deepseek.shared_gate) == ((1,), 32, False)  # first layer dense
    assert arch["deepseek_v3"].latent_attention.kv_rank == 16
    assert arch["gpt_bigcode"].kv_heads == 1
    # transformers before 5.25 broadcast Falcon's keys to every query head before caching them
    broadcast = Version(transformers.__version__) < Version("5.25")
    assert (arch["falcon"].kv_heads, arch["falcon"].cached_kv_heads) == (2, 4 if broadcast else 2)
    assert arch["phi3"].gated_mlp  # one fused gate_up matrix
    llama4 = arch["llama4_text"]
    assert llama4.windows == (SLIDING_WINDOW,) * 3 + (None,)  # chunked attention, then a full layer
    assert (llama4.ffn, llama4.experts.ffn, llama4.experts.shared_ffn, llama4.experts.layers) == (128, 32, 32, (1, 3))
    assert llama4.experts.every_token and llama4.active_params == llama4.params
    # DeepSeek's sparse attention: queries from the query latent (32), heads weighted; GLM-5's middle layer has none
    assert arch["deepseek_v32"].indexer == Indexer(heads=2, head_dim=16, query_input=32, weighted=True, layers=(0, 1))
    assert arch["glm_moe_dsa"].indexer.layers == (0, 2)
    assert arch["glm_moe_dsa"].kv_elements_per_token == (16 + 8 + 16, 16 + 8, 16 + 8 + 16)  # latent, rotary key, index
    minimax = arch["minimax_m3_vl_text"]
    assert minimax.indexer == Indexer(heads=2, head_dim=16, query_input=64, weighted=False, layers=(0,))
    assert (minimax.ffn, minimax.experts.ffn, minimax.experts.shared_ffn, minimax.experts.layers) == (128, 32, 48, (1,))
    hy = arch["hy_v4"]  # sparse attention, an output gate as wide as the values (4 x 16), two streams
    assert (hy.indexer.layers, hy.attention_gate, hy.hyper) == ((0, 2), 64, HyperConnections(streams=2, mixing=False))
    assert (arch["afmoe"].attention_gate, arch["afmoe"].hyper) == (4 * 16, None)
    deepseek_v4 = arch["deepseek_v4"]  # a window in every layer; entries every 4 (indexed) and 16 tokens; 3 MoE layers
    assert (deepseek_v4.windows, deepseek_v4.compressed_attention.rates) == ((SLIDING_WINDOW,) * 3, (0, 4, 16))
    assert (deepseek_v4.compressed_attention.indexed, deepseek_v4.experts.layers) == ((1,), (0, 1, 2))
    assert deepseek_v4.hyper.weights == 2 * 2 + 2**2 and deepseek_v4.kv_elements_per_token == (64, 32, 32)
    cohere = arch["cohere2_moe"]  # its dense first layer's own width
    assert (cohere.ffn, cohere.experts.ffn, cohere.experts.layers) == (96, 32, (1,))


@pytest.mark.parametrize("family", ["qwen3_5_text", "lfm2", "granitemoehybrid", "jamba", "mamba", "mamba2", "minimax",
                                    "kimi_linear", "bailing_hybrid"])
def test_a_state_of_fixed_size_is_counted_in_its_own_dtype(family, tmp_path):
    """In bfloat16 the gated delta rule's, Mamba-2's and Mamba's states stay float32, and a convolution's inputs and
    lightning attention's states follow the model: the analytic cache bytes are what a prefill's and a decode step's
    cache hold."""
    folder = save_family(tmp_path / family, family, max_positions=2 * LONG)
    loaded = load_model(ModelSource(family, folder, "local"), torch.device("cpu"), torch.bfloat16)
    arch, passes = loaded.architecture, Passes(loaded)
    assert arch.stateful_layers
    cache = passes.prefill(40)
    assert kv_cache_bytes(cache) == arch.kv_cache_bytes(40, torch.bfloat16)
    passes.decode_step(cache)
    assert kv_cache_bytes(cache) == arch.kv_cache_bytes(41, torch.bfloat16)


@pytest.mark.parametrize("family", ["deepseek_v32", "minimax_m3_vl_text", "axk2"])
def test_an_indexers_keys_are_cached_in_the_models_dtype(family, tmp_path):
    """In bfloat16 an indexer's keys (a 3-d tensor beside DeepSeek-V3.2's latent, a 4-d one beside MiniMax-M3's keys
    and values) are what the analytic cache bytes say, after a prefill and a decode step."""
    folder = save_family(tmp_path / family, family, max_positions=2 * LONG)
    loaded = load_model(ModelSource(family, folder, "local"), torch.device("cpu"), torch.bfloat16)
    arch, passes = loaded.architecture, Passes(loaded)
    cache = passes.prefill(40)
    assert kv_cache_bytes(cache) == arch.kv_cache_bytes(40, torch.bfloat16)
    without = dataclasses.replace(arch, indexer=None).kv_cache_bytes(40, torch.bfloat16)
    indexer = arch.indexer
    assert arch.kv_cache_bytes(40, torch.bfloat16) - without == 40 * 2 * indexer.head_dim * len(indexer.layers)
    passes.decode_step(cache)
    assert kv_cache_bytes(cache) == arch.kv_cache_bytes(41, torch.bfloat16)
