"""The facts a reader checks first: the machine and its measured ceilings, the model, the
libraries, the run, and the fitted curves with their intervals and quality.

Each ``*_facts`` function returns (what, value) pairs from a ``hardware.json``, a model
description (``run.json``'s or a fit file's) or a ``run.json``; ``compare`` sets two side by side.
"""

from __future__ import annotations

from profiler.costmodel.cost_model import CostModel
from profiler.costmodel.fit import FLOPS_GROWTH_MAX, CurveFit
from profiler.measure.run_document import RunDocument, RunDone
from profiler.report.document import Table
from profiler.report.units import quantity, scale, significant

_POWERS = {"a": "", "b": "/token", "c": "/token²"}
NEGLIGIBLE_TOKENS_SHARE = 0.01  # a phase's tokens adding less than this to a pass up to the last position: said so


def machine_facts(hardware: dict, ceilings: dict) -> list[tuple[str, str]]:
    """The machine in a few lines: ``hardware`` its fingerprint (``profiler.measure.hardware``),
    ``ceilings`` its measured matmul peak and memory bandwidth (empty when not measured)."""
    if hardware.get("device") == "endpoint":  # a served model: only what a client sees
        return [("endpoint", f"{hardware.get('endpoint')}, serving {hardware.get('served_model')}"),
                ("client", f"Python {hardware.get('python')}, httpx2 {hardware.get('httpx2')}, "
                           f"{hardware.get('client_os')}")]
    facts = []
    if hardware.get("device") == "cuda":
        count = hardware.get("gpu_count", 1)
        gpu = f"{count} x " if count and count > 1 else ""
        memory = quantity(hardware["gpu_memory_bytes"], "bytes")
        facts.append(("device", f"GPU: {gpu}{hardware.get('gpu_name')}, {memory}, driver {hardware.get('gpu_driver')}, "
                                f"CUDA {hardware.get('cuda')}"))
        facts.append(("host CPU", f"{hardware.get('cpu_model')}, {hardware.get('cpu_cores')} cores"))
    else:
        facts.append(("device", f"CPU: {hardware.get('cpu_model')}, {hardware.get('cpu_cores')} cores, "
                                f"{hardware.get('torch_threads')} torch threads"))
    if hardware.get("memory_bytes"):
        facts.append(("machine memory", quantity(hardware["memory_bytes"], "bytes")))
    if ceilings:
        facts.append(("measured matmul peak", f"{quantity(ceilings['peak_matmul_flops_per_s'], 'FLOP/s')} "
                                              f"({ceilings.get('matmul_dtype', '?')})"))
        facts.append(("measured memory bandwidth", quantity(ceilings["memory_bandwidth_bytes_per_s"], "B/s")))
    facts.append(("libraries", f"Python {hardware.get('python')}, torch {hardware.get('torch')}, "
                               f"transformers {hardware.get('transformers')}"))
    facts.append(("operating system", str(hardware.get("os"))))
    return facts


def weights_text(model: dict) -> str:
    if model.get("found_in") == "endpoint":
        return "the server's own (not visible to a client; cost does not depend on weight values)"
    return ("random (built from its config; cost does not depend on weight values)" if model["random_weights"]
            else "trained (safetensors)")


def model_facts(model: dict) -> list[tuple[str, str]]:
    """The model's facts; a served model whose architecture is not known here (no ``params``) says so."""
    known = model.get("params") is not None
    shape = (f"{model['layers']} layers, hidden {model['hidden']:,}, {model['heads']} heads ({model['kv_heads']} KV)"
             if known else "not known here (no local config of the served model)")
    facts = [
        ("model", f"{model['name']} ({model.get('model_type', '?')})"),
        *([("part measured", model["part_measured"])] if model.get("part_measured") else []),
        ("parameters", f"{model['params'] / 1e6:,.1f}M ({model['non_embedding_params'] / 1e6:,.1f}M non-embedding)"
                       if known else "not known here"),
        ("shape", shape),
        ("maximum positions", f"{model['max_positions']:,}" if model.get("max_positions") else "not recorded"),
        ("dtype, attention", f"{model['dtype']}, {model['attn_implementation']}"
                             + (f" ({model['attn_fallback']})" if model.get("attn_fallback") else "")),
        ("weights", weights_text(model)),
    ]
    if model.get("path"):
        facts.append(("loaded from", f"{model['path']} ({model.get('found_in', '?')})"))
    return facts


def _measured_pairs(done: RunDone) -> list[tuple[int, int]]:
    """The generate pairs planned less those the run left out: over its time budget (said with the pair's
    ``n_ctx`` and ``n_new``) or beyond memory (said with its total, ``n_ctx``)."""
    left_out = [s for s in done.skipped if s.get("phase") == "generate"]
    return [(n_in, n_out) for n_in, n_out in done.generate_pairs
            if not any((s["n_ctx"], s.get("n_new")) in ((n_in, n_out), (n_in + n_out, None)) for s in left_out)]


