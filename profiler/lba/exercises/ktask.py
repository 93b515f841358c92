"""k-task routing (the paper's Sec. 3.1): one generalist, or a delegator and a specialist.

There are ``k`` distinct tasks; the input is ``n`` tokens and the answer ``out`` tokens.

- Optimistic: a generalist ``M_g`` -- ``k`` times a specialist's size, as the paper assumes
  (capability grows linearly with size) -- reads the input and answers.
- Optimized: a delegator ``M_d`` reads only the input's metadata prefix of ``c`` tokens and
  writes the index of the task (1 token); the specialist ``M_s`` of that task, of size
  ``m_s``, reads the input and answers.

The delegator's size is ``delegator_scale`` times the generalist's (default 1: as big as
the generalist -- it must know every task -- yet cheap because it reads ``c`` tokens once).
The paper's ratio tends to ``k`` as ``n`` grows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from profiler.lba.exercises.base import MAX_SIZE, MAX_TOKENS, Costs, Exercise, Param, as_ints
from profiler.lba.calls import LLM, positions_needed

if TYPE_CHECKING:
    from profiler.lba.pricing import Pricing

ROUTE_TOKENS = 1  # the delegator writes the chosen task's index


class KTask(Exercise):
    name = "ktask"
    title = "k-task routing"
    roles = {"optimistic": ("generalist",), "optimized": ("delegator", "specialist")}
    params = (
        Param("k", 8, "number of distinct tasks (the generalist is k times a specialist)"),
        Param("n", 512, "input tokens", maximum=MAX_TOKENS),
        Param("c", 32, "metadata prefix tokens the delegator reads", maximum=MAX_TOKENS),
        Param("out", 8, "answer tokens", maximum=MAX_TOKENS),
        Param("m_s", 1.0, "specialist size, relative to the base model", integer=False, minimum=1e-9,
              maximum=MAX_SIZE),
        Param("delegator_scale", 1.0, "delegator size over the generalist's", integer=False, minimum=1e-9,
              maximum=MAX_SIZE),
    )
    main = "k"
    main_values = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
    map_axes = (("k", np.arange(1, 41)), ("n", np.unique(np.geomspace(8, 4096, 40).round())))
    asymptotic = "k"

    @staticmethod
    def role_sizes(p: dict) -> dict[str, np.ndarray]:
        generalist = np.asarray(p["k"], dtype=float) * p["m_s"]
        return {"generalist": generalist, "delegator": p["delegator_scale"] * generalist,
                "specialist": np.asarray(p["m_s"], dtype=float)}

    @staticmethod
    def optimistic(p: dict, llm: LLM, rng: np.random.Generator) -> None:
        n, out, s = as_ints(p, "n", "out", "system_prompt")
        llm("generalist", s + n, out)  # y <- M_g(x)

    @staticmethod
    def optimized(p: dict, llm: LLM, rng: np.random.Generator) -> None:
        n, c, out, s = as_ints(p, "n", "c", "out", "system_prompt")
        llm("delegator", s + c, ROUTE_TOKENS)  # i <- M_d(x[0:c]); which task is the oracle's draw
        llm("specialist", s + n, out)  # y <- M_s^i(x)

    @staticmethod
    def costs(p: dict, pricing: Pricing) -> Costs:
        sizes = KTask.role_sizes(p)
        s = p["system_prompt"]
        return {
            "optimistic": {"generalist": pricing.price("generalist", s + p["n"], p["out"], sizes["generalist"])},
            "optimized": {
                "delegator": pricing.price("delegator", s + p["c"], ROUTE_TOKENS, sizes["delegator"]),
                "specialist": pricing.price("specialist", s + p["n"], p["out"], sizes["specialist"]),
            },
        }

    @staticmethod
    def longest_context(p: dict) -> dict[str, np.ndarray]:
        s = p["system_prompt"]
        answer = positions_needed(s + p["n"], p["out"])
        return {"generalist": answer, "delegator": positions_needed(s + p["c"], ROUTE_TOKENS), "specialist": answer}

    @staticmethod
    def expected_calls(p: dict) -> dict[str, np.ndarray]:
        return {"optimistic": np.asarray(1.0), "optimized": np.asarray(2.0)}  # answer; route, then answer

    @staticmethod
    def asymptotic_ratio(p: dict) -> np.ndarray:
        return np.asarray(p["k"], dtype=float)
