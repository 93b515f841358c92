"""The allocator's settings are the process's own: each case runs in a fresh interpreter, so the test process keeps
glibc's defaults and the cases do not depend on their order."""

import json
import subprocess
import sys

import pytest

from profiler.measure.allocator import _glibc

pytestmark = pytest.mark.skipif(_glibc() is None, reason="the C library is not glibc")

MIB = 2**20

CASE = """
import json, re, torch
from profiler.measure.allocator import hold_freed_memory, release_freed_memory
from profiler.measure.memory import PeakMemory

def rss():
    return int(re.search(r"VmRSS:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) * 1024

held = hold_freed_memory() if {hold} else None
peak = PeakMemory(torch.device("cpu"))
before = rss()
block = torch.ones(300 * 2**20 // 4)  # 300 MiB, touched
del block
after_free = rss()
small, (small_peak, _) = peak.measure(lambda: torch.ones(30 * 2**20 // 4))  # 30 MiB, touched
del small
released = release_freed_memory()
print(json.dumps({{"held": held, "before": before, "after_free": after_free, "after_release": rss(),
                  "released": released, "supported": peak.supported, "small_peak": small_peak}}))
"""


def _case(hold: bool) -> dict:
    done = subprocess.run([sys.executable, "-c", CASE.format(hold=hold)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_freed_memory_is_held_until_released():
    case = _case(hold=True)
    assert case["held"] is True
    assert case["after_free"] - case["before"] >= 290 * MIB  # the freed block stays resident
    assert case["released"] is True and case["after_release"] - case["before"] < 20 * MIB


def test_without_holding_a_large_freed_block_goes_back_at_once():
    case = _case(hold=False)
    assert case["after_free"] - case["before"] < 20 * MIB


def test_a_peak_read_with_memory_held_counts_the_pass_not_the_pages_kept_before_it():
    """A 300 MiB block freed and held, then a 30 MiB pass: its peak is the resident set with the 30 MiB (the reset
    handed the held pages back), not with the 300 MiB as well (without the hand-back it read 300 MiB over)."""
    case = _case(hold=True)
    if not case["supported"]:
        pytest.skip("no /proc/self/clear_refs: CPU peak not measurable here")
    assert case["small_peak"] - case["before"] < 100 * MIB
    assert case["small_peak"] >= case["before"] + 25 * MIB
