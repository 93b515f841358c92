"""Evolutionary optimization (the paper's Sec. 3.3): mutate the whole solution, or one block.

A solution of ``n = k * l`` tokens in ``k`` blocks; its fitness is the number of correct
blocks (a OneMax variant). The mutator ``M_u`` rewrites what it is given, and each block it
rewrites comes out correct with probability ``p``, independently (the oracle's draw). The
search starts from a solution with no block correct and is a greedy (1+1)-EA: a mutant is
kept if its fitness is higher.

- Optimistic (global mutation): each step reads and rewrites all ``n`` tokens. Every mutant
  is drawn afresh, all ``k`` blocks right with probability ``p^k`` whatever the current
  fitness, and the search ends at the first such mutant: the number of steps is geometric,
  ``1 / p^k`` in expectation -- ``2^k`` for ``p = 1/2``, as the paper says.
- Optimized (local mutation, oracle block boundaries): block ``i`` is rewritten, reading and
  writing its ``l`` tokens, until it is correct -- ``1/p`` expected calls -- then block
  ``i + 1``: ``k / p`` calls in expectation.

The paper's improvement: ``Theta(2^k k)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from profiler.lba.exercises.base import MAX_SIZE, MAX_TOKENS, Costs, Exercise, Param, as_ints
from profiler.lba.calls import LLM, positions_needed

if TYPE_CHECKING:
    from profiler.lba.pricing import Pricing


def expected_global_steps(k, p) -> np.ndarray:
    """Expected global mutations until every block is right: ``1 / p^k`` (see the module doc)."""
    return np.asarray(p, dtype=float) ** -np.asarray(k, dtype=float)


def expected_local_steps(k, p) -> np.ndarray:
    """Expected block mutations: ``1 / p`` for each of the ``k`` blocks."""
    return np.asarray(k, dtype=float) / np.asarray(p, dtype=float)


class Evolution(Exercise):
    name = "evolution"
    title = "evolutionary optimization"
    roles = {"optimistic": ("mutator",), "optimized": ("mutator",)}
    params = (
        Param("k", 8, "blocks in the solution"),
        Param("l", 32, "tokens per block", maximum=MAX_TOKENS),
        Param("p", 0.5, "probability that a rewritten block is correct", integer=False, minimum=1e-6, maximum=1),
        Param("m_u", 1.0, "mutator's size, relative to the base model", integer=False, minimum=1e-9,
              maximum=MAX_SIZE),
    )
    main = "k"
    main_values = tuple(range(1, 13))
    map_axes = (("k", np.arange(1, 41)), ("l", np.unique(np.geomspace(2, 512, 48).round())))
    asymptotic = "2^k*k"
    stochastic = True

    @staticmethod
    def role_sizes(p: dict) -> dict[str, np.ndarray]:
        return {"mutator": np.asarray(p["m_u"], dtype=float)}

    @staticmethod
    def optimistic(p: dict, llm: LLM, rng: np.random.Generator) -> None:
        k, l, s = as_ints(p, "k", "l", "system_prompt")
        fitness = 0
        while fitness < k:
            llm("mutator", s + k * l, k * l)  # x' <- M_u(x)
            mutant = int(np.count_nonzero(rng.random(k) < p["p"]))  # f(x'): the oracle
            fitness = max(fitness, mutant)  # keep x' if f(x') > f(x)

    @staticmethod
    def optimized(p: dict, llm: LLM, rng: np.random.Generator) -> None:
        k, l, s = as_ints(p, "k", "l", "system_prompt")
        for _ in range(k):  # block i
            while True:
                llm("mutator", s + l, l)  # x_i' <- M_u(x_i)
                if rng.random() < p["p"]:  # f rose: block i is right
                    break

    @staticmethod
    def costs(p: dict, pricing: Pricing) -> Costs:
        k, l, s, success = (np.asarray(p[name], dtype=float) for name in ("k", "l", "system_prompt", "p"))
        size = Evolution.role_sizes(p)["mutator"]
        n = k * l
        return {
            "optimistic": {"mutator": expected_global_steps(k, success) * pricing.price("mutator", s + n, n, size)},
            "optimized": {"mutator": expected_local_steps(k, success) * pricing.price("mutator", s + l, l, size)},
        }

    @staticmethod
    def longest_context(p: dict) -> dict[str, np.ndarray]:
        k, l, s = (np.asarray(p[name], dtype=float) for name in ("k", "l", "system_prompt"))
        return {"mutator": positions_needed(s + k * l, k * l)}  # the global mutation: k >= 1 blocks

    @staticmethod
    def expected_calls(p: dict) -> dict[str, np.ndarray]:
        return {"optimistic": expected_global_steps(p["k"], p["p"]), "optimized": expected_local_steps(p["k"], p["p"])}

    @staticmethod
    def asymptotic_ratio(p: dict) -> np.ndarray:
        k = np.asarray(p["k"], dtype=float)
        return 2.0**k * k
