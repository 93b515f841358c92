"""The FLOP formula checked against the count, on a run's samples: where they part, the run says so.

A run's ``flops`` column is the formula's (``profiler.measure.flops``), which knows the work of the attention, MLP,
mixture-of-experts, latent-attention, indexer, compressed-attention, hyper-connection, gated-delta-rule,
short-convolution, Mamba-2, Mamba, lightning-attention and shared-block layers it models: on the families of the
architecture matrix it agrees with FlopCounterMode's count to 1%. A family with other work (Doge's experts found by
product keys, Inkling's layers, another state-space layer, experts under names it does not read) is built and timed
all the same, but the formula misses or misreads that work, and the FLOP curves, FLOP prices and FLOP/s follow the
formula. ``flops_counted`` holds the count of some passes (``profiler.measure.samples``); ``formula_check`` compares
the two on every pass that has both.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from profiler.measure.samples import PHASES

FORMULA_TOLERANCE = 0.02  # counted FLOPs this far from the formula's, either way, on any pass: say so


@dataclass(frozen=True)
class FormulaCheck:
    """The counted-over-formula FLOPs of the ``passes`` counted: the least and most ratio, and the phases with a
    pass more than ``FORMULA_TOLERANCE`` off (in ``PHASES`` order)."""

    passes: int
    low: float
    high: float
    phases_off: tuple[str, ...]

    @property
    def off(self) -> bool:
        return bool(self.phases_off)

    def sentence(self) -> str:
        """What the check found, in one line: said only when ``off``."""
        span = f"{self.low:.3g}" if self.low == self.high else f"{self.low:.3g} to {self.high:.3g}"
        return (f"FLOPs counted on {self.passes} passes are {span} times the formula's ({', '.join(self.phases_off)} "
                f"off by more than {FORMULA_TOLERANCE:.0%}): the formula does not know all of this architecture's "
                "work, and the flops column, the FLOP curves and FLOP/s follow it; read them with care")


def formula_check(samples: pd.DataFrame) -> FormulaCheck | None:
    """The check over the rows of ``samples`` (a run's, as ``read_samples`` gives them) with both a formula and a
    count; None where there are none (an endpoint run, a file written before counts were kept)."""
    if "flops_counted" not in samples or "flops" not in samples:
        return None
    both = samples[samples["flops_counted"].notna() & samples["flops"].notna() & (samples["flops"] > 0)]
    if both.empty:
        return None
    ratio = both["flops_counted"].astype(float) / both["flops"].astype(float)
    off = (ratio - 1.0).abs() > FORMULA_TOLERANCE
    phases = tuple(phase for phase in PHASES if phase in set(both.loc[off, "phase"]))
    return FormulaCheck(passes=len(both), low=float(ratio.min()), high=float(ratio.max()), phases_off=phases)
