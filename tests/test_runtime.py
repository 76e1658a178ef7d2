"""Process-wide settings: the allocator keeps freed buffers, so the IWAE chunks stop page-faulting."""

from __future__ import annotations

import subprocess
import sys

import pytest

from vaebench.core.runtime import keep_freed_memory

# In a fresh interpreter: minor page faults of the MLP's IWAE bound per chunk, the fewest of nine
# calls after a first one. With the setting a call still grows the heap now and then, more often on
# a loaded host where torch's threads take turns (a CI run had 3 of 5 calls at 153-231 faults per
# chunk), and the calls that do not grow it fault nothing; without it every call faults thousands
# of times. The fewest is what the setting changes; a median counted the heap's growth.
FAULTS_PER_CHUNK = """
import resource, sys, torch
from vaebench.evaluation.evaluate import iwae_log_likelihood
from vaebench.models import build_model
from vaebench.core.runtime import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
model, x = build_model("mlp").eval(), torch.rand(500, 1, 28, 28)
faults = []
with torch.no_grad():
    iwae_log_likelihood(model, x, 40, "bce", chunk=4)
    for _ in range(9):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        iwae_log_likelihood(model, x, 40, "bce", chunk=4)
        faults.append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)
print(min(faults))
"""


def faults_per_chunk(mode: str) -> float:
    run = subprocess.run([sys.executable, "-c", FAULTS_PER_CHUNK, mode], capture_output=True, text=True, check=True)
    return float(run.stdout.split()[-1])


def test_iwae_chunks_reuse_freed_buffers() -> None:
    """Without the setting glibc hands each chunk's 6 MB buffers back and faults them in again
    (thousands of faults per chunk); with it, a call that finds its heap grown faults nothing."""
    if not keep_freed_memory():
        pytest.skip("this C library has no mallopt")
    assert faults_per_chunk("keep") < 10
    assert faults_per_chunk("default") > 100  # the baseline the setting exists for
