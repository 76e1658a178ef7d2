"""Seeding, CPU threads and the allocator: the process-wide settings every computing stage makes first."""

from __future__ import annotations

import ctypes
import random

import numpy as np
import torch

from vaebench.core.environment import resolve_device
from vaebench.core.params import RuntimeParams


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


# glibc's mallopt parameters (malloc.h); 32 MiB is the largest mmap threshold glibc accepts on 64-bit
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD, TRIM_THRESHOLD = 32 << 20, 1 << 30


def keep_freed_memory() -> bool:
    """Let glibc's malloc reuse freed buffers instead of handing them back to the kernel.

    Each IWAE chunk allocates buffers of several MB (the MLP's logits for 2,048 decodes are 6.4 MB).
    glibc serves and frees such sizes with mmap/munmap or trims them off its heap, so every chunk
    page-faults its buffers in again; with both thresholds raised they come from the heap and stay
    there for the next chunk (tests/test_runtime.py; the faults: bench/page_faults.py). The price
    is that a stage keeps its peak memory until it exits. Returns False where the C library has no
    mallopt (macOS, Windows, musl): nothing changes there.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError, TypeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def configure(runtime: RuntimeParams, seed: int) -> torch.device:
    """Seed all generators, pin torch's CPU thread count if asked, keep freed memory for reuse, and
    return the device."""
    seed_everything(seed)
    keep_freed_memory()
    if runtime.threads:
        torch.set_num_threads(runtime.threads)
    return resolve_device(runtime.device)
