"""FLOPs of one pass: an analytic formula from the architecture, and an independent count by
torch's FlopCounterMode.

The formula counts matrix-multiply FLOPs only, 2 per multiply-add, after Kaplan et al.
2020 ("Scaling Laws for Neural Language Models", Table 1: ``2N + 2 n_layer n_ctx d_attn``
per token), written out per matrix and per layer. For a pass that adds ``T`` tokens to a
context that then holds ``S`` tokens, with logits at ``L`` positions, on a model of width
``d``, ``h`` query heads and ``h_kv`` key/value heads of size ``d_h``, MLP width ``f`` and
vocabulary ``V``, layer ``i`` attending to ``S_i`` keys::

    per layer   q, k, v projections     2 T d (h + 2 h_kv) d_h
                scores and mixing       4 h T S_i d_h      (dense: every query against every key)
                output projection       2 T h d_h d
                MLP                     2 T d f * (3 if gated else 2)
    once        LM head                 2 L d V

- Keys: ``S_i = S`` under full attention. A sliding-window layer's cache keeps the ``W - 1``
  most recent tokens (``Architecture.cached_tokens``), so a pass with a cache hands the kernel
  ``min(S - T, W - 1) + T`` keys; a pass without one (prefill, forward) hands it all ``S``.
- Attention is counted dense over the keys the kernel is handed, as it is called: the causal
  mask and the window hide keys from a query but not from the kernel, which computes the
  scores of the full ``T x S_i`` block under a mask (eager, SDPA's math kernel, any kernel
  given a window mask on the CPU); a fused kernel run with ``is_causal`` may skip up to half of
  the blocks. The attention a causal window needs is less: query ``j`` of a prefill sees
  ``min(j, W)`` keys.
- Mixture of experts (``Architecture.experts``): a router ``2 T d E``, then each token through
  its ``k`` routed experts, ``2 T k d f_e * 3``, and any shared expert, ``2 T d f_s * 3`` (plus
  ``2 T d`` for Qwen2-MoE's shared-expert gate). Nemotron-H's experts are two matrices (``* 2``), and
  where it has a latent width ``l`` its routed experts take ``l`` for ``d``, projected into and back,
  ``2 T d l * 2``. transformers computes the routed experts only for the tokens routed to them (a grouped
  matmul, a batched one, or a loop over the experts hit), so that is what is counted, except Llama-4's,
  which it runs over every token (``Experts.every_token``: ``2 T E d f_e * 3``, the router's scores zeroing
  those not chosen). LongCat-Flash's router scores its ``z`` identity experts too, ``2 T d (E + z)``, and a token's
  picks of them run through a routed expert weighted 0 (``Experts.identities``): ``k`` experts a token all the same.
  The count does not depend on how tokens are balanced over experts.
- Latent attention (``Architecture.latent_attention``, DeepSeek): queries ``2 T d r_q +
  2 T r_q h d_qk`` (or ``2 T d h d_qk`` without a query rank), the compressed key and value
  ``2 T d (r_kv + d_rope)``, their decompression ``2 S_i r_kv h (d_nope + d_v)`` over every key
  attended (transformers caches the latent and decompresses it again each pass), scores and
  mixing ``2 h T S_i (d_qk + d_v)`` and the output ``2 T h d_v d``. A.X K2's (``query_gate``) projects the query
  latent twice over, normalised and not, to the queries and a gate per value dimension: ``2 T d r_q +
  2 T 2 r_q h (d_qk + d_v)``.
- Norm gates (``Architecture.norm_gates``: A.X K2's input norms, and the norm before a layer's experts): each a
  projection to its rank ``r`` and back, ``2 T 2 d r``.

- Gated attention output (``Architecture.attention_gate``, ``g`` outputs): ``2 T d g`` more: Qwen3-Next's,
  Qwen3.5's and MiniCPM5's query projection twice as wide (``g = h d_h``, the second half gating the output),
  AFMoE's and HRM-Text's projection of its own (``g = h d_h``) and HY-V4's under latent attention (``g = h d_v``),
  LFM3's one gate per head (``g = h``).
- Gated-delta-rule layers (``Architecture.linear_attention``: Qwen3-Next's, Qwen3.5's, OLMo-Hybrid's and Lara's linear
  attention, ``h_k`` key heads of size ``d_k``, ``h_v`` value heads of size ``d_v``, a convolution ``K`` wide over
  ``C = 2 h_k d_k + h_v d_v`` channels) in place of attention, counted as transformers' PyTorch
  implementation (what runs on a CPU, and the counter sees) computes it: projections
  ``2 T d (C + h_v d_v + 2 h_v) + 2 T h_v d_v d`` (Kimi Delta Attention, ``channel_decay``: Kimi Linear's and
  Bailing-Hybrid's, one write strength a head and a decay and an output gate per value channel, ``2 T (d C + g +
  h_v d) + 2 T h_v d_v d`` with ``g = 2 r (d + h_v d_v)`` through a rank ``r``, Kimi Linear's, else ``2 d h_v d_v``;
  its delta rule by the term below, which with its ``d_k = d_v`` is what the counter sees of its chunks: its keys
  against the keys and the queries, decayed per channel, are elementwise there, about ``4 c d_k`` a token and head,
  and left out as the counter leaves them out); the depthwise convolution ``2 C K`` per output position,
  ``T + K - 1`` of them on a pass with no state before it (prefill, forward), ``T + 2K - 1`` on one that
  prepends the ``K`` inputs its cache kept (extend), 2 on a one-token step (a prefill into a cache pads a prompt
  shorter than ``K`` to ``K``: up to ``K - 1`` positions more, left out, 0.1-1.2% of a one-token prefill of the
  tiny test models); and the delta rule. A pass of
  ``T`` tokens (or one with no state before it) runs it in chunks of ``c = 64``, padding ``T`` to ``P``, a
  multiple of 64: ``P h_v (4 c d_k + 2 c d_v + 6 d_k d_v)`` (within each chunk the keys against the keys and
  the queries, the values mixed by them; across chunks the state read by the keys and the queries and
  written by the values). Its triangular solve (about ``c (d_k + d_v)`` per token and value head) and a
  one-token step's read and update of the state (about ``8 h_v d_k d_v``, elementwise in transformers' code:
  1% of a layer at Qwen3.5's default sizes, 5% at 1,024 wide) are left out, as the counter leaves them out.
  None of it grows with the context: the state is of fixed size.
- Short convolution layers (``Architecture.short_convolution``: LFM2, LFM2-MoE, LFM3) in place of attention:
  projections ``2 T d 3d + 2 T d d`` and a depthwise convolution over ``d`` channels, ``K`` wide, at the
  positions counted above for the gated delta rule's.
- Mamba-2 layers (``Architecture.mamba``: Granite-4.0-H, Bamba, Nemotron-H; ``H`` heads of size ``p``, a state
  ``N`` wide in ``G`` groups, values ``E = H p`` wide) in place of attention, or beside it in every layer
  (Falcon-H1): projections ``2 T d (2E + 2 G N + H) + 2 T E d``, the convolution over ``E + 2 G N`` channels at the
  positions counted above for the gated delta rule's, and the scan, counted as transformers'
  PyTorch code runs it: a one-token step on a state reads it, ``2 E N``; any other pass runs in chunks of
  ``L`` tokens (``mamba_chunk_size``), ``T`` padded to ``P``, ``Z = P / L`` chunks:
  ``2 P L H (N + p) + 4 P E N + 2 (Z + 1)^2 E N`` (within each chunk the outputs against the inputs, B against
  C, and the values mixed by them; each chunk's state written and read; the states passed from chunk to
  chunk, every chunk to every later one). Elementwise work (the step's update of its state) is left out.
- Mamba (Mamba-1) layers (``Architecture.mamba1``: Jamba; values ``E`` wide, a state ``N`` wide, a time step of
  rank ``R``) in place of attention: projections ``2 T d 2E + 2 T E (R + 2N) + 2 T R E + 2 T E d`` (in, to the time
  step, B and C, the time step back, out), the convolution over ``E`` channels at the positions counted above for
  the gated delta rule's, and the scan, token by token in transformers' PyTorch code: each token's state read by
  its C, ``2 E N``. Its update of the state is elementwise and left out.
- Lightning-attention layers (``Architecture.lightning``: MiniMax-Text-01's and MiniMax-M1's linear attention,
  ``h`` heads of size ``d_h``, blocks of ``b`` tokens) in place of attention, counted as transformers' PyTorch code
  computes it: projections ``2 T d 4 h d_h + 2 T h d_h d`` (queries, keys and values, the output gate; out); each
  token's key and value written into the ``d_h x d_h`` state and its query reading it, ``4 T h d_h^2``; and on a pass
  with no state before it (prefill, forward), run in blocks, each block of ``b_i`` tokens' queries against its own
  keys and the values mixed by them, ``4 h d_h sum_i b_i^2`` (a pass that continues a state runs token by token and
  has none of it). None of it grows with the context: the state is of fixed size. The decays are elementwise and
  left out, as the counter leaves them out.
- Gemma-3n and Gemma-4. Per-layer inputs (``Architecture.per_layer_input``, ``p`` wide): the embedding projected to
  every layer's, ``2 T d L p`` once, and in each layer a gate and a projection back, ``2 T d p * 2``. Gemma-3n's AltUp
  (``Architecture.altup``: ``A`` copies of each token's state) and LAuReL (rank ``r``): around each layer, AltUp's
  router and prediction ``2 T d A + 2 T A^3 + 2 T d A^2``, its router and correction ``2 T d A + 2 T A^2``, LAuReL
  ``2 T d r * 2``; once, the embedding projected to the other copies and those projected back,
  ``2 * 2 T d^2 (A - 1)``. The last layers (``Architecture.kv_shared``) attend to an earlier layer's keys and
  values: no key or value projections, no cache of their own. Gemma-3n's MLP width is per layer, Gemma-4's twice
  as wide in those last layers where ``use_double_wide_mlp`` (``Architecture.dense_ffn``; sparse activations are
  elementwise). Gemma-4's full-attention layers have heads of their own width (``Architecture.head_dim_of``, and
  their own key and value heads where the config says so) and, where ``attention_k_eq_v``, no value projection:
  their values are their keys (cached all the same). Its experts (26B-A4B) run beside the dense MLP of every
  layer (``Experts.beside_dense``), which is counted too. Its layers sharing keys and values run only the
  positions whose logits are kept (``Architecture.kv_shared_keep_logits``: 1 of a prefill's ``T``, as
  transformers slices them for a pass asked for integer ``logits_to_keep``); their queries attend to all the keys
  the layer they share them with holds.
- Layers of one block each (``Architecture.blocks``: Nemotron-H): attention, Mamba-2, an MLP or experts alone;
  a layer counts its block only.
- Zamba2 (``Architecture.shared_block``): every layer a Mamba-2 mixer (counted as above), its hybrid layers running
  one shared transformer block before it on the state concatenated with the embeddings (``2d`` wide): queries, keys
  and values ``2 T 2d (h + 2 h_kv) d_h`` (``d_h = 2d / h``), each with a low-rank adapter of rank ``r`` where the
  config has them, ``2 T 2d r * 2``; scores and mixing ``4 h T S_i d_h``; the output ``2 T h d_h d``; a gated MLP
  ``2 T d f * 3`` with an adapter on its gate and up matrices, ``2 T r (d + 2f)``; and the layer's own linear layer,
  ``2 T d^2``.
- A lightning indexer (``Architecture.indexer``: DeepSeek-V3.2's, GLM-5's, HY-V4's and A.X K2's sparse attention,
  MiniMax-M3's sparse layers; ``h_i`` heads of width ``d_i``, queries from ``q`` numbers, the query latent or the
  model's width) beside a layer's attention: its queries ``2 T q h_i d_i`` and key ``2 T d d_i``, and every query
  head scored against the key of every token of the context, ``2 T S h_i d_i``; where its heads are weighted
  (DeepSeek's), their weights ``2 T d h_i`` and the weighted sum ``2 T S h_i``. The top-k it selects is not a matmul;
  the attention after it is counted dense, as above: eager and SDPA apply the selection as a mask.
- Differential attention (``Architecture.attention_calls``: DiffLlama's): scores and mixing twice,
  ``2 * 4 h T S_i d_h``: two attention calls over the same queries and keys, each mixing half the value heads
  repeated to every head.
- Doge's dynamic mask (``Architecture.dynamic_mask``): every key's value (the cache's and the new) projected to one
  number per key and value head, ``2 S_i h_kv d_h h_kv``, each pass. Its mixture of experts (``is_moe``: experts of
  one row and one column, found by product keys) is not modelled.
- Hyper-connections (``Architecture.hyper``: HY-V4's and DeepSeek-V4's ``N`` copies of each token's state): before
  each layer's attention and before its MLP, the copies weighed for reading and writing, ``2 T N d 2N``, and
  DeepSeek-V4's mixing matrix with them, ``2 T N d N^2``, which then mixes the copies, ``2 T N^2 d``; after the last
  layer, the copies weighed into one, ``2 T N d N``. Reading and writing by those weights, and DeepSeek-V4's Sinkhorn
  iterations, are elementwise.
- DeepSeek-V4's attention (``Architecture.compressed_attention``; queries of rank ``r_q``, one key head ``d_h``
  wide that is also the value, output in ``g`` groups of rank ``r_o``): queries ``2 T d r_q + 2 T r_q h d_h``, the key
  ``2 T d d_h``, the output ``2 T h d_h r_o + 2 T g r_o d``, scores and mixing ``4 h T S_i d_h`` over its window's
  keys; in a compressed layer (one entry per ``m`` tokens, ``C = floor(S / m)`` entries at a context of ``S``), its
  projections ``2 * 2 T d d_h`` (a compressed sparse layer's two overlapping series: twice that) and the attention
  to the entries, ``4 h T C d_h``; in a compressed sparse layer, its indexer (``h_i`` heads of ``d_i``): a compressor
  of its own ``2 * 2 T d 2 d_i``, queries from the query latent ``2 T r_q h_i d_i``, head weights ``2 T d h_i`` and
  the scores of the entries ``2 T C h_i d_i`` (weighing them is elementwise).
- Value heads of their own width ``d_v`` (``Architecture.value_dim_of``: MiMo-V2-Flash's ``v_head_dim``, its queries
  and keys ``d_h`` wide): the value projection ``2 T d h_kv d_v``, mixing ``2 h T S_i d_v`` (scores ``2 h T S_i
  d_h``) and the output ``2 T h d_v d``. Its sliding-window layers have twice the key and value heads of its full
  ones (``Architecture.kv_heads_of``); their attention sinks are elementwise.

Norms, activations, softmax, routing's top-k, residual adds and rotary embeddings are
elementwise and left out (well under 1% for these models), as the counter leaves them out.
One exception the counter may see: some transformers versions (5.17) build rotary angles as a
``(d_h/2 x 1) @ (1 x T)`` matmul, ``d_h T`` FLOPs, under 0.01% of a pass; it is left out of
the formula.

The counter (``count_flops``) fills three gaps in torch's FlopCounterMode. On the CPU, SDPA runs
``aten._scaled_dot_product_flash_attention_for_cpu``, for which torch registers no FLOP formula,
so the counter silently misses all attention (for gpt2 at n=1024 with all-position logits it
reports 253 instead of 292 GFLOP); torch's SDPA formula asserts that keys have as many heads as
queries, so grouped-query attention handed to a fused kernel as is (Llama and Qwen2 on a GPU)
stops the count with an AssertionError: one dense formula, over query heads, is registered for
every SDPA kernel. And torch has no formula for ``aten._grouped_mm``, the grouped matmul
transformers runs a mixture's experts with (and its ``transformers::grouped_mm_fallback``, a
custom op the counter cannot see into), so it missed every routed expert (counted/analytic 0.5
to 0.9 on the MoE families): both are registered. Eager attention, the batched-matmul experts
and the loop over experts use matmuls torch counts by itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.utils import flop_counter

from profiler.measure.architecture import Architecture


def keys_attended(arch: Architecture, layer: int, new_tokens: int, context_tokens: int) -> int:
    """Keys layer ``layer``'s attention kernel multiplies each of ``new_tokens`` queries against, in a pass
    that leaves ``context_tokens`` in the context: what its cache kept of the context before, and the new."""
    return arch.cached_tokens(layer, context_tokens - new_tokens) + new_tokens


DELTA_RULE_CHUNK = 64  # tokens per chunk of transformers' chunked gated delta rule


def _attention_flops(arch: Architecture, layer: int, t: int, keys: int) -> int:
    """Projections, scores and mixing of layer ``layer``'s attention: ``t`` queries against ``keys`` keys; no key or
    value projections in a layer attending to another's (``kv_shared``), no value projection where the values are the
    keys (``values_from_keys``)."""
    d, h, mla, compressed = arch.hidden, arch.heads, arch.latent_attention, arch.compressed_attention
    if compressed is not None:  # DeepSeek-V4: one key head that is also the value; grouped output
        dh, rank = arch.head_dim, compressed.q_rank
        out = 2 * t * h * dh * compressed.output_rank + 2 * t * compressed.output_groups * compressed.output_rank * d
        return 2 * t * d * rank + 2 * t * rank * h * dh + 2 * t * d * dh + out + 4 * h * t * keys * dh
    if mla is None:
        dh, dv, gate = arch.head_dim_of(layer), arch.value_dim_of(layer), 2 * t * d * arch.attention_gate
        shared = layer in arch.kv_shared
        projected = (0 if shared else dh) + (0 if shared or layer in arch.values_from_keys else dv)
        kv = 2 * t * d * arch.kv_heads_of(layer) * projected
        attention = 2 * h * t * keys * (dh + dv) * arch.attention_calls
        mask = 2 * keys * arch.kv_heads_of(layer) ** 2 * dv if arch.dynamic_mask else 0
        return 2 * t * d * h * dh + kv + gate + 2 * t * h * dv * d + attention + mask
    if mla.q_rank is None:
        queries = 2 * t * d * h * mla.qk_head_dim
    elif mla.query_gate:  # the latent read twice (normalised and not), queries and a gate per value dimension
        queries = 2 * t * mla.q_rank * d + 2 * t * 2 * mla.q_rank * h * (mla.qk_head_dim + mla.v_head_dim)
    else:
        queries = 2 * t * mla.q_rank * (d + h * mla.qk_head_dim)
    compress = 2 * t * d * (mla.kv_rank + mla.rope_head_dim)
    decompress = 2 * keys * mla.kv_rank * h * (mla.nope_head_dim + mla.v_head_dim)
    scores = 2 * h * t * keys * (mla.qk_head_dim + mla.v_head_dim)
    gate = 2 * t * d * arch.attention_gate
    return queries + compress + decompress + scores + gate + 2 * t * h * mla.v_head_dim * d


def _indexer_flops(arch: Architecture, t: int, context_tokens: int) -> int:
    """A lightning indexer's scoring of ``context_tokens`` keys for ``t`` queries (the module doc)."""
    ix, d = arch.indexer, arch.hidden
    flops = 2 * t * ix.query_input * ix.heads * ix.head_dim + 2 * t * d * ix.head_dim
    flops += 2 * t * context_tokens * ix.heads * ix.head_dim
    return flops + (2 * t * d * ix.heads + 2 * t * context_tokens * ix.heads if ix.weighted else 0)


