"""The parser (``profiler.cli.parser``) takes every number in its range, and each option's default.

The numbers out of range, and the one line each ends with, are ``tests/test_cli_inputs.py``'s.
"""

from __future__ import annotations

import pytest

from profiler.cli import arguments
from profiler.cli.parser import build_parser

CPUS = arguments.usable_cpus()


@pytest.mark.parametrize("options, attribute, value", [
    (["--budget", "0.5"], "budget", 0.5),
    (["--budget", "604800"], "budget", 604800.0),
    (["--budget", "1e2"], "budget", 100.0),
    (["--threads", "1"], "threads", 1),
    (["--threads", str(CPUS)], "threads", CPUS),
    (["--seed", "0"], "seed", 0),
    (["--seed", str(2**32 - 1)], "seed", 2**32 - 1),
    ([], "budget", None),
    ([], "threads", None),
    (["--batch", "8,1,2,4,2"], "batch", [1, 2, 4, 8]),
    (["--batch", "1"], "batch", [1]),
    (["--batch", "4096"], "batch", [4096]),
    ([], "batch", None),
])
def test_run_accepts_numbers_in_range(options, attribute, value):
    assert getattr(build_parser().parse_args(["run", "--model", "gpt2", *options]), attribute) == value


@pytest.mark.parametrize("options, attribute, value", [
    (["--seeds", "1"], "seeds", 1),
    (["--seeds", "1000"], "seeds", 1000),
    (["--budget", "0.1"], "budget", 0.1),
    (["--threads", "1"], "threads", 1),
    ([], "seeds", 5),
])
def test_validate_accepts_numbers_in_range(options, attribute, value):
    assert getattr(build_parser().parse_args(["validate", "--model", "gpt2", *options]), attribute) == value
