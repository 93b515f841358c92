"""A fake clock for tests of budgets and deadlines: time moves only by the known cost of each
pass, so what a budget admits is the same on an idle machine and on a busy one."""

from __future__ import annotations

from typing import Callable

from profiler.measure.passes import Passes


class FakeClock:
    """A ``timing.Clock`` that reads ``now_s`` and moves only by ``advance``."""

    def __init__(self, now_s: float = 0.0):
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


def charge(monkeypatch, clock: FakeClock, method: str, cost_s: Callable[..., float]) -> None:
    """Make every call of ``Passes.<method>(*args)`` move ``clock`` by ``cost_s(*args)`` seconds, a pass of a
    batch of more than one sequence (``batch=B``) by ``cost_s(*args, batch=B)``; the real pass still runs (its
    caches and outputs are what the code under test reads)."""
    original = getattr(Passes, method)

    def charged(self, *args, **kwargs):
        batch = kwargs.get("batch") or 1
        clock.advance(cost_s(*args, batch=batch) if batch > 1 else cost_s(*args))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Passes, method, charged)
