"""The command line's numbers, checked where they are parsed: argparse ``type=`` callables.

Each callable turns one option's text into its value or raises ``ArgumentTypeError`` with the
accepted range; the parser (``profiler.cli.parser``) makes that one line and exit status 2
before any command starts. The limits, and why each is where it is:

- ``budget_seconds``: a finite number of seconds above 0 and at most a week
  (``MAX_BUDGET_S``). ``inf`` or ``nan`` would reach the progress bar's ETA and the run's
  document (JSON has neither); a budget beyond a week is no plan for one sweep.
- ``thread_count``: 1 to the CPUs this process may run on (its affinity mask, which a
  container narrows, else ``os.cpu_count()``). Torch refuses 0 or fewer with a traceback;
  more threads than CPUs would time the threads' contention, not the model, and the
  count is part of the hardware slug a fit is filed under.
- ``seed``: 0 to 2^32 - 1 (``MAX_SEED``): every consumer takes it (``random.Random``,
  torch generators, numpy), and a JSON reader that holds numbers as doubles reads it back
  exactly.
- ``batch_sizes``: a list of whole numbers 1 to ``MAX_BATCH_SIZE`` (4,096), at most
  ``MAX_BATCH_SIZES`` (16) of them (``profiler.measure.grid``): the sweep's batch points grow
  with their number and a pass's memory with each.
- ``concurrency_levels``: calls at once in an endpoint run's concurrency sweep, ``1,2,4,8``: each a whole number
  1 to ``MAX_CONCURRENCY`` (64, ``profiler.measure.endpoint.load``: a thread and a connection each), sorted,
  each once.
- ``count(lo, hi)``: a whole number in ``[lo, hi]``, for ``--seeds`` and ``--monte-carlo``,
  whose work grows with the count (their limits are set where the options are declared), and
  for a parallel schedule's ``--max-batch`` and ``--devices``: at most ``MAX_BATCH`` and
  ``MAX_DEVICES`` (a million each, as many as the exercises' counts; the schedule's work does
  not grow with either, and beyond a million no deployment is planned).
- ``cache_capacity``: a prefix cache's tokens, a whole number 1 to ``MAX_TOKENS`` (a billion:
  the exercises' own limit on tokens, ``profiler.lba.exercises.base``); ``prefix_cache_arguments``
  declares it with ``--prefix-cache on|off``, for every command that prices or runs with prefix
  reuse (``cli.breakeven.reuse_of`` reads them).
- ``usd_per_device_hour``: US dollars a device-hour, finite, above 0 and at most
  ``MAX_USD_PER_DEVICE_HOUR`` (a million: beyond any machine's rent); ``usd_arguments`` declares it
  with breakeven's other dollar options (``cli.breakeven_usd`` reads them together).
- ``tokens``: a whole number of tokens, 1 to ``MAX_TOKENS`` (``export``'s typical call).
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

MAX_BUDGET_S = 7 * 24 * 3600.0
MAX_SEED = 2**32 - 1
MAX_BATCH = 10**6
MAX_DEVICES = 10**6
MAX_USD_PER_DEVICE_HOUR = 1e6


def _quoted(text: str) -> str:
    """``text`` as given, quoted where it could not be seen otherwise (empty, spaces at an end)."""
    return text if text and text.strip() == text and text.isprintable() else repr(text)


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{_quoted(text)} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{_quoted(text)}: expected a finite number")
    return value


def budget_seconds(text: str) -> float:
    """Seconds, finite, above 0 and at most ``MAX_BUDGET_S``."""
    value = _number(text)
    if not 0 < value <= MAX_BUDGET_S:
        raise argparse.ArgumentTypeError(f"{_quoted(text)}: expected seconds above 0 and at most "
                                         f"{MAX_BUDGET_S:.0f} (a week)")
    return value


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity mask where the system has one, else every CPU."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _whole(text: str, lo: int, hi: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not lo <= value <= hi:
        raise argparse.ArgumentTypeError(f"{_quoted(text)}: expected a whole number from {lo:,} to {hi:,}{what}")
    return value


def thread_count(text: str) -> int:
    """A number of torch CPU threads: 1 to ``usable_cpus()``."""
    return _whole(text, 1, usable_cpus(), " (the CPUs this process may use)")


def seed(text: str) -> int:
    """A seed: 0 to ``MAX_SEED``."""
    return _whole(text, 0, MAX_SEED, "")


def batch_sizes(text: str) -> list[int]:
    """Batch sizes, ``1,2,4,8``: sorted, each 1 to ``MAX_BATCH_SIZE``, at most ``MAX_BATCH_SIZES`` distinct."""
    from profiler.measure.grid import MAX_BATCH_SIZE, MAX_BATCH_SIZES

    parts = text.split(",")
    if len(parts) > MAX_BATCH_SIZES:
        raise argparse.ArgumentTypeError(f"{_quoted(text[:40] + ('...' if len(text) > 40 else ''))}: "
                                         f"at most {MAX_BATCH_SIZES} batch sizes")
    return sorted({_whole(part.strip(), 1, MAX_BATCH_SIZE, " (sequences in a pass)") for part in parts})


def cache_capacity(text: str) -> int:
    """Tokens a prefix cache holds: 1 to ``MAX_TOKENS``."""
    from profiler.lba.exercises.base import MAX_TOKENS  # the pricing layer: not for every command

    return _whole(text, 1, MAX_TOKENS, " (tokens)")


def prefix_cache_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """``--prefix-cache on|off`` and ``--cache-capacity TOKENS``; ``what`` says what reuse does in the command."""
    parser.add_argument("--prefix-cache", choices=["on", "off"], default="off",
                        help=f"on: each model keeps what its calls read and wrote, and a call computes only the "
                             f"tokens past its longest cached prefix ({what}); off: every call prefills its whole "
                             "input (the default)")
    parser.add_argument("--cache-capacity", type=cache_capacity, metavar="TOKENS",
                        help="with --prefix-cache on: at most TOKENS cached over all models, least recently used "
                             "evicted (default: no limit)")


def usd_per_device_hour(text: str) -> float:
    """US dollars a device-hour: finite, above 0, at most ``MAX_USD_PER_DEVICE_HOUR``."""
    value = _number(text)
    if not 0 < value <= MAX_USD_PER_DEVICE_HOUR:
        raise argparse.ArgumentTypeError(f"{_quoted(text)}: expected US dollars a device-hour above 0 and at most "
                                         f"{MAX_USD_PER_DEVICE_HOUR:,.0f}")
    return value


def tokens(text: str) -> int:
    """Tokens of a call: 1 to ``MAX_TOKENS``."""
    from profiler.lba.exercises.base import MAX_TOKENS  # the pricing layer: not for every command

    return _whole(text, 1, MAX_TOKENS, " (tokens)")


def usd_arguments(parser: argparse.ArgumentParser) -> None:
    """breakeven's ``--unit usd`` and the options that price in dollars (checked by ``cli.breakeven_usd``)."""
    parser.add_argument("--unit", choices=["usd"],
                        help="usd: price in US dollars, by --price-sheet or --usd-per-device-hour (default: the "
                             "pricing's own unit: seconds of a fit, m*token for the paper's primitive)")
    parser.add_argument("--price-sheet", type=Path, metavar="FILE",
                        help="with --unit usd: a provider's prices per million tokens (models/price-sheets/*.json)")
    parser.add_argument("--price-model", metavar="NAME",
                        help="the price sheet's model that prices every role (needless when it has one model)")
    parser.add_argument("--role-price", action="append", default=[], metavar="ROLE=NAME",
                        help="a role's own model of the price sheet, e.g. 'generalist=Claude Sonnet 4'")
    parser.add_argument("--usd-per-device-hour", type=usd_per_device_hour, metavar="X",
                        help="with --unit usd and --fit: X US dollars a device-hour times the fitted seconds")


def concurrency_levels(text: str) -> list[int]:
    """Concurrency levels, ``1,2,4,8``: sorted, each 1 to ``MAX_CONCURRENCY``, each once."""
    from profiler.measure.endpoint.load import MAX_CONCURRENCY

    return sorted({_whole(part.strip(), 1, MAX_CONCURRENCY, " (calls at once)") for part in text.split(",")})


def count(lo: int, hi: int):
    """A type for a whole number in ``[lo, hi]``."""

    def parse(text: str) -> int:
        return _whole(text, lo, hi, "")

    parse.__name__ = f"count from {lo} to {hi}"  # argparse names the type in some of its own messages
    return parse
