"""Tiny configs (2-4 layers, 64 wide, a 256-token vocabulary) of decoder-only families that
transformers ships, written by transformers' own config classes: the architecture matrix.

Each is built the way a user would write it (``XConfig(...).save_pretrained(dir)``); numbers are chosen so that
every feature the family has is exercised: grouped-query attention, a sliding window shorter than the contexts
measured (Mistral, Gemma-2, Gemma-3, Starcoder2), alternating local and global layers (Gemma-2, Gemma-3), mixtures
of experts with shared experts and dense first layers (Qwen2-MoE, DeepSeek-V3; ERNIE-4.5 and HY-V3 by names of their
own; Hunyuan-MoE's one shared MLP; Aria's), multi-head latent attention (DeepSeek-V3), fused projections (Phi-3,
GPT-BigCode, Falcon), multi-query attention (GPT-BigCode), two-matrix MLPs whose config does not say so (Apertus and
Apertus-1.5, Arcee, Jais-2, BioGPT, GPT-NeoX-Japanese, NanoChat, XGLM), an MLP width named ``ffn_dim`` (OPT, XGLM),
chunked-attention layers beside a full one and experts run over every token, interleaved with dense layers of their
own width (Llama-4), gated-delta-rule layers beside attention layers that gate their output, dense or with experts
(Qwen3.5, Qwen3.5-MoE, Qwen3-Next), or beside plain ones (OLMo-Hybrid), short convolution layers beside attention
layers (LFM2, whose MLP width is adjusted from its config's; LFM2-MoE, with a dense first layer; LFM3, with a window
and a gate per head), Granite's shared MLP beside experts (Granite-3 MoE-shared, Granite MoE with sliding windows)
or alone (Granite-4.0-H without experts: its ``intermediate_size`` is the experts' width, not the MLP's), Mamba-2
layers beside attention layers (Granite-4.0-H), an attention output gated by a second half of the query projection
beside experts in dense and sparse layers (MiniCPM5), layers that are each one block (attention, Mamba-2, a
two-matrix MLP, or two-matrix experts working in a latent width: Nemotron-H), Mamba (Mamba-1) layers beside
attention layers, with experts every other layer (Jamba), AltUp, LAuReL, per-layer inputs, an MLP width per layer
(sparse activations in some) and the last layers attending to earlier layers' keys and values (Gemma-3n); Mamba-1
(Mamba, Falcon-Mamba) or Mamba-2 layers alone, with no attention, no MLP and no position limit; per-layer inputs,
the last layers attending to earlier layers' keys and values for the kept positions only, with MLPs twice as wide,
full-attention layers with heads of their own width and number whose values are their keys, and experts beside every
layer's MLP (Gemma-4); lightning-attention layers, run in blocks, beside attention layers, with experts in both
(MiniMax); ALiBi in place of position embeddings, its limit named ``max_seq_len`` (MPT); value heads narrower than
the query and key heads, and sliding-window layers with twice the key and value heads of the full ones
(MiMo-V2-Flash); a transformer block shared by hybrid layers, with adapters of each layer's own, before their Mamba-2
mixers (Zamba2).
"""

from __future__ import annotations

import transformers

from profiler.measure.architecture import ATTENTION_FREE

_COMMON = dict(vocab_size=256, bos_token_id=0, eos_token_id=0, pad_token_id=0)
_ATTENTION = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4)

# Families with layers that do not attend have an attention layer first here (Qwen3.5, LFM2 and Granite-4.0-H put
# such layers first: the order changes no count, and an attention layer first lets tests/test_cache_fill.py read
# the key a decode step writes at its position).
# An attention layer, then a gated-delta-rule layer: grouped value heads (4 of 8 wide for 2 key heads of 16)
_GATED_DELTA_NET = dict(num_key_value_heads=2, head_dim=16, linear_num_key_heads=2, linear_num_value_heads=4,
                        linear_key_head_dim=16, linear_value_head_dim=8, linear_conv_kernel_dim=4,
                        layer_types=["full_attention", "linear_attention"])

# A Mamba-2 layer: 4 heads of 32 (twice the width), 2 groups of a 16-wide state, chunks of 32 tokens
_MAMBA2 = dict(mamba_n_heads=4, mamba_d_head=32, mamba_d_state=16, mamba_n_groups=2, mamba_d_conv=4, mamba_expand=2,
               mamba_chunk_size=32)

