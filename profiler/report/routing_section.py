"""The report's routing section, for a mixture of experts: how one prefill's tokens spread over the
experts (``run.json``'s ``routing``: ``profiler.measure.routing``), and what that means for the cost.

The FLOPs do not depend on the balance (each token goes through top-k experts); the latency
can, by how the experts ran (transformers' experts implementation, on this device) and, where
experts run side by side, up to the load ratio. With random weights the routing is the random
router's, not a trained one's: the section says how it compares with uniform random routing and
which way a trained router tends to differ. A dense model, or a run written before routing was
measured, has no such section.
"""

from __future__ import annotations

from profiler.measure.routing import Routing
from profiler.report.document import Bullets, ReportContext, Section, Table

# how each of transformers' experts implementations computes a layer's experts
_IMPLEMENTATIONS = {
    "eager": "a loop over the experts that received tokens, one matmul each over its tokens",
    "grouped_mm": "one grouped matmul over the tokens sorted by expert",
    "batched_mm": "one small matmul per token and chosen expert, the same work however the tokens spread",
}
_GROUPS_ON = {
    "cpu": "On a CPU the groups are computed one after another, each a matmul over the tokens its expert received",
    "cuda": "On a GPU the groups are computed side by side, spread over the streaming multiprocessors",
}


def _measured(routing: Routing) -> str:
    worst = max(routing.layers, key=lambda layer: layer.max_over_mean)
    balanced = routing.tokens * routing.top_k / routing.experts
    return (f"One prefill of {routing.tokens:,} tokens (the longest measured; the same prompt as the timed passes) "
            f"sent each token to {routing.top_k} of {routing.experts} experts in each of {len(routing.layers)} MoE "
            f"layers: {balanced:,.1f} tokens per expert if balanced. Each layer's busiest expert took "
            f"{routing.load_ratio:.2f}x that on average over the layers ({worst.max_over_mean:.2f}x in layer "
            f"{worst.layer}, the worst); the tokens per expert varied by {routing.cv:.0%} (coefficient of variation); "
            f"every layer used at least {routing.experts_touched} of its experts. Routed uniformly at random, the "
            f"busiest expert would take about {routing.uniform_load_ratio:.2f}x.")


def _layers_table(routing: Routing) -> Table:
    rows = tuple((str(layer.layer), f"{min(layer.tokens_per_expert):,} - {max(layer.tokens_per_expert):,}",
                  f"{layer.max_over_mean:.2f}", f"{layer.cv:.0%}", f"{layer.experts_touched} of {routing.experts}")
                 for layer in routing.layers)
    return Table(("layer", "tokens per expert (fewest - most)", "busiest / mean", "variation", "experts used"),
                 rows, numeric=(True,) * 5, note=f"Shared experts and dense layers take every token and are not "
                                                 f"counted; each row sums to {routing.tokens:,} x {routing.top_k}.")


def _cost(routing: Routing, device: str, random_weights: bool) -> Bullets:
    implementation = routing.experts_implementation
    ran = f"Here transformers computed the experts with its {implementation} implementation"
    ran += f": {_IMPLEMENTATIONS[implementation]}" if implementation in _IMPLEMENTATIONS else ""
    if implementation == "grouped_mm" and device in _GROUPS_ON:
        ran += f". {_GROUPS_ON[device]}"
    items = [
        "The FLOPs do not depend on the balance: every token goes through exactly "
        f"{routing.top_k} experts, so the counted and fitted FLOPs hold for any routing.",
        ran + ". Run one after another, the experts' time follows the total tokens x top-k, and the balance "
        "moves it only through how efficient each matmul is at its size, and through experts that received "
        "no token (neither computed nor read from memory).",
        "Where a layer's experts run side by side (expert parallelism over devices, a grouped GEMM spread over "
        f"a GPU) the layer waits for its busiest expert: the routed experts then take up to {routing.load_ratio:.2f}x "
        "what perfect balance would, while attention, shared experts and dense layers are unaffected.",
        f"A decode step routes one token: {routing.top_k} experts per layer are computed and read whatever the "
        "router's balance; the balance matters for prefill and batches, whose tokens together touch more experts.",
    ]
    if random_weights:
        compared = ("more evenly than" if routing.load_ratio < routing.uniform_load_ratio * 0.99 else
                    "less evenly than" if routing.load_ratio > routing.uniform_load_ratio * 1.01 else "as evenly as")
        items.append(
            f"The weights are random: this is a random router's choice on random tokens, {compared} uniform random "
            f"routing ({routing.load_ratio:.2f}x against {routing.uniform_load_ratio:.2f}x). A trained router "
            "routes otherwise: a load-balancing loss keeps its load near uniform on average over its training "
            "batches, but its experts specialise, and one real prompt often loads them less evenly than uniform "
            "routing would. A trained model of this architecture may route more or less evenly than measured "
            "here; where its experts run side by side, its own ratio is what its prefill's experts pay.")
    else:
        items.append("The weights are trained but the prompt is random tokens: real text may route less evenly.")
    return Bullets(tuple(items))


def routing_sections(ctx: ReportContext) -> list[Section]:
    routing = ctx.run.routing
    if routing is None:
        return []
    return [Section("Mixture of experts: how the tokens were routed", (
        _measured(routing), _layers_table(routing),
        _cost(routing, ctx.hardware.device, ctx.run.model.random_weights)))]
