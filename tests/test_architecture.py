import torch

from profiler.measure.catalog import resolve_model
from profiler.measure.loading import meta_architecture


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
