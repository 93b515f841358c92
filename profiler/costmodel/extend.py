"""The extend surface: seconds of one pass appending ``s`` new tokens to ``c`` cached ones, ``T(c, s)``, fitted
on every batch-1 pass that starts on a cache or builds one (since schema 1.6).

Its points ``(c, s)`` are the passes' ``(n_cached, n_new)``: prefills ``(0, n)``, decode steps ``(c, 1)`` and
extend passes ``(c, s)`` on the grid a run measures. Chosen and qualified as the batch surfaces
(``profiler.costmodel.surface.choose_form``): the candidate forms of ``profiler.costmodel.extend_forms``,
fitted where the points fix attention and cache-read (more distinct points than coefficients, terms independent
over them: passes of several tokens on a cache among them), each with relative residuals, the soft_l1 loss and
non-negative coefficients; ``attention`` kept unless ``cache-read``'s AICc is lower by more than
``fit.AICC_MARGIN``, and the lower of ``two-kernel`` and ``two-kernel-read`` (a single-token step's kernels apart
from several tokens', and the latter the cache copied at every pass) only when lower than that choice by more than
the margin, each fitted only where the points fix it; 95% intervals and correlation of 200 residual-bootstrap
refits, R^2 of the log values, and the held-out error, each ``(c, s)`` point left out in turn (at most
``surface.MAX_HELD_OUT_POINTS``, an even spread).

The measured domain: ``c`` from 0 to ``c_max``, ``s`` from 1 to ``s_max``, and ``c + s`` at most
``positions_max``, the most positions a measured pass held (the grid stays inside the model's positions, so
its corner ``(c_max, s_max)`` may not have been measured). ``outside`` says whether a point leaves it.

Consistency with the curves fitted on the same passes: the mean absolute relative difference of ``T(0, n)``
from the prefill curve at the prefill lengths measured, and of ``T(c, 1)`` from the decode curve at the
decode contexts measured. The curves price a call without a cached prefix; the surface one with; a large
difference says the two disagree where they should coincide.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from profiler.costmodel.extend_forms import EXTEND_FORMS, LAST_RESORT_EXTEND, PREFERRED_EXTEND
from profiler.costmodel.fit import CurveFit
from profiler.costmodel.surface import ChosenForm, choose_form, points_of


@dataclass
class ExtendFit(ChosenForm):
    """The fitted extend surface (latency, seconds): the chosen form (an ``ExtendForm``), its coefficients with
    intervals, how good it is, where it was measured, and how far it is from the prefill and decode curves."""

    c_max: int  # most tokens cached before a measured pass
    s_max: int  # most tokens appended by a measured pass
    positions_max: int  # most tokens, cached and new, a measured pass ended with
    consistency: dict[str, float]  # prefill, decode: mean absolute relative difference from the curve

    def predict(self, c, s):
        """Seconds of one pass appending ``s`` tokens to ``c`` cached ones (arrays broadcast)."""
        return self.form.evaluate(self.theta, points_of(c, s))

    def outside(self, c, s) -> bool:
        """Whether any point ``(c, s)`` (arrays broadcast) leaves the measured domain (module doc)."""
        c, s = np.broadcast_arrays(np.asarray(c, dtype=float), np.asarray(s, dtype=float))
        return bool(np.any((c < 0) | (c > self.c_max) | (s < 1) | (s > self.s_max) | (c + s > self.positions_max)))

    def as_dict(self) -> dict:
        return self.chosen_json() | {
            "domain": {"c_max": self.c_max, "s_max": self.s_max, "positions_max": self.positions_max},
            "consistency": dict(self.consistency),
        }

    @classmethod
    def from_dict(cls, data: dict) -> ExtendFit:
        domain = data["domain"]
        return cls(**cls.chosen_fields(EXTEND_FORMS[data["form"]], data), c_max=domain["c_max"],
                   s_max=domain["s_max"], positions_max=domain["positions_max"],
                   consistency=dict(data["consistency"]))


def unfixed(cached, new) -> str | None:
    """Why passes at ``(cached, new)`` cannot fix the extend surface, in one line; None when they fix the forms
    that are not last resorts (``ExtendForm.fixed_by``), so that AICc chooses between them: prefills (``cached`` 0) and
    decode steps (``new`` 1 on a cache) must be among them (the surface is checked against their curves), and
    passes appending several tokens to a cache, which alone tell ``g*c`` from ``e*s*c``."""
    points = np.unique(points_of(cached, new).reshape(-1, 2), axis=0)
    if not (np.any(points[:, 0] == 0) and np.any((points[:, 0] > 0) & (points[:, 1] == 1))):
        return "no prefill (n_cached 0) or no decode step (n_new 1 on a cache) among them"
    off_axes = int(np.sum((points[:, 0] > 0) & (points[:, 1] > 1)))
    name = next((name for name, form in EXTEND_FORMS.items()
                 if name not in LAST_RESORT_EXTEND and not form.fixed_by(points)), None)
    if name is None:
        return None
    return (f"{len(points)} (n_cached, n_new) points, {off_axes} of them several tokens appended to a cache: too few "
            f"to fix the {name} form's {len(EXTEND_FORMS[name].params)} coefficients")


def _consistency(surface: ChosenForm, points: np.ndarray, prefill: CurveFit, decode: CurveFit) -> dict[str, float]:
    """Mean absolute relative difference of the surface from each curve at that phase's measured points."""
    lengths = points[points[:, 0] == 0, 1]
    contexts = points[(points[:, 0] > 0) & (points[:, 1] == 1), 0]
    on_prefill = surface.form.evaluate(surface.theta, points_of(0, lengths))
    on_decode = surface.form.evaluate(surface.theta, points_of(contexts, 1))
    return {"prefill": float(np.mean(np.abs(on_prefill / prefill.predict(lengths) - 1))),
            "decode": float(np.mean(np.abs(on_decode / decode.predict(contexts) - 1)))}


def fit_extend(cached, new, latency_s, prefill: CurveFit, decode: CurveFit, seed: int = 0) -> ExtendFit:
    """Fit the extend surface to batch-1 passes at ``(cached, new)`` = ``(n_cached, n_new)`` taking ``latency_s``
    each, choose and qualify its form and compare it with the ``prefill`` and ``decode`` latency curves (module
    doc). A ``ValueError`` when the points do not fix every form (``unfixed``), a cached count is negative, no token
    is appended, or a latency is not positive."""
    x = points_of(cached, new).reshape(-1, 2)
    y = np.asarray(latency_s, dtype=float).ravel()
    if len(y) != len(x) or np.any(y <= 0):
        raise ValueError("an extend surface is fitted to positive latencies, one per (n_cached, n_new) sample")
    if np.any(x[:, 0] < 0) or np.any(x[:, 1] < 1):
        raise ValueError("a pass starts on 0 or more cached tokens and appends 1 or more")
    why = unfixed(x[:, 0], x[:, 1])
    if why:
        raise ValueError(f"no extend surface: {why}")
    points = np.unique(x, axis=0)
    forms = {name: form for name, form in EXTEND_FORMS.items() if form.fixed_by(points)}
    chosen = choose_form(forms, PREFERRED_EXTEND, x, y, seed, last_resorts=LAST_RESORT_EXTEND)
    return ExtendFit(**vars(chosen), c_max=int(x[:, 0].max()), s_max=int(x[:, 1].max()),
                     positions_max=int((x[:, 0] + x[:, 1]).max()),
                     consistency=_consistency(chosen, points, prefill, decode))
