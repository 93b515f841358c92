"""What every exercise declares: its parameters, its roles, its two programs and their closed form.

An exercise is one of the paper's worked examples (Sec. 3; ``shared/AALPS.md``) written
twice as an LbA program -- the *optimistic* variant (the intuitive agent design) and the
*optimized* decomposition -- each making its LLM calls through ``profiler.lba.calls``. Its
``costs`` is the closed form of what those programs cost (the expected cost where an oracle
draw decides how many calls are made), vectorised over numpy arrays of parameters so a
whole grid or 2-D map is priced at once; a test holds it equal to pricing the calls the
programs record.

Parameters are token counts, counts of things, model sizes relative to the base model
(``m``), or probabilities; every call also reads ``system_prompt`` tokens more, and every
exercise serves ``load`` inputs at once (``T``, default 1): its programs run the ``T`` inputs
side by side, each step's calls for all of them issued as one group (``LLM.group``).

``costs`` prices under a schedule (``profiler.lba.schedule``): the paper's sequential sum by
default, or a parallel schedule's device time or makespan (its ``measure``).

The programs name what their calls read and write (``Call.segments``, ``Call.output``) for prefix
reuse: the system prompt is the segment ``("system", s)`` leading every call's input (when
``s > 0``, ``system_segment``); each exercise names its own contents (per input, so the ``T``
inputs never share theirs). Under a schedule with prefix reuse, a program is priced by replaying
its calls through a prefix cache (``profiler.lba.reuse``), not by ``costs``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from profiler.errors import UserError
from profiler.lba.calls import LLM
from profiler.lba.schedule import SEQUENTIAL, Schedule

if TYPE_CHECKING:  # pricing imports the cost model, which an exercise's programs do not need
    from profiler.lba.pricing import Pricing

VARIANTS = ("optimistic", "optimized")
Costs = dict[str, dict[str, np.ndarray]]  # variant -> role -> cost


# Upper limits of the parameters, far beyond any practical agent yet small enough that every
# cost, call length and count stays a finite, exactly printable float: no model holds a billion
# tokens; a million functions, bugs, tasks or blocks; model sizes within 1e9 of the base model.
MAX_TOKENS = 10**9
MAX_COUNT = 10**6
MAX_SIZE = 1e9
# The most call prices one evaluation of ``costs`` may compute (an array element each: the
# iterative debugging's chat history is priced per round, so its work grows with ``b``): with
# a fitted pricing about 2 s and 200 MB on a 2-core CPU.
MAX_EVALUATIONS = 2_000_000


def _shown(value: float) -> str:
    """A limit or a value as a person reads it: whole numbers with thousands separators."""
    return f"{int(value):,}" if float(value).is_integer() and abs(value) < 1e15 else f"{value:g}"


@dataclass(frozen=True)
class Param:
    """A parameter: a whole number (a count, tokens) or a real one, within ``[minimum, maximum]``."""

    name: str
    default: float
    help: str
    integer: bool = True
    minimum: float = 1.0
    maximum: float = MAX_COUNT

    def problem(self, values) -> str | None:
        """What makes ``values`` (a number or an array) no value of this parameter, in words; None when
        every one will do. Non-finite values never do."""
        values = np.asarray(values, dtype=float)
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(values) | (values < self.minimum) | (values > self.maximum)
            if self.integer:
                bad |= np.isfinite(values) & (values != np.round(values))
        if not np.any(bad):
            return None
        return f"{self.name} must be {self.limits()} (not {_shown(values[bad].flat[0])})"

    def limits(self) -> str:
        """The values this parameter takes, in words."""
        kind = "a whole number" if self.integer else "a number"
        return f"{kind} at least {_shown(self.minimum)} and at most {_shown(self.maximum)}"

    def span(self) -> str:
        """Its range, short: ``1 to 1,000,000``."""
        return f"{_shown(self.minimum)} to {_shown(self.maximum)}"


SYSTEM_PROMPT = Param("system_prompt", 0, "tokens added to every call's input", minimum=0, maximum=MAX_TOKENS)
LOAD = Param("load", 1, "inputs served at once (T): each step's calls for all of them issued as one group")


class Exercise(ABC):
    """One of the paper's three decompositions, optimistic and optimized."""

    name: str
    title: str
    roles: dict[str, tuple[str, ...]]  # variant -> the roles whose calls it makes
    params: tuple[Param, ...]  # the exercise's own, SYSTEM_PROMPT and LOAD are added by ``all_params``
    main: str  # the variable its break-even is read along
    main_values: tuple[float, ...]  # that variable's default grid
    map_axes: tuple[tuple[str, np.ndarray], tuple[str, np.ndarray]]  # the default 2-D map
    asymptotic: str  # the paper's improvement, e.g. "b*k^2"
    stochastic = False  # whether the oracle's draws change which calls a program makes

    @classmethod
    def all_params(cls) -> dict[str, Param]:
        return {p.name: p for p in (*cls.params, SYSTEM_PROMPT, LOAD)}

    @classmethod
    def defaults(cls) -> dict[str, float]:
        return {name: p.default for name, p in cls.all_params().items()}

    @classmethod
    def check(cls, values: dict[str, np.ndarray], schedule: Schedule = SEQUENTIAL) -> None:
        """One-line UserError for a value no program can run with, or for more work than
        ``MAX_EVALUATIONS`` (``check_work``)."""
        for name, param in cls.all_params().items():
            problem = param.problem(values[name])
            if problem:
                raise UserError(f"{cls.name}: {problem}")
        if not np.all(cls.feasible(values)):
            raise UserError(f"{cls.name}: {cls.feasibility}")
        cls.check_work(values, schedule)

    @classmethod
    def check_work(cls, values: dict[str, np.ndarray], schedule: Schedule = SEQUENTIAL) -> None:
        """One-line UserError, before any is done, when pricing ``values`` under ``schedule`` takes more than
        ``MAX_EVALUATIONS``."""
        evaluations = cls.evaluations(values, schedule)
        if evaluations > MAX_EVALUATIONS:
            note = cls.work_note(schedule)
            raise UserError(f"{cls.name}: these values take {evaluations:,.0f} call prices{note}, more than "
                            f"the limit of {MAX_EVALUATIONS:,}: give fewer values or smaller ones")

    @classmethod
    def work_note(cls, schedule: Schedule) -> str:
        """How ``evaluations`` grows, in words, when it does with a parameter."""
        return ""

    @classmethod
    def evaluations(cls, values: dict[str, np.ndarray], schedule: Schedule = SEQUENTIAL) -> float:
        """The call prices ``costs`` computes for ``values``: one per element of their broadcast shape."""
        return cells(cls, values)

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
    def costs(p: dict, pricing: Pricing, schedule: Schedule = SEQUENTIAL) -> Costs:
        """Closed form (expected) cost per variant and role, for arrays of parameters, in ``schedule``'s
        measure."""

    @staticmethod
    @abstractmethod
    def longest_context(p: dict) -> dict[str, np.ndarray]:
        """Per role, the positions its longest call needs (``positions_needed(n_in, n_out)``: the
        tokens it reads and writes, less the last one written, which is never fed back)."""

    @staticmethod
    @abstractmethod
    def expected_calls(p: dict) -> dict[str, np.ndarray]:
        """Per variant, the calls its program makes (their expectation where the oracle's draws decide),
        broadcasting with the parameters' arrays: what running it takes, known before it is run."""

    @staticmethod
    @abstractmethod
    def expected_segments(p: dict) -> dict[str, np.ndarray]:
        """Per variant, the segments its program's calls name in all (their expectation where the oracle's draws
        decide): a replay through a prefix cache matches each, so its work is known before it is run."""

    @staticmethod
    @abstractmethod
    def asymptotic_ratio(p: dict) -> np.ndarray:
        """The paper's order of improvement evaluated at ``p`` (a scale, not a prediction)."""


def system_segment(s: int) -> tuple[tuple[str, int], ...]:
    """The segments a system prompt of ``s`` tokens leads every call's input with: ``("system", s)``, none at 0."""
    return (("system", s),) if s > 0 else ()


def as_ints(p: dict, *names: str) -> tuple[int, ...]:
    """Scalar integer parameters, for the programs."""
    return tuple(int(p[name]) for name in names)


def cells(exercise: type[Exercise], values: dict) -> float:
    """The elements of the parameters' broadcast shape: the grid cells one evaluation prices."""
    return float(np.prod(np.broadcast_shapes(*(np.shape(values[name]) for name in exercise.all_params()))))


def load_shares(load: int, models: int) -> list[int]:
    """How many of ``load`` inputs each of ``models`` models gets: equal shares, the first ``load % models``
    one more."""
    share, more = divmod(load, models)
    return [share + (i < more) for i in range(models)]
