"""The caveats, in plain words: what the figures and tables do not say, for this run.

Always: how far the fit's lengths reach (extrapolation beyond them, and the model's maximum),
what the intervals cover, what "peak memory" holds. When they apply: random weights, lengths
skipped (time budget, out of memory), an interrupted sweep, unstable points, a disturbed
machine (what was seen, the points affected, lengths brought back, a fit resting on too few
lengths), a machine whose speed changed during the sweep, a fit that predicts unseen lengths
or whole calls poorly (batch surfaces and the extend surface too), an extend surface far from the
prefill and decode curves, a fit made from other samples than the folder now holds, FLOPs counted off the
formula's (``profiler.measure.flops_check``). Points of the
batch and extend grids not measured (time budget, out of memory) are said like lengths. The energy counter: which
one and what its joules hold, or why there is none.
"""

from __future__ import annotations

import pandas as pd

from profiler.costmodel.cost_model import CostModel
from profiler.costmodel.uncertainty import CallIntervals
from profiler.measure.disturbance import MIN_FIT_LENGTHS, Disturbance
from profiler.measure.endpoint.endpoint_document import EndpointRecord
from profiler.measure.energy import MIN_UPDATES_PER_PASS, EnergyRecord
from profiler.measure.flops_check import formula_check
from profiler.report.calls import measured_range
from profiler.report.inputs import RunData

POOR_HELD_OUT = 0.05  # mean error predicting a left-out length: beyond it, say so
# a held-out error within this many times the machine's own variation (the reference passes') is the machine's
MACHINE_EXPLAINS = 1.5
POOR_CALL = 0.10  # a whole call predicted this far off: say so
POOR_CONSISTENCY = 0.10  # the extend surface this far from the prefill or decode curve, on average: say so


def uncertainty_caveat() -> str:
    return ("The 95% intervals and bands come from the fit's per-coefficient bootstrap intervals, combined under "
            "an assumption (a Gaussian copula): each coefficient's own interval is kept as measured, joined by "
            "the correlation of the bootstrap refits (in a fit file before schema 1.2, which does not record it, "
            "by that of a least-squares fit over the measured lengths); beyond the measured lengths each draw's "
            "slope also errs as much as the fitted form, refitted without the last octave, missed it (since "
            "schema 1.4). They cover the "
            "fit's statistical uncertainty on this machine in this state, not another load, temperature, power "
            "setting or library version.")


def extrapolation_caveat(calls: CallIntervals, model_name: str, max_positions: int | None) -> str:
    text = (f"The curves are fitted on {measured_range(calls)}. Beyond that (dashed lines; rows marked "
            "extrapolated) they carry the fitted form past the data: the band widens as far as the form missed "
            "one octave out within the data, and an effect that starts later (caches spilling, another attention "
            "kernel) would not show.")
    if max_positions:
        text += f" {model_name} takes at most {max_positions:,} positions: a longer call cannot run on it at all."
    return text


