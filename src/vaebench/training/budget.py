"""What a training run would cost, estimated before any work: params that are legal but absurd for
this machine (a model that cannot fit in memory, a run that would take years) fail in `validate`
with the estimate, not hours later with an allocation error.

Both figures are lower bounds, so nothing reasonable is refused: memory counts only the weights,
their gradients and Adam's two moments (16 bytes a parameter, activations aside), and time counts
6 FLOPs per parameter and image (a dense layer's forward and backward; convolutions cost more) at
a speed no such device reaches: 64 FLOP per cycle at 5 GHz on every CPU core (two 512-bit FMAs),
100 TFLOP/s on an accelerator. The model is built on torch's meta device: its parameters are
counted, never allocated.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from vaebench.core.errors import StageError
from vaebench.core.params import MNIST_TRAIN_IMAGES, Params
from vaebench.models import build_model, count_parameters

if TYPE_CHECKING:  # torch loads when a model is counted: a typo in params.yaml is answered before it
    import torch

BYTES_PER_PARAMETER = 16  # fp32 weight, gradient, and Adam's two moments
FLOPS_PER_PARAMETER_IMAGE = 6
CPU_CORE_FLOPS = 64 * 5e9
ACCELERATOR_FLOPS = 100e12
YEAR_S = 365 * 24 * 3600


def physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def parameters(params: Params, arch: str) -> int:
    import torch

    with torch.device("meta"):
        return count_parameters(build_model(arch, params.model[arch]))


def _gib(n: float) -> str:
    return f"{n / 2**30:,.0f} GiB" if n < 2**50 else f"{n / 2**50:,.0f} PiB"


def fastest_flops(device: torch.device) -> float:
    return (os.cpu_count() or 1) * CPU_CORE_FLOPS if device.type == "cpu" else ACCELERATOR_FLOPS


def least_training_seconds(params: Params, arch: str, device: torch.device, n: int | None = None) -> float:
    """The lower bound on one training run's time (see the module's docstring); `n` parameters if counted."""
    images = params.data.subset or MNIST_TRAIN_IMAGES - params.data.val_size
    n = parameters(params, arch) if n is None else n
    return FLOPS_PER_PARAMETER_IMAGE * n * images * params.train.epochs / fastest_flops(device)


def check_budget(params: Params, device: torch.device, memory: int | None = None) -> None:
    """StageError naming the key and the estimate when a compared model cannot fit in this machine's
    memory or its training could not end within a year on the fastest hardware."""
    memory = physical_memory() if memory is None else memory
    images = params.data.subset or MNIST_TRAIN_IMAGES - params.data.val_size
    for arch in params.compare.archs:
        n = parameters(params, arch)
        need = n * BYTES_PER_PARAMETER
        if memory is not None and need > memory:
            raise StageError(
                f"model.{arch}: {n:,} parameters need at least {_gib(need)} to train (weights, gradients, Adam);"
                f" this machine has {_gib(memory)}"
            )
        flops = fastest_flops(device)
        seconds = least_training_seconds(params, arch, device, n)
        if seconds > YEAR_S:
            raise StageError(
                f"train.epochs = {params.train.epochs}: training {arch} ({n:,} parameters, {images:,} images an"
                f" epoch) would take at least {seconds / YEAR_S:,.0f} years on {device.type}"
                f" (even at {flops / 1e12:,.2f} TFLOP/s)"
            )