# DeepSeek-V3's latent attention (a query rank of 32, a key-value latent of 16) and experts, its first layer dense
_DEEPSEEK = dict(intermediate_size=128, moe_intermediate_size=32, n_routed_experts=4, num_experts_per_tok=2,
                 n_shared_experts=1, n_group=1, topk_group=1, first_k_dense_replace=1, q_lora_rank=32, kv_lora_rank=16,
                 qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16, num_key_value_heads=4)
# Latent attention without a query rank: keys and values from a latent of 16, heads of 8 + 8 (Kimi Linear's, Ling's)
_LATENT = dict(num_key_value_heads=4, kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=8)
# A lightning indexer of 2 heads 16 wide, choosing 8 keys a query (fewer than the contexts the tests run)
_INDEXER = dict(index_n_heads=2, index_head_dim=16, index_topk=8)

# family (the config's model_type) -> (config class, its numbers; max positions are added by family_config)
FAMILIES = {
    "gpt2": ("GPT2Config", dict(n_layer=2, n_embd=64, n_head=4)),
    "gpt_neox": ("GPTNeoXConfig", dict(_ATTENTION, intermediate_size=128)),
    "gpt_bigcode": ("GPTBigCodeConfig", dict(n_layer=2, n_embd=64, n_head=4, multi_query=True)),
    "llama": ("LlamaConfig", dict(_ATTENTION, intermediate_size=128, num_key_value_heads=2)),
    "mistral": ("MistralConfig", dict(_ATTENTION, intermediate_size=128, num_key_value_heads=2, sliding_window=32)),
    "mixtral": ("MixtralConfig", dict(_ATTENTION, intermediate_size=96, num_key_value_heads=2,
                                      num_local_experts=4, num_experts_per_tok=2)),
    "qwen2": ("Qwen2Config", dict(_ATTENTION, intermediate_size=128, num_key_value_heads=2)),
    "qwen2_moe": ("Qwen2MoeConfig", dict(_ATTENTION, intermediate_size=128, moe_intermediate_size=32,
                                         shared_expert_intermediate_size=64, num_experts=4, num_experts_per_tok=2,
                                         num_key_value_heads=2)),
    "qwen3": ("Qwen3Config", dict(_ATTENTION, intermediate_size=128, num_key_value_heads=2, head_dim=32)),
    "qwen3_moe": ("Qwen3MoeConfig", dict(_ATTENTION, intermediate_size=128, moe_intermediate_size=32, num_experts=4,
                                         num_experts_per_tok=2, num_key_value_heads=2, head_dim=32)),
    "gemma": ("GemmaConfig", dict(_ATTENTION, intermediate_size=128, num_key_value_heads=1, head_dim=16)),
    "gemma2": ("Gemma2Config", dict(_ATTENTION, intermediate_size=128, num_key_value_heads=2, head_dim=16,
                                    sliding_window=32)),
    "gemma3_text": ("Gemma3TextConfig", dict(_ATTENTION, num_hidden_layers=3, intermediate_size=128,
                                             num_key_value_heads=2, head_dim=16, sliding_window=32,
                                             sliding_window_pattern=2)),
    "phi3": ("Phi3Config", dict(_ATTENTION, intermediate_size=128, num_key_value_heads=2)),
    "phi": ("PhiConfig", dict(_ATTENTION, intermediate_size=128)),
    "starcoder2": ("Starcoder2Config", dict(_ATTENTION, intermediate_size=128, num_key_value_heads=2,
                                            sliding_window=32)),
    "falcon": ("FalconConfig", dict(_ATTENTION, new_decoder_architecture=True, num_kv_heads=2)),
    "olmoe": ("OlmoeConfig", dict(_ATTENTION, intermediate_size=32, num_experts=4, num_experts_per_tok=2,
                                  num_key_value_heads=4)),
    "granitemoe": ("GraniteMoeConfig", dict(_ATTENTION, intermediate_size=32, num_local_experts=4,
                                            num_experts_per_tok=2, num_key_value_heads=2)),
    "deepseek_v3": ("DeepseekV3Config", dict(_ATTENTION, **_DEEPSEEK)),
    "apertus": ("ApertusConfig", dict(_ATTENTION, intermediate_size=128, num_key_value_heads=2)),
    "arcee": ("ArceeConfig", dict(_ATTENTION, intermediate_size=128, num_key_value_heads=2, head_dim=16)),
    "jais2": ("Jais2Config", dict(_ATTENTION, intermediate_size=128, num_key_value_heads=2, head_dim=16)),
    "biogpt": ("BioGptConfig", dict(_ATTENTION, intermediate_size=128)),
    "apertus1p5_text": ("Apertus1p5TextConfig", dict(_ATTENTION, intermediate_size=128, num_key_value_heads=2)),
    "nanochat": ("NanoChatConfig", dict(_ATTENTION, intermediate_size=128, num_key_value_heads=2)),
    "xglm": ("XGLMConfig", dict(d_model=64, num_layers=2, attention_heads=4, ffn_dim=128)),
    "gpt_neox_japanese": ("GPTNeoXJapaneseConfig", dict(_ATTENTION)),  # its MLP 4 wide (intermediate_multiple_size)
    "ernie4_5_moe": ("Ernie4_5_MoeConfig", dict(_ATTENTION, num_hidden_layers=3, intermediate_size=128,
                                               moe_intermediate_size=32, moe_num_experts=4, moe_k=2,
                                               moe_num_shared_experts=2, moe_layer_start_index=1,
                                               num_key_value_heads=2)),
    "hunyuan_v1_moe": ("HunYuanMoEV1Config", dict(_ATTENTION, intermediate_size=32, num_experts=4, moe_topk=2,
                                                  num_key_value_heads=2, head_dim=16)),
    "hy_v3": ("HYV3Config", dict(_ATTENTION, intermediate_size=128, moe_intermediate_size=32, num_experts=4,
                                 num_experts_per_tok=2, num_shared_experts=1, num_key_value_heads=2, head_dim=16,
                                 mlp_layer_types=["dense", "sparse"])),
    "opt": ("OPTConfig", dict(_ATTENTION, ffn_dim=128, word_embed_proj_dim=64)),
    "llama4_text": ("Llama4TextConfig", dict(_ATTENTION, num_hidden_layers=4, intermediate_size=32,
                                             intermediate_size_mlp=128, num_local_experts=4, num_experts_per_tok=1,
                                             interleave_moe_layer_step=2, num_key_value_heads=2, head_dim=16,
                                             attention_chunk_size=32)),
    "qwen3_5_text": ("Qwen3_5TextConfig", dict(_ATTENTION, intermediate_size=128, **_GATED_DELTA_NET)),
    "qwen3_5_moe_text": ("Qwen3_5MoeTextConfig", dict(_ATTENTION, moe_intermediate_size=32,
                                                      shared_expert_intermediate_size=64, num_experts=4,
                                                      num_experts_per_tok=2, **_GATED_DELTA_NET)),
    "qwen3_next": ("Qwen3NextConfig", dict(_ATTENTION, intermediate_size=128, moe_intermediate_size=32,
                                           shared_expert_intermediate_size=64, num_experts=4, num_experts_per_tok=2,
                                           **_GATED_DELTA_NET)),
    "lfm2": ("Lfm2Config", dict(_ATTENTION, intermediate_size=192, num_key_value_heads=2, block_multiple_of=32,
                                block_ffn_dim_multiplier=1.2, layer_types=["full_attention", "conv"])),
    "lfm2_moe": ("Lfm2MoeConfig", dict(_ATTENTION, num_hidden_layers=3, intermediate_size=128,
                                       moe_intermediate_size=32, num_experts=4, num_experts_per_tok=2,
                                       num_dense_layers=1, num_key_value_heads=2,
                                       layer_types=["full_attention", "conv", "conv"])),
    "lfm3": ("Lfm3Config", dict(_ATTENTION, num_hidden_layers=3, intermediate_size=128, num_key_value_heads=2,
                                head_dim=16, conv_L_cache=7, sliding_window=32,
                                layer_types=["full_attention", "conv", "sliding_attention"])),
    "minicpm5_moe": ("MiniCPM5MoeConfig", dict(_ATTENTION, intermediate_size=128, moe_intermediate_size=32,
                                               n_routed_experts=4, num_experts_per_tok=2, n_shared_experts=1,
                                               num_key_value_heads=2, head_dim=16,
                                               mlp_layer_types=["dense", "sparse"])),
    "nemotron_h": ("NemotronHConfig", dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                                           layers_block_type=["full_attention", "linear_attention", "mlp", "moe"],
                                           intermediate_size=128, mamba_num_heads=4, mamba_head_dim=32,
                                           ssm_state_size=16, n_groups=2, conv_kernel=4, chunk_size=32,
                                           n_routed_experts=4, num_experts_per_tok=2, n_shared_experts=1,
                                           moe_intermediate_size=32, moe_shared_expert_intermediate_size=48,
                                           moe_latent_size=32)),
    "granitemoeshared": ("GraniteMoeSharedConfig", dict(_ATTENTION, intermediate_size=32, shared_intermediate_size=64,
                                                        num_local_experts=4, num_experts_per_tok=2,
                                                        num_key_value_heads=2)),
    "granitemoe_swa": ("GraniteMoeSWAConfig", dict(_ATTENTION, intermediate_size=32, num_local_experts=4,
                                                   num_experts_per_tok=2, num_key_value_heads=2, sliding_window=32,
                                                   layer_types=["sliding_attention", "full_attention"])),
    "granitemoehybrid": ("GraniteMoeHybridConfig", dict(_ATTENTION, intermediate_size=32, shared_intermediate_size=96,
                                                        num_local_experts=0, num_key_value_heads=2,
                                                        position_embedding_type="rope",  # its default: none at all
                                                        layer_types=["attention", "mamba"], **_MAMBA2)),
    "jamba": ("JambaConfig", dict(_ATTENTION, intermediate_size=128, num_key_value_heads=2, attn_layer_period=2,
                                  attn_layer_offset=0, num_experts=4, num_experts_per_tok=2, expert_layer_period=2,
                                  expert_layer_offset=1, mamba_d_state=8, mamba_d_conv=4, mamba_expand=2)),
    "gemma3n_text": ("Gemma3nTextConfig", dict(_ATTENTION, num_hidden_layers=4, num_key_value_heads=2, head_dim=16,
                                               intermediate_size=[128, 96, 128, 64], sliding_window=32,
                                               layer_types=["sliding_attention", "full_attention"] * 2,
                                               num_kv_shared_layers=2, altup_num_inputs=4, laurel_rank=8,
                                               hidden_size_per_layer_input=16, vocab_size_per_layer_input=256,
                                               activation_sparsity_pattern=[0.95, 0.95, 0.0, 0.0])),
    "gemma4_text": ("Gemma4TextConfig", dict(_ATTENTION, num_hidden_layers=4, num_key_value_heads=2, head_dim=16,
                                             global_head_dim=32, intermediate_size=128, sliding_window=32,
                                             layer_types=["sliding_attention", "full_attention"] * 2,
                                             num_kv_shared_layers=2, use_double_wide_mlp=True,
                                             hidden_size_per_layer_input=16, vocab_size_per_layer_input=256,
                                             attention_k_eq_v=True, num_global_key_value_heads=1,
                                             enable_moe_block=True, num_experts=4, top_k_experts=2,
                                             moe_intermediate_size=32)),
    # ALiBi, no position embedding: its positions are max_seq_len, the length its ALiBi tensor is built for
    "mpt": ("MptConfig", dict(d_model=64, n_heads=4, n_layers=2)),
    "olmo_hybrid": ("OlmoHybridConfig", dict(_ATTENTION, intermediate_size=128, **_GATED_DELTA_NET)),
    # queries and keys 24 wide, values 16; the sliding-window layers with twice the key and value heads, and sinks
    "mimo_v2_flash": ("MiMoV2FlashConfig", dict(_ATTENTION, num_hidden_layers=3, num_key_value_heads=1, head_dim=24,
                                                v_head_dim=16, intermediate_size=128, moe_intermediate_size=32,
                                                n_routed_experts=4, num_experts_per_tok=2, sliding_window=32,
                                                layer_types=["full_attention"] + ["sliding_attention"] * 2)),
    # experts and shared experts by names of its own (moe_num_experts, moe_topk, moe_num_shared_experts)
    "aria_text": ("AriaTextConfig", dict(_ATTENTION, intermediate_size=32, num_key_value_heads=2, moe_num_experts=4,
                                         moe_topk=2, moe_num_shared_experts=2)),
    # a hybrid layer (the shared block, its adapters, then Mamba-2), then Mamba-2 alone; rotary positions in the block
    "zamba2": ("Zamba2Config", dict(_ATTENTION, num_key_value_heads=4, intermediate_size=128, mamba_d_state=16,
                                    n_mamba_heads=8, mamba_ngroups=2, mamba_d_conv=4, chunk_size=32, adapter_rank=8,
                                    use_shared_attention_adapter=True, use_mem_rope=True,
                                    layers_block_type=["hybrid", "mamba"])),
    # an attention layer, then a lightning-attention layer (blocks of 32 tokens); experts in both
    "minimax": ("MiniMaxConfig", dict(_ATTENTION, intermediate_size=32, num_key_value_heads=2, head_dim=16,
                                      num_local_experts=4, num_experts_per_tok=2, block_size=32,
                                      layer_types=["full_attention", "linear_attention"])),
    # DeepSeek's sparse attention: an indexer beside the latent attention of every layer (DeepSeek-V3.2), or of the
    # first and last (GLM-5: its middle layer reuses the selection of the layer before it)
    "deepseek_v32": ("DeepseekV32Config", dict(_ATTENTION, **_DEEPSEEK, **_INDEXER)),
    "glm_moe_dsa": ("GlmMoeDsaConfig", dict(_ATTENTION, **_DEEPSEEK, **_INDEXER, num_hidden_layers=3,
                                            indexer_types=["full", "shared", "full"])),
    # HRM-Text: its stack of 2 layers run as 4 (an H cycle of one L cycle and the H step), each with a cache of its own;
    # attention gated by a projection of its own
    "hrm_text": ("HrmTextConfig", dict(_ATTENTION, head_dim=16, intermediate_size=128, H_cycles=1, L_cycles=1)),
    # Doge: a dynamic mask from every key's value; its count of experts set, but no experts (is_moe false)
    "doge": ("DogeConfig", dict(_ATTENTION, intermediate_size=128, num_key_value_heads=2, keep_window_size=32)),
    # differential attention: two attention calls a layer (its key and value heads must be even)
    "diffllama": ("DiffLlamaConfig", dict(_ATTENTION, intermediate_size=128, num_key_value_heads=2)),
    # HY-V4: DeepSeek's sparse attention (the middle layer reusing the first's selection) with an output gate and sinks,
    # two copies of each token's state through hyper-connections
    "hy_v4": ("HYV4Config", dict(_ATTENTION, **_DEEPSEEK, **_INDEXER, num_hidden_layers=3, hc_mult=2,
                                 indexer_types=["full", "shared", "full"])),
    # DeepSeek-V4: a sliding-window layer, a compressed sparse one (an entry every 4 tokens, scored by an indexer) and a
    # heavily compressed one (every 16); one key head that is also the value, a grouped output, two copies of each
    # token's state through hyper-connections, experts routed by token id (its first three layers')
    "deepseek_v4": ("DeepseekV4Config", dict(
        _ATTENTION, num_hidden_layers=3, num_key_value_heads=1, head_dim=32, q_lora_rank=32, moe_intermediate_size=32,
        n_routed_experts=4, num_experts_per_tok=2, n_shared_experts=1, sliding_window=32, o_groups=2, o_lora_rank=16,
        **_INDEXER, hc_mult=2, layer_types=["sliding_attention", "compressed_sparse_attention",
                                             "heavily_compressed_attention"],
        compress_rates={"compressed_sparse_attention": 4, "heavily_compressed_attention": 16})),
    # Ergo: two-matrix MLPs (relu^2): a dense first layer of its own width, then experts and a shared expert of theirs;
    # a sliding-window layer, then a global one
    "ergo": ("ErgoConfig", dict(_ATTENTION, num_key_value_heads=2, first_dense_intermediate_size=128,
                                moe_intermediate_size=32, shared_intermediate_size=48, num_experts=4,
                                num_experts_per_tok=2, sliding_window=32, global_attention_every_n_layers=2)),
    # Lara: a sliding-window layer, a gated-delta-rule layer, a full-attention layer (no rotary positions: its sliding
    # layer comes first so that tests/test_cache_fill.py reads a position); experts and a shared expert without a gate
    "lara_mini": ("LaraMiniConfig", dict(_ATTENTION, **(_GATED_DELTA_NET | dict(
        num_hidden_layers=3, layer_types=["sliding_attention", "linear_attention", "full_attention"])),
        moe_intermediate_size=32, shared_expert_intermediate_size=64, num_experts=4, num_experts_per_tok=2,
        sliding_window=32)),
    # MiniMax-M3's language model: a sparse layer (an indexer choosing 2 blocks of 16 keys) with a dense MLP of its own
    # width, then a full-attention layer with experts (32 wide) and a shared expert (48)
    "minimax_m3_vl_text": ("MiniMaxM3VLTextConfig", dict(
        _ATTENTION, num_key_value_heads=2, head_dim=16, rotary_dim=8, intermediate_size=32, num_local_experts=4,
        num_experts_per_tok=2, dense_intermediate_size=128, shared_intermediate_size=48,
        mlp_layer_types=["dense", "sparse"], layer_types=["minimax_m3_sparse", "full_attention"], index_n_heads=2,
        index_head_dim=16, index_block_size=16, index_topk_blocks=2)),
    # a dense first layer of its own width (96), then experts (32 wide); two sliding-window layers
    "cohere2_moe": ("Cohere2MoeConfig", dict(_ATTENTION, num_key_value_heads=2, intermediate_size=32, num_experts=4,
                                             num_experts_per_tok=2, prefix_dense_intermediate_size=96,
                                             mlp_layer_types=["dense", "sparse"], sliding_window=32)),
    # Arcee's Trinity: attention gated by a projection of its own; a dense first layer, then experts and 2 shared ones;
    # a sliding-window layer, then a global one
    "afmoe": ("AfmoeConfig", dict(_ATTENTION, num_key_value_heads=2, head_dim=16, intermediate_size=128,
                                  moe_intermediate_size=32, num_experts=4, num_experts_per_tok=2, num_shared_experts=2,
                                  num_dense_layers=1, sliding_window=32, global_attn_every_n_layers=2)),
    # Databricks' DBRX: experts (96 wide, 6, 3 a token) and kv heads in sub-configs; positions are max_seq_len (its
    # clip_qkv as published: transformers 5.25 cannot run it unset)
    "dbrx": ("DbrxConfig", dict(d_model=64, n_heads=4, n_layers=2,
                                attn_config=dict(kv_n_heads=2, rope_theta=10000.0, clip_qkv=8),
                                ffn_config=dict(hidden_size=64, ffn_hidden_size=96, moe_num_experts=6, moe_top_k=3))),
    # GLM-4.7-Flash: latent attention, a dense first layer, then experts and a shared one
    "glm4_moe_lite": ("Glm4MoeLiteConfig", dict(_ATTENTION, num_hidden_layers=3, **_DEEPSEEK,
                                                mlp_layer_types=["dense", "sparse", "sparse"])),
    # rednote's dots.llm1: a dense first layer, then experts and a shared one
    "dots1": ("Dots1Config", dict(_ATTENTION, num_hidden_layers=3, num_key_value_heads=2, head_dim=16,
                                  intermediate_size=128, moe_intermediate_size=32, n_routed_experts=4,
                                  n_shared_experts=1, num_experts_per_tok=2, first_k_dense_replace=1)),
    # latent attention in a dense model
    "minicpm3": ("MiniCPM3Config", dict(_ATTENTION, intermediate_size=128, num_key_value_heads=4, q_lora_rank=32,
                                        kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=8)),
    # Kimi Linear: latent attention, then Kimi Delta Attention (2 heads of 16, its decay and output gate through a
    # rank of 16); a dense first layer, then experts and a shared one (attention first, as the fill tests read it)
    "kimi_linear": ("KimiLinearConfig", dict(
        _ATTENTION, **_LATENT, intermediate_size=128, moe_intermediate_size=32, num_experts=4, num_experts_per_token=2,
        num_shared_experts=1, linear_num_heads=2, linear_head_dim=16, mlp_layer_types=["dense", "sparse"],
        layer_types=["full_attention", "linear_attention"])),
    # Ling's hybrid: latent attention with a gate per head, then two layers of Kimi Delta Attention with full-width
    # gates; a dense first layer, then experts and a shared one
    "bailing_hybrid": ("BailingHybridConfig", dict(
        _ATTENTION, **_LATENT, num_hidden_layers=3, head_dim=16, intermediate_size=128, moe_intermediate_size=32,
        num_experts=4, num_experts_per_token=2, num_shared_experts=1, num_expert_group=1, topk_group=1,
        first_k_dense_replace=1, linear_num_heads=2, linear_head_dim=16, layer_group_size=3,
        mlp_layer_types=["dense", "sparse", "sparse"], layer_types=["full_attention", "linear_attention",
                                                                    "linear_attention"])),
    # Tencent's Youtu-LLM: latent attention in a dense model
    "youtu": ("YoutuConfig", dict(_ATTENTION, **_LATENT, intermediate_size=128, q_lora_rank=32)),
    # A.X K1: latent attention, a dense first layer, then experts and a shared one
    "axk1": ("AXK1Config", dict(_ATTENTION, num_hidden_layers=3, **_DEEPSEEK,
                                mlp_layer_types=["dense", "sparse", "sparse"])),
    # A.X K2: latent attention whose query projection makes a gate too, a lightning indexer in every layer, norms
    # gating their output through a rank of 16; a dense first layer, then experts and a shared one
    "axk2": ("AXK2Config", dict(_ATTENTION, num_hidden_layers=3, **_DEEPSEEK, **_INDEXER, gated_norm_rank=16,
                                mlp_layer_types=["dense", "sparse", "sparse"])),
    # Meituan's LongCat-Flash: 2 layers of two sublayers each (latent attention and a dense MLP 128 wide), the first
    # sublayer's input also through experts (4 of 32, 2 a token) and 2 identity experts; its rotary embedding is
    # head_dim wide (the published config's 64, as its qk_rope_head_dim)
    "longcat_flash": ("LongcatFlashConfig", dict(
        hidden_size=64, num_layers=2, num_attention_heads=4, ffn_hidden_size=128, expert_ffn_hidden_size=32,
        n_routed_experts=4, moe_topk=2, zero_expert_num=2, q_lora_rank=32, kv_lora_rank=16, qk_nope_head_dim=16,
        qk_rope_head_dim=8, head_dim=8, v_head_dim=16, num_key_value_heads=4)),
    # rotary embedding on the first 8 of each head's 16 dimensions
    "gptj": ("GPTJConfig", dict(n_layer=2, n_embd=64, n_head=4, rotary_dim=8)),
    "codegen": ("CodeGenConfig", dict(n_layer=2, n_embd=64, n_head=4, rotary_dim=8)),
    # attention-free: every layer a Mamba mixer, no MLP, no position limit
    "mamba": ("MambaConfig", dict(hidden_size=64, num_hidden_layers=2, intermediate_size=128, state_size=8,
                                  time_step_rank=4, conv_kernel=4)),
    "falcon_mamba": ("FalconMambaConfig", dict(hidden_size=64, num_hidden_layers=2, intermediate_size=128,
                                               state_size=8, time_step_rank=4, conv_kernel=4)),
    "mamba2": ("Mamba2Config", dict(hidden_size=64, num_hidden_layers=2, num_heads=4, head_dim=32, state_size=16,
                                    n_groups=2, conv_kernel=4, chunk_size=32, expand=2)),
}
SLIDING_WINDOW = 32  # of the windowed families above (Llama-4's attention chunk too)
# attention without a position encoding (the Mamba layers, or Kimi Linear's delta-rule layers, beside it carry the
# order), or with ALiBi's (a bias on the scores, MPT): a token's key is the same at every position
NO_POSITIONS = frozenset({"nemotron_h", "jamba", "mpt", "kimi_linear"})
# transformers 5 refuses sdpa for these (Gemma-2: logit soft-capping; MPT: ALiBi; MiMo-V2-Flash, HY-V4, DeepSeek-V4:
# attention sinks; the attention-free families have no attention)
EAGER = frozenset({"gemma2", "gpt_neox_japanese", "xglm", "granitemoe_swa", "mpt", "mimo_v2_flash",
                   "hy_v4", "deepseek_v4"}) | ATTENTION_FREE


