"""Process-wide settings: the allocator keeps freed buffers, so the IWAE chunks stop page-faulting.

The page faults themselves are a measurement (`python bench/page_faults.py`): how many a call takes
depends on the threads, the load and what ran before, so a test of them fails by chance. What the
setting changes is deterministic and tested here: in a fresh process, glibc serves a block of
several MB from its heap instead of a separate mapping, and keeps the heap when the block is freed.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from vaebench.core.runtime import keep_freed_memory

# In a fresh interpreter: malloc and free one 8 MiB block, an IWAE chunk's buffer size, and read
# glibc's own accounting (mallinfo2): the bytes mapped apart from the heap for it, how much the heap
# grew for it, and how much of the heap its free gave back to the kernel.
ONE_BLOCK = """
import ctypes, sys
libc = ctypes.CDLL(None)
class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                                    "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = Mallinfo2
libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_size_t], [ctypes.c_void_p]
if sys.argv[1] == "keep":
    from vaebench.core.runtime import keep_freed_memory
    assert keep_freed_memory()
before = libc.mallinfo2()
block = libc.malloc(8 << 20)
held = libc.mallinfo2()
libc.free(block)
freed = libc.mallinfo2()
print(held.hblkhd - before.hblkhd, held.arena - before.arena, held.arena - freed.arena)
"""
MIB = 1 << 20


def one_block(mode: str) -> tuple[int, int, int]:
    """Bytes (mapped apart from the heap, grown on the heap, given back by the free) for one block."""
    run = subprocess.run([sys.executable, "-c", ONE_BLOCK, mode], capture_output=True, text=True, check=True)
    mapped, grown, given_back = map(int, run.stdout.split())
    return mapped, grown, given_back


def test_freed_buffers_stay_in_the_heap_for_the_next_chunk() -> None:
    """Without the setting glibc maps each block of several MB apart and unmaps it on free, so the
    next chunk faults its pages in again; with it the block comes from the heap, which keeps it."""
    if not keep_freed_memory():
        pytest.skip("this C library has no mallopt")
    mapped, grown, _ = one_block("default")
    assert mapped >= 8 * MIB and grown == 0  # the baseline the setting exists for
    mapped, grown, given_back = one_block("keep")
    assert mapped == 0 and grown > 0 and given_back == 0
