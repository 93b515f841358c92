"""Refitting a chosen form, many times at once: the robust solve and the residual bootstrap.

``solve`` is the one least-squares fit of a form to samples (relative residuals, ``soft_l1``
loss with a 5% scale, non-negative bounds, scipy's trust-region reflective method with the
analytic Jacobian). ``bootstrap`` refits the chosen form to ``BOOTSTRAP_RESAMPLES`` resampled
sample sets together, in numpy (bounded Newton steps with a line search on the same robust
cost; ``least_squares`` for a row that does not converge), and returns the coefficients'
percentile intervals and the correlation of their normal scores. ``profiler.costmodel.fit``
states the method in full.
"""

from __future__ import annotations

import numpy as np

from profiler.costmodel.forms import Form

LOSS, LOSS_SCALE = "soft_l1", 0.05
BOOTSTRAP_RESAMPLES = 200
REFIT_EVALUATIONS = 20  # refits start at the fit; a flat curve pinned at a bound must not spin
_NEWTON_STEPS = 30  # a batched refit takes about 5 from the fit; a row still moving after these falls back
_HALVINGS = 30  # a step halved this often that still raises the cost has stalled: its row falls back
_CONVERGED_MOVE = 1e-8  # a step moving no relative residual by more ends a refit: below noise, above rounding


def solve(form: Form, n: np.ndarray, y: np.ndarray, start: np.ndarray | None = None, max_nfev: int | None = None):
    def residuals(theta):
        return (form.evaluate(theta, n) - y) / y

    def jacobian(theta):
        return form.jacobian(theta, n) / y[:, None]

    from scipy.optimize import least_squares  # only fitting needs it: a fit is read without scipy

    x0 = np.clip(form.initial(n, y) if start is None else start, form.lower, form.upper)
    return least_squares(residuals, x0, jac=jacobian, bounds=(form.lower, form.upper), loss=LOSS,
                         f_scale=LOSS_SCALE, x_scale="jac", method="trf", max_nfev=max_nfev)


def soft_l1_cost(relative: np.ndarray) -> np.ndarray:
    """The cost ``least_squares`` minimises with ``LOSS`` (soft_l1) and ``LOSS_SCALE``, one per row of
    relative residuals: ``s^2 sum(sqrt(1 + (r/s)^2) - 1)``."""
    return LOSS_SCALE**2 * np.sum(np.sqrt(1 + (relative / LOSS_SCALE) ** 2) - 1, axis=-1)


def _relative_residuals(form: Form, n: np.ndarray, ys: np.ndarray, thetas: np.ndarray) -> np.ndarray:
    """``(f(n) - y) / y`` of each row's curve ``thetas`` (B, k) against its samples ``ys`` (B, N)."""
    return form.evaluate(thetas[:, None, :], n) / ys - 1


def _scaled_newton_steps(gradient: np.ndarray, hessian: np.ndarray, free: np.ndarray) -> np.ndarray:
    """Newton steps ``-H^-1 g`` (B, k) of the ``free`` coefficients, the others held: solved with the
    Hessian scaled to a unit diagonal (coefficients decades apart solve alike), by pseudo-inverse
    (collinear terms get the shortest step)."""
    scale = np.sqrt(np.diagonal(hessian, axis1=1, axis2=2))
    scale = np.where(scale > 0, scale, 1.0)
    scaled = np.where(free[:, :, None] & free[:, None, :], hessian / scale[:, :, None] / scale[:, None, :], 0.0)
    return -np.einsum("bjk,bk->bj", np.linalg.pinv(scaled), np.where(free, gradient / scale, 0.0)) / scale