def family_config(family: str, max_positions: int = 512):
    """The tiny config of ``family`` (a key of ``FAMILIES``), holding ``max_positions`` positions (an attention-free
    family holds any number)."""
    class_name, numbers = FAMILIES[family]
    positions = {"n_positions": max_positions} if "n_layer" in numbers else {"max_position_embeddings": max_positions}
    if family in ("mpt", "dbrx"):
        positions = {"max_seq_len": max_positions}
    if family in ATTENTION_FREE:
        positions = {}
    return getattr(transformers, class_name)(**numbers, **positions, **_COMMON)


def save_family(folder, family: str, max_positions: int = 512):
    """A local model folder holding only the config.json of ``family``: a random-weight model."""
    folder.mkdir(parents=True, exist_ok=True)
    family_config(family, max_positions).save_pretrained(folder)
    return folder


def save_lfm2(folder, max_positions: int = 128):
    """A tiny LFM2 with a convolution layer first, as its checkpoints have it (the matrix's has an attention layer
    first), then an attention layer; its convolution's cache states are written in place. Saved as a local HF
    folder (config only: random weights)."""
    transformers.Lfm2Config(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=max_positions,
                            layer_types=["conv", "full_attention"]).save_pretrained(folder)
    return folder


def save_bamba(folder, max_positions: int = 128):
    """A tiny Bamba (not in the matrix: transformers 5.25 numbers a pass's positions from 0 whatever its cache holds, so
    a decode step's key is the same at every context), an attention layer then a Mamba-2 layer, saved as a local HF
    folder (config only: random weights)."""
    transformers.BambaConfig(**_ATTENTION, **_COMMON, intermediate_size=128, num_key_value_heads=2,
                             attn_layer_indices=[0], max_position_embeddings=max_positions,
                             **_MAMBA2).save_pretrained(folder)
    return folder


