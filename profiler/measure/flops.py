"""FLOPs of one pass: an analytic formula, and a count by torch's FlopCounterMode.

The formula counts matrix-multiply FLOPs only, 2 per multiply-add, after Kaplan et al.
2020 ("Scaling Laws for Neural Language Models", Table 1: ``2N + 2 n_layer n_ctx d_attn``
per token), written out per matrix so that grouped-query attention, gated MLPs and the
LM head restricted to the positions whose logits are kept come out exactly. For a pass
that adds ``T`` tokens to a context that then holds ``S`` keys, with logits at ``L``
positions, on a model with ``l`` layers, width ``d``, ``h`` query heads and ``h_kv``
key/value heads of size ``d_h``, MLP width ``f`` and vocabulary ``V``::

    per layer   q, k, v projections     2 T d (h + 2 h_kv) d_h
                scores and mixing       4 h T S d_h      (dense: no causal halving)
                output projection       2 T h d_h d
                MLP                     2 T d f * (3 if gated else 2)
    once        LM head                 2 L d V

Attention is counted dense, every query against every key, as FlopCounterMode's SDPA
formula counts it; causal kernels skip up to half of that work. Norms, activations,
softmax, residual adds and rotary embeddings are elementwise and left out (well under 1%
for these models), as the counter leaves them out. One exception the counter may see: some
transformers versions (5.17) build rotary angles as a ``(d_h/2 x 1) @ (1 x T)`` matmul,
``d_h T`` FLOPs, under 0.01% of a pass; it is left out of the formula.

Two gaps in torch's counter are handled here. On the CPU, SDPA runs
``aten._scaled_dot_product_flash_attention_for_cpu``, for which torch registers no FLOP
formula, so the counter silently misses all attention (for gpt2 at n=1024 with
all-position logits it reports 253 instead of 292 GFLOP). And torch's SDPA formula asserts
that keys have as many heads as queries, so grouped-query attention handed to a fused
kernel as is (Llama and Qwen2 on a GPU) stops the count with an AssertionError. The
counter below registers one dense formula, over query heads, for every SDPA kernel. The
eager attention path uses plain matmuls that torch counts by itself: the tests use it to
check this formula independently.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch.utils import flop_counter

from profiler.measure.architecture import Architecture


def pass_flops(arch: Architecture, new_tokens: int, context_tokens: int, logits_positions: int = 1) -> int:
    """FLOPs of one pass adding ``new_tokens`` to a context of ``context_tokens`` keys in all."""
    t, s, d, dh = new_tokens, context_tokens, arch.hidden, arch.head_dim
    projections = 2 * t * d * (arch.heads + 2 * arch.kv_heads) * dh + 2 * t * arch.heads * dh * d
    attention = 4 * arch.heads * t * s * dh
    mlp = 2 * t * d * arch.ffn * (3 if arch.gated_mlp else 2)
    return arch.layers * (projections + attention + mlp) + 2 * logits_positions * d * arch.vocab


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


_SDPA_KERNELS = (
    "_scaled_dot_product_flash_attention_for_cpu",
    "_scaled_dot_product_flash_attention",
    "_scaled_dot_product_efficient_attention",
    "_scaled_dot_product_cudnn_attention",
)
_CUSTOM_FORMULAS = {
    getattr(torch.ops.aten, name): _sdpa_flops for name in _SDPA_KERNELS if hasattr(torch.ops.aten, name)
}


def count_flops(run_pass: Callable[[], object]) -> tuple[object, int]:
    """Run ``run_pass`` under FlopCounterMode; return its result and the FLOPs counted."""
    with flop_counter.FlopCounterMode(display=False, custom_mapping=_CUSTOM_FORMULAS) as counter:
        result = run_pass()
    return result, counter.get_total_flops()
