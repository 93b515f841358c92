"""``sum_{j=lo}^{hi} j^p`` for real ``p``, element-wise over arrays of ranges, without a loop over j.

A call of ``n_out`` tokens sums a power-law pass cost over ``n_out`` context lengths; pricing
a 40 x 40 map of agent programs sums millions of such ranges, some a million terms long.

``S(x) = sum_{j=1}^{x} j^p`` is read from an exact table up to ``_TABLE`` and continued by
the Euler-Maclaurin formula beyond it, with corrections through the third derivative:
for ``0.2 <= p <= 3`` (the power form's bounds) and ``j > 64`` the next (fifth-derivative)
term is below 1e-14 of the sum. Then
``sum_{lo}^{hi} = S(hi) - S(lo - 1)``.
"""

from __future__ import annotations

import numpy as np

_TABLE = 64


def _prefix_table(p: float) -> np.ndarray:
    """``S(0..TABLE)``, exact."""
    return np.concatenate([[0.0], np.cumsum(np.arange(1, _TABLE + 1, dtype=float) ** p)])


def _euler_maclaurin(lo: np.ndarray, hi: np.ndarray, p: float) -> np.ndarray:
    """``sum_{j=lo}^{hi} j^p`` for ``lo <= hi`` (both above the table's end)."""
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


def _prefix(x: np.ndarray, p: float, table: np.ndarray) -> np.ndarray:
    """``S(x)`` for a flat array of integer-valued ``x >= 0``."""
    inside = np.minimum(x, _TABLE).astype(int)
    total = table[inside]
    beyond = x > _TABLE
    if np.any(beyond):
        total[beyond] += _euler_maclaurin(np.full(np.count_nonzero(beyond), _TABLE + 1.0), x[beyond], p)
    return total


def sum_of_powers(lo, hi, p: float):
    """``sum_{j=lo}^{hi} j^p`` element-wise (integers ``lo >= 1``); 0 for an empty range."""
    lo_arr, hi_arr = np.broadcast_arrays(np.asarray(lo, dtype=float), np.asarray(hi, dtype=float))
    table = _prefix_table(p)
    upper = np.maximum(hi_arr, lo_arr - 1)  # an empty range sums to 0
    result = _prefix(upper.ravel(), p, table) - _prefix(lo_arr.ravel() - 1, p, table)
    return result.reshape(lo_arr.shape) if lo_arr.ndim else float(result[0])
