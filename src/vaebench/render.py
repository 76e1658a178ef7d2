"""Figures: torchvision's make_grid/save_image for image grids, matplotlib where axes need labels."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: stages run in CI and under DVC without a display

import matplotlib.pyplot as plt
import pandas as pd
import torch
from PIL import Image
from torchvision.utils import make_grid, save_image

from vaebench.models.base import VAE
from vaebench.train import reconstruct


def originals_over_reconstructions(images: torch.Tensor, recons: torch.Tensor) -> torch.Tensor:
    """One grid image: the originals on the top row, their reconstructions below (the seed's 2xN)."""
    return make_grid(torch.cat([images.cpu(), recons.cpu()]), nrow=len(images), pad_value=1.0)


def to_pil(grid: torch.Tensor) -> Image.Image:
    return Image.fromarray(grid.mul(255).round().clamp(0, 255).byte().permute(1, 2, 0).numpy())


def save_reconstructions(model: VAE, images: torch.Tensor, path: Path) -> None:
    save_image(originals_over_reconstructions(images, reconstruct(model, images)), path)


@torch.no_grad()
def save_prior_samples(model: VAE, path: Path, n: int = 64, mean: float = 0.0, std: float = 1.0, seed: int = 0) -> None:
    """Decode z ~ N(mean, std^2 I): N(0, I) is the prior; other values show the seed's knob."""
    model.eval()
    device = next(model.parameters()).device
    z = torch.randn(n, model.latent, generator=torch.Generator().manual_seed(seed)) * std + mean
    save_image(model.decode(z.to(device)).cpu(), path, nrow=int(n**0.5) or 1, pad_value=1.0)


def save_progress_montage(snapshots: dict[str, torch.Tensor], path: Path, title: str) -> None:
    """The originals, then one row of reconstructions per snapshot epoch (the seed's sequence)."""
    epochs = snapshots["epochs"].tolist()
    rows = torch.cat([snapshots["images"], snapshots["recons"].flatten(0, 1)])
    grid = make_grid(rows, nrow=len(snapshots["images"]), pad_value=1.0)
    fig, ax = plt.subplots(figsize=(4, 0.75 * (len(epochs) + 1) + 0.6))
    ax.imshow(grid.permute(1, 2, 0).numpy(), cmap="gray")
    row_height = grid.shape[1] / (len(epochs) + 1)
    ax.set_yticks([row_height * (i + 0.5) for i in range(len(epochs) + 1)])
    ax.set_yticklabels(["input"] + [f"epoch {e}" for e in epochs])
    ax.set_xticks([])
    ax.set_title(title)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def save_loss_curves(histories: dict[str, pd.DataFrame], path: Path) -> None:
    """Train and validation loss per epoch of every architecture, on one set of axes."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for arch, frame in histories.items():
        (line,) = ax.plot(frame["epoch"], frame["train_loss"], label=f"{arch} train")
        ax.plot(frame["epoch"], frame["val_loss"], "--", color=line.get_color(), label=f"{arch} validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss per image (nats)")
    ax.set_title("Training and validation loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
