"""The split tensors on disk (data/processed/<split>.pt): written by normalize, read by the rest.

Separate from mnist.py so that stages which only read splits do not import torchvision.
"""

from __future__ import annotations

from pathlib import Path

import torch

from vaebench.core.io import atomic_path, load_tensors, unreadable

Splits = dict[str, tuple[torch.Tensor, torch.Tensor]]


def save_splits(splits: Splits, directory: Path) -> None:
    with atomic_path(directory) as tmp:
        tmp.mkdir()
        for name, (images, labels) in splits.items():
            torch.save({"images": images, "labels": labels}, tmp / f"{name}.pt")


def binarized(images: torch.Tensor, seed: int) -> torch.Tensor:
    """A fixed Bernoulli sample of the pixel intensities: the literature's binarized test set."""
    generator = torch.Generator().manual_seed(seed)
    return torch.bernoulli(images.cpu(), generator=generator).to(images.device)


def load_split(
    directory: str | Path, name: str, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, labels) of one split, moved to `device` once: training draws batches by index."""
    path = Path(directory) / f"{name}.pt"
    blob = load_tensors(path, device)
    try:
        return blob["images"], blob["labels"]
    except (KeyError, TypeError) as exc:
        raise unreadable(path, f"no {exc} in it") from None


def processed_digest(lock: Path = Path("dvc.lock")) -> str:
    """DVC's hash of data/processed, from dvc.lock (written as soon as normalize ran); '' if unknown."""
    import yaml

    try:
        outs = yaml.safe_load(lock.read_text())["stages"]["normalize"]["outs"]
        return next(out["md5"] for out in outs if out["path"] == "data/processed")
    except (OSError, KeyError, TypeError, StopIteration, yaml.YAMLError):
        return ""
