"""The C allocator's freed memory on a CPU: held in the process while a model is measured, handed back on demand.

glibc's malloc gives freed memory back to the kernel: a block over its mmap threshold (128 KiB, rising with the blocks
freed) is unmapped when freed, and the top of a heap is trimmed when more than its trim threshold is free. Each pass of
a model then touches fresh pages, a fault each, and on a virtual machine whose guest reports free pages to its host
(virtio-balloon free page reporting, as on this project's machines) the host faults them in again as well. On gpt2's
1,024-token prefill on this 2-core CPU the first repeats after other shapes read 8-15% slow so
(``benchmarks/allocator.py``), and in default runs the first seconds of the sweep ran slow (the reference passes 4-30%
above their median) while the passes' memory grew.

``hold_freed_memory`` sets malloc so that freed memory stays in the process (no block is mapped on its own, and a heap's
top is trimmed only past ``TRIM_THRESHOLD_BYTES``): a pass reuses the pages the passes before it touched, as in a
serving process that has run for a while. ``release_freed_memory`` hands the free pages back (``malloc_trim``), so
that the resident set is what is in use: a pass's peak memory (``profiler.measure.memory``) is read after it, not
counted with pages kept from a larger pass. Where the C library is not glibc (musl, macOS), both do nothing and
return False.
"""

from __future__ import annotations

import ctypes
from functools import cache

M_TRIM_THRESHOLD = -1  # mallopt's parameters (glibc's malloc.h)
M_MMAP_MAX = -4
TRIM_THRESHOLD_BYTES = 2**31 - 1  # mallopt takes a C int: the most it can be set to


@cache
def _glibc() -> ctypes.CDLL | None:
    libc = ctypes.CDLL(None)
    return libc if hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "malloc_trim") else None


def hold_freed_memory() -> bool:
    """Keep freed memory in this process from now on (module doc); whether the C library took the settings."""
    libc = _glibc()
    return bool(libc and libc.mallopt(M_MMAP_MAX, 0) and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))


def release_freed_memory() -> bool:
    """Hand this process's free heap pages back to the kernel; whether any were."""
    libc = _glibc()
    return bool(libc and libc.malloc_trim(0))
