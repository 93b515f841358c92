"""``python -m profiler run --endpoint URL --model NAME``: profile a served model through its OpenAI-compatible API.

``<out>/<endpoint-slug>/<model>/`` receives what a local run writes, so ``fit``, ``report`` and ``breakeven``
read it unchanged: ``samples.csv`` (each call's rows as it ends: ``profiler.measure.endpoint.rows``; the device
column is the endpoint's slug, weights and dtype ``served``), ``hardware.json`` (the endpoint, the client; no
ceilings: the server's devices cannot be seen from here), ``run.json`` (with ``endpoint``:
``profiler.measure.endpoint.endpoint_document``), ``concurrency.csv`` (one row per call of the concurrency sweep);
then the fit ``<fits>/<model>--<endpoint-slug>.json`` and the report.

``<model>`` is the local model's name where ``--config NAME`` (or the served name itself) resolves to a config
here (``profiler.measure.catalog``): FLOPs and the model's numbers come from it. Otherwise it is the served name
with its path separators made ``--``, the FLOPs cells are empty, and the cost model is fitted from latency alone
(``profiler.costmodel.fit_run``: no FLOPs curves, no parameter count). The lengths are the local run's default
grid over the model's maximum positions less the tokens a call writes: from the config, else from what the
server's ``GET /models`` says (vLLM's ``max_model_len``), else ``--lengths`` must say.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console

from profiler.errors import UserError
from profiler.files import hold_run_folder, run_folder
from profiler.measure.catalog import ModelSource, resolve_model
from profiler.measure.endpoint.address import Endpoint, endpoint_slug, parse_endpoint
from profiler.measure.endpoint.client import EndpointClient
from profiler.measure.endpoint.endpoint_document import ENDPOINT_DEVICE, EndpointRecord, endpoint_facts
from profiler.measure.endpoint.rows import SERVED, CallRows, ConcurrencyWriter
from profiler.measure.endpoint.sweep import N_OUT, EndpointOutcome, EndpointPlan, EndpointSweep, served_entry
from profiler.measure.energy import EnergyRecord
from profiler.measure.grid import default_lengths, parse_lengths
from profiler.measure.run_document import HardwareDocument, ModelRecord, RunAsked, RunDocument, RunDone
from profiler.measure.samples import read_samples
from profiler.measure.summary import point_table

CONCURRENCY_FILE = "concurrency.csv"
NO_ENERGY = "a served model: the server's devices and their energy counters cannot be read from a client"


@dataclass(frozen=True)
class EndpointRequest:
    """What the user asked for (``run --endpoint``); checked by ``run_endpoint`` before any call is sent."""

    url: str
    model: str
    api_key_env: str | None = None
    config: str | None = None
    lengths: str | None = None
    budget_s: float = 45.0
    concurrency: tuple[int, ...] = (1, 2, 4, 8)
    out: Path = Path("reports")
    fits: Path = Path("fits")
    seed: int = 0
    in_process: Path | None = None  # the fit of the same model in process: the report's serving overhead


def _local_model(request: EndpointRequest, console: Console):
    """The local config's source and architecture: ``--config``'s (a mistake in it is one line), else the served
    name's when it resolves here; ``(None, None)`` when neither is known."""
    from profiler.measure.loading import check_model, meta_architecture

    if request.config is None:
        try:
            source = resolve_model(request.model)
        except UserError:
            console.print(f"[yellow]no local config of {request.model!r}: FLOPs left empty, the cost model fitted from "
                          "latency alone (--config NAME names a local config of the same architecture)", markup=True)
            return None, None
    else:
        source = resolve_model(request.config)
    check_model(source)
    return source, meta_architecture(source)


