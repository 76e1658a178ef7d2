"""MNIST on disk: torchvision's own download (mirrors, MD5 checks, progress bar), then split tensors.

The processed splits are float32 tensors in [0, 1], the reconstruction target of both decoders.
The original recipe's Normalize((0.1307,), (0.3081,)) is not applied to targets: a Sigmoid cannot reach them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from torchvision.datasets import MNIST
from torchvision.datasets.utils import check_integrity

from vaebench.core.environment import DownloadError
from vaebench.core.io import atomic_path
from vaebench.data.splits import Splits


def _copy_verified(mirror: Path, raw_folder: Path) -> None:
    """Copy the four files from a directory mirror, each checked against torchvision's MD5.

    torchvision's downloader only streams http(s) (a file:// response has no length), so a
    directory is copied here; MNIST(download=True) then finds valid archives and extracts them.
    """
    raw_folder.mkdir(parents=True)
    for filename, md5 in MNIST.resources:
        source = mirror / filename
        if not source.is_file():
            raise DownloadError(f"{filename} is missing from the mirror {mirror}")
        shutil.copyfile(source, raw_folder / filename)
        if not check_integrity(str(raw_folder / filename), md5):
            raise DownloadError(f"{filename} from the mirror {mirror} is corrupt: its MD5 is not torchvision's {md5}")


def download(root: Path, mirror: str | Path | None = None) -> None:
    """Fetch and verify the four MNIST files into `root` (torchvision's layout: root/MNIST/raw).

    Downloads into a temporary directory renamed over `root` only when every MD5 passed, so a
    failed or interrupted download leaves nothing half-written.
    """
    # A subclass, not a patch of MNIST.mirrors: the global class stays as torchvision ships it.
    # It keeps the name MNIST because torchvision derives the folder name from the class name.
    # For a directory, the verified copies are already in place and torchvision skips the fetch.
    mirrors = [mirror.as_uri() + "/" if isinstance(mirror, Path) else mirror] if mirror else list(MNIST.mirrors)
    dataset_class = type("MNIST", (MNIST,), {"mirrors": mirrors})
    with atomic_path(root) as tmp:
        if isinstance(mirror, Path):
            _copy_verified(mirror, tmp / "MNIST" / "raw")
        try:
            dataset_class(tmp, train=True, download=True)
        except RuntimeError as exc:
            raise DownloadError(f"MNIST download failed (mirrors tried: {', '.join(mirrors)})\n{exc}") from None


def mnist_tensors(raw_root: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """One MNIST set as N x 1 x 28 x 28 float32 in [0, 1] and int64 labels, via torchvision."""
    dataset = MNIST(raw_root, train=train)
    return dataset.data.unsqueeze(1).float().div_(255.0), dataset.targets


def split(raw_root: Path, val_size: int, subset: int, seed: int) -> Splits:
    """Seeded validation split from the 60k training images; the 10k test set untouched.

    Returns images as N x 1 x 28 x 28 float32 in [0, 1] and labels as int64, per split.
    """
    images, labels = mnist_tensors(raw_root, train=True)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    val_idx, train_idx = order[:val_size], order[val_size:]
    if subset:
        train_idx = train_idx[:subset]
    return {
        "train": (images[train_idx], labels[train_idx]),
        "val": (images[val_idx], labels[val_idx]),
        "test": mnist_tensors(raw_root, train=False),
    }


def data_summary(splits: Splits) -> dict:
    """Counts per split and class, and the training pixels' mean and std (reports/data.json)."""
    train_images = splits["train"][0]
    return {
        "counts": {
            name: {"total": len(labels), **{str(c): int((labels == c).sum()) for c in range(10)}}
            for name, (_, labels) in splits.items()
        },
        "train_pixel_mean": round(train_images.mean().item(), 6),
        "train_pixel_std": round(train_images.std().item(), 6),
    }
