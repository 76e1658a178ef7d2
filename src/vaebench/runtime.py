"""Device choice, seeding and CPU threads: the few process-wide settings every stage makes."""

from __future__ import annotations

import random

import numpy as np
import torch

from vaebench.errors import StageError


class DeviceError(StageError):
    """train.device names a device this machine does not have."""


def resolve_device(name: str) -> torch.device:
    """`auto` picks cuda, then mps, then cpu; an explicit device that is absent is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceError("train.device = 'cuda' but no CUDA device is available; allowed: auto, cpu, cuda, mps")
    if name == "mps" and not torch.backends.mps.is_available():
        raise DeviceError("train.device = 'mps' but MPS is not available; allowed: auto, cpu, cuda, mps")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def configure(seed: int, threads: int) -> None:
    """Seed all generators and, if asked, pin torch's CPU thread count."""
    seed_everything(seed)
    if threads:
        torch.set_num_threads(threads)