def _flops_of(arch):
    """FLOPs of a row's pass from the architecture (``profiler.measure.flops``), None without one."""
    if arch is None:
        return lambda phase, n_ctx, n_new: None
    from profiler.measure.flops import generate_flops, pass_flops

    def flops_of(phase: str, n_ctx: int, n_new: int) -> int:
        if phase == "decode":
            return pass_flops(arch, 1, n_ctx + 1)
        if phase == "generate":
            return generate_flops(arch, n_ctx, n_new)
        return pass_flops(arch, n_new, n_ctx)  # prefill and forward: the whole prompt, nothing cached

    return flops_of


def _max_positions(arch, served: dict | None) -> tuple[int | None, str]:
    if arch is not None:
        return arch.max_positions, "config"
    if served and served.get("max_model_len"):
        return served["max_model_len"], "server"
    return None, "not known"


def _lengths(request: EndpointRequest, max_positions: int | None, name: str) -> list[int]:
    """The prompt lengths: each leaves ``N_OUT`` positions for the call's output."""
    if request.lengths is not None:
        lengths = parse_lengths(request.lengths)
        if max_positions is not None and lengths[-1] + N_OUT > max_positions:
            raise UserError(f"--lengths: {lengths[-1]} tokens and {N_OUT} out pass {name}'s maximum of "
                            f"{max_positions} positions (at most {max_positions - N_OUT} here)")
        return lengths
    if max_positions is None:
        raise UserError(f"--endpoint: the maximum context of {request.model!r} is not known (no local config, and the "
                        "server's /models does not say max_model_len): give --lengths, e.g. --lengths 8:2048")
    if max_positions <= N_OUT + 1:
        raise UserError(f"{name}: {max_positions} positions leave no prompt beside {N_OUT} tokens out")
    return default_lengths(max_positions - N_OUT)


def folder_name(served_model: str) -> str:
    """A served model's name as one folder name: path separators become ``--`` (as a hub id's do), leading ones
    and dots dropped."""
    return re.sub(r"[/\\]+", "--", served_model).lstrip("-.") or "served"


def _run_document(request: EndpointRequest, endpoint: Endpoint, name: str, source: ModelSource | None, arch,
                  max_positions: int | None, points: pd.DataFrame, rows: int, outcome: EndpointOutcome,
                  record: EndpointRecord) -> RunDocument:
    asked = RunAsked(model=endpoint.model, device=ENDPOINT_DEVICE, dtype=SERVED, lengths=request.lengths or "default",
                     budget_s=request.budget_s, seed=request.seed, attn_implementation=SERVED)
    architecture = arch.as_dict() if arch is not None else {"params": None, "max_positions": max_positions}
    model = ModelRecord(name=name, path=f"{endpoint.url} serving {endpoint.model}", found_in=ENDPOINT_DEVICE,
                        random_weights=False, dtype=SERVED, attn_implementation=SERVED, device_map=None, build_s=0.0,
                        architecture=architecture)
    unstable = (points[points["unstable"]][["phase", "batch", "n_ctx", "n_new"]].to_dict("records")
                if not points.empty else [])
    done = RunDone(lengths=outcome.lengths, rows=rows, elapsed_s=outcome.elapsed_s,
                   generate_pairs=[[n, N_OUT] for n in outcome.lengths], interrupted=outcome.interrupted,
                   skipped=outcome.skipped, peak_memory_measured=False, unstable_points=unstable,
                   finished_at=datetime.now().astimezone().isoformat(timespec="seconds"),
                   energy=EnergyRecord(reason=NO_ENERGY, passes=rows))
    return RunDocument(command=list(sys.argv), asked=asked, model=model, done=done,
                       points=points.to_dict("records"), endpoint=record)