def run_facts(run: RunDocument) -> list[tuple[str, str]]:
    done, asked = run.done, run.asked
    pairs = ", ".join(f"{n_in} in/{n_out} out" for n_in, n_out in _measured_pairs(done)) or "none"
    budget = f"budget {'?' if asked.budget_s is None else f'{asked.budget_s:g}'} s per model"
    if done.budget_raised_to_s is not None:
        budget += f", raised to {done.budget_raised_to_s:g} s for the curves"
    seed = "?" if asked.seed is None else asked.seed
    caches = [] if done.caches_prefilled is None else [
        ("decode and extend caches", f"built by prefills, at their cost: {done.caches_prefilled}")]
    return [
        ("context lengths measured", ", ".join(f"{n:,}" for n in done.lengths) or "none"),
        ("whole calls measured", pairs),
        ("samples", f"{done.rows:,} timed passes in {done.elapsed_s:.0f} s ({budget}, seed {seed})"),
        *caches,
        ("command", command_text(run.command)),
    ]


def command_text(argv: list[str]) -> str:
    """The command as typed: ``python -m profiler ...`` for the package's ``__main__.py``."""
    if not argv:
        return "not recorded"
    first = "python -m profiler" if str(argv[0]).endswith("__main__.py") else str(argv[0])
    return " ".join([first] + [str(part) for part in argv[1:]])


def facts_table(heading: str, facts: list[tuple[str, str]]) -> Table:
    return Table(columns=(heading, ""), rows=tuple(facts))


def formula(curve: CurveFit) -> str:
    """The curve's form as people write it: ``a + b·n + c·n²``, ``a + b·n^p``."""
    return curve.form.formula.replace("*", "·").replace("^2", "²")


def coefficients_text(curve: CurveFit) -> str:
    """A latency curve's coefficients with their 95% intervals, each in its own unit:
    ``a = 41.8 ms [41.1, 42.5]; b = 645 µs/token [628, 663]`` (``p`` of a power form has none)."""
    parts = []
    for name, value, (low, high) in zip(curve.form.params, curve.theta, curve.ci95):
        factor, unit = (1.0, "") if name == "p" else scale(value, "s")
        per = "" if name == "p" else "/token^p" if curve.form.name == "power" and name == "b" else _POWERS[name]
        low_text, high_text = significant(low / factor), significant(high / factor)
        text = f"{name} = {significant(value / factor)}{' ' + unit if unit else ''}{per}"
        parts.append(text if low_text == high_text else f"{text} [{low_text}, {high_text}]")
    return "; ".join(parts)


def fit_table(cost_model: CostModel) -> Table:
    rows = []
    for phase, metrics in cost_model.curves.items():
        curve = metrics.get("latency_s")
        if curve is None:
            continue
        mape = "-" if curve.lolo_mape is None else f"{curve.lolo_mape:.1%}"
        rows.append((phase, formula(curve), coefficients_text(curve), f"{curve.r2:.4f}", mape,
                     f"{curve.n_min:,}-{curve.n_max:,}"))
    return Table(columns=("phase", "form", "coefficients [95%]", "R² (log)", "held-out error", "measured n"),
                 rows=tuple(rows), numeric=(False, False, False, True, True, True),
                 note="Latency per pass; n in tokens. The form is chosen by AICc among a + b·n, a + b·n + c·n² and "
                      "a + b·n^p. Held-out error: each measured length left out in turn and predicted by a refit "
                      "(mean absolute percentage error).")


def derived_lines(cost_model: CostModel, max_positions: int | None) -> list[str]:
    """Per phase: per-pass overhead, average cost per token (where the model's positions would add under
    ``NEGLIGIBLE_TOKENS_SHARE`` of the overhead, that instead: a fitted slope near zero), and where the quadratic
    term reaches 10% and 50% of the cost (past the model's maximum positions: it never does on this model; a larger
    share then goes unsaid, as it does after a share never reached); where the curve's growth reached its FLOPs'
    ceiling (``profiler.costmodel.fit.growth_ceilings``), that."""
    lines = []
    for phase, derived in cost_model.derived.items():
        tokens, add = ("the context", "adds") if phase == "decode" else ("the tokens", "add")
        per_token_s, overhead_s = derived["cost_per_token_s"], derived["overhead_s"]
        if max_positions and abs(per_token_s) * max_positions < NEGLIGIBLE_TOKENS_SHARE * overhead_s:
            line = (f"{phase}: {quantity(overhead_s, 's')} per pass; {tokens} up to the model's {max_positions:,} "
                    f"positions {add} under {NEGLIGIBLE_TOKENS_SHARE:.0%} to it")
        else:
            per_token = "per token of context" if phase == "decode" else "per token"
            line = (f"{phase}: {quantity(overhead_s, 's')} per pass plus {quantity(per_token_s, 's')} {per_token} on "
                    "average over the measured lengths")
        if derived.get("growth_at_ceiling"):
            line += (f"; its growth beyond linear held at {FLOPS_GROWTH_MAX:g} times the FLOPs' (the samples bent "
                     "further: over a short range a slow stretch reads as attention)")
        for share, horizon in derived.get("linearity_horizon", {}).items():
            n = horizon["n_ctx"]
            if n is None:
                line += f"; the quadratic term never reaches {share} (linear)"
                break
            if max_positions and n > max_positions:
                line += f"; the quadratic term stays under {share} up to the model's {max_positions:,} positions"
                break
            where = "" if horizon["within_measured_range"] else " (beyond the measured lengths)"
            line += f"; the quadratic term is {share} of the cost at n = {n:,.0f}{where}"
        lines.append(line + ".")
    return lines
