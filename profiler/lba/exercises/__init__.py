"""The paper's three worked examples as LbA programs: ``EXERCISES[name]``."""

from profiler.lba.exercises.base import VARIANTS, Exercise, Param
from profiler.lba.exercises.debugging import Debugging
from profiler.lba.exercises.evolution import Evolution
from profiler.lba.exercises.ktask import KTask

EXERCISES: dict[str, type[Exercise]] = {e.name: e for e in (KTask, Debugging, Evolution)}

__all__ = ["EXERCISES", "VARIANTS", "Debugging", "Evolution", "Exercise", "KTask", "Param"]
