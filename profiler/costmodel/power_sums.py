"""``sum_{j=lo}^{hi} j^p`` for real ``p``, element-wise over arrays of ranges, without a loop over j.

A call of ``n_out`` tokens sums a power-law pass cost over ``n_out`` context lengths; pricing
a 40 x 40 map of agent programs sums millions of such ranges, some a million terms long.

``S(x) = sum_{j=1}^{x} j^p`` is read from an exact table up to ``_TABLE`` and continued by
the Euler-Maclaurin formula beyond it, with corrections through the third derivative:
for ``0.2 <= p <= 3`` (the power form's bounds), and ``-0.9 <= p <= 3.9`` (a term's exponent
plus a drawn slope error beyond the data), and ``j > 64`` the next (fifth-derivative)
term is below 1e-14 of the sum. Then
``sum_{lo}^{hi} = S(hi) - S(lo - 1)``.

``p`` may be an array as well (one exponent per drawn power curve,
``profiler.costmodel.uncertainty``): one table per distinct exponent. ``power_sum``: the same for an integer
power 0, 1 or 2, in closed form (the terms of the polynomial forms and of the surfaces).
"""

from __future__ import annotations

import numpy as np

_TABLE = 64


def _prefix_tables(exponents: np.ndarray) -> np.ndarray:
    """``S(0..TABLE)`` of each exponent, exact: (len(exponents), TABLE + 1)."""
    powers = np.arange(1, _TABLE + 1, dtype=float) ** exponents[:, None]
    return np.concatenate([np.zeros((len(exponents), 1)), np.cumsum(powers, axis=1)], axis=1)


def _euler_maclaurin(lo: np.ndarray, hi: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``sum_{j=lo}^{hi} j^p`` for ``lo <= hi`` (both above the table's end), element-wise."""
    def f(x, k):  # k-th derivative of x^p
        coefficient = 1.0
        for i in range(k):
            coefficient *= p - i
        return coefficient * x ** (p - k)

    integral = (hi ** (p + 1) - lo ** (p + 1)) / (p + 1)
    ends = (f(lo, 0) + f(hi, 0)) / 2
    # Bernoulli numbers B2 = 1/6, B4 = -1/30: B2/2! f' + B4/4! f'''
    corrections = (f(hi, 1) - f(lo, 1)) / 12 - (f(hi, 3) - f(lo, 3)) / 720
    return integral + ends + corrections


def _prefix(x: np.ndarray, which: np.ndarray, exponents: np.ndarray, tables: np.ndarray) -> np.ndarray:
    """``S(x)`` for a flat array of integer-valued ``x >= 0``, each with exponent ``exponents[which]``."""
    inside = np.minimum(x, _TABLE).astype(int)
    single = len(exponents) == 1  # one fitted curve: scalar exponent arithmetic, a quarter faster on 10^6 ranges
    total = tables[0, inside] if single else tables[which, inside]
    beyond = x > _TABLE
    if np.any(beyond):
        total[beyond] += _euler_maclaurin(np.full(np.count_nonzero(beyond), _TABLE + 1.0), x[beyond],
                                          exponents[0] if single else exponents[which[beyond]])
    return total


def sum_of_powers(lo, hi, p):
    """``sum_{j=lo}^{hi} j^p`` element-wise over ``lo``, ``hi`` and ``p`` broadcast together
    (integers ``lo >= 1``); 0 for an empty range. Ranges that all start past the table are summed by
    Euler-Maclaurin over ``lo..hi`` itself (``S(hi) - S(lo - 1)`` without the table, which cancels): a
    thousand drawn exponents need no thousand tables (``profiler.costmodel.uncertainty``, beyond ``n_max``)."""
    lo_arr, hi_arr, p_arr = np.broadcast_arrays(np.asarray(lo, dtype=float), np.asarray(hi, dtype=float),
                                                np.asarray(p, dtype=float))
    if lo_arr.size and np.all(lo_arr > _TABLE):
        result = np.where(hi_arr >= lo_arr, _euler_maclaurin(lo_arr, np.maximum(hi_arr, lo_arr), p_arr), 0.0)
        return result if lo_arr.ndim else float(result)
    exponents, which = np.unique(np.asarray(p, dtype=float), return_inverse=True)
    lo_arr, hi_arr, which = np.broadcast_arrays(np.asarray(lo, dtype=float), np.asarray(hi, dtype=float),
                                                which.reshape(np.shape(p)))
    tables = _prefix_tables(exponents)
    upper = np.maximum(hi_arr, lo_arr - 1)  # an empty range sums to 0
    which = which.ravel()
    result = _prefix(upper.ravel(), which, exponents, tables) - _prefix(lo_arr.ravel() - 1, which, exponents, tables)
    return result.reshape(lo_arr.shape) if lo_arr.ndim else float(result[0])


def power_sum(lo, hi, j: int):
    """``sum_{n=lo}^{hi} n^j`` for j = 0, 1, 2, element-wise; 0 for an empty range."""
    lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    hi = np.maximum(hi, lo - 1)
    below = lo - 1
    if j == 0:
        return hi - below
    if j == 1:
        return (hi * (hi + 1) - below * (below + 1)) / 2
    return (hi * (hi + 1) * (2 * hi + 1) - below * (below + 1) * (2 * below + 1)) / 6
