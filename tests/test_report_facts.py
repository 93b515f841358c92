"""The run's facts in a report (``profiler.report.facts.run_facts``): what was measured, in how long, on what budget."""

from __future__ import annotations

from types import SimpleNamespace

from profiler.measure.run_document import RunAsked, RunDone
from profiler.report.facts import run_facts


def _samples_fact(done: RunDone) -> str:
    run = SimpleNamespace(asked=RunAsked(model="qwen2.5-0.5b", budget_s=37.6, seed=0), done=done,
                          command=["python", "-m", "profiler", "run", "--model", "qwen2.5-0.5b"])
    return dict(run_facts(run))["samples"]


def test_the_budget_is_the_one_the_run_had():
    assert _samples_fact(RunDone(lengths=[8, 16, 32], rows=120, elapsed_s=37.1)) == (
        "120 timed passes in 37 s (budget 37.6 s per model, seed 0)")


def test_a_budget_raised_for_the_curves_is_said():
    done = RunDone(lengths=[8, 11, 16], rows=90, elapsed_s=44.8, budget_raised_to_s=46.0)
    assert _samples_fact(done) == (
        "90 timed passes in 45 s (budget 37.6 s per model, raised to 46 s for the curves, seed 0)")