def _run_caveats(data: RunData) -> list[str]:
    done, name = data.run.done, data.model_name
    items = []
    if data.run.model.random_weights:
        items.append(f"{name} ran with random weights, built from its config: a pass costs the same whatever the "
                     "weights hold, but nothing here says what the model would answer.")
    flops = formula_check(data.samples if data.batch_samples.empty else pd.concat([data.samples, data.batch_samples]))
    if flops is not None and flops.off:
        items.append(flops.sentence() + ".")
    by_reason: dict[tuple[str, str], list[str]] = {}
    for skip in done.skipped:  # a skip without a phase is a length's (prefill and forward)
        by_reason.setdefault((skip.get("phase", "prefill"), skip["reason"]), []).append(f"{skip['n_ctx']:,}")
    if by_reason:
        lengths = "; ".join(f"{phase} n = {', '.join(ns)} ({reason})" for (phase, reason), ns in by_reason.items())
        items.append(f"Not measured: {lengths}. A larger --budget, or --lengths, measures them.")
    if done.batch_skipped:
        points = ", ".join(f"{skip['phase']} {skip['batch']} x {skip['n_ctx']:,}" for skip in done.batch_skipped)
        items.append(f"Batch points not measured (batch x tokens): {points} ({done.batch_skipped[0]['reason']}"
                     f"{' and others' if len({s['reason'] for s in done.batch_skipped}) > 1 else ''}). A larger "
                     "--budget measures them; the batch surfaces extrapolate there.")
    if done.batch_out_of_memory:
        points = ", ".join(f"{oom['phase']} {oom['batch']} x {oom['n_ctx']:,}" for oom in done.batch_out_of_memory)
        items.append(f"Out of memory at batch x tokens {points}: larger batches there and beyond were dropped.")
    if done.extend_skipped:
        points = ", ".join(f"{skip['c']:,} + {skip['s']:,}" for skip in done.extend_skipped)
        reasons = {skip["reason"] for skip in done.extend_skipped}
        items.append(f"Extend points not measured (cached + appended tokens): {points} "
                     f"({done.extend_skipped[0]['reason']}{' and others' if len(reasons) > 1 else ''}). A larger "
                     "--budget measures them; the extend surface extrapolates there.")
    if done.extend_out_of_memory:
        points = ", ".join(f"{oom['c']:,} + {oom['s']:,}" for oom in done.extend_out_of_memory)
        items.append(f"Out of memory extending a cache (cached + appended tokens): {points}: as many tokens or more "
                     "on as long a cache or longer were dropped.")
    if done.out_of_memory:
        oom = done.out_of_memory
        items.append(f"Out of memory: {oom['phase']} at {oom['n_ctx']:,} tokens; longer lengths were dropped.")
    if done.interrupted:
        items.append("The sweep was interrupted: the figures hold what was measured before it stopped.")
    unstable = done.unstable_points
    if unstable:
        where = ", ".join(f"extend {p['n_ctx']:,} + {p['n_new']:,}" if p["phase"] == "extend" else
                          f"{p['phase']} n = {p['n_ctx']:,}" + (f" at batch {p['batch']}" if p.get("batch", 1) > 1 else "")
                          for p in unstable)
        items.append(f"Unstable points (repeats spread by 10% or more; crosses in the figures): {where}. Something "
                     "else ran on the machine, or its clock changed: read those lengths with care.")
    if done.disturbance and done.disturbance.disturbed:
        items.append(_disturbance_caveat(done.disturbance))
    drift = done.drift_check
    if drift and drift.get("drifted"):
        items.append(f"The machine's speed changed during the sweep: prefill at n = {drift['n_ctx']:,} took "
                     f"{drift['ratio']:.2f} times as long when timed again at the end. Run again on a quiet machine.")
    if done.energy is not None:
        items.append(_energy_caveat(done.energy))
    if data.run.endpoint is not None:
        items.append(_endpoint_caveat(data.run.endpoint))
    elif not done.peak_memory_measured:
        items.append("Peak memory could not be measured here (no /proc/self/clear_refs): memory figures are empty.")
    elif data.hardware.device != "cuda":
        items.append("On a CPU, peak memory is the process's peak resident memory: the weights, Python and the "
                     "libraries included, not the pass alone.")
    return items


def _energy_caveat(energy: EnergyRecord) -> str:
    if energy.counter is None:
        return f"No energy counter: {energy.reason}. No joules were measured here, and none are priced."
    return (f"Energy is read off {energy.counter}: what the whole package or board took while a pass ran, idle power "
            f"and other processes included, not the pass alone. A pass shorter than {energy.min_pass_s * 1e3:g} ms "
            f"({MIN_UPDATES_PER_PASS} counter updates) has no energy value: {energy.passes_measured:,} of "
            f"{energy.passes:,} have one.")


def _endpoint_caveat(endpoint: EndpointRecord) -> str:
    """What an endpoint run's times hold, and what its calls did not give."""
    text = (f"Measured from a client of {endpoint.url}: every time holds the network, the server's queueing, "
            "tokenising and sampling as well as the passes; prefill is the time to the first token, decode a "
            "call's mean gap between tokens, forward a one-token call end to end, generate a call end to end. The "
            "server's memory, devices and ceilings cannot be seen from here: no memory figure, no roofline.")
    if endpoint.config is None:
        text += (" No local config of the served model: its parameters and FLOPs are not known here, so the cost "
                 "model is fitted from latency alone and nothing is priced in FLOPs (--config NAME on the run names a "
                 "local config of its architecture).")
    if endpoint.forcing == "none":
        text += " The server took no way of forcing the output length: each call's is what it wrote."
    if endpoint.usage_mismatches:
        text += (f" {len(endpoint.usage_mismatches)} calls reported other token counts than asked and are in no "
                 "figure (run.json: endpoint.usage_mismatches).")
    if endpoint.decode_rows_left_out:
        text += f" {endpoint.decode_rows_left_out} calls sent several tokens in a chunk: no decode time from them."
    if endpoint.failures:
        text += f" {len(endpoint.failures)} failed attempts were retried (run.json: endpoint.failures)."
    return text


def _disturbance_caveat(disturbance: Disturbance) -> str:
    text = f"Other work disturbed the machine during the sweep: {'; '.join(disturbance.seen())}."
    by_phase: dict[str, list[str]] = {}
    for point in disturbance.points:
        where = f"{point.n_ctx:,} in/{point.n_new} out" if point.phase == "generate" else f"{point.n_ctx:,}"
        by_phase.setdefault(point.phase, []).append(where)
    if by_phase:
        where = "; ".join(f"{phase} n = {', '.join(ns)}" for phase, ns in by_phase.items())
        text += (f" Measured while a reference pass was slow, or with repeats far apart: {where}. Read those "
                 "lengths with care.")
    if disturbance.brought_back:
        text += (" The pilot ran slow, so the plan was corrected and lengths it had dropped were measured after "
                 f"all: n = {', '.join(f'{n:,}' for n in disturbance.brought_back)}.")
    if disturbance.too_few_lengths:
        text += (f" Lengths were dropped for time while it was disturbed, so the fit rests on fewer than "
                 f"{MIN_FIT_LENGTHS} lengths: too few to fix a curve's form.")
    return text + " Run again on a quiet machine."


