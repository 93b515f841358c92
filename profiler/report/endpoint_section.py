"""The report's sections of an endpoint run (``run --endpoint``): what the server was and did, and its overhead.

"Endpoint", from ``run.json``'s endpoint record (``profiler.measure.endpoint.endpoint_document``): the URL
(scheme, host, port and path only: ``shown_url``; the key, read from an environment variable, is in no file), how
the output length was forced, the calibration, usage mismatches, failed attempts, the length sweep's gaps between
tokens; the concurrency sweep as a table and a figure (``fig_endpoint.concurrency_figure``); the prefix-reuse
probe's TTFTs and verdict. Metrics as ``profiler.measure.endpoint.load`` defines them (vLLM's benchmark).

"Serving overhead": with an in-process fit of the same model (``profiler.report.serving_overhead``), the first
token and each later one against it, as two tables and a figure (``fig_endpoint.overhead_figure``); without
one, the commands that make one and render it in.

A local run gets neither section.
"""

from __future__ import annotations

from collections import Counter
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

from profiler.costmodel.cost_model import CostModel
from profiler.costmodel.uncertainty import CallIntervals
from profiler.measure.endpoint.endpoint_document import EndpointRecord
from profiler.measure.endpoint.load import REUSE_RATIO
from profiler.report import style
from profiler.report.curves import FitSeries
from profiler.report.document import Bullets, ReportContext, Section, Table
from profiler.report.fig_endpoint import concurrency_figure, overhead_figure
from profiler.report.serving_overhead import OverheadRow, overhead_summary, serving_overhead
from profiler.report.units import quantity, significant

FORCING = {
    "ignore_eos": "forced by ignore_eos and min_tokens (as vLLM and SGLang take them)",
    "generation_config": "forced by generation_config's min_new_tokens (as transformers serve takes it)",
    "none": "not forced: the server took no way of forcing it, so each call's output is what it wrote (at most "
            "max_tokens)",
    "not probed": "not probed: the run ended before its first call",
}
MISMATCHES_SHOWN = 3


def shown_url(url: str) -> str:
    """``url`` as scheme, host, port and path: no user, password, query or fragment, whatever the record holds."""
    parts = urlsplit(url)
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname or ""
    return f"{parts.scheme}://{host}{'' if parts.port is None else f':{parts.port}'}{parts.path}"


def _ms(value: float | None) -> str:
    return "-" if value is None else quantity(value, "s")


def _checks(endpoint: EndpointRecord) -> list[str]:
    calibrated = ("Prompts not calibrated: the run ended first." if endpoint.prompt_overhead_tokens is None else
                  "Prompts of exact lengths, calibrated by the server's usage: one token a word, and "
                  f"{endpoint.prompt_overhead_tokens} tokens it adds to every prompt.")
    items = [f"Output length {FORCING.get(endpoint.forcing, endpoint.forcing)}.", calibrated]
    mismatches = endpoint.usage_mismatches
    if mismatches:
        shown = "; ".join(f"asked {m.prompt_tokens_asked} prompt tokens and {m.max_tokens} out, counted "
                          f"{'none' if m.prompt_tokens is None else m.prompt_tokens} and "
                          f"{'none' if m.completion_tokens is None else m.completion_tokens} ({m.part})"
                          for m in mismatches[:MISMATCHES_SHOWN])
        items.append(f"{len(mismatches)} calls whose usage differed from what was asked, in no row and no figure "
                     f"(run.json: endpoint.usage_mismatches): {shown}" + ("; ..." if len(mismatches) > MISMATCHES_SHOWN
                                                                          else "."))
    else:
        items.append("Every call's usage was what was asked.")
    kinds = Counter(failure.get("kind", "unknown") for failure in endpoint.failures)
    items.append((f"{len(endpoint.failures)} failed attempts, each retried: "
                  + ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
                  + " (run.json: endpoint.failures).") if endpoint.failures else "No attempt failed.")
    if endpoint.decode_rows_left_out:
        items.append(f"{endpoint.decode_rows_left_out} calls sent several tokens in a chunk: no decode row from them.")
    if endpoint.itl_p50_s is not None:
        items.append(f"Gaps between tokens (ITL) over the length sweep's calls: p50 {_ms(endpoint.itl_p50_s)}, "
                     f"p99 {_ms(endpoint.itl_p99_s)}.")
    if endpoint.stopped:
        items.append(f"The run ended before its budget: {endpoint.stopped}")
    return items


