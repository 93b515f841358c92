"""A fitted cost model: what one pass, and one whole LLM call, costs on the measured hardware.

``prefill(n)``, ``decode(c)`` and ``forward(n)`` give a pass's cost for a context length
(scalars or numpy arrays), in seconds by default, or in FLOPs or peak bytes with
``metric=``. ``decode(c)`` is the step that emits one token with ``c`` tokens cached.

``call(n_in, n_out, cache=True)`` is a whole call that reads ``n_in`` tokens and emits
``n_out``:

- with a KV cache: a prefill over ``n_in``, then ``n_out - 1`` decode steps at
  ``c = n_in, ..., n_in + n_out - 2`` (AALPS.md's ``P(n_in) + sum_{t=1}^{n_out-1} D(n_in + t)``
  counts context after the step; ``c`` here counts it before);
- without one: ``n_out`` full passes over ``n_in, ..., n_in + n_out - 1`` tokens.

Time and FLOPs add up over the passes (closed form for polynomial curves: ``n_out`` may
be 10^6); peak memory does not add: a call's peak is the largest of its passes' peaks.

Batches (a fit with surfaces, since schema 1.5; ``profiler.costmodel.surface``): ``batch_pass(phase, batch, n)``
is one prefill or decode pass of ``batch`` sequences at ``n`` tokens each, and ``call_batch(n_in, n_out,
batch)`` one batched call: a prefill of ``batch`` sequences of ``n_in`` tokens, then ``n_out - 1``
decode steps of the batch at ``c = n_in, ..., n_in + n_out - 2``, every sequence emitting ``n_out``
(the sum over the steps closed form). A batch of one is the single-sequence curves' (fitted on batch-1
passes): ``call_batch(n_in, n_out, 1)`` is ``call(n_in, n_out)`` exactly; a larger batch is the surface's,
which a fit without surfaces has not got (``MissingCurve``). ``max_batch`` is the largest batch both
surfaces were measured at.

A cached prefix (a fit with the extend surface, since schema 1.6; ``profiler.costmodel.extend``):
``extend(c, s)`` is one pass appending ``s`` tokens to ``c`` cached ones, and ``call(n_in, n_out,
cached=p)`` a call whose first ``p`` input tokens are already in the KV cache (``0 <= p <= n_in - 1``:
one input token is always computed, to emit the first output): its first pass is ``extend(p, n_in - p)``
instead of ``prefill(n_in)``, then the same ``n_out - 1`` decode steps. At ``p = 0`` it is the call
without a cached prefix exactly (the prefill curve), so a call priced with ``p = 1`` and one with
``p = 0`` differ by the surface's distance from the prefill curve as well (the fit's ``consistency``).
A cached prefix is priced in latency with a KV cache only; a fit without the extend surface has none to
price it with (``MissingCurve``). ``has_extend`` says whether it has.

A prediction outside a curve's measured domain (a surface's measured batches and lengths, the extend
surface's cached and appended tokens) is extrapolation: it is still returned, with an
``ExtrapolationWarning``.

A served model whose architecture is not known here (since schema 1.8: an endpoint run fitted from latency alone)
has no FLOPs curves: ``has_flops`` is False, and pricing FLOPs is a ``MissingCurve`` saying why (``check_flops``
says it before anything is priced).

Energy (a fit whose run read an energy counter, since schema 1.7): ``metric="energy_j"`` prices a pass or a call
in joules, summed over its passes as time is; ``check_energy`` says, in one line, why a fit cannot (no counter
where it was measured, or passes too short for the counter to tell).
"""

from __future__ import annotations

import warnings

import numpy as np

from profiler.costmodel.call_passes import batches, call_passes, outside, shown
from profiler.costmodel.extend import ExtendFit
from profiler.costmodel.fit import CurveFit
from profiler.costmodel.fit_document import FitDocument
from profiler.costmodel.surface import SurfaceFit
from profiler.errors import UserError

