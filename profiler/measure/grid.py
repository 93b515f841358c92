"""Which context lengths a run measures.

``--lengths`` takes a list (``16,64,256``) or a range ``lo:hi``, which means the
geometric grid from ``lo`` to ``hi`` (powers of two in between, both ends included). The
default grid runs from 8 to the model's maximum positions in half-octave steps; the sweep
then thins it to the run's time budget (and shortens it once thinning is not enough). Explicit
lengths are never thinned: those the budget cannot afford are skipped, and said.

Decode contexts are a grid of their own (``decode_contexts``): a decode step runs on a cache filled
without a prefill, so its contexts reach the model's last position whatever the lengths reach.

Extend points (``extend_points``): ``s`` tokens appended to a cache of ``c``, for a few sizes ``s``
(``EXTEND_SIZES``) at a few contexts ``c`` (three spread over the decode contexts, chosen by the plan), each
inside the model's positions (``c + s <= max_positions``); measured on caches filled without a prefill,
like decode.

Batch sizes (``--batch``): the sequences in one prefill or decode pass of the batch grid. By default
1, 2, 4, 8 on a CPU and up to 64 on a GPU (``default_batch_sizes``), each at most ``MAX_BATCH_SIZE``
and at most ``MAX_BATCH_SIZES`` of them: the batch grid's points grow with their number, and a pass's
memory with each size.
"""

from __future__ import annotations

import math

from profiler.errors import UserError

DEFAULT_MIN_LENGTH = 8
MAX_BATCH_SIZE = 4096
MAX_BATCH_SIZES = 16
EXTEND_SIZES = (16, 64, 256)  # tokens appended by an extend pass: a turn of a chat, a paragraph, a document's page
_DEFAULT_BATCH_SIZES = {"cpu": [1, 2, 4, 8], "cuda": [1, 2, 4, 8, 16, 32, 64]}


def default_batch_sizes(device_type: str) -> list[int]:
    """The batch sizes a run measures unless told: 1 to 8 on a CPU, 1 to 64 on a GPU (where batching pays
    until the pass is compute-bound)."""
    return list(_DEFAULT_BATCH_SIZES.get(device_type, _DEFAULT_BATCH_SIZES["cpu"]))


def geometric(lo: int, hi: int) -> list[int]:
    """``lo``, the powers of two strictly between, and ``hi``."""
    points = [lo]
    step = 1 << lo.bit_length()  # the first power of two above lo
    while step < hi:
        points.append(step)
        step <<= 1
    if hi > lo:
        points.append(hi)
    return points


def parse_lengths(text: str) -> list[int]:
    """Parse ``--lengths``; raise UserError on anything malformed."""
    try:
        if ":" in text:
            lo_text, hi_text = text.split(":")
            lo, hi = int(lo_text), int(hi_text)
            if lo > hi:
                raise UserError(f"--lengths {text}: the range must go up (lo:hi)")
            lengths = geometric(lo, hi)
        else:
            lengths = sorted({int(part) for part in text.split(",")})
    except ValueError:
        raise UserError(f"--lengths {text!r}: expected a list like 16,64,256 or a range like 64:8192") from None
    if lengths[0] < 1:
        raise UserError(f"--lengths {text}: lengths must be at least 1 token")
    return lengths


def check_lengths(lengths: list[int], max_positions: int, model: str) -> None:
    too_long = [n for n in lengths if n > max_positions]
    if too_long:
        raise UserError(f"--lengths: {too_long[0]} tokens is beyond {model}'s maximum of {max_positions} positions")


def default_lengths(max_positions: int) -> list[int]:
    """Half-octave steps (8, 11, 16, 23, 32, ...) up to the maximum, which is included: a
    fitted curve's held-out error is judged by leaving one length out, so the gaps stay small."""
    lo = min(DEFAULT_MIN_LENGTH, max_positions)
    points, k = [], 0
    while (n := round(lo * 2 ** (k / 2))) < max_positions:
        points.append(n)
        k += 1
    return [*points, max_positions]


def middle_first(points: list[int]) -> list[int]:
    """The sorted ``points`` in the order that spreads them over their range soonest: the one nearest the middle of
    their logarithms, then the one nearest the middle of each side (the lower first), then of each quarter, and so
    on. The lengths between the range's are piloted so (``profiler.measure.pilot``): a budget that holds a few of them
    spreads them over the range, rather than spending them at its cheap bottom, where a curve's terms that grow with n
    are not told apart (gpt2 on this 2-core CPU prefilled 11 tokens in 0.055 s and 8 in 0.060: a bottom that fixes no
    slope)."""
    order, sides = [], [points]
    while sides:
        side = sides.pop(0)
        if side:
            middle = (math.log(side[0]) + math.log(side[-1])) / 2
            index = min(range(len(side)), key=lambda i: abs(math.log(side[i]) - middle))
            order.append(side[index])
            sides += [side[:index], side[index + 1:]]
    return order


def decode_contexts(lengths: list[int], max_positions: int, default: bool) -> list[int]:
    """The contexts decode is measured at: the lengths, each at most the model's last position
    (``max_positions - 1``: a step needs a free position); with the default grid, the grid from the
    shortest length to the last position whatever the lengths the budget keeps."""
    if default:
        return sorted({*[n for n in default_lengths(max_positions) if n < max_positions - 1],
                       max(max_positions - 1, 1)})
    return sorted({min(n, max(max_positions - 1, 1)) for n in lengths})


def extend_points(contexts: list[int], max_positions: int) -> list[tuple[int, int]]:
    """The ``(c, s)`` extend points at the sorted ``contexts``: each with every size of ``EXTEND_SIZES`` that leaves a
    cached token (``s <= max_positions - 1``), ``c`` lowered to ``max_positions - s`` where it would pass the last
    position (at the top context each size then ends at the last position); sorted, each once."""
    return sorted({(min(c, max_positions - s), s) for c in contexts for s in EXTEND_SIZES if s <= max_positions - 1})


def generate_pairs(lengths: list[int], max_positions: int) -> list[tuple[int, int]]:
    """A few ``(n_in, n_out)`` pairs that span short and long prompts and outputs.

    A decode-heavy call (a prompt at the grid's quarter, 16 tokens out) and a prefill-heavy
    one (a prompt just below the grid's top, 8 tokens out). Every context the call reaches
    stays within the measured grid (``n_in + n_out <= top``), so a cost model fitted to the
    sweep predicts both by interpolation.
    """
    top = lengths[-1]
    candidates = [(max(lengths[0], top // 4), 16), (top - 8, 8)]
    pairs = []
    for n_in, n_out in candidates:
        n_in = min(n_in, top - n_out, max_positions - n_out)
        if n_in >= 1 and (n_in, n_out) not in pairs:
            pairs.append((n_in, n_out))
    return pairs