def _compressor_flops(arch: Architecture, layer: int, t: int, context_tokens: int) -> int:
    """DeepSeek-V4's compressed entries in layer ``layer`` for ``t`` queries at a context of ``context_tokens``: their
    projections, the attention to them and, in a compressed sparse layer, its indexer (the module doc)."""
    c, d, h, dh = arch.compressed_attention, arch.hidden, arch.heads, arch.head_dim
    rate = c.rates[layer]
    if not rate:
        return 0
    entries, sparse = context_tokens // rate, layer in c.indexed
    flops = 2 * 2 * t * d * dh * (2 if sparse else 1) + 4 * h * t * entries * dh
    if sparse:
        heads, width = c.index_heads, c.index_head_dim
        flops += 2 * 2 * t * d * 2 * width + 2 * t * c.q_rank * heads * width + 2 * t * d * heads
        flops += 2 * t * entries * heads * width
    return flops


def _shared_block_flops(arch: Architecture, layer: int, t: int, keys: int) -> int:
    """Zamba2's shared transformer block in hybrid layer ``layer``: ``t`` queries against ``keys`` keys (the module
    doc)."""
    d, h, dh, block = arch.hidden, arch.heads, arch.head_dim_of(layer), arch.shared_block
    doubled, rank, f = 2 * d, block.adapter_rank, arch.ffn
    attention = 2 * t * doubled * (h + 2 * arch.kv_heads_of(layer)) * dh + 2 * t * h * dh * d + 4 * h * t * keys * dh
    adapters = 3 * 2 * (2 * t * doubled * rank) if block.attention_adapters else 0
    mlp = 2 * t * d * f * 3 + 2 * t * rank * (d + 2 * f)
    return attention + adapters + mlp + 2 * t * d * d