METRICS = ("latency_s", "flops", "peak_mem_bytes", "energy_j")  # energy_j: where the run had a counter (since 1.7)
UNITS = {"latency_s": "s", "flops": "FLOPs", "peak_mem_bytes": "bytes", "energy_j": "J"}
PHASES = ("prefill", "decode", "forward")
BATCH_PHASES = ("prefill", "decode")


class MissingCurve(UserError, KeyError):
    """A curve the cost model has not got (a loaded fit has every latency and FLOPs curve; peak memory may be
    unmeasured): a lookup that failed, and a one-line message for the command line."""

    def __str__(self) -> str:  # KeyError's would quote the message
        return str(self.args[0])


class ExtrapolationWarning(UserWarning):
    """A cost was predicted outside the context lengths (and batches) that were measured."""


class CostModel:
    """Curves per phase and metric of a fit document (``profiler.costmodel.fit_document``)."""

    def __init__(self, fit: FitDocument):
        self.fit = fit
        self.model = fit.model
        self.hardware_slug = fit.hardware_slug
        self.hardware = fit.hardware
        self.derived = fit.derived
        self.curves = fit.curves
        self.surfaces: dict[str, SurfaceFit] = fit.surfaces
        self.extend_fit: ExtendFit | None = fit.extend

    @classmethod
    def from_json(cls, document: dict) -> CostModel:
        """The cost model of a fit document as JSON (a file's is read by ``fit_file.load_cost_model``)."""
        return cls(FitDocument.from_json(document))

    def _named(self) -> str:
        return f"the cost model of {self.model.name} on {self.hardware_slug or 'unnamed hardware'}"

    def curve(self, phase: str, metric: str) -> CurveFit:
        try:
            return self.curves[phase][metric]
        except KeyError:
            if metric == "flops" and self.served_without_flops:
                self.check_flops()
            raise MissingCurve(f"no {metric} curve for {phase} in {self._named()}") from None

    @property
    def has_flops(self) -> bool:
        """Whether the fit prices FLOPs: False for a served model fitted from latency alone (since schema 1.8), whose
        architecture is not known here."""
        return any("flops" in metrics for metrics in self.curves.values())

    @property
    def served_without_flops(self) -> bool:
        """Whether the fit is of a served model whose architecture is not known here (since schema 1.8)."""
        return self.hardware.get("device") == "endpoint" and not self.has_flops

    def check_flops(self) -> None:
        """A ``MissingCurve`` saying why, unless the fit has FLOPs curves."""
        if self.has_flops:
            return
        why = ("the served model's architecture is not known here, so its FLOPs were not counted (run it again with "
               "--config NAME, a local config of its architecture)" if self.served_without_flops
               else "it has no FLOPs curves")
        raise MissingCurve(f"no FLOPs in {self._named()}: {why}")

    def _predict(self, phase: str, n, metric: str):
        curve = self.curve(phase, metric)
        if not curve.in_domain(n):
            warnings.warn(f"{phase} {metric} at n={shown(n)}: outside the measured {curve.n_min}..{curve.n_max} "
                          "tokens", ExtrapolationWarning, stacklevel=3)
        return curve.predict(n)

    def prefill(self, n, metric: str = "latency_s"):
        return self._predict("prefill", n, metric)

    def decode(self, c, metric: str = "latency_s"):
        return self._predict("decode", c, metric)

    def forward(self, n, metric: str = "latency_s"):
        return self._predict("forward", n, metric)

    def call(self, n_in, n_out, cache: bool = True, metric: str = "latency_s", cached=0):
        """Cost of a call reading ``n_in`` tokens, the first ``cached`` of them already in the KV cache, and
        emitting ``n_out >= 1`` (see the module doc); arrays broadcast."""
        if np.any(np.asarray(cached) != 0):
            return self._call_cached(n_in, n_out, cache, metric, cached)
        first_phase, steps_phase, lo, hi = call_passes(n_in, n_out, cache)
        first = None if first_phase is None else self.curve(first_phase, metric)
        steps = self.curve(steps_phase, metric)
        spans = [(steps, lo, hi)] + ([(first, n_in, n_in)] if first is not None else [])
        if any(outside(curve, a, b) for curve, a, b in spans):
            warnings.warn(f"call({shown(n_in)}, {shown(n_out)}) reaches outside the measured context lengths",
                          ExtrapolationWarning, stacklevel=2)
        if metric == "peak_mem_bytes":  # the largest peak, not a sum; curves grow with n
            peaks = [steps.predict(np.maximum(hi, lo))]
            if first is not None:
                peaks.append(first.predict(n_in))
            return np.maximum.reduce(peaks) if np.ndim(peaks[0]) else float(max(peaks))
        total = steps.form.sum_over(steps.theta, lo, hi)
        if first is not None:
            total = total + first.predict(n_in)
        return total

    def _call_cached(self, n_in, n_out, cache: bool, metric: str, cached):
        """``call`` with a cached prefix of ``cached`` tokens, 0 in some calls perhaps (see the module doc)."""
        if not cache or metric != "latency_s":
            raise ValueError("a cached prefix is priced in latency_s with a KV cache (cache=True) only")
        n_in, n_out, cached = np.broadcast_arrays(np.asarray(n_in), np.asarray(n_out), np.asarray(cached))
        _, _, lo, hi = call_passes(n_in, n_out, cache=True)
        if np.any(cached != np.round(cached)) or np.any(cached < 0) or np.any(cached > n_in - 1):
            raise ValueError("a cached prefix is a whole number of tokens from 0 to n_in - 1 (one input token is "
                             "always computed)")
        surface, prefill, decode = self.extend_surface(), self.curve("prefill", metric), self.curve("decode", metric)
        reused = cached > 0
        new = n_in - cached
        if (surface.outside(cached[reused], new[reused]) or outside(prefill, n_in[~reused], n_in[~reused])
                or outside(decode, lo, hi)):
            warnings.warn(f"call({shown(n_in)}, {shown(n_out)}, cached={shown(cached)}) reaches outside the "
                          "measured context lengths or (cached, appended) tokens", ExtrapolationWarning, stacklevel=3)
        first = np.where(reused, surface.predict(cached, new), prefill.predict(n_in))
        total = decode.form.sum_over(decode.theta, lo, hi) + first
        return total if np.ndim(total) else float(total)

    def check_energy(self, cache: bool = True) -> None:
        """A ``MissingCurve`` saying why, unless the energy curves a call needs (prefill and decode with a KV cache,
        forward without) are fitted."""
        missing = [phase for phase in (("prefill", "decode") if cache else ("forward",))
                   if "energy_j" not in self.curves.get(phase, {})]
        if not missing:
            return
        energy = self.fit.source.get("energy") or {}
        why = (f"no energy counter where it was measured: {energy['reason']}" if energy.get("reason") else
               f"no {' or '.join(missing)} pass lasted long enough for {energy['counter']} to tell"
               if energy.get("counter") else "its run recorded no energy")
        raise MissingCurve(f"no energy_j curve for {' and '.join(missing)} in the cost model of {self.model.name} on "
                           f"{self.hardware_slug or 'unnamed hardware'}: {why}")

    @property
    def has_extend(self) -> bool:
        """Whether the fit has the extend surface, so prices a cached prefix (since schema 1.6)."""
        return self.extend_fit is not None

    def extend_surface(self) -> ExtendFit:
        if self.extend_fit is None:
            raise MissingCurve(f"no extend surface in the cost model of {self.model.name} on "
                               f"{self.hardware_slug or 'unnamed hardware'}, so no price for a cached prefix: re-run "
                               "`python -m profiler run`, then fit")
        return self.extend_fit

    def extend(self, c, s):
        """Seconds of one pass appending ``s >= 1`` tokens to ``c >= 0`` cached ones (arrays broadcast; see the
        module doc). ``extend(0, n)`` is the surface's prefill, ``extend(c, 1)`` its decode step."""
        surface = self.extend_surface()
        c, s = np.asarray(c), np.asarray(s)
        if np.any(c < 0) or np.any(s < 1):
            raise ValueError("an extend pass starts on 0 or more cached tokens and appends 1 or more")
        if surface.outside(c, s):
            warnings.warn(f"extend at c={shown(c)}, s={shown(s)}: outside the measured c <= {surface.c_max}, "
                          f"s <= {surface.s_max}, c + s <= {surface.positions_max}", ExtrapolationWarning, stacklevel=2)
        values = surface.predict(c, s)
        return values if np.ndim(values) else float(values)

    @property
    def max_batch(self) -> int:
        """The largest batch both prefill and decode were measured at (1 without their surfaces)."""
        if not all(phase in self.surfaces for phase in BATCH_PHASES):
            return 1
        return min(self.surfaces[phase].batch_max for phase in BATCH_PHASES)

    def surface(self, phase: str) -> SurfaceFit:
        try:
            return self.surfaces[phase]
        except KeyError:
            raise MissingCurve(f"no {phase} batch surface in the cost model of {self.model.name} on "
                               f"{self.hardware_slug or 'unnamed hardware'}, so no price for a batch above 1: re-run "
                               "`python -m profiler run` with --batch, then fit") from None

    def batch_pass(self, phase: str, batch, n):
        """Seconds of one ``phase`` pass (prefill or decode) of ``batch`` sequences at ``n`` tokens each (prompt
        length, or tokens cached); arrays broadcast. A batch of 1 is the phase's curve (see the module doc)."""
        if phase not in BATCH_PHASES:
            raise ValueError(f"a batched pass is one of {', '.join(BATCH_PHASES)}, not {phase}")
        batch, n = np.broadcast_arrays(batches(batch), np.asarray(n))
        single = batch == 1
        if single.all():
            return self._predict(phase, n if n.ndim else n.item(), "latency_s")
        surface = self.surface(phase)
        many = ~single
        if surface.outside(batch[many], n[many], n[many]):
            warnings.warn(f"{phase} of batch {batch[many].max()} at n={n[many].max()}: outside the measured "
                          "(batch, n) domain", ExtrapolationWarning, stacklevel=2)
        values = surface.predict(batch, n)
        if single.any():
            values[single] = self._predict(phase, n[single], "latency_s")
        return values if values.ndim else float(values)

    def call_batch(self, n_in, n_out, batch):
        """Seconds of one call of ``batch`` sequences, each reading ``n_in`` tokens and emitting ``n_out >= 1``
        (see the module doc); arrays broadcast. At a batch of 1, ``call(n_in, n_out)`` exactly."""
        batch = batches(batch)
        if np.all(batch == 1):
            total = self.call(n_in, n_out)
            return total if batch.ndim == 0 else np.broadcast_to(total, np.broadcast_shapes(np.shape(total),
                                                                                             batch.shape)).copy()
        n_in, n_out, batch = np.broadcast_arrays(np.asarray(n_in), np.asarray(n_out), batch)
        _, _, lo, hi = call_passes(n_in, n_out, cache=True)
        prefill, decode = self.surface("prefill"), self.surface("decode")
        single = batch == 1
        many = ~single
        if prefill.outside(batch[many], n_in[many], n_in[many]) or decode.outside(batch[many], lo[many], hi[many]):
            warnings.warn(f"call_batch reaches outside the measured (batch, n) domain (batch up to {batch.max()}, "
                          f"contexts up to {int(np.max(np.maximum(lo, hi)))})", ExtrapolationWarning, stacklevel=2)
        total = np.asarray(prefill.predict(batch, n_in) + decode.steps_sum(batch, lo, hi), dtype=float)
        if single.any():
            total[single] = self.call(n_in[single], n_out[single])
        return total if total.ndim else float(total)