def save_olmo_hybrid(folder, max_positions: int = 128):
    """A tiny OLMo-Hybrid as its checkpoints have it, a gated-delta-rule layer first (the matrix's has an attention
    layer first), then an attention layer, saved as a local HF folder (config only: random weights)."""
    transformers.OlmoHybridConfig(**_ATTENTION, **_COMMON, intermediate_size=128,
                                  max_position_embeddings=max_positions).save_pretrained(folder)
    return folder


def save_doge_moe(folder, max_positions: int = 128):
    """A tiny Doge with its mixture of experts (``is_moe``: 16 experts of one row and one column each, 2 a token, found
    by product keys, beside a dense MLP), work the FLOP formula does not model; saved as a local HF folder (config
    only: random weights)."""
    transformers.DogeConfig(**_ATTENTION, **_COMMON, intermediate_size=128, num_key_value_heads=2, is_moe=True,
                            num_experts=16, num_experts_per_tok=2,
                            max_position_embeddings=max_positions).save_pretrained(folder)
    return folder


def save_deepseek_v4(folder, max_positions: int = 128):
    """A tiny DeepSeek-V4 as its first layers are (the matrix's has a layer of each kind, compressing every 4 and 16
    tokens): two heavily compressed attention layers (one entry per 128 tokens) with hash-routed experts, saved as a
    local HF folder (config only: random weights)."""
    transformers.DeepseekV4Config(**_COMMON, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                  num_key_value_heads=1, head_dim=32, q_lora_rank=32, moe_intermediate_size=32,
                                  n_routed_experts=4, num_experts_per_tok=2, n_shared_experts=1, sliding_window=16,
                                  o_groups=2, o_lora_rank=16, index_n_heads=2, index_head_dim=16, index_topk=8,
                                  hc_mult=2, max_position_embeddings=max_positions).save_pretrained(folder)
    return folder