def _padded(t: int, chunk: int) -> int:
    """``t`` tokens padded to a whole number of chunks of ``chunk``, as a chunked scan pads them."""
    return -(-t // chunk) * chunk


def _convolution_flops(channels: int, kernel: int, t: int, stated: bool) -> int:
    """A causal depthwise convolution ``kernel`` wide over ``t`` new tokens, ``stated`` where the cache held its last
    inputs before the pass: the positions transformers computes (the module doc)."""
    positions = 2 if stated and t == 1 else t + kernel - 1 + (kernel if stated else 0)
    return 2 * channels * kernel * positions


def _short_convolution_flops(arch: Architecture, t: int, stated: bool) -> int:
    """One convolution layer over ``t`` new tokens: projections in and out, and the convolution."""
    conv = arch.short_convolution
    return 2 * t * arch.hidden * 4 * conv.channels + _convolution_flops(conv.channels, conv.kernel, t, stated)


def _mamba_flops(arch: Architecture, t: int, stated: bool) -> int:
    """One Mamba-2 layer over ``t`` new tokens, ``stated`` where the cache held its state before the pass (the module
    doc)."""
    m, d = arch.mamba, arch.hidden
    projections = 2 * t * d * (m.inner + m.conv_channels + m.heads) + 2 * t * m.inner * d
    convolution = _convolution_flops(m.conv_channels, m.conv_kernel, t, stated)
    state = m.inner * m.state
    if stated and t == 1:
        return projections + convolution + 2 * state
    padded = _padded(t, m.chunk)
    chunks = padded // m.chunk
    scan = 2 * padded * m.chunk * m.heads * (m.state + m.head_dim) + 4 * padded * state + 2 * (chunks + 1) ** 2 * state
    return projections + convolution + scan


def _mamba1_flops(arch: Architecture, t: int, stated: bool) -> int:
    """One Mamba (Mamba-1) layer over ``t`` new tokens, ``stated`` where the cache held its state before the pass
    (the module doc)."""
    m, d = arch.mamba1, arch.hidden
    projections = 2 * t * (d * 2 * m.inner + m.inner * (m.dt_rank + 2 * m.state) + m.dt_rank * m.inner + m.inner * d)
    return projections + _convolution_flops(m.inner, m.conv_kernel, t, stated) + 2 * t * m.inner * m.state


def _delta_rule_flops(arch: Architecture, t: int, stated: bool) -> int:
    """One gated-delta-rule layer over ``t`` new tokens, ``stated`` where the cache held its state before the pass
    (the module doc)."""
    net, d = arch.linear_attention, arch.hidden
    values = net.value_heads * net.value_head_dim
    if net.channel_decay:  # decay and output gate as wide as the values (through a rank), one write strength a head
        gates = (2 * net.gate_rank * (d + values) if net.gate_rank else 2 * d * values) + net.value_heads * d
    else:
        gates = d * (values + 2 * net.value_heads)
    projections = 2 * t * (d * net.conv_channels + gates) + 2 * t * values * d
    convolution = _convolution_flops(net.conv_channels, net.conv_kernel, t, stated)
    if stated and t == 1:
        return projections + convolution
    c, dk, dv = DELTA_RULE_CHUNK, net.key_head_dim, net.value_head_dim
    return projections + convolution + _padded(t, c) * net.value_heads * (4 * c * dk + 2 * c * dv + 6 * dk * dv)


def _lightning_flops(arch: Architecture, t: int, stated: bool) -> int:
    """One lightning-attention layer over ``t`` new tokens, ``stated`` where the cache held its state before the pass
    (the module doc)."""
    net, d = arch.lightning, arch.hidden
    inner = net.heads * net.head_dim
    flops = 2 * t * d * 4 * inner + 2 * t * inner * d + 4 * t * net.heads * net.head_dim**2
    if stated:
        return flops
    blocks, rest = divmod(t, net.block)
    return flops + 4 * net.heads * net.head_dim * (blocks * net.block**2 + rest**2)


def _mlp_flops(arch: Architecture, layer: int, t: int) -> int:
    """Layer ``layer``'s MLP over ``t`` tokens: dense, or router, routed and shared experts; none in a layer
    without one."""
    d, experts = arch.hidden, arch.experts
    if not arch.has_mlp(layer):
        return 0
    if experts is None or layer not in experts.layers:
        return _dense_mlp_flops(arch, layer, t)
    router = 2 * t * d * (experts.count + experts.identities)
    width, m = experts.latent or d, experts.matrices
    routed = 2 * t * (experts.count if experts.every_token else experts.per_token) * width * experts.ffn * m
    latent = 2 * t * d * experts.latent * 2
    shared = 2 * t * d * experts.shared_ffn * m + (2 * t * d if experts.shared_gate else 0)
    dense = _dense_mlp_flops(arch, layer, t) if experts.beside_dense else 0
    return router + routed + latent + shared + dense


def _dense_mlp_flops(arch: Architecture, layer: int, t: int) -> int:
    """Layer ``layer``'s dense MLP over ``t`` tokens: its three matrices (gated) or two."""
    return 2 * t * arch.hidden * arch.dense_ffn(layer) * (3 if arch.gated_mlp else 2)


def _mixer_flops(arch: Architecture, layer: int, new_tokens: int, context_tokens: int, queries: int) -> int:
    """Layer ``layer``'s token mixing (what runs before its MLP): attention (of ``queries`` of the new tokens; in a
    Zamba2 hybrid layer, the whole shared block; and any indexer beside it), the gated delta rule, a convolution,
    Mamba-2 (Falcon-H1's beside attention, Zamba2's after its shared block), Mamba or lightning attention."""
    stated, flops = context_tokens > new_tokens, 0
    if arch.attends(layer):
        keys = keys_attended(arch, layer, new_tokens, context_tokens)
        shared = arch.shared_block is not None and layer in arch.shared_block.layers
        flops += (_shared_block_flops if shared else _attention_flops)(arch, layer, queries, keys)
    if arch.indexer is not None and layer in arch.indexer.layers:
        flops += _indexer_flops(arch, queries, context_tokens)
    if arch.compressed_attention is not None:
        flops += _compressor_flops(arch, layer, queries, context_tokens)
    if arch.mamba is not None and layer in arch.mamba.layers:
        flops += _mamba_flops(arch, new_tokens, stated)
    if arch.mamba1 is not None and layer in arch.mamba1.layers:
        flops += _mamba1_flops(arch, new_tokens, stated)
    if arch.linear_attention is not None and layer in arch.linear_attention.layers:
        flops += _delta_rule_flops(arch, new_tokens, stated)
    if arch.short_convolution is not None and layer in arch.short_convolution.layers:
        flops += _short_convolution_flops(arch, new_tokens, stated)
    if arch.lightning is not None and layer in arch.lightning.layers:
        flops += _lightning_flops(arch, new_tokens, stated)
    return flops


def _around_layers_flops(arch: Architecture, t: int, layer_tokens: list[int]) -> int:
    """Gemma-3n's AltUp and LAuReL, the per-layer inputs of Gemma-3n and Gemma-4, and hyper-connections, over
    ``t`` tokens (each layer's per-layer input over its ``layer_tokens``): around every layer, and before and after
    them (the module doc); none for another family."""
    d, p, flops = arch.hidden, arch.per_layer_input, 0
    if arch.hyper is not None:
        streams, mixing = arch.hyper.streams, 2 * t * arch.hyper.streams**2 * d if arch.hyper.mixing else 0
        flops += arch.layers * 2 * (2 * t * streams * d * arch.hyper.weights + mixing) + 2 * t * streams * d * streams
    if p:
        flops += 2 * t * d * arch.layers * p + sum(2 * tokens * d * p * 2 for tokens in layer_tokens)
    if arch.altup is not None:
        inputs = arch.altup.inputs
        predict = 2 * t * d * inputs + 2 * t * inputs**3 + 2 * t * d * inputs**2
        correct = 2 * t * d * inputs + 2 * t * inputs**2
        laurel = 2 * t * d * arch.altup.laurel_rank * 2
        flops += arch.layers * (predict + correct + laurel) + 2 * 2 * t * d * d * (inputs - 1)
    return flops


def _layer_tokens(arch: Architecture, layer: int, new_tokens: int, logits_positions: int) -> int:
    """The tokens layer ``layer`` runs: all the new ones, but in a layer attending to another's keys and values where
    the family runs only the positions whose logits are kept (``Architecture.kv_shared_keep_logits``: Gemma-4)."""
    if arch.kv_shared_keep_logits and layer in arch.kv_shared:
        return min(new_tokens, logits_positions)
    return new_tokens


def _norm_gate_flops(arch: Architecture, layer: int, t: int) -> int:
    """Layer ``layer``'s norm gates over ``t`` tokens: each a projection to its rank and back (the module doc)."""
    gates = arch.norm_gates
    return 0 if gates is None else gates.per_layer[layer] * 2 * t * 2 * arch.hidden * gates.rank


def pass_flops(arch: Architecture, new_tokens: int, context_tokens: int, logits_positions: int = 1) -> int:
    """FLOPs of one pass adding ``new_tokens`` to a context of ``context_tokens`` tokens in all."""
    tokens = [_layer_tokens(arch, layer, new_tokens, logits_positions) for layer in range(arch.layers)]
    layers = sum(_mixer_flops(arch, layer, new_tokens, context_tokens, tokens[layer]) + _mlp_flops(arch, layer, t)
                 + _norm_gate_flops(arch, layer, t) for layer, t in enumerate(tokens))
    return layers + _around_layers_flops(arch, new_tokens, tokens) + 2 * logits_positions * arch.hidden * arch.vocab


def generate_flops(arch: Architecture, n_in: int, n_out: int) -> int:
    """FLOPs of emitting ``n_out`` tokens after ``n_in``: a prefill, then ``n_out - 1`` cached steps."""
    steps = sum(pass_flops(arch, 1, n_in + t) for t in range(1, n_out))
    return pass_flops(arch, n_in, n_in) + steps


def _sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """``Q K^T`` and the weighted sum of ``V``, dense, for every query head.

    Shapes are ``(batch, heads, tokens, head_dim)``; with grouped-query attention the keys
    and values have fewer heads, but each query head still multiplies against them.
    """
    batch, heads, queries, dim = query_shape
    keys, value_dim = key_shape[-2], value_shape[-1]
    return 2 * batch * heads * queries * keys * (dim + value_dim)


def _grouped_mm_flops(a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
    """A grouped matmul: each row of ``a`` times the matrix of its group. Every output element is one
    dot product over ``a``'s last dimension: ``(S, K) x (E, K, N)`` with rows grouped by ``offs`` (the
    experts' layout: ``S`` routed token-expert pairs), ``(E, M, K) x (E, K, N)`` and ``(E, M, K) x (K, N)``.
    ``(M, K) x (K, N)`` grouped along ``K`` (a weight gradient) gives ``E`` outputs of one ``K``-slice each."""
    flops = 2 * a_shape[-1] * math.prod(out_shape)
    return flops // out_shape[0] if len(a_shape) == len(b_shape) == 2 else flops


_SDPA_KERNELS = (
    "_scaled_dot_product_flash_attention_for_cpu",
    "_scaled_dot_product_flash_attention",
    "_scaled_dot_product_efficient_attention",
    "_scaled_dot_product_cudnn_attention",
)
_FORMULAS = {getattr(torch.ops.aten, name): _sdpa_flops for name in _SDPA_KERNELS if hasattr(torch.ops.aten, name)}
if hasattr(torch.ops.aten, "_grouped_mm"):
    _FORMULAS[torch.ops.aten._grouped_mm] = _grouped_mm_flops


def _formulas() -> dict:
    """The formulas above, and transformers' grouped-matmul fallback once transformers has registered it
    (importing its mixture-of-experts code does)."""
    if hasattr(torch.ops.transformers, "grouped_mm_fallback"):
        return _FORMULAS | {torch.ops.transformers.grouped_mm_fallback: _grouped_mm_flops}
    return _FORMULAS


def count_flops(run_pass: Callable[[], object]) -> tuple[object, int]:
    """Run ``run_pass`` under FlopCounterMode; return its result and the FLOPs counted."""
    with flop_counter.FlopCounterMode(display=False, custom_mapping=_formulas()) as counter:
        result = run_pass()
    return result, counter.get_total_flops()
