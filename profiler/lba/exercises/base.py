"""What every exercise declares: its parameters, its roles, its two programs and their closed form.

An exercise is one of the paper's worked examples (Sec. 3; ``shared/AALPS.md``) written
twice as an LbA program -- the *optimistic* variant (the intuitive agent design) and the
*optimized* decomposition -- each making its LLM calls through ``profiler.lba.calls``. Its
``costs`` is the closed form of what those programs cost (the expected cost where an oracle
draw decides how many calls are made), vectorised over numpy arrays of parameters so a
whole grid or 2-D map is priced at once; a test holds it equal to pricing the calls the
programs record.

Parameters are token counts, counts of things, model sizes relative to the base model
(``m``), or probabilities; every call also reads ``system_prompt`` tokens more.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from profiler.errors import UserError
from profiler.lba.calls import LLM

if TYPE_CHECKING:  # pricing imports the cost model, which an exercise's programs do not need
    from profiler.lba.pricing import Pricing

VARIANTS = ("optimistic", "optimized")
Costs = dict[str, dict[str, np.ndarray]]  # variant -> role -> cost


@dataclass(frozen=True)
class Param:
    name: str
    default: float
    help: str
    integer: bool = True
    minimum: float = 1.0


SYSTEM_PROMPT = Param("system_prompt", 0, "tokens added to every call's input", minimum=0)


class Exercise(ABC):
    """One of the paper's three decompositions, optimistic and optimized."""

    name: str
    title: str
    roles: dict[str, tuple[str, ...]]  # variant -> the roles whose calls it makes
    params: tuple[Param, ...]  # the exercise's own, SYSTEM_PROMPT is added by ``all_params``
    main: str  # the variable its break-even is read along
    main_values: tuple[float, ...]  # that variable's default grid
    map_axes: tuple[tuple[str, np.ndarray], tuple[str, np.ndarray]]  # the default 2-D map
    asymptotic: str  # the paper's improvement, e.g. "b*k^2"
    stochastic = False  # whether the oracle's draws change which calls a program makes

    @classmethod
    def all_params(cls) -> dict[str, Param]:
        return {p.name: p for p in (*cls.params, SYSTEM_PROMPT)}

    @classmethod
    def defaults(cls) -> dict[str, float]:
        return {name: p.default for name, p in cls.all_params().items()}

    @classmethod
    def check(cls, values: dict[str, np.ndarray]) -> None:
        """One-line UserError for a value no program can run with."""
        for name, param in cls.all_params().items():
            value = np.asarray(values[name], dtype=float)
            if np.any(value < param.minimum):
                raise UserError(f"{cls.name}: {name} must be at least {param.minimum:g}")
            if param.integer and np.any(value != np.round(value)):
                raise UserError(f"{cls.name}: {name} must be a whole number")
        if not np.all(cls.feasible(values)):
            raise UserError(f"{cls.name}: {cls.feasibility}")

    feasibility = ""  # what ``feasible`` requires, in words

    @staticmethod
    def feasible(p: dict) -> np.ndarray:
        """Where a combination of otherwise valid values describes a problem (all, by default)."""
        return np.asarray(True)

    @staticmethod
    @abstractmethod
    def role_sizes(p: dict) -> dict[str, np.ndarray]:
        """Each role's model size, relative to the base model (the paper's ``m``)."""

    @staticmethod
    @abstractmethod
    def optimistic(p: dict, llm: LLM, rng: np.random.Generator) -> None:
        """The intuitive design, as the paper's pseudocode; ``rng`` draws what its oracle decides."""

    @staticmethod
    @abstractmethod
    def optimized(p: dict, llm: LLM, rng: np.random.Generator) -> None:
        """The decomposition, as the paper's pseudocode."""

    @staticmethod
    @abstractmethod
    def costs(p: dict, pricing: Pricing) -> Costs:
        """Closed form (expected) cost per variant and role, for arrays of parameters."""

    @staticmethod
    @abstractmethod
    def longest_context(p: dict) -> dict[str, np.ndarray]:
        """Per role, the positions its longest call needs (``positions_needed(n_in, n_out)``: the
        tokens it reads and writes, less the last one written, which is never fed back)."""

    @staticmethod
    @abstractmethod
    def asymptotic_ratio(p: dict) -> np.ndarray:
        """The paper's order of improvement evaluated at ``p`` (a scale, not a prediction)."""


def as_ints(p: dict, *names: str) -> tuple[int, ...]:
    """Scalar integer parameters, for the programs."""
    return tuple(int(p[name]) for name in names)