def _record(endpoint: Endpoint, slug: str, source: ModelSource | None, max_positions_from: str,
            client: EndpointClient, outcome: EndpointOutcome, rows: CallRows, request: EndpointRequest,
            forcing: str) -> EndpointRecord:
    return EndpointRecord(
        url=endpoint.url, slug=slug, served_model=endpoint.model, api_key_env=endpoint.api_key_env, forcing=forcing,
        config=str(source.path) if source else None, max_positions_from=max_positions_from,
        prompt_overhead_tokens=outcome.shape.overhead_tokens if outcome.shape else None, n_out=N_OUT,
        calls=outcome.calls, usage_mismatches=outcome.mismatches, decode_rows_left_out=rows.decode_rows_left_out,
        itl_p50_s=float(np.percentile(rows.gaps_s, 50)) if rows.gaps_s else None,
        itl_p99_s=float(np.percentile(rows.gaps_s, 99)) if rows.gaps_s else None,
        failures=[failure.to_json() for failure in client.failures], concurrency_asked=list(request.concurrency),
        concurrency_n_in=outcome.concurrency_n_in, concurrency_rounds=outcome.concurrency_rounds,
        concurrency=outcome.concurrency, concurrency_skipped=outcome.concurrency_skipped,
        prefix_probe=outcome.prefix_probe, prefix_probe_skipped=outcome.prefix_probe_skipped, stopped=outcome.stopped)


def _print_outcome(console: Console, samples: pd.DataFrame, record: EndpointRecord, outcome: EndpointOutcome,
                   folder: Path) -> None:
    def median_ms(phase: str) -> str:
        rows = samples[samples["phase"] == phase]["latency_s"]
        return "-" if rows.empty else f"{rows.median() * 1e3:.2f} ms"

    itl = "-" if record.itl_p50_s is None else f"{record.itl_p50_s * 1e3:.2f} ms"
    console.print(f"{len(samples):,} rows from {record.calls} calls at {len(outcome.lengths)} lengths "
                  f"({', '.join(map(str, outcome.lengths)) or 'none'}); medians: TTFT {median_ms('prefill')}, ITL "
                  f"{itl} (a call's mean ITL {median_ms('decode')}), one-token call {median_ms('forward')}; output "
                  f"forced by {record.forcing}")
    if outcome.skipped:
        console.print(f"[yellow]not measured within the time budget: n = "
                      f"{', '.join(str(s['n_ctx']) for s in outcome.skipped)} (--budget to include them)")
    if record.usage_mismatches:
        console.print(f"[yellow]{len(record.usage_mismatches)} calls whose usage differed from what was asked: no "
                      "rows of them (run.json: endpoint.usage_mismatches)")
    if record.decode_rows_left_out:
        console.print(f"[yellow]{record.decode_rows_left_out} calls sent several tokens in a chunk: no decode rows "
                      "from them")
    if record.failures:
        console.print(f"[yellow]{len(record.failures)} failed attempts, retried (run.json: endpoint.failures)")
    for level in record.concurrency:
        console.print(f"concurrency {level.concurrency}: {level.calls} calls, {level.output_tokens_per_s:,.1f} "
                      f"tokens/s, {level.requests_per_s:,.2f} calls/s, TTFT p50 {level.ttft_p50_s * 1e3:.1f} ms p99 "
                      f"{level.ttft_p99_s * 1e3:.1f} ms, E2E p50 {level.e2e_p50_s * 1e3:.1f} ms")
    if record.concurrency_skipped:
        console.print(f"[yellow]no concurrency sweep: {record.concurrency_skipped}")
    probe = record.prefix_probe
    if probe:
        console.print(f"prefix probe at {probe.n_prefix} tokens: {probe.verdict} (repeat TTFT "
                      f"{probe.ttft_repeat_s * 1e3:.1f} ms, cold {min(probe.ttft_cold_s) * 1e3:.1f} ms at best)")
    elif record.prefix_probe_skipped:
        console.print(f"[yellow]no prefix probe: {record.prefix_probe_skipped}")
    if outcome.interrupted:
        console.print("[yellow]interrupted: everything measured so far is kept")
    console.print(f"measured in {outcome.elapsed_s:.1f} s; wrote {folder}/samples.csv, {CONCURRENCY_FILE}, run.json, "
                  "hardware.json")


