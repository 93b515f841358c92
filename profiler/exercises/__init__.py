"""The paper's three worked examples as LbA programs: ``EXERCISES[name]``."""

from profiler.exercises.base import VARIANTS, Exercise, Param
from profiler.exercises.debugging import Debugging
from profiler.exercises.evolution import Evolution
from profiler.exercises.ktask import KTask

EXERCISES: dict[str, type[Exercise]] = {e.name: e for e in (KTask, Debugging, Evolution)}

__all__ = ["EXERCISES", "VARIANTS", "Debugging", "Evolution", "Exercise", "KTask", "Param"]
