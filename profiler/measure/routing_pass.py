"""The routing a real prefill pass had: which experts each token went to, read as the experts ran.

In transformers 5 every mixture-of-experts block (Mixtral, Qwen2-MoE, Qwen3-MoE, OLMoE,
GraniteMoE, DeepSeek-V3 and some 60 more families) hands its experts module the chosen
experts: ``experts(hidden_states, top_k_index, top_k_weights)``, ``top_k_index`` of shape
(tokens, top_k) as the block's router returned it (softmax top-k, DeepSeek-V3's group-limited
top-k with its bias correction, GraniteMoE's top-k of logits alike). A forward pre-hook on
each module whose ``forward`` takes ``top_k_index`` reads those indices: nothing is
recomputed, the counts are the experts that computed. Shared experts (Qwen2-MoE's gated one,
DeepSeek-V3's) take every token and are plain MLPs, not hooked; dense first layers
(DeepSeek-V3's ``first_k_dense_replace``) have no experts module.

Layers whose experts ran fewer tokens than the prompt's are left out: Gemma-4's layers sharing keys and values run
only the position whose logits are kept (``Architecture.kv_shared_keep_logits``), and one token's routing says
nothing of a prefill's balance. So are layers that send a token to one expert in more than one of its slots (a
token counts once per expert): DeepSeek-V4's hash routing with random weights, whose table of experts per token id is
a buffer of zeros, sends every token to expert 0 in every slot, which is no routing to measure a balance by (its
record counted 128 of 64 tokens at expert 0, and its own reader refused it: no cost model was fitted). LongCat-Flash's
experts are handed its router's picks of identity experts remapped onto routed experts (weighted 0: they compute, and
``Experts.identities`` counts them so), so a token may reach one expert in two slots: its layers are left out, and it
gives no record.

The pass is ``Passes.prefill`` with the sweep's seed: the same prompt tokens, so the same
routing, as the prefill timed at that length. Families whose experts take the routing under
another name (Llama-4, GPT-OSS, JetMoE) give no record, as dense models do.
"""

from __future__ import annotations

import inspect
from collections import Counter

import torch

from profiler.measure.loading import LoadedModel
from profiler.measure.passes import Passes
from profiler.measure.routing import LayerRouting, Routing

ROUTED = "top_k_index"  # the experts' argument holding each token's chosen experts


def _experts_modules(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module, int]]:
    """Each experts module: its name, itself, and where ``top_k_index`` comes among its arguments."""
    found = []
    for name, module in model.named_modules():
        arguments = list(inspect.signature(module.forward).parameters)
        if ROUTED in arguments:
            found.append((name, module, arguments.index(ROUTED)))
    return found


def _layer_index(name: str) -> int:
    """The decoder layer of a module named like ``model.layers.3.mlp.experts``: its first number."""
    return int(next(part for part in name.split(".") if part.isdigit()))


def measure_routing(loaded: LoadedModel, n_ctx: int, seed: int = 0) -> Routing | None:
    """The routing of one prefill pass of ``n_ctx`` tokens; None for a model without routed experts."""
    experts = _experts_modules(loaded.model)
    if not experts:
        return None
    counts: dict[str, Counter] = {name: Counter() for name, _, _ in experts}
    top_k: set[int] = set()

    def hook(name: str, position: int, args: tuple, kwargs: dict) -> None:
        chosen = kwargs[ROUTED] if ROUTED in kwargs else args[position]
        top_k.add(chosen.shape[-1])
        counts[name].update(expert for token in chosen.reshape(-1, chosen.shape[-1]).tolist() for expert in set(token))

    handles = [module.register_forward_pre_hook(lambda _, args, kwargs, name=name, position=position:
                                                hook(name, position, args, kwargs), with_kwargs=True)
               for name, module, position in experts]
    try:
        Passes(loaded, seed).prefill(n_ctx)
    finally:
        for handle in handles:
            handle.remove()
    sizes = {module.num_experts for _, module, _ in experts}
    if len(sizes) != 1 or len(top_k) != 1:
        raise ValueError(f"{loaded.source.name}: MoE layers of different sizes ({sizes} experts, top-k {top_k})")
    size, k = sizes.pop(), top_k.pop()
    layers = [LayerRouting(_layer_index(name), [counts[name][expert] for expert in range(size)])
              for name, _, _ in experts if sum(counts[name].values()) == n_ctx * k]  # the layers every token passed
    if not layers:
        return None
    return Routing(tokens=n_ctx, top_k=k, experts=size,
                   experts_implementation=loaded.model.get_experts_implementation()[""], layers=layers)
