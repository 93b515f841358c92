"""What a user gives an exercise: its name, a grid of one parameter's values and the others' settings.

``--values`` and ``--set`` are read here, and refused in one line when they are not a finite number
in their parameter's range (``Param.problem``). Work that grows with a parameter is bounded before it
starts: at most ``MAX_VALUES`` grid values, and a grid's parameters are ones the programs can run
with, in work a sweep may take (``Exercise.check``).
"""

from __future__ import annotations

import math

import numpy as np

from profiler.errors import UserError
from profiler.lba.exercises import EXERCISES, Exercise
from profiler.lba.schedule import SEQUENTIAL, Schedule


def exercise_named(name: str) -> type[Exercise]:
    try:
        return EXERCISES[name]
    except KeyError:
        raise UserError(f"unknown exercise {name!r}: one of {', '.join(EXERCISES)}, all") from None


MAX_VALUES = 1_000  # values in one grid: a table of more is read by nobody (and takes rich seconds to print)


def parse_values(text: str, name: str) -> list[float]:
    """``2,4,8`` or an integer range ``1:12`` (both ends included): finite numbers, at most
    ``MAX_VALUES`` of them (a range is counted before it is made). Whether each suits the
    parameter ``name`` is the exercise's check (``Exercise.check``)."""
    expected = f"--values {text!r} for {name}: expected a list like 2,4,8 or a range like 1:12"
    try:
        if ":" in text:
            lo, hi = (int(part) for part in text.split(":"))
            if hi < lo:
                raise UserError(f"--values {text}: the range must go up (lo:hi)")
            values = hi - lo + 1
            if values > MAX_VALUES:
                raise UserError(f"--values {text}: {values:,} values, more than the limit of {MAX_VALUES:,}")
            return [float(v) for v in range(lo, hi + 1)]
        parts = text.split(",")
        if len(parts) > MAX_VALUES:
            raise UserError(f"--values: {len(parts):,} values, more than the limit of {MAX_VALUES:,}")
        values = [float(part) for part in parts]
    except ValueError:
        raise UserError(expected) from None
    if not all(map(math.isfinite, values)):
        raise UserError(f"{expected} of finite numbers")
    return values


def parse_settings(exercise: type[Exercise], settings: list[str], vary: str | None = None) -> dict[str, float]:
    """``name=value`` pairs over the exercise's defaults, each in its parameter's range; ``vary``, the
    parameter a grid gives, may not be set as well."""
    params, declared = exercise.defaults(), exercise.all_params()
    for setting in settings:
        name, _, text = setting.partition("=")
        if name not in params:
            raise UserError(f"{exercise.name} has no parameter {name!r}: one of {', '.join(params)}")
        if name == vary:
            raise UserError(f"--set {setting}: {name} is the varied parameter (--vary {name}): give it with --values")
        try:
            value = float(text)
        except ValueError:
            raise UserError(f"--set {setting!r}: expected {name}=NUMBER") from None
        problem = declared[name].problem(value)
        if problem:
            raise UserError(f"--set {setting}: {exercise.name}: {problem}")
        params[name] = value
    return params


def check_variable(exercise: type[Exercise], name: str) -> None:
    if name not in exercise.all_params():
        raise UserError(f"{exercise.name} has no parameter {name!r} to vary: one of {', '.join(exercise.all_params())}")


def check_grid(exercise: type[Exercise], vary: str, values: list[float], fixed: dict,
               schedule: Schedule = SEQUENTIAL) -> None:
    """One-line UserError unless ``values`` of ``vary`` (1 to ``MAX_VALUES`` of them) with ``fixed`` are
    parameters the programs can run with, in work a sweep under ``schedule`` may take (``Exercise.check``)."""
    check_variable(exercise, vary)
    if not 0 < len(values) <= MAX_VALUES:
        raise UserError(f"{exercise.name}: {len(values):,} values of {vary}: give 1 to {MAX_VALUES:,}")
    exercise.check(fixed | {vary: np.asarray(sorted(set(values)), dtype=float)}, schedule)