def _load(ctx: ReportContext, endpoint: EndpointRecord) -> list:
    if not endpoint.concurrency:
        return [f"No concurrency sweep: {endpoint.concurrency_skipped or 'no level measured'}."]
    text = (f"Under load: at each level C, {endpoint.concurrency_rounds} rounds of C calls released together, each a "
            f"prompt of {endpoint.concurrency_n_in} fresh tokens asking {endpoint.n_out}; a round ends with its "
            "slowest call (a closed loop of C callers). Throughput: the output tokens (the server's count) and the "
            "calls over the level's wall time. TTFT: to the first token; TPOT: a call's (E2E - TTFT) over its "
            "tokens after the first; ITL: each gap between tokens, pooled; E2E: the whole call. p50 and p99 over "
            "the level's calls (ITL: its gaps), numpy's linear percentiles, as vLLM's benchmark takes them.")
    columns = ("calls at once", "calls", "output tokens/s", "calls/s", "TTFT p50", "TTFT p99", "TPOT p50", "TPOT p99",
               "ITL p50", "ITL p99", "E2E p50", "E2E p99")
    percentiles = [f"{key}_{p}_s" for key in ("ttft", "tpot", "itl", "e2e") for p in ("p50", "p99")]
    rows = tuple((str(level.concurrency), str(level.calls), significant(level.output_tokens_per_s),
                  significant(level.requests_per_s), *(_ms(getattr(level, name)) for name in percentiles))
                 for level in endpoint.concurrency)
    asked = [c for c in endpoint.concurrency_asked if c not in {level.concurrency for level in endpoint.concurrency}]
    table = Table(columns, rows, numeric=(True,) * len(columns),
                  note=f"Not reached within the budget: {', '.join(map(str, asked))} at once." if asked else "")
    figure = ctx.save_figure(partial(concurrency_figure, endpoint.concurrency), "concurrency",
                             "Throughput (left) and the p50 (solid) and p99 (dashed) of TTFT, TPOT and E2E (right) "
                             "against the calls at once.")
    return [text, table, figure]


def _probe(endpoint: EndpointRecord) -> str:
    probe = endpoint.prefix_probe
    if probe is None:
        return f"No prefix-reuse probe: {endpoint.prefix_probe_skipped or 'not run'}."
    cached = ("; the server reported no cached tokens" if probe.cached_tokens is None else
              f"; the server reported {probe.cached_tokens} cached tokens for the repeat")
    return (f"Prefix reuse: the same prompt of {probe.n_prefix} tokens sent twice, with a fresh one between and one "
            f"after: TTFT {_ms(probe.ttft_repeat_s)} for the repeat, "
            f"{', '.join(_ms(ttft) for ttft in probe.ttft_cold_s)} for the fresh ones{cached}. Verdict: "
            f"{probe.verdict} (the server caches when it reports cached tokens or the repeat takes under "
            f"{REUSE_RATIO:g} times the fastest fresh TTFT; a prefill short beside the server's overhead per call can "
            "hide a cache).")


def _endpoint(ctx: ReportContext, endpoint: EndpointRecord) -> Section:
    key = (f"the key read from the environment variable {endpoint.api_key_env} (written nowhere)"
           if endpoint.api_key_env else "no key")
    intro = (f"{endpoint.served_model} served at {shown_url(endpoint.url)}, measured from a client with {key}: "
             f"{endpoint.calls} calls over the lengths, each a streamed completion of a prompt of exactly n tokens of "
             f"fresh random words asking {endpoint.n_out} tokens (its prefill, decode and generate rows) or one "
             "(its forward row). Prefill is the time to the first token (TTFT), decode a call's mean gap between "
             "tokens at the mean context of its steps, generate the whole call (E2E), forward a one-token call.")
    return Section("Endpoint", (intro, Bullets(tuple(_checks(endpoint))), *_load(ctx, endpoint), _probe(endpoint)))


