"""How a mixture-of-experts pass routed its tokens: tokens per expert, per MoE layer.

Each token of a pass goes through ``top_k`` of a layer's ``experts`` (besides any shared
expert every token goes through, not counted here), so a layer's counts sum to
``tokens * top_k`` whatever the balance: the FLOPs of the experts do not depend on it. The
latency can. When a layer's experts run side by side (expert parallelism, a grouped GEMM
spread over a GPU), the layer waits for its most-loaded expert; run one after another (the
CPU loop), each expert costs a matmul over the tokens it received.

Summary figures (``Routing``):

- ``load_ratio``: the tokens of each layer's most-loaded expert, summed over layers, over
  the same sum under perfect balance (``tokens * top_k / experts`` per layer): the time the
  routed experts take when each layer waits for its busiest one, relative to perfect
  balance. 1 is perfect balance; ``experts / top_k`` is every token on the same experts.
- ``worst_layer_ratio``: the largest max/mean load of a single layer.
- ``cv``: the coefficient of variation (population standard deviation over mean) of the
  tokens per expert, averaged over layers.
- ``experts_touched``: the fewest experts any layer sent a token to (an expert with none is
  neither computed nor read from memory).
- ``uniform_load_ratio``: ``load_ratio`` expected if each token chose its experts uniformly
  at random, for comparison: the mean over seeded draws of each expert's count as an
  independent Binomial(tokens, top_k / experts) (the marginals exact; the counts' small
  negative correlation, summing to exactly ``tokens * top_k``, ignored).

Torch-free: the record is part of ``run.json``, read by the report without building a model
(the measurement is ``profiler.measure.routing_pass``).
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import fmean, pstdev

import numpy as np

UNIFORM_DRAWS = 2000
# A prefill holds no more tokens than a model may have positions: config_check.MAX_NUMBER["max_positions"] (that
# module loads torch, which a reader of run.json must not; tests/test_routing.py holds the two equal).
MAX_TOKENS = 100_000_000


def _whole(value, least: int, most: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and least <= value <= most


@dataclass(frozen=True)
class LayerRouting:
    """One MoE layer: its index among the decoder layers and the tokens each of its experts received."""

    layer: int
    tokens_per_expert: list[int]

    @property
    def max_over_mean(self) -> float:
        return max(self.tokens_per_expert) / fmean(self.tokens_per_expert)

    @property
    def cv(self) -> float:
        return pstdev(self.tokens_per_expert) / fmean(self.tokens_per_expert)

    @property
    def experts_touched(self) -> int:
        return sum(1 for count in self.tokens_per_expert if count)


@dataclass(frozen=True)
class Routing:
    """The routing of one prefill pass of ``tokens`` prompt tokens (batch 1), every MoE layer;
    ``experts_implementation``: how transformers computed the experts (``eager``: a loop over the
    experts hit; ``grouped_mm``: one grouped matmul over the tokens sorted by expert;
    ``batched_mm``: one matmul per token and chosen expert)."""

    tokens: int
    top_k: int
    experts: int
    experts_implementation: str
    layers: list[LayerRouting]

    @property
    def load_ratio(self) -> float:
        return (sum(max(layer.tokens_per_expert) for layer in self.layers)
                / sum(fmean(layer.tokens_per_expert) for layer in self.layers))

    @property
    def worst_layer_ratio(self) -> float:
        return max(layer.max_over_mean for layer in self.layers)

    @property
    def cv(self) -> float:
        return fmean(layer.cv for layer in self.layers)

    @property
    def experts_touched(self) -> int:
        return min(layer.experts_touched for layer in self.layers)

    @property
    def uniform_load_ratio(self) -> float:
        draws = np.random.default_rng(0).binomial(self.tokens, self.top_k / self.experts,
                                                  size=(UNIFORM_DRAWS, self.experts))
        return float(draws.max(axis=1).mean() / (self.tokens * self.top_k / self.experts))

    def summary(self) -> dict:
        return {"load_ratio": self.load_ratio, "worst_layer_ratio": self.worst_layer_ratio, "cv": self.cv,
                "experts_touched": self.experts_touched, "uniform_load_ratio": self.uniform_load_ratio}

    def to_json(self) -> dict:
        """The counts and, for a reader of ``run.json``, the summary figures derived from them."""
        return {"tokens": self.tokens, "top_k": self.top_k, "experts": self.experts,
                "experts_implementation": self.experts_implementation, "summary": self.summary(),
                "layers": [{"layer": layer.layer, "tokens_per_expert": list(layer.tokens_per_expert)}
                           for layer in self.layers]}

    @classmethod
    def from_json(cls, document: dict) -> Routing:
        """The record ``to_json`` wrote (its summary is derived again from the counts).
        Raises ``TypeError`` or ``ValueError`` on a document that is not one."""
        own = {key: value for key, value in document.items() if key not in ("summary", "layers")}
        routing = cls(**own, layers=[LayerRouting(**layer) for layer in document["layers"]])
        counts = [layer.tokens_per_expert for layer in routing.layers]
        if not (_whole(routing.tokens, 1, MAX_TOKENS) and _whole(routing.experts, 1, MAX_TOKENS)
                and _whole(routing.top_k, 1, routing.experts) and isinstance(routing.experts_implementation, str)):
            raise ValueError(f"routing: tokens (1 to {MAX_TOKENS:,}), experts and top_k (1 to experts) must be whole "
                             "numbers, experts_implementation a name")
        if not all(_whole(layer.layer, 0, MAX_TOKENS) and isinstance(layer.tokens_per_expert, list)
                   and all(_whole(count, 0, routing.tokens) for count in layer.tokens_per_expert)
                   for layer in routing.layers):
            raise ValueError("routing: each layer's index and counts must be whole numbers, no count above tokens")
        if not counts or any(len(layer) != routing.experts or sum(layer) != routing.tokens * routing.top_k
                             for layer in counts):
            raise ValueError(f"routing: each layer's {routing.experts} counts must sum to tokens x top_k")
        return routing