def save_falcon_h1(folder, max_positions: int = 128):
    """A tiny Falcon-H1 (not in the matrix: each layer holds a Mamba-2 state beside its keys and values, which a
    fill keeps as its one-token prefill left it), saved as a local HF folder (config only: random weights)."""
    transformers.FalconH1Config(vocab_size=256, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                num_key_value_heads=2, intermediate_size=128, max_position_embeddings=max_positions,
                                head_dim=16, mamba_d_ssm=64, mamba_n_heads=4, mamba_d_head=16, mamba_d_state=16,
                                mamba_n_groups=1).save_pretrained(folder)
    return folder


def save_composite(folder, composite: str = "Gemma3Config", max_positions: int = 128, weights: bool = False):
    """A tiny vision-language model of the config class ``composite`` (Gemma-3 from 4B up, Llava, Mistral-3 ...):
    its language model's numbers under ``text_config``, a one-layer vision encoder beside it; saved as a local HF
    folder, with the whole model's safetensors where ``weights``."""
    config = getattr(transformers, composite)(
        text_config=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, head_dim=16, intermediate_size=128,
                         max_position_embeddings=max_positions, **_COMMON),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=28, patch_size=14),
        **({"mm_tokens_per_image": 4} if composite == "Gemma3Config" else {}))  # Gemma-3 pools the 2x2 patches to 4
    if weights:
        transformers.AutoModelForImageTextToText.from_config(config).save_pretrained(folder)
    else:
        config.save_pretrained(folder)
    return folder