def run_endpoint(request: EndpointRequest, console: Console) -> int:
    """Profile the served model; exit status 0. Ctrl-C raises ``KeyboardInterrupt``, and an endpoint that fails
    mid-run its ``UserError``, once what was measured is written."""
    from profiler.cli.fit import fit_and_print
    from profiler.cli.run import check_writable, keep_previous_run, open_samples
    from profiler.report.serving_overhead import load_in_process

    endpoint = parse_endpoint(request.url, request.model, request.api_key_env)
    if request.lengths is not None:
        parse_lengths(request.lengths)  # malformed: one line before anything else
    source, arch = _local_model(request, console)
    name = source.name if source else folder_name(endpoint.model)
    if request.in_process is not None:  # a fit of another model: one line before any request
        load_in_process(request.in_process, name)
    if arch is not None:  # the lengths checked against the config before any request
        _lengths(request, arch.max_positions, name)
    served = served_entry(endpoint)  # the first request: an endpoint that cannot be reached is one line here
    max_positions, max_positions_from = _max_positions(arch, served)
    lengths = _lengths(request, max_positions, name)
    slug = endpoint_slug(endpoint)
    folder = run_folder(request.out, slug, name)
    check_writable(request.out)
    check_writable(request.fits)
    with hold_run_folder(folder):
        check_writable(folder)
        kept = keep_previous_run(folder)
        if kept:
            console.print(f"the previous run in {folder} is kept in {kept}")
        HardwareDocument(slug=slug, facts=endpoint_facts(endpoint.url, endpoint.model), dtype=SERVED,
                         attn_implementation=SERVED, ceilings={}).write(folder)
        console.print(f"[bold]{endpoint.model}[/] at {endpoint.url} ({slug}): lengths {lengths[0]} to {lengths[-1]} "
                      f"({len(lengths)}), {N_OUT} tokens a call, budget {request.budget_s:g} s", markup=True)
        plan = EndpointPlan(lengths=lengths, budget_s=request.budget_s, concurrency_levels=list(request.concurrency),
                            seed=request.seed)
        with (open_samples(folder) as writer, ConcurrencyWriter(folder / CONCURRENCY_FILE) as load_rows,
              EndpointClient(endpoint) as client):
            rows = CallRows(writer, name, slug, _flops_of(arch))
            outcome = EndpointSweep(client, rows, load_rows, plan, say=console.print).run()
            forcing = client.forcing if outcome.shape else "not probed"
            record = _record(endpoint, slug, source, max_positions_from, client, outcome, rows, request, forcing)
        samples = read_samples(folder / "samples.csv")
        points = point_table(samples)  # no ceilings, no memory: a client sees neither
        _run_document(request, endpoint, name, source, arch, max_positions, points, writer.rows, outcome,
                      record).write(folder)
        _print_outcome(console, samples, record, outcome, folder)
        if outcome.interrupted:
            raise KeyboardInterrupt  # what was measured is written; the CLI ends with exit status 130
        if outcome.stopped:
            raise UserError(outcome.stopped)
        try:
            cost_model = fit_and_print(folder, request.fits, console)
        except UserError as err:  # the measurements stand; only the curves could not be fitted
            console.print(f"[yellow]no cost model fitted: {err}")
            return 0
        _report(folder, cost_model, request, console)
    return 0


def _report(folder: Path, cost_model, request: EndpointRequest, console: Console) -> None:
    from profiler.report import write_report  # matplotlib: only once there is something to draw

    try:
        written = write_report(folder, request.fits, cost_model=cost_model, in_process=request.in_process)
    except UserError as err:  # the measurements and the fit stand
        console.print(f"[yellow]no report written: {err}")
        return
    console.print(f"report: {written.markdown}, {written.html} ({len(written.figures)} figures, "
                  f"{written.render_s:.1f} s)")
