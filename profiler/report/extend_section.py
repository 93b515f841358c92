"""The report's section on a cached prefix: the extend pass, and what reusing a prefix saves a call.

A fit with the extend surface (``profiler.costmodel.extend``, since schema 1.6) gets the extend
figure (``profiler.report.fig_extend``), a table of the surface (form, coefficients with 95%
intervals, R^2, held-out error over (c, s), the measured domain, its distance from the prefill
and decode curves), and a table of what a cached prefix saves typical calls (``prefix_calls``):
each priced by ``CostModel.call`` without and with ``cached=p``, the share saved, and whether the
call stays inside the measured domain. A run that extended caches but whose fit has no surface
says why (``source.extend_skipped``) and how to get one; a run without extend passes (every run
and fit before them) gets one sentence, and nothing else in the report says it again.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import partial

from profiler.costmodel.cost_model import CostModel, ExtrapolationWarning
from profiler.costmodel.extend import ExtendFit
from profiler.lba.calls import positions_needed
from profiler.report.batch_section import coefficients_text
from profiler.report.calls import impossible
from profiler.report.document import ReportContext, Section, Table
from profiler.report.fig_extend import extend_figure, extend_samples, savings
from profiler.report.inputs import RunData
from profiler.report.units import quantity, share

TITLE = "A cached prefix: new tokens on a KV cache"
NOT_MEASURED = ("This run timed no pass on a cache of several tokens and its fit has no extend surface, so this "
                "report cannot say what a cached prefix (a system prompt, a chat's history) saves: `python -m "
                "profiler run` measures extend passes, and its fit prices a call whose first tokens are cached (and the "
                "break-even section then what a system prompt costs the exercises with and without reuse).")
_PER = {"a": "", "m": "", "b": "/token", "g": "/cached token", "e": "/(token·cached token)", "f": "/token²"}
SYSTEM_PROMPTS = (200, 2000)  # tokens: a short and a long system prompt
QUESTION, ANSWER = 100, 100  # tokens of a question (or a chat message) and of the answer


@dataclass(frozen=True)
class PrefixCall:
    """A call reading ``n_in`` tokens, the first ``cached`` of them a prefix the model holds, writing ``n_out``."""

    what: str
    n_in: int
    cached: int
    n_out: int


def prefix_calls(model_name: str, max_positions: int | None) -> list[PrefixCall]:
    """Typical calls with a cached prefix: a question after a system prompt of each of ``SYSTEM_PROMPTS`` tokens,
    and a chat turn, a message after a history of half the model's positions (4,096 tokens when they are not
    recorded; message and answer at most an eighth of them each)."""
    calls = [PrefixCall(f"system prompt of {prompt:,} tokens, a {QUESTION}-token question", prompt + QUESTION,
                        prompt, ANSWER) for prompt in SYSTEM_PROMPTS]
    history = max_positions // 2 if max_positions else 4096
    message = min(QUESTION, max_positions // 8) if max_positions else QUESTION
    half = f" (half {model_name}'s positions)" if max_positions else ""
    calls.append(PrefixCall(f"chat turn: {history:,} tokens of history{half}, a {message}-token message",
                            history + message, history, message))
    return calls


def _warns(price) -> bool:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ExtrapolationWarning)
        price()
    return any(issubclass(w.category, ExtrapolationWarning) for w in caught)


def domain_note(cost_model: CostModel, call: PrefixCall) -> str:
    """Whether pricing ``call`` with and without its cached prefix stays inside what was measured, in words."""
    surface = cost_model.extend_surface()
    outside = []
    if surface.outside(call.cached, call.n_in - call.cached):
        outside.append(f"its extend pass passes the measured c ≤ {surface.c_max:,}, s ≤ {surface.s_max:,}, "
                       f"c + s ≤ {surface.positions_max:,}")
    if _warns(lambda: cost_model.call(call.n_in, call.n_out)):
        outside.append("its passes without the cache reach beyond the measured lengths")
    return "extrapolated: " + "; ".join(outside) if outside else "inside the measured domain"


def savings_table(cost_model: CostModel, model_name: str, max_positions: int | None) -> Table:
    """What a cached prefix saves each of ``prefix_calls``: seconds without and with it, the share saved."""
    rows = []
    for call in prefix_calls(model_name, max_positions):
        shape = (call.what, f"{call.n_in:,}", f"{call.cached:,}", f"{call.n_out:,}")
        if impossible(call.n_in, call.n_out, max_positions):
            rows.append((*shape, "-", "-", "-", "-", f"cannot run: needs {positions_needed(call.n_in, call.n_out):,} "
                                                 f"positions, {model_name} takes {max_positions:,}"))
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExtrapolationWarning)  # said in the note
            uncached = cost_model.call(call.n_in, call.n_out)
            cached = cost_model.call(call.n_in, call.n_out, cached=call.cached)
        first = savings(cost_model, call.cached, call.n_in - call.cached)
        rows.append((*shape, quantity(uncached, "s"), quantity(cached, "s"), share(1 - cached / uncached),
                     share(first), domain_note(cost_model, call)))
    return Table(
        columns=("call", "in", "of them cached", "out", "no reuse", "prefix cached", "saved", "first pass saved",
                 "note"),
        rows=tuple(rows), numeric=(False, True, True, True, True, True, True, True, False),
        note="Tokens; seconds by the fitted costs, with a KV cache within the call. No reuse: a prefill of every "
             "input token, then a decode step per further token out. Prefix cached: the first tokens already in "
             "the model's KV cache (kept from an earlier call), so the first pass appends only the rest to them "
             "(extend), then the same decode steps. Saved: the share of the whole call's time; first pass saved: of its "
             "first pass alone (the time to the first token out).")


def surface_table(surface: ExtendFit) -> Table:
    consistency = surface.consistency
    row = (surface.form.name, surface.form.formula.replace("*", "·").replace("^2", "²"),
           coefficients_text(surface, _PER), f"{surface.r2:.4f}",
           f"{surface.held_out_mape:.1%} ({surface.held_out_points:,} points)",
           f"c 0-{surface.c_max:,}, s 1-{surface.s_max:,}, c + s ≤ {surface.positions_max:,}",
           f"prefill {consistency['prefill']:.1%}, decode {consistency['decode']:.1%}")
    return Table(columns=("form", "formula", "coefficients [95%]", "R² (log)", "held-out error over (c, s)",
                          "measured", "off the curves"),
                 rows=(row,), numeric=(False, False, False, True, True, False, True),
                 note="Seconds of one pass appending s new tokens to c cached ones (at c = 0 a prefill of s, at "
                      "s = 1 a decode step on c). a: per pass; m: per pass of several new tokens beyond a "
                      "single-token step (the two-kernel forms: a CPU's BLAS runs a one-row product as a "
                      "matrix-vector product, several rows with matrix-product kernels); b: per new token "
                      "(projections, MLP); g: per cached token, read (and copied onto, by transformers' cache) once a "
                      "pass whatever s; e: per new token per cached token (attention to the cache); f: per new "
                      "token² (the new tokens attending to each other). The attention form is kept unless the "
                      "cache-read form's AICc is clearly lower, and the two-kernel or two-kernel-read form (which has "
                      "both m and g) only where its AICc is clearly lower than both. Held-out error: each "
                      "measured (c, s) left out in turn and predicted by a refit (mean absolute percentage error). "
                      "Off the curves: mean distance of the surface from the prefill curve at c = 0 and from the "
                      "decode curve at s = 1, at their measured lengths.")


def _no_surface(data: RunData) -> str:
    why = data.cost_model.fit.source.get("extend_skipped")
    return ("The run extended caches, but the fit has no extend surface" + (f" ({why})" if why else "")
            + f": refit it with `python -m profiler fit {data.folder / 'samples.csv'}`, or measure more extend "
            "points (a larger --budget); until then a call is priced as if nothing were cached.")


def extend_section(ctx: ReportContext, data: RunData) -> Section:
    """The section (see the module doc): the figure and the tables; why there is no surface; or one sentence."""
    cost_model = ctx.cost_model
    extended = (data.samples["phase"] == "extend").any()
    if not cost_model.has_extend:
        return Section(TITLE, (_no_surface(data) if extended else NOT_MEASURED,))
    surface = cost_model.extend_surface()
    max_positions = data.run.model.max_positions
    timed = extend_samples(data.samples)
    blocks: list = [
        ("A call whose input starts with tokens the model already holds in its KV cache (a system prompt every "
         "call shares, a conversation's history) need not read them again: its first pass appends only the new "
         "tokens s to the c cached ones. This is the extend pass (a prefill is one on an empty cache, a decode "
         f"step one of a single token); {len(timed[timed['phase'] == 'extend']):,} were timed here, fitted with "
         "the prefills and decode steps into one surface T(c, s). The break-even section prices the paper's "
         "programs with a prefix cache by it."),
        ctx.save_figure(partial(extend_figure, cost_model, data.samples, max_positions), "extend",
                        "Left: latency of one pass against the new tokens s, at a few cached lengths c: timed passes "
                        "and the fitted extend surface with its 95% band. Right: the share of a call's first pass a "
                        "cached prefix of c tokens saves, over (c, s)."),
        surface_table(surface),
        "What a cached prefix saves typical calls, by the fitted costs:",
        savings_table(cost_model, data.model_name, max_positions)]
    return Section(TITLE, tuple(blocks))
