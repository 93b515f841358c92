"""The console lines that close a model's sweep in ``run``: what it could not measure and why.

Points the time budget left out (of the length grid, the batch grid and the extend points), what ran out
of memory, passes longer than the whole budget alone, a default budget raised for the curves, a machine whose
speed changed or that was disturbed (``SweepOutcome``), each in one yellow line; how much the machine's speed
varied (``Disturbance.reference_spread``); then the sweep's time and the files written. ``run.json`` (``done``)
holds the same, in full.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from profiler.measure.pilot import FIT_LENGTHS
from profiler.measure.sweep import SweepOutcome


def _not_measured(console: Console, what: str, label: str, points: list[str]) -> None:
    """One line naming the points of ``what`` the time budget left out (``label`` says how each is written)."""
    if points:
        console.print(f"[yellow]{what} not measured within the time budget: {label} = "
                      f"{', '.join(points)} (--budget to include them)")


def print_outcome(console: Console, outcome: SweepOutcome, folder: Path) -> None:
    """The sweep's closing lines: what was left out or ran out of memory, a drift or disturbance, the files."""
    if outcome.out_of_memory:
        oom = outcome.out_of_memory
        console.print(f"[yellow]out of memory: {oom['phase']} at {oom['n_ctx']} tokens; longer lengths dropped")
    for phase in ("prefill", "decode", "forward", "generate"):
        budget_skips = [str(s["n_ctx"]) for s in outcome.skipped
                        if s["reason"] == "time budget" and s.get("phase", "prefill") == phase]
        _not_measured(console, phase, "n", budget_skips)
    for phase in ("prefill", "decode"):
        left_out = [f"{s['batch']} x {s['n_ctx']}" for s in outcome.batch_skipped
                    if s["phase"] == phase and s["reason"] == "time budget"]
        _not_measured(console, f"{phase} batches", "batch x n", left_out)
    for oom in outcome.batch_out_of_memory:
        console.print(f"[yellow]out of memory: {oom['phase']} of {oom['batch']} sequences at {oom['n_ctx']} tokens; "
                      "larger batches at that length and longer dropped")
    extend_left_out = [f"{s['c']} + {s['s']}" for s in outcome.extend_skipped if s["reason"] == "time budget"]
    _not_measured(console, "extend", "cached + appended", extend_left_out)
    for oom in outcome.extend_out_of_memory:
        console.print(f"[yellow]out of memory: extend of {oom['s']} tokens on {oom['c']} cached; as many or more on "
                      "as long a cache or longer dropped")
    alone = [s for s in [*outcome.skipped, *outcome.batch_skipped, *outcome.extend_skipped]
             if s.get("pass_s", 0) > s.get("budget_s", float("inf"))]
    if alone:
        console.print(f"[yellow]longer than the whole {alone[0]['budget_s']:g} s budget alone: "
                      + ", ".join((f"one extend of {s['s']} on {s['c']} cached" if "c" in s else
                                   f"one {s['phase']} of n = {s['n_ctx']}")
                                  + (f" x {s['batch']} sequences" if "batch" in s else "")
                                  + f" (predicted {s['pass_s']:.1f} s)" for s in alone))
    if outcome.caches_prefilled is not None:
        console.print(f"decode and extend caches built by prefills, at their cost: {outcome.caches_prefilled}",
                      style="yellow", markup=False)
    if outcome.budget_raised_to_s is not None:
        console.print(f"[yellow]budget raised to {outcome.budget_raised_to_s:g} s: the default held fewer than the "
                      f"{FIT_LENGTHS} lengths a curve is fitted from (--budget to choose)")
    if outcome.drift and outcome.drift["drifted"]:
        drift = outcome.drift
        console.print(f"[yellow]the machine's speed changed during the sweep: prefill n={drift['n_ctx']} took "
                      f"{drift['median_latency_s'] * 1e3:.1f} ms, then {drift['median_latency_s_after'] * 1e3:.1f} ms "
                      "when timed again at the end; treat these figures with care or run again")
    disturbance = outcome.disturbance
    if disturbance and disturbance.disturbed:
        affected = len(disturbance.points)
        seen = [*disturbance.seen(), f"{affected} point{'s' if affected != 1 else ''} affected"]
        if disturbance.brought_back:
            seen.append(f"re-planned: brought back n = {', '.join(map(str, disturbance.brought_back))}")
        if disturbance.too_few_lengths:
            seen.append("too few lengths left to fix a curve's form")
        console.print(f"[yellow]disturbed machine: {'; '.join(seen)} (run.json: done.disturbance); "
                      "run again on a quiet machine")
    if outcome.interrupted:
        console.print("[yellow]interrupted: everything measured so far is kept")
    spread = disturbance.reference_spread if disturbance else None
    if spread is not None:
        console.print(f"the machine's speed through the sweep: reference passes {spread:.1%} off their median on "
                      "average (a held-out error near it is the machine's, not the form's)")
    console.print(f"measured in {outcome.elapsed_s:.1f} s; wrote {folder}/samples.csv, run.json, hardware.json")
