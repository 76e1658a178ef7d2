"""Seeding and CPU threads: the process-wide settings every computing stage makes first."""

from __future__ import annotations

import random

import numpy as np
import torch

from vaebench.environment import resolve_device
from vaebench.params import RuntimeParams


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def configure(runtime: RuntimeParams, seed: int) -> torch.device:
    """Seed all generators, pin torch's CPU thread count if asked, and return the device."""
    seed_everything(seed)
    if runtime.threads:
        torch.set_num_threads(runtime.threads)
    return resolve_device(runtime.device)
