"""Iterative debugging (the paper's Sec. 3.2): a chat history, or functions fixed one by one.

The code is ``n = k * l`` tokens: ``k`` functions of ``l`` tokens, ``b <= k`` of them with one
bug each. A QA engineer ``M_q`` finds a bug and writes a ``report``-token report; a
developer ``M_d`` fixes it.

- Optimistic (chat history): for ``i = 1..b`` the QA engineer reads the whole history and
  reports one bug; the developer reads the history and the report and rewrites all ``n``
  tokens; both are appended. Round ``i`` reads ``H_i = n + (i - 1)(report + n)`` tokens --
  about ``i * n``, as the paper describes.
- Optimized (functions independently specified): the QA engineer reads each function once
  and reports on it; for each of the ``b`` buggy functions the developer reads that function
  and its report and rewrites its ``l`` tokens.

The paper's improvement: the developer's part ``Theta(b k^2)``, the QA part ``Theta(b^2)``.
Which functions hold the bugs is the oracle's seeded draw; it does not change the cost.

Groups (``LLM.group``), with ``load`` ``T`` codes debugged at once: the chat history's rounds
depend on each other, so each round is a group of ``T`` QA calls, then a group of ``T``
developer calls; the focused QA pass is one group of ``T * k`` reports (every function is
specified on its own), then one group of ``T * b`` fixes. A parallel schedule's makespan of
the focused variant is two calls deep whatever ``k`` and ``b``.

Segments (prefix reuse), per input ``t``: the chat history is the system prompt, the code
``code{t}``, then round ``i``'s report ``report{t}.{i}`` and rewrite ``rewrite{t}.{i}``, each the
output of the call that wrote it; so each round's call reads the previous call of its role's input
and output, then what is new, and with reuse computes only the new tokens (and the last token of
its own previous output, which it never fed back). The focused QA call reads the system prompt and
function ``f{t}.{j}`` and writes ``report{t}.{j}``; the developer reads ``f{t}.{j}`` and that report
-- a model of its own, so its saving is the system prompt.
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
    system_segment,
)
from profiler.lba.schedule import SEQUENTIAL, Schedule

if TYPE_CHECKING:
    from profiler.lba.pricing import Pricing


class Debugging(Exercise):
    name = "debugging"
    title = "iterative debugging"
    roles = {"optimistic": ("qa", "developer"), "optimized": ("qa", "developer")}
    params = (
        Param("k", 8, "functions in the code"),
        Param("l", 64, "tokens per function", maximum=MAX_TOKENS),
        Param("b", 2, "bugs, at most one per function (b <= k)"),
        Param("report", 16, "tokens of a QA report", maximum=MAX_TOKENS),
        Param("m_q", 1.0, "QA engineer's size, relative to the base model", integer=False, minimum=1e-9,
              maximum=MAX_SIZE),
        Param("m_d", 1.0, "developer's size, relative to the base model", integer=False, minimum=1e-9,
              maximum=MAX_SIZE),
    )
    main = "k"
    main_values = (2, 3, 4, 6, 8, 12, 16, 24, 32)
    map_axes = (("k", np.arange(2, 42)), ("l", np.unique(np.geomspace(2, 512, 48).round())))
    asymptotic = "b*k^2"

    feasibility = "b (bugs) must not exceed k (functions): at most one bug per function"

    @classmethod
    def work_note(cls, schedule: Schedule) -> str:
        return " (the chat history is priced round by round: one per value and round, b rounds)"

    @classmethod
    def evaluations(cls, values: dict, schedule: Schedule = SEQUENTIAL) -> float:
        return cells(cls, values) * float(np.max(values["b"], initial=0))

    @staticmethod
    def feasible(p: dict) -> np.ndarray:
        return np.asarray(p["b"]) <= np.asarray(p["k"])

    @staticmethod
    def role_sizes(p: dict) -> dict[str, np.ndarray]:
        return {"qa": np.asarray(p["m_q"], dtype=float), "developer": np.asarray(p["m_d"], dtype=float)}

    @staticmethod
    def optimistic(p: dict, llm: LLM, rng: np.random.Generator) -> None:
        k, l, b, report, s, load = as_ints(p, "k", "l", "b", "report", "system_prompt", "load")
        history = k * l  # the code (each input's: they grow alike)
        read = [system_segment(s) + ((f"code{t}", k * l),) for t in range(load)]  # each input's history, named
        for i in range(1, b + 1):
            llm.group([Call("qa", s + history, report, segments=read[t], output=f"report{t}.{i}")
                       for t in range(load)])  # bug report <- M_q(history)
            history += report
            read = [read[t] + ((f"report{t}.{i}", report),) for t in range(load)]
            llm.group([Call("developer", s + history, k * l, segments=read[t], output=f"rewrite{t}.{i}")
                       for t in range(load)])  # code <- M_d(history): all of it rewritten
            history += k * l
            read = [read[t] + ((f"rewrite{t}.{i}", k * l),) for t in range(load)]

    @staticmethod
    def optimized(p: dict, llm: LLM, rng: np.random.Generator) -> None:
        k, l, b, report, s, load = as_ints(p, "k", "l", "b", "report", "system_prompt", "load")
        buggy = [set(rng.choice(k, size=b, replace=False).tolist()) for _ in range(load)]  # the oracle, per input
        system = system_segment(s)
        llm.group([Call("qa", s + l, report, segments=system + ((f"f{t}.{j}", l),), output=f"report{t}.{j}")
                   for t in range(load) for j in range(k)])  # report on function j <- M_q(f_j): every j, every input
        llm.group([Call("developer", s + l + report, l,  # f_j <- M_d(f_j, report_j)
                        segments=system + ((f"f{t}.{j}", l), (f"report{t}.{j}", report)))
                   for t, bugs in enumerate(buggy) for j in range(k) if j in bugs])

    @staticmethod
    def costs(p: dict, pricing: Pricing, schedule: Schedule = SEQUENTIAL) -> Costs:
        sizes = Debugging.role_sizes(p)
        k, l, b, report, s, load = (np.asarray(p[name], dtype=float)
                                    for name in ("k", "l", "b", "report", "system_prompt", "load"))
        n = k * l
        rounds = np.arange(1, int(np.max(b)) + 1)  # the round axis, last; rounds past b are masked out
        expand = (...,) + (None,)
        history = n[expand] + (rounds - 1) * (report + n)[expand]
        in_round = rounds <= b[expand]
        qa_rounds = schedule.group(pricing, "qa", s[expand] + history, report[expand], load[expand],
                                   sizes["qa"][expand])
        developer_rounds = schedule.group(pricing, "developer", (s + report)[expand] + history, n[expand],
                                          load[expand], sizes["developer"][expand])
        return {
            "optimistic": {"qa": np.sum(qa_rounds * in_round, axis=-1),
                           "developer": np.sum(developer_rounds * in_round, axis=-1)},
            "optimized": {"qa": schedule.group(pricing, "qa", s + l, report, load * k, sizes["qa"]),
                          "developer": schedule.group(pricing, "developer", s + l + report, l, load * b,
                                                      sizes["developer"])},
        }

    @staticmethod
    def longest_context(p: dict) -> dict[str, np.ndarray]:
        k, l, b, report, s = (np.asarray(p[name], dtype=float) for name in ("k", "l", "b", "report", "system_prompt"))
        last_history = k * l + (b - 1) * (report + k * l)  # what round b reads; the optimized calls read l
        return {"qa": positions_needed(s + np.maximum(last_history, l), report),
                "developer": np.maximum(positions_needed(s + last_history + report, k * l),
                                        positions_needed(s + l + report, l))}

    @staticmethod
    def expected_calls(p: dict) -> dict[str, np.ndarray]:
        k, b = np.asarray(p["k"], dtype=float), np.asarray(p["b"], dtype=float)
        load = np.asarray(p["load"], dtype=float)  # per input: a report and a rewrite a round; k reports, b fixes
        return {"optimistic": 2 * b * load, "optimized": (k + b) * load}

    @staticmethod
    def expected_segments(p: dict) -> dict[str, np.ndarray]:
        k, b, load = (np.asarray(p[name], dtype=float) for name in ("k", "b", "load"))
        system = 1.0 * (np.asarray(p["system_prompt"], dtype=float) > 0)
        # round i: the QA call reads the system prompt, the code and 2(i - 1) pieces; the developer one more
        chat = b * (2 * system + 3) + 2 * b * (b - 1)
        return {"optimistic": chat * load, "optimized": (k * (system + 1) + b * (system + 2)) * load}

    @staticmethod
    def asymptotic_ratio(p: dict) -> np.ndarray:
        return np.asarray(p["b"], dtype=float) * np.asarray(p["k"], dtype=float) ** 2