def _newton_steps(form: Form, n: np.ndarray, ys: np.ndarray, thetas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's bounded Newton step on the soft_l1 cost, and how far it moves the curve.

    The gradient is ``J^T (r / sqrt(1 + z))`` and the Hessian Gauss-Newton's with the loss's
    curvature, ``J^T diag((1 + z)^-1.5) J``, for ``z = (r/s)^2`` (as scipy's trf scales its
    Jacobian): exact for the polynomial forms, which are linear in theta. A coefficient is on a
    bound when going there would move no relative residual by more than ``_CONVERGED_MOVE`` (scipy
    stops just inside), and stays put there if the gradient pushes it past; the others take the
    Newton step. Returns the steps (B, k) and, per row, the largest change the step makes to a
    relative residual, ``max |J step|`` (B,).
    """
    relative = _relative_residuals(form, n, ys, thetas)
    jacobian = form.jacobian(thetas[:, None, :], n) / ys[..., None]
    slope = 1 / np.sqrt(1 + (relative / LOSS_SCALE) ** 2)  # the loss's derivative; its curvature is slope^3
    gradient = np.einsum("bn,bnk->bk", slope * relative, jacobian)
    hessian = np.einsum("bn,bnj,bnk->bjk", slope**3, jacobian, jacobian)
    reach = np.max(np.abs(jacobian), axis=1)  # the most a unit of each coefficient moves a relative residual
    at_lower = reach * (thetas - form.lower) <= _CONVERGED_MOVE
    at_upper = reach * (form.upper - thetas) <= _CONVERGED_MOVE
    free = ~((at_lower & (gradient > 0)) | (at_upper & (gradient < 0)))
    steps = _scaled_newton_steps(gradient, hessian, free)
    return steps, np.max(np.abs(np.einsum("bnk,bk->bn", jacobian, steps)), axis=1)


def _line_search(form: Form, n: np.ndarray, ys: np.ndarray, thetas: np.ndarray, steps: np.ndarray,
                 moving: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Move the ``moving`` rows along their steps, clipped to the bounds, halving a step until the
    cost does not rise. Returns the new coefficients and the rows whose every halving raised it."""
    cost = soft_l1_cost(_relative_residuals(form, n, ys, thetas))
    fraction = np.ones(len(thetas))
    moved, pending = thetas.copy(), moving.copy()
    for _ in range(_HALVINGS):
        trial = np.clip(thetas + fraction[:, None] * steps, form.lower, form.upper)
        accepted = pending & (soft_l1_cost(_relative_residuals(form, n, ys, trial)) <= cost)
        moved[accepted] = trial[accepted]
        pending &= ~accepted
        if not pending.any():
            break
        fraction[pending] /= 2
    return moved, pending


def refit_batched(form: Form, n: np.ndarray, ys: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Refit the curve to every row of samples ``ys`` (B, N) at once, starting from ``theta``, by
    bounded Newton steps with a line search. A row has converged at a step that moves no relative
    residual by more than ``_CONVERGED_MOVE``: that step is its last, taken whole (too small for
    the line search to judge). Returns the coefficients (B, k) and which rows converged."""
    thetas = np.tile(theta, (len(ys), 1))
    converged, moving = np.zeros(len(ys), dtype=bool), np.ones(len(ys), dtype=bool)
    for _ in range(_NEWTON_STEPS):
        steps, move = _newton_steps(form, n, ys, thetas)
        last = moving & (move <= _CONVERGED_MOVE)
        thetas[last] = np.clip(thetas[last] + steps[last], form.lower, form.upper)
        converged |= last
        moving &= ~last
        if not moving.any():
            break
        thetas, stalled = _line_search(form, n, ys, thetas, steps, moving)
        moving &= ~stalled
    return thetas, converged


def refit(form: Form, n: np.ndarray, ys: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """The coefficients refitted to each row of ``ys``: batched, and by ``least_squares`` for a row
    that the batched solve did not converge on."""
    thetas, converged = refit_batched(form, n, ys, theta)
    for row in np.flatnonzero(~converged):
        thetas[row] = solve(form, n, ys[row], start=theta, max_nfev=REFIT_EVALUATIONS).x
    return thetas


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..B within each column of ``values`` (B, k); tied values (a coefficient held at its bound in
    several refits) share their average rank."""
    ranks = np.empty_like(values, dtype=float)
    for j, column in enumerate(values.T):
        _, which, counts = np.unique(column, return_inverse=True, return_counts=True)
        ranks[:, j] = (np.cumsum(counts) - (counts - 1) / 2)[which]
    return ranks


def normal_score_correlation(refits: np.ndarray, ci95: np.ndarray) -> np.ndarray:
    """Correlation (k, k) of the normal scores of ``refits`` (B, k), column by column (see the module doc);
    a coefficient whose interval ``ci95`` (k, 2) is a point is uncorrelated with the others."""
    from scipy.special import ndtri  # as for least_squares; scipy.stats would add seconds more

    scores = ndtri(_average_ranks(refits) / (len(refits) + 1))
    centred = scores - scores.mean(axis=0)
    sd = np.sqrt(np.mean(centred**2, axis=0))
    spread = (ci95[:, 1] > ci95[:, 0]) & (sd > 0)
    standardised = np.where(spread, centred / np.where(spread, sd, 1.0), 0.0)
    correlation = standardised.T @ standardised / len(refits)
    np.fill_diagonal(correlation, 1.0)
    return np.clip(correlation, -1.0, 1.0)


def bootstrap(form: Form, n: np.ndarray, y: np.ndarray, theta: np.ndarray, seed: int):
    """Residual bootstrap: the fitted curve times one plus relative residuals drawn from all samples.
    Returns the coefficients' percentile intervals (k, 2) and their normal scores' correlation (k, k)."""
    rng = np.random.default_rng(seed)
    fitted = form.evaluate(theta, n)
    relative = y / fitted - 1
    resampled = fitted * (1 + rng.choice(relative, size=(BOOTSTRAP_RESAMPLES, len(relative))))
    refits = refit(form, n, resampled, theta)
    ci95 = np.percentile(refits, [2.5, 97.5], axis=0).T
    return ci95, normal_score_correlation(refits, ci95)
