"""Memory freed after a burst goes back to the OS (extproc/heap.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from extproc.heap import trim_heap

# In a fresh interpreter: 100 MB of 50 KB blocks (below glibc's mmap threshold: they come from its
# heap), a block after them so the heap's top cannot shrink by itself, then all but that one freed.
_BURST = """
import sys
from extproc.heap import trim_heap

def resident_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20

blocks = [b"x" * 50_000 for _ in range(2_000)]
pin = b"x" * 60_000  # larger than any hole below the blocks: it lands above them
del blocks
freed = resident_mb()
assert trim_heap()
print(freed, resident_mb())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or not trim_heap(), reason="glibc's malloc_trim")
def test_the_pages_a_burst_freed_are_returned_by_a_trim() -> None:
    result = subprocess.run([sys.executable, "-c", _BURST], capture_output=True, text=True, check=True)
    freed, trimmed = map(float, result.stdout.split())
    assert freed - trimmed > 50  # of the 100 MB the burst freed, which glibc kept until the trim
