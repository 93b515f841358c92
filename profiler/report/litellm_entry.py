"""A fitted cost model as a LiteLLM custom-pricing entry: per-token prices at a stated typical call.

LiteLLM prices a call as ``prompt tokens x input_cost_per_token + completion tokens x
output_cost_per_token``, the prompt tokens read from its cache at ``cache_read_input_token_cost``
instead (the keys of its ``model_prices_and_context_window.json``, which ``litellm.register_model``
takes). A fitted call is no such sum -- a pass costs more the longer its context -- so the prices are
set at one typical call of ``n_in`` input and ``n_out`` output tokens, from local hardware at
``usd_per_device_hour`` (its fitted seconds times the rate over 3,600), such that they reproduce that
call's cost exactly:

- ``input_cost_per_token``: the call's prefill (the pass that reads the input and emits the first
  output token) over its ``n_in`` input tokens;
- ``output_cost_per_token``: its ``n_out - 1`` decode steps over its ``n_out`` output tokens (0 for one
  token out);
- ``cache_read_input_token_cost`` (a fit with the extend surface): the same call with its first
  ``cached = n_in // 2`` tokens in the KV cache (one extend pass over the rest, then the decode steps)
  costs ``(n_in - cached) x input + cached x this + n_out x output``. Left out, with the reason in the
  assumptions, where that point is outside the measured extend surface or the price would be below 0.

``litellm_entry`` returns ``{name: entry}`` for ``litellm.register_model``; the entry adds the typical
call (``aalp_typical_call``), the rate (``aalp_usd_per_device_hour``) and, in words, what the prices rest
on (``aalp_assumptions``): LiteLLM keeps keys it does not know.
"""

from __future__ import annotations

import warnings

from profiler.costmodel.cost_model import CostModel, ExtrapolationWarning
from profiler.lba.dollars import SECONDS_PER_HOUR

LITELLM_PROVIDER = "custom"  # a model served by the user: edit to the provider LiteLLM routes it through
MODE = "completion"


def _seconds(cost_model: CostModel, n_in: int, n_out: int, cached: int = 0) -> float:
    with warnings.catch_warnings():  # the typical call is checked inside the measured lengths by the caller
        warnings.simplefilter("ignore", ExtrapolationWarning)
        return float(cost_model.call(n_in, n_out, cached=cached))


def litellm_entry(cost_model: CostModel, name: str, usd_per_device_hour: float, n_in: int, n_out: int) -> dict:
    """``{name: entry}``: the LiteLLM custom-pricing entry of ``cost_model`` (see the module doc)."""
    usd_per_s = usd_per_device_hour / SECONDS_PER_HOUR
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExtrapolationWarning)
        prefill_s = float(cost_model.prefill(n_in))
    call_s = _seconds(cost_model, n_in, n_out)
    input_usd = prefill_s * usd_per_s / n_in
    output_usd = (call_s - prefill_s) * usd_per_s / n_out
    max_positions = cost_model.model.max_positions
    entry = {"input_cost_per_token": input_usd, "output_cost_per_token": output_usd,
             "max_tokens": max_positions, "max_input_tokens": max_positions,
             "litellm_provider": LITELLM_PROVIDER, "mode": MODE}
    typical = {"input_tokens": n_in, "output_tokens": n_out, "latency_s": call_s, "usd": call_s * usd_per_s}
    notes = [
        f"{cost_model.model.name} on {cost_model.hardware_slug}: fitted seconds at ${usd_per_device_hour:g} a "
        "device-hour (the device billed only while it computes the call: no idle time, queueing or load below "
        "full), one call at a time with a KV cache",
        f"per-token prices set at a typical call of {n_in:,} input and {n_out:,} output tokens "
        f"({call_s:.6g} s): input_cost_per_token is its prefill ({prefill_s:.6g} s, the pass that also emits the "
        f"first output token) over its {n_in:,} input tokens, output_cost_per_token its {n_out - 1:,} decode steps "
        f"over its {n_out:,} output tokens; together they reproduce that call's cost exactly. Other lengths cost "
        "what the fit says (the cost table beside this file), not tokens times these prices: a pass costs more "
        "the longer its context",
        f"max_tokens and max_input_tokens: the model's {max_positions:,} positions, which input and output share"
        if max_positions else "max_tokens and max_input_tokens: the fit does not record the model's positions"]
    cached, why_not = _cached_tokens(cost_model, n_in)
    if why_not is None:
        cached_s = _seconds(cost_model, n_in, n_out, cached)
        cache_read_usd = (cached_s * usd_per_s - (n_in - cached) * input_usd - n_out * output_usd) / cached
        if cache_read_usd >= 0:
            entry["cache_read_input_token_cost"] = cache_read_usd
            typical |= {"cached_tokens": cached, "cached_latency_s": cached_s, "cached_usd": cached_s * usd_per_s}
            notes.append(f"cache_read_input_token_cost: the typical call with its first {cached:,} input tokens in "
                         f"the KV cache ({cached_s:.6g} s: one extend pass over the other {n_in - cached:,}, the "
                         "fit's extend surface, then the decode steps) costs (input tokens - cached) x "
                         "input_cost_per_token + cached x this + output tokens x output_cost_per_token")
        else:
            why_not = (f"the typical call with {cached:,} tokens cached costs less than its uncached input tokens "
                       "alone at input_cost_per_token, so a cached token would have a price below 0")
    if why_not is not None:
        notes.append(f"no cache_read_input_token_cost: {why_not}")
    entry |= {"aalp_typical_call": typical, "aalp_usd_per_device_hour": usd_per_device_hour,
              "aalp_assumptions": notes}
    return {name: entry}


def _cached_tokens(cost_model: CostModel, n_in: int) -> tuple[int, str | None]:
    """The typical call's cached prefix (half its input), or why it has no price for one."""
    if not cost_model.has_extend:
        return 0, "the fit has no extend surface (profile with `run`, whose default grid measures extend passes)"
    cached = n_in // 2
    if cached < 1:
        return 0, "a typical input of one token has no prefix to cache"
    surface = cost_model.extend_surface()
    if surface.outside(cached, n_in - cached):
        return 0, (f"{cached:,} cached and {n_in - cached:,} new tokens are outside the measured extend surface "
                   f"(up to {surface.c_max:,} cached, {surface.s_max:,} new, {surface.positions_max:,} in all)")
    return cached, None
