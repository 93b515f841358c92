"""The sweep's budget plan: what measuring a length, a generate pair or a reference pass is
predicted to cost, in seconds, from the pilot's timings.

Estimates: a prefill per length (the pilot's one FLOP-counted pass less the counter's
overhead, until later timings correct it), one decode step (the pilot's, after one untimed step), and from them a generate
call: the prefill of the shortest length planned at or above its prompt (the plan knows only
the lengths piloted; linear in n beyond the longest), plus a decode step per token after the
first. At the minimum repeats ``r``, a length costs ``2r + 1`` prefill-sized passes (``r``
prefills, the pilot having been their warm-up, and ``r + 1`` forwards) and ``r + 1`` decode
steps; a generate pair ``r + 1`` calls; a reference pass one prefill at the shortest length,
timed before each item and after the last.

The FLOP counter's overhead (``calibrate_counter``): FlopCounterMode sends every operator
through Python, a cost per pass that a plain pass does not pay and that does not grow with n
(the operators are the same at every length): a few percent of a 1024-token gpt2 prefill, up
to several times a small model's short pass. It is the quicker of two FLOP-counted passes
less the quicker of two plain ones at the first length (quicker: other work only adds time),
and taken off every pilot timing; never more than the share it took there, which a longer
pass can only exceed by noise.

Correction (``correct``): the pilot passes were timed once each, on a machine that may have
been busy then. When those of the lengths measured since took ``PILOT_OFF`` times their
medians or more in sum, the disturbance has gone: every estimate becomes the median where one
was measured and the pilot over that factor elsewhere, the decode step the median of the
decode medians, the counter's overhead (timed in the same spell) over that factor too. A pilot that was too quick is left alone (the lengths planned are measured at
the minimum repeats whatever they cost).
"""

from __future__ import annotations

import statistics

from profiler.measure.disturbance import PILOT_OFF
from profiler.measure.grid import generate_pairs


class Plan:
    def __init__(self, min_repeats: int, max_positions: int):
        self.min_repeats = min_repeats
        self.max_positions = max_positions
        self.pilot_s: dict[int, float] = {}  # the pilot pass's latency per length planned
        self.prefill_s: dict[int, float] = {}  # the estimate per length: the pilot's, until corrected
        self.decode_s = 0.0  # the estimate of one decode step: the pilot's, until corrected
        self.counter_overhead_s = 0.0  # what timing a pass under FlopCounterMode adds to it
        self.uncounted_share = 1.0  # a plain pass over a counted one at the first length

    def calibrate_counter(self, plain_s: float, counted_s: float) -> None:
        """Take the counter's overhead from a plain and a FLOP-counted pass at the first length."""
        self.counter_overhead_s = max(0.0, counted_s - plain_s)
        self.uncounted_share = min(1.0, plain_s / counted_s)

    def uncounted_s(self, counted_s: float) -> float:
        """A pass timed under the FLOP counter, as a plain pass would take."""
        return max(counted_s - self.counter_overhead_s, counted_s * self.uncounted_share)

    def prefill_estimate_s(self, n: int) -> float:
        longer = [m for m in self.prefill_s if m >= n]
        return self.prefill_s[min(longer)] if longer else self.prefill_s[max(self.prefill_s)] * n / max(self.prefill_s)

    def generate_s(self, n_in: int, n_out: int) -> float:
        return self.prefill_estimate_s(n_in) + (n_out - 1) * self.decode_s

    def length_cost_s(self, n: int) -> float:
        """Predicted time to measure one length at the minimum repeats, warm-ups included."""
        repeats = self.min_repeats
        return (2 * repeats + 1) * self.prefill_s[n] + (repeats + 1) * self.decode_s

    def cost_s(self, planned: list[int], to_measure: list[int]) -> float:
        """Predicted time to finish ``planned`` (sorted) at the minimum repeats: the lengths ``to_measure``
        (those not yet begun), the generate pairs ``planned`` implies, and the reference passes."""
        pairs = generate_pairs(planned, self.max_positions)
        cost = sum(self.length_cost_s(n) for n in to_measure)
        cost += (self.min_repeats + 1) * sum(self.generate_s(*pair) for pair in pairs)
        return cost + (len(to_measure) + len(pairs) + 1) * self.prefill_s[planned[0]]

    def one_repeat_s(self, queue: list[int], pairs: list[tuple[int, int]], reference_n: int) -> float:
        """The cost of one repeat of each item left (the lengths in ``queue``, ``pairs``) and of the reference
        passes left: what each item's share of the time left is taken over."""
        cost = sum(2 * self.prefill_s[n] + self.decode_s for n in queue)
        cost += sum(self.generate_s(*pair) for pair in pairs)
        return cost + (len(queue) + len(pairs) + 1) * self.prefill_s[reference_n]

    def correct(self, planned: list[int], prefill_median_s: dict[int, float], decode_median_s: list[float]) -> bool:
        """Correct the estimates of ``planned`` when the pilot proves ``PILOT_OFF`` times too slow in sum
        against ``prefill_median_s`` (length -> median measured); whether it did."""
        measured = [n for n in self.pilot_s if n in prefill_median_s]
        if not measured:
            return False
        inflation = sum(self.pilot_s[n] for n in measured) / sum(prefill_median_s[n] for n in measured)
        if inflation < PILOT_OFF:
            return False
        for n in planned:
            self.prefill_s[n] = prefill_median_s.get(n, self.pilot_s[n] / inflation)
        if decode_median_s:
            self.decode_s = statistics.median(decode_median_s)
        self.counter_overhead_s /= inflation
        return True
