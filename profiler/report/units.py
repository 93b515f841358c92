"""Numbers for people: a value with its unit scaled to three significant digits, and intervals.

Kinds of quantity: ``"s"`` (s, ms, µs, ns), ``"bytes"`` (binary: B, KiB, MiB, GiB, TiB),
``"FLOPs"``, ``"FLOP/s"`` and ``"B/s"`` (decimal SI prefixes: GFLOP/s, GB/s), ``"tokens/s"`` (plain, with
thousands separators). An interval is written in the unit of its central value:
``412 ms [401, 425]``.
"""

from __future__ import annotations

import math

_TIME = ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns"))
_BINARY = ((2.0**40, "TiB"), (2.0**30, "GiB"), (2.0**20, "MiB"), (2.0**10, "KiB"), (1.0, "B"))
_SI = ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""))


def significant(value: float, digits: int = 3) -> str:
    """``value`` to ``digits`` significant digits, never in exponent notation (1234 -> 1,234)."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    rounded = float(f"{value:.{digits}g}")  # 0.9996 rounds to 1.00, not 1.000
    decimals = max(digits - 1 - math.floor(math.log10(abs(rounded))), 0)
    return f"{value:,.{decimals}f}"


def tick(value: float) -> str:
    """A tick label: three significant digits at most, no trailing zeros (8, 16, 1,024, 0.25, 1.5)."""
    text = significant(value, 3)
    return text.rstrip("0").rstrip(".") if "." in text else text


def scale(value: float, kind: str) -> tuple[float, str]:
    """The factor to divide by and the unit label that show ``value`` (of ``kind``) best."""
    if kind == "tokens/s":
        return 1.0, "tokens/s"
    if kind in ("FLOPs", "FLOP/s", "B/s"):
        table = tuple((factor, prefix + kind) for factor, prefix in _SI)
    else:
        table = {"s": _TIME, "bytes": _BINARY}[kind]
    magnitude = abs(value)
    for factor, label in table:
        if magnitude >= factor * 0.9995:  # 999.9 ms reads as 1.00 s, not 1,000 ms
            return factor, label
    return table[-1]


def quantity(value: float, kind: str, digits: int = 3) -> str:
    """``value`` with its unit: ``quantity(0.0412, "s") == "41.2 ms"``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    factor, label = scale(value, kind)
    return f"{significant(value / factor, digits)} {label}"


def interval(value: float, low: float, high: float, kind: str, digits: int = 3) -> str:
    """A value and its 95% interval in one unit, ``412 ms [401, 425]``; a point interval is the value alone."""
    factor, label = scale(value, kind)
    if significant(low / factor, digits) == significant(high / factor, digits):
        return f"{significant(value / factor, digits)} {label}"
    return (f"{significant(value / factor, digits)} {label} "
            f"[{significant(low / factor, digits)}, {significant(high / factor, digits)}]")


def share(value: float) -> str:
    """A fraction as a percentage with at least two significant digits: 0.473 -> 47%, 0.0123 -> 1.2%."""
    percent = 100 * value
    return f"{significant(percent, 2)}%" if percent < 10 else f"{percent:.0f}%"


def format_cost(value: float, unit: str) -> str:
    """A cost for a table: seconds as ms below 1 s, other units with 4 significant digits."""
    if unit == "s":
        return f"{value * 1e3:,.1f} ms" if value < 1 else f"{value:,.2f} s"
    return f"{value:.4g} {unit}"
