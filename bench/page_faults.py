"""Minor page faults per IWAE chunk, with glibc keeping freed buffers (`keep_freed_memory`) and
without, each in a fresh interpreter, as the evaluate stage computes the bound:

    python bench/page_faults.py [--calls 9]

For each architecture and mode: the faults per chunk of each call after a first one (the bound of
500 random images at k = 40, in 10 chunks of 4 importance samples: 2,000 decodes, whose logits
alone are 6.4 MB for the MLP). Without the setting every call faults its chunks'
buffers in again; with it most calls fault nothing, and a call that grows the heap (more often
under load, where torch's threads take turns) faults once for the growth. `tests/test_runtime.py`
checks the mechanism, not these counts, which depend on the threads, the load and the C library.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

FAULTS_PER_CHUNK = """
import resource, sys, torch
from vaebench.evaluation.evaluate import iwae_log_likelihood
from vaebench.models import build_model
from vaebench.core.runtime import keep_freed_memory
arch, mode, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
K, CHUNK = 40, 4
if mode == "keep":
    assert keep_freed_memory(), "this C library has no mallopt"
model, x = build_model(arch).eval(), torch.rand(500, 1, 28, 28)
with torch.no_grad():
    iwae_log_likelihood(model, x, K, "bce", chunk=CHUNK)
    for _ in range(calls):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        iwae_log_likelihood(model, x, K, "bce", chunk=CHUNK)
        print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / (K // CHUNK))
"""


def faults_per_chunk(arch: str, mode: str, calls: int) -> list[float]:
    command = [sys.executable, "-c", FAULTS_PER_CHUNK, arch, mode, str(calls)]
    return [float(line) for line in subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=9, help="calls measured after the first, per process")
    args = parser.parse_args()
    print("| arch | glibc | faults per chunk, each call | median | calls without a fault |")
    print("| --- | --- | --- | ---: | ---: |")
    for arch in ("mlp", "cnn"):
        for mode in ("default", "keep"):
            faults = faults_per_chunk(arch, mode, args.calls)
            calls = ", ".join(f"{f:,.0f}" for f in faults)
            print(f"| {arch} | {mode} | {calls} | {statistics.median(faults):,.0f} | {sum(f < 1 for f in faults)} |")


if __name__ == "__main__":
    main()