def _overhead_table(rows: list[OverheadRow], length: str, measured: str, curve: str, overhead: str) -> Table:
    return Table((length, "calls", measured, curve, overhead),
                 tuple((f"{row.n_ctx:,}", str(row.calls), _ms(row.endpoint_s),
                        _ms(row.in_process_s) + ("" if row.inside else " (extrapolated)"), _ms(row.overhead_s))
                       for row in rows), numeric=(True,) * 5)


def _overhead(ctx: ReportContext, endpoint: EndpointRecord, in_process: CostModel | None, fits: Path) -> Section:
    if in_process is None:
        name = ctx.run.model.name
        key = f" --api-key-env {endpoint.api_key_env}" if endpoint.api_key_env else ""
        if endpoint.config is None:
            how = ("The served model is no local model here, and an in-process profile must name the same model: "
                   "profile a local model of the same architecture in process on the machine that runs the server, "
                   f"then the endpoint again under that model's name: `python -m profiler run --model NAME --fits "
                   f"{fits}`, then `python -m profiler run --endpoint {shown_url(endpoint.url)} --model "
                   f"{endpoint.served_model}{key} --config NAME --fits {fits} --in-process "
                   f"{fits}/<model>--<hardware-slug>.json` (the fit the first run wrote: it prints its path).")
        else:
            how = (f"Profile the same model in process on the machine that runs the server, then render this report "
                   f"with its fit: `python -m profiler run --model {endpoint.config} --fits {fits}`, then "
                   f"`python -m profiler report {ctx.folder} --fits {fits} --in-process "
                   f"{fits}/{name}--<hardware-slug>.json` (the run prints its fit's path; `run --endpoint ... "
                   "--in-process FIT` does the same when the fit is made first).")
        return Section("Serving overhead", ("No in-process profile of this model was given, so the serving overhead "
                                            "is not shown. " + how,))
    first = serving_overhead(ctx.samples, in_process, "prefill")
    later = serving_overhead(ctx.samples, in_process, "decode")
    blocks: list = [
        f"The endpoint against an in-process profile of the same model (the fit of {in_process.model.name} on "
        f"{in_process.hardware_slug}, {in_process.model.dtype}; the server is taken to run it alike): what serving "
        "adds to a call, the HTTP request, queueing, tokenising, the generation loop and the stream. Overhead per "
        "call (first token): TTFT less the in-process prefill, " + (overhead_summary(first) if first else "-")
        + ". Overhead per token: the mean gap between tokens less the in-process decode step, "
        + (overhead_summary(later) if later else "-") + "."]
    if first:
        blocks.append(_overhead_table(first, "prompt tokens", "TTFT (median)", "in-process prefill",
                                      "overhead per call"))
    if later:
        blocks.append(_overhead_table(later, "context (tokens)", "gap between tokens (median)", "in-process decode",
                                      "overhead per token"))
    if first and later:
        series = FitSeries(in_process.model.name, style.PHASE_COLORS["prefill"], CallIntervals(in_process),
                           in_process.model.max_positions)
        blocks.append(ctx.save_figure(partial(overhead_figure, ctx.samples, series), "serving-overhead",
                                      "The endpoint's TTFT (left) and gap between tokens (right), every call and "
                                      "the medians, against the in-process prefill and decode curves with their "
                                      "95% bands: the distance between them is the serving overhead."))
    return Section("Serving overhead", tuple(blocks))


def endpoint_sections(ctx: ReportContext, in_process: CostModel | None, fits: Path) -> list[Section]:
    """The endpoint run's two sections (none for a local run); ``in_process``: the in-process fit of the same
    model (``serving_overhead.load_in_process``) or None; ``fits``: where this run's fit is (for the commands)."""
    endpoint = ctx.run.endpoint
    if endpoint is None:
        return []
    return [_endpoint(ctx, endpoint), _overhead(ctx, endpoint, in_process, fits)]
