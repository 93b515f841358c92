"""Evolutionary optimization (the paper's Sec. 3.3): mutate the whole solution, or one block.

A solution of ``n = k * l`` tokens in ``k`` blocks; its fitness is the number of correct
blocks (a OneMax variant). The mutator ``M_u`` rewrites what it is given, and each block it
rewrites comes out correct with probability ``p``, independently (the oracle's draw). The
search starts from a solution with no block correct and is a greedy (1+lambda)-EA: each
generation makes ``lam`` mutants of the current solution, independent calls issued as one
group, and keeps the best if its fitness is higher (``lam = 1``: the paper's (1+1)-EA).

- Optimistic (global mutation): each mutant reads and rewrites all ``n`` tokens. Every mutant
  is drawn afresh, all ``k`` blocks right with probability ``p^k`` whatever the current
  fitness, and the search ends at the first generation with such a mutant: the number of
  generations is geometric, ``1 / (1 - (1 - p^k)^lam)`` in expectation -- ``2^k`` for
  ``p = 1/2`` and ``lam = 1``, as the paper says.
- Optimized (local mutation, oracle block boundaries): block ``i``'s mutants read and write
  its ``l`` tokens; a generation fixes it if any of its ``lam`` mutants is right, with
  probability ``1 - (1 - p)^lam``; then block ``i + 1``: ``k / (1 - (1 - p)^lam)`` generations
  in expectation (``k / p`` at ``lam = 1``).

The paper's improvement: ``Theta(2^k k)``.

With ``load`` ``T``, ``T`` searches run in lockstep: each generation, every unfinished search
makes its ``lam`` mutants, all in one group. Sequentially priced, the cost is ``T`` times one
search's. A parallel schedule batches the group, so a generation's cost depends on how many
searches are still running: a Binomial(``T``, ``P(a search runs at that generation)``) count,
whose expected cost is summed over the generations exactly -- for the global mutation by the
chain of the count (the expected generations spent at each count, ``O(T^2)`` work), for the
local one generation by generation (``O(T)`` a generation, cut where what is left is below
``TAIL`` of the cost) -- both bounded before they start (``evaluations``).

Segments (prefix reuse): a mutant reads the system prompt, then search ``i``'s current solution
``solution{i}.{v}`` (its ``v``-th kept version: the mutants of an unchanged solution share it) or
its current block ``block{i}.{j}`` (block ``j``: it changes only once fixed, and then the search
moves on). A mutant's output is read by no later call (a kept mutant is read as the next version,
not after the one it was made from), so it is not named.
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

TAIL = 1e-13  # the local searches' generations summed until the rest is at most this share of the cost
# Work of one term of those sums (a probability times a generation's cost, vectorised), in call prices: about
# 0.2 us here, where a vectorised call price takes about 1 us.
SUMMED_TERM = 0.2


def success(p, lam) -> np.ndarray:
    """The probability that at least one of ``lam`` independent draws of probability ``p`` succeeds
    (exactly ``p`` at ``lam`` 1)."""
    p, lam = np.asarray(p, dtype=float), np.asarray(lam, dtype=float)
    with np.errstate(divide="ignore"):
        return np.where(lam == 1, p, -np.expm1(lam * np.log1p(-p)))


def expected_global_steps(k, p, lam=1) -> np.ndarray:
    """Expected generations of global mutation until a mutant has every block right: ``1 / (1 - (1 - p^k)^lam)``
    (``1 / p^k`` at ``lam`` 1; see the module doc)."""
    k, p, lam = (np.asarray(x, dtype=float) for x in (k, p, lam))
    with np.errstate(divide="ignore", over="ignore"):  # p^k below a float: infinitely many (refused by callers)
        return np.where(lam == 1, p**-k, 1 / success(p**k, lam))


def expected_local_steps(k, p, lam=1) -> np.ndarray:
    """Expected generations of block mutation: ``1 / (1 - (1 - p)^lam)`` for each of the ``k`` blocks."""
    return np.asarray(k, dtype=float) / success(p, lam)


def local_generations(k, p, lam, load) -> np.ndarray:
    """Generations the local searches' sum runs past the first ``k`` (where every search still runs): until a
    search still runs with probability below ``TAIL`` over the ``load`` searches and the generations expected."""
    from scipy.stats import nbinom  # about 1 s to import: paid only by a load above 1 in parallel

    k, q, load = np.asarray(k, dtype=float), success(p, lam), np.asarray(load, dtype=float)
    return nbinom.isf(TAIL / (load * (1 + k / q)), k, q) + 1


class Evolution(Exercise):
    name = "evolution"
    title = "evolutionary optimization"
    roles = {"optimistic": ("mutator",), "optimized": ("mutator",)}
    params = (
        Param("k", 8, "blocks in the solution"),
        Param("l", 32, "tokens per block", maximum=MAX_TOKENS),
        Param("p", 0.5, "probability that a rewritten block is correct", integer=False, minimum=1e-6, maximum=1),
        Param("lam", 1, "mutants per generation (lambda: a (1+lambda)-EA), issued as one group"),
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

    @classmethod
    def evaluations(cls, values: dict, schedule: Schedule = SEQUENTIAL) -> float:
        grid = cells(cls, values)
        load = float(np.max(values["load"]))
        if not schedule.parallel or load == 1:
            return grid
        generations = float(np.max(local_generations(values["k"], values["p"], values["lam"], values["load"])))
        return grid * load * (1 + SUMMED_TERM * (load / 2 + generations))  # its prices, then its sums' terms

    @classmethod
    def work_note(cls, schedule: Schedule) -> str:
        if not schedule.parallel:
            return ""
        return (" (with load T, a parallel schedule prices the searches still running at every count: T^2 / 2 "
                "for the global mutation, T a generation for the local one)")

    @staticmethod
    def optimistic(p: dict, llm: LLM, rng: np.random.Generator) -> None:
        k, l, s, lam, load = as_ints(p, "k", "l", "system_prompt", "lam", "load")
        fitness = np.zeros(load, dtype=int)  # of each search's current solution
        version = np.zeros(load, dtype=int)  # how many times each search's solution was replaced
        system = system_segment(s)
        while np.any(fitness < k):
            running = np.flatnonzero(fitness < k)
            llm.group([Call("mutator", s + k * l, k * l, segments=system + ((f"solution{i}.{version[i]}", k * l),))
                       for i in running for _ in range(lam)])  # x' <- M_u(x), lam times each
            mutants = np.count_nonzero(rng.random((len(running), lam, k)) < p["p"], axis=2)  # f(x'): the oracle
            best = mutants.max(axis=1)
            version[running[best > fitness[running]]] += 1
            fitness[running] = np.maximum(fitness[running], best)  # keep the best x' if f rose

    @staticmethod
    def optimized(p: dict, llm: LLM, rng: np.random.Generator) -> None:
        k, l, s, lam, load = as_ints(p, "k", "l", "system_prompt", "lam", "load")
        block = np.zeros(load, dtype=int)  # each search's block i
        system = system_segment(s)
        while np.any(block < k):
            running = np.flatnonzero(block < k)
            llm.group([Call("mutator", s + l, l, segments=system + ((f"block{i}.{block[i]}", l),))
                       for i in running for _ in range(lam)])  # x_i' <- M_u(x_i), lam times each
            right = np.any(rng.random((len(running), lam)) < p["p"], axis=1)  # f rose: block i is right
            block[running[right]] += 1

    @staticmethod
    def costs(p: dict, pricing: Pricing, schedule: Schedule = SEQUENTIAL) -> Costs:
        k, l, s, chance, lam, load = (np.asarray(p[name], dtype=float)
                                      for name in ("k", "l", "system_prompt", "p", "lam", "load"))
        size = Evolution.role_sizes(p)["mutator"]
        reads = {"optimistic": (s + k * l, k * l), "optimized": (s + l, l)}  # a global or a block mutant

        def generation(variant, searches, axis=()):  # a generation's group with ``searches`` searches running
            (n_in, n_out), at = reads[variant], (...,) + axis
            return schedule.group(pricing, "mutator", n_in[at], n_out[at], lam[at] * searches, size[at])

        costs = {"optimistic": expected_global_steps(k, chance, lam) * generation("optimistic", load),
                 "optimized": expected_local_steps(k, chance, lam) * generation("optimized", load)}
        if schedule.parallel and np.any(load > 1):  # a batch's cost is not linear in the searches running
            by_count = {"optimistic": _global_searches(k, chance, lam, load,
                                                       lambda u: generation("optimistic", u, (None,))),
                        "optimized": _local_searches(k, chance, lam, load,
                                                     lambda u: generation("optimized", u, (None,)))}
            costs = {variant: np.where(load > 1, by_count[variant], cost) for variant, cost in costs.items()}
        return {variant: {"mutator": cost} for variant, cost in costs.items()}

    @staticmethod
    def longest_context(p: dict) -> dict[str, np.ndarray]:
        k, l, s = (np.asarray(p[name], dtype=float) for name in ("k", "l", "system_prompt"))
        return {"mutator": positions_needed(s + k * l, k * l)}  # the global mutation: k >= 1 blocks

    @staticmethod
    def expected_calls(p: dict) -> dict[str, np.ndarray]:
        mutants = np.asarray(p["lam"], dtype=float) * np.asarray(p["load"], dtype=float)
        return {"optimistic": expected_global_steps(p["k"], p["p"], p["lam"]) * mutants,
                "optimized": expected_local_steps(p["k"], p["p"], p["lam"]) * mutants}

    @staticmethod
    def expected_segments(p: dict) -> dict[str, np.ndarray]:
        per_call = 1.0 + (np.asarray(p["system_prompt"], dtype=float) > 0)  # the system prompt, then x or x_i
        calls = Evolution.expected_calls(p)
        return {variant: per_call * calls[variant] for variant in calls}

    @staticmethod
    def asymptotic_ratio(p: dict) -> np.ndarray:
        k = np.asarray(p["k"], dtype=float)
        return 2.0**k * k


def _counts(load) -> tuple[np.ndarray, int]:
    """The searches-running axis ``1..max(load)`` (last) and its length."""
    most = int(np.max(load))
    return np.arange(1, most + 1, dtype=float), most


def _global_searches(k, p, lam, load, generation) -> np.ndarray:
    """Expected cost of ``load`` global searches in lockstep, ``generation(u)`` the cost of a generation with
    ``u`` running (on the last axis). Each running search ends at a generation with probability ``q``, so the
    count running is a chain: from ``v`` it stays with probability ``(1-q)^v``, else drops to ``u < v`` with
    Binomial(``v``, ``q``) probability of ``v - u`` ending, over ``1 - (1-q)^v``. The expected generations at
    ``v``: the probability of reaching it over ``1 - (1-q)^v``."""
    counts, most = _counts(load)
    q = success(np.asarray(p, dtype=float) ** np.asarray(k, dtype=float), lam)[..., None]
    load = np.asarray(load, dtype=float)[..., None]
    shape = np.broadcast_shapes(q.shape[:-1], load.shape[:-1])
    reach = np.zeros(shape + (most + 1,))
    reach[...] = np.arange(most + 1) == load  # every search starts running
    with np.errstate(divide="ignore", invalid="ignore"):  # q = 1: log(0); the count 0 is never left
        leave = -np.expm1(np.arange(most + 1) * np.log1p(-q))  # some search of v ends this generation
    stays = np.zeros(shape + (most,))
    for v in range(most, 0, -1):
        stays[..., v - 1] = reach[..., v] / leave[..., v]
        below = np.arange(v)
        reach[..., :v] += (reach[..., v] / leave[..., v])[..., None] * binomial(v - below, v, q)
    return np.sum(stays * generation(counts), axis=-1)


def _local_searches(k, p, lam, load, generation) -> np.ndarray:
    """Expected cost of ``load`` local searches in lockstep, ``generation(u)`` as for ``_global_searches``. A
    search runs at generation ``k + j`` (``j >= 1``) when it had fewer than ``k`` successes in the ``k + j - 1``
    before (its failures, negative binomial, are ``j`` or more): the count running is Binomial(``load``, that);
    every search runs the first ``k``."""
    from scipy.stats import nbinom  # as in local_generations

    counts, _ = _counts(load)
    k, q, load = np.asarray(k, dtype=float), success(p, lam), np.asarray(load, dtype=float)
    per_count = generation(counts)
    total = k * generation(load[..., None])[..., 0]
    generations = int(np.max(local_generations(k, p, lam, load)))
    of_load = binomial_of(counts, load[..., None])
    for first in range(1, generations + 1, SF_CHUNK):  # P(still running) for a chunk of generations at once
        running = nbinom.sf(np.arange(first, min(first + SF_CHUNK, generations + 1))[:, None] - 1,
                            k.ravel(), q.ravel()).reshape((-1, *np.broadcast_shapes(k.shape, q.shape)))
        for chance in running:
            total = total + np.sum(of_load(chance[..., None]) * per_count, axis=-1)
    return total


SF_CHUNK = 64  # generations whose running probabilities one scipy call computes


def binomial_of(u, n):
    """The Binomial(``n``, chance) probability of ``u`` (0 where ``u > n``) as a function of the chance,
    element-wise: in logs, its coefficients computed once, exact at a chance of 0 or 1."""
    from scipy.special import gammaln  # a third of a second to import: paid only by a load above 1 in parallel

    u, n = np.broadcast_arrays(np.asarray(u, dtype=float), np.asarray(n, dtype=float))
    inside = u <= n
    rest = np.where(inside, n - u, 0.0)
    coefficient = np.where(inside, gammaln(n + 1) - gammaln(u + 1) - gammaln(rest + 1), -np.inf)

    def at(chance) -> np.ndarray:
        chance = np.asarray(chance, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):  # log 0, times no draw: 0
            hits = np.where(u > 0, u * np.log(chance), 0.0)
            misses = np.where(rest > 0, rest * np.log1p(-chance), 0.0)
        return np.exp(coefficient + hits + misses)

    return at


def binomial(u, n, chance) -> np.ndarray:
    """The Binomial(``n``, ``chance``) probability of ``u``, element-wise (``binomial_of``)."""
    return binomial_of(u, n)(chance)
