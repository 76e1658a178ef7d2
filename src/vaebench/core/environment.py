"""The checks of this machine that can fail cheaply: the repository root, the MNIST mirror, the device.

Import-light (no torch at import time, no MLflow), so the `validate` stage and every stage's first
lines can run them before any output is touched or any heavy library loads.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from vaebench.core.errors import StageError

if TYPE_CHECKING:
    import torch

DEVICES = "auto, cpu, cuda, mps"


class DownloadError(StageError):
    """No mirror delivered a file with torchvision's MD5; names the file and every mirror tried."""


class DeviceError(StageError):
    """runtime.device names a device this machine does not have."""


def repo_root() -> Path:
    """The repository DVC runs in (`DVC_ROOT`), also from the temp copy of `dvc exp run --queue`."""
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()


def mnist_mirror() -> str | Path | None:
    """`MNIST_MIRROR` as a URL or an existing directory; None means torchvision's own mirrors."""
    mirror = os.environ.get("MNIST_MIRROR", "").strip()
    if not mirror:
        return None
    parsed = urlparse(mirror)
    if parsed.scheme in ("http", "https"):
        return mirror.rstrip("/") + "/"
    # A relative directory is relative to where the user started DVC (DVC_ROOT), not the
    # temporary copy that `dvc exp run --queue` executes in.
    path = repo_root() / Path(parsed.path if parsed.scheme == "file" else mirror)
    if not path.resolve().is_dir():
        raise DownloadError(f"MNIST_MIRROR={mirror!r} is neither an http(s) URL nor an existing directory ({path})")
    return path.resolve()


def resolve_device(name: str) -> torch.device:
    """`auto` picks cuda, then mps, then cpu; an explicit device that is absent is an error."""
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"runtime.device = 'cuda' but no CUDA device is available; allowed: {DEVICES}")
    if name == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"runtime.device = 'mps' but MPS is not available; allowed: {DEVICES}")
    return torch.device(name)