def _held_out_caveat(what: str, error: float, spread: float | None, loosely: str) -> str:
    """``what`` predicted a left-out point ``error`` off on average, set against the machine's own variation
    (``Disturbance.reference_spread``, where known): within ``MACHINE_EXPLAINS`` times it, the machine is what a
    quieter run would change; beyond it, the form (``loosely``: what follows from it)."""
    text = f"The {what} {error:.0%} off on average"
    if spread is None:
        return f"{text}: {loosely}."
    varied = f"(its reference passes were {spread:.0%} off their median on average)"
    if error <= MACHINE_EXPLAINS * spread:
        return (f"{text}, about as much as the machine's speed varied during the sweep {varied}: a quieter machine, "
                "not another form, would tighten it.")
    return f"{text}, more than the machine's own variation during the sweep explains {varied}: {loosely}."


def _one_length_batches(domain) -> str:
    """What holding out a batch measured at one length means, for those of a surface's ``domain`` (rows of batch,
    n_min, n_max); empty when every batch has two lengths or more."""
    batches = [f"{int(batch):,}" for batch, n_min, n_max in domain if n_min == n_max]
    if not batches:
        return ""
    named = batches[0] if len(batches) == 1 else f"{', '.join(batches[:-1])} and {batches[-1]}"
    return (f" Batch{'es' if len(batches) > 1 else ''} {named} {'were' if len(batches) > 1 else 'was'} measured at one "
            "length: held out, such a batch is a size the fit did not see, predicted from the others, so part of "
            "that error is what a batch size the run did not measure costs the fit (a larger --budget measures more).")


def _fit_caveats(data: RunData, calls: CallIntervals) -> list[str]:
    items = []
    disturbance = data.run.done.disturbance
    spread = disturbance.reference_spread if disturbance else None
    for phase, metrics in data.cost_model.curves.items():
        curve = metrics.get("latency_s")
        if curve is not None and curve.lolo_mape is not None and curve.lolo_mape > POOR_HELD_OUT:
            items.append(_held_out_caveat(f"{phase} curve predicts a left-out length", curve.lolo_mape, spread,
                                          "its form follows the samples loosely"))
    for phase, surface in data.cost_model.surfaces.items():
        if surface.held_out_mape > POOR_HELD_OUT:
            items.append(_held_out_caveat(f"{phase} batch surface predicts a left-out (batch, length)",
                                          surface.held_out_mape, spread, "batched calls are priced loosely")
                         + _one_length_batches(surface.domain))
    items += _extend_fit_caveats(data.cost_model, spread)
    points = data.points
    measured = points[points["phase"] == "generate"] if not points.empty else points
    for row in measured.itertuples():
        off = calls.call(int(row.n_ctx), int(row.n_new))[0] / row.median_latency_s - 1
        if abs(off) > POOR_CALL:
            items.append(f"The cost model prices the measured call {row.n_ctx} in/{row.n_new} out {off:+.0%} off "
                         "its measured time.")
    rows, held = data.cost_model.fit.source.get("rows"), len(data.samples) + len(data.batch_samples)
    if rows is not None and rows != held:
        items.append(f"The fit was made from {rows:,} sample rows; samples.csv now holds {held:,}. "
                     f"Refit with: python -m profiler fit {data.folder / 'samples.csv'}")
    return items


def _extend_fit_caveats(cost_model: CostModel, spread: float | None) -> list[str]:
    if not cost_model.has_extend:
        return []  # the extend section says so, once
    surface, items = cost_model.extend_surface(), []
    if surface.held_out_mape > POOR_HELD_OUT:
        items.append(_held_out_caveat("extend surface predicts a left-out (cached, appended) point",
                                      surface.held_out_mape, spread, "a call with a cached prefix is priced loosely"))
    where = {"prefill": "the prefill curve at c = 0", "decode": "the decode curve at s = 1"}
    for curve, off in surface.consistency.items():
        if off > POOR_CONSISTENCY:
            items.append(f"The extend surface is {off:.0%} off {where[curve]} on average, where the two should "
                         "coincide: a call priced with a cached prefix and the same call without differ by about as "
                         "much besides what the cache saves.")
    return items


CEILINGS_CAVEAT = ("The ceilings are short best-of-five microbenchmarks (a square matmul, a buffer copy); the roofline "
                   "bound counts the weights and KV cache as the bytes a pass must move, so it is a floor, not a target.")


def caveats(data: RunData, calls: CallIntervals, max_positions: int | None) -> list[str]:
    """Every caveat of a run's report; an endpoint run has no ceilings (the server's devices are not seen), so none
    about them."""
    ceilings = [] if data.run.endpoint is not None else [CEILINGS_CAVEAT]
    return (_run_caveats(data) + [extrapolation_caveat(calls, data.model_name, max_positions)]
            + _fit_caveats(data, calls) + [uncertainty_caveat()] + ceilings)
