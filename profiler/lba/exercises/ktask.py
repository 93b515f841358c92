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

With ``load`` ``T`` inputs at once: the generalist answers all ``T`` as one group, the
delegator routes all ``T`` as one group, then the specialists answer them as one group: the
inputs spread over the ``k`` tasks in equal shares (``T // k`` each, the first ``T % k`` tasks
one more; which input goes to which task is the oracle's seeded draw), each specialist a model
of its own (``Call.model``): a generalist batches all ``T`` inputs, a specialist only its share.

Segments (prefix reuse): every call reads the system prompt, then input ``i``'s ``x{i}`` -- the
delegator only its first ``min(c, n)`` tokens (a metadata prefix longer than the input reads more
than ``x``: the rest is its own). No call reads another's answer, and no model reads an input twice,
so what reuse saves here is the system prompt, once per model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from profiler.lba.calls import LLM, Call, positions_needed
from profiler.lba.exercises.base import (
    MAX_SIZE,
    MAX_TOKENS,
    Costs,
    Exercise,
    Param,
    as_ints,
    cells,
    load_shares,
    system_segment,
)
from profiler.lba.schedule import SEQUENTIAL, Schedule

if TYPE_CHECKING:
    from profiler.lba.pricing import Pricing

ROUTE_TOKENS = 1  # the delegator writes the chosen task's index
# Work of scheduling the specialists' group exactly in one grid cell (``Schedule.spread_group``), in call
# prices: about 30 us a distinct cell here, where a vectorised call price takes about 1 us.
SCHEDULED_CELL = 30


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

    @classmethod
    def evaluations(cls, values: dict, schedule: Schedule = SEQUENTIAL) -> float:
        makespan = schedule.parallel and schedule.measure == "makespan"
        return cells(cls, values) * (SCHEDULED_CELL if makespan else 1)

    @classmethod
    def work_note(cls, schedule: Schedule) -> str:
        if schedule.parallel and schedule.measure == "makespan":
            return f" (the specialists' batches scheduled in each cell: {SCHEDULED_CELL} a cell)"
        return ""

    @staticmethod
    def optimistic(p: dict, llm: LLM, rng: np.random.Generator) -> None:
        n, out, s, load = as_ints(p, "n", "out", "system_prompt", "load")
        system = system_segment(s)
        llm.group([Call("generalist", s + n, out, segments=system + ((f"x{i}", n),))  # y <- M_g(x), each input
                   for i in range(load)])

    @staticmethod
    def optimized(p: dict, llm: LLM, rng: np.random.Generator) -> None:
        k, n, c, out, s, load = as_ints(p, "k", "n", "c", "out", "system_prompt", "load")
        system = system_segment(s)
        llm.group([Call("delegator", s + c, ROUTE_TOKENS, segments=system + ((f"x{i}", min(c, n)),))
                   for i in range(load)])  # i <- M_d(x[0:c]), for each input
        tasks = np.repeat(np.arange(k), load_shares(load, k))  # how many inputs each task gets: fixed
        routed = rng.permutation(tasks)  # which input goes to which task: the oracle's draw
        llm.group([Call("specialist", s + n, out, model=int(task), segments=system + ((f"x{i}", n),))
                   for i, task in enumerate(routed)])  # y <- M_s^i(x)

    @staticmethod
    def costs(p: dict, pricing: Pricing, schedule: Schedule = SEQUENTIAL) -> Costs:
        sizes = KTask.role_sizes(p)
        s, load = p["system_prompt"], p["load"]
        return {
            "optimistic": {"generalist": schedule.group(pricing, "generalist", s + p["n"], p["out"], load,
                                                        sizes["generalist"])},
            "optimized": {
                "delegator": schedule.group(pricing, "delegator", s + p["c"], ROUTE_TOKENS, load, sizes["delegator"]),
                "specialist": schedule.spread_group(pricing, "specialist", s + p["n"], p["out"], load, p["k"],
                                                    sizes["specialist"]),
            },
        }

    @staticmethod
    def longest_context(p: dict) -> dict[str, np.ndarray]:
        s = p["system_prompt"]
        answer = positions_needed(s + p["n"], p["out"])
        return {"generalist": answer, "delegator": positions_needed(s + p["c"], ROUTE_TOKENS), "specialist": answer}

    @staticmethod
    def expected_calls(p: dict) -> dict[str, np.ndarray]:
        load = np.asarray(p["load"], dtype=float)
        return {"optimistic": load, "optimized": 2 * load}  # answer; route, then answer: each input

    @staticmethod
    def expected_segments(p: dict) -> dict[str, np.ndarray]:
        per_call = 1.0 + (np.asarray(p["system_prompt"], dtype=float) > 0)  # the system prompt, then x
        calls = KTask.expected_calls(p)
        return {variant: per_call * calls[variant] for variant in calls}

    @staticmethod
    def asymptotic_ratio(p: dict) -> np.ndarray:
        return np.asarray(p["k"], dtype=float)
