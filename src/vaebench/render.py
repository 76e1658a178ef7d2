"""Figures: torchvision's make_grid/save_image for image grids, matplotlib where axes need labels."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: stages run in CI and under DVC without a display

import matplotlib.pyplot as plt
import pandas as pd
import torch
from matplotlib.ticker import MaxNLocator
from PIL import Image
from torchvision.utils import make_grid, save_image

from vaebench.models.base import VAE


def originals_over_reconstructions(images: torch.Tensor, recons: torch.Tensor) -> torch.Tensor:
    """One grid image: the originals on the top row, their reconstructions below (the seed's 2xN)."""
    return make_grid(torch.cat([images.cpu(), recons.cpu()]), nrow=len(images), pad_value=1.0)


def to_pil(grid: torch.Tensor) -> Image.Image:
    return Image.fromarray(grid.mul(255).round().clamp(0, 255).byte().permute(1, 2, 0).numpy())


def save_reconstructions(model: VAE, images: torch.Tensor, path: Path) -> None:
    save_image(originals_over_reconstructions(images, model.reconstruct(images)), path)


def save_prior_samples(model: VAE, path: Path, n: int = 64, mean: float = 0.0, std: float = 1.0, seed: int = 0) -> None:
    """Decode z ~ N(mean, std^2 I): N(0, I) is the prior; other values show the seed's knob."""
    samples = model.sample(n, seed, mean, std)
    save_image(samples.cpu(), path, nrow=int(n**0.5) or 1, pad_value=1.0)


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


def save_loss_curves(histories: dict[str, list[pd.DataFrame]], path: Path) -> None:
    """Mean train and validation loss per epoch of every architecture over its seeds, the band
    spanning the seeds' lowest to highest value, on one set of axes."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for arch, frames in histories.items():
        runs = pd.concat(frames)
        n = len(frames)
        color = None
        for column, style, label in (("train_loss", "-", "train"), ("val_loss", "--", "validation")):
            by_epoch = runs.groupby("epoch")[column]
            mean = by_epoch.mean()
            (line,) = ax.plot(mean.index, mean, style, color=color, label=f"{arch} {label} (mean of {n})")
            color = line.get_color()
            if n > 1:
                ax.fill_between(mean.index, by_epoch.min(), by_epoch.max(), color=color, alpha=0.15, linewidth=0)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    ax.set_ylabel("loss per image (nats)")
    ax.set_title("Training and validation loss (band: seeds' min to max)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def save_latent_map(means: torch.Tensor, labels: torch.Tensor, path: Path, title: str) -> None:
    """The test set's latent means projected to 2-D by PCA, one colour per digit."""
    means = means.cpu().double()
    centered = means - means.mean(0)
    if means.shape[1] > 2:
        _, _, v = torch.pca_lowrank(centered, q=2, center=False)
        points = centered @ v[:, :2]
    else:
        points = torch.nn.functional.pad(centered, (0, 2 - means.shape[1]))
    fig, ax = plt.subplots(figsize=(5.5, 5))
    scatter = ax.scatter(points[:, 0], points[:, 1], c=labels.cpu(), cmap="tab10", s=2, alpha=0.6)
    ax.legend(*scatter.legend_elements(), title="digit", loc="best", fontsize=7, markerscale=1.5)
    ax.set_title(title)
    ax.set_xlabel("PC 1" if means.shape[1] > 2 else "z 1")
    ax.set_ylabel("PC 2" if means.shape[1] > 2 else "z 2")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


@torch.no_grad()
def save_manifold(model: VAE, path: Path, steps: int = 20) -> None:
    """For a 2-D latent: decode a grid over the prior's central 90% (normal quantiles 0.05 to 0.95)."""
    model.eval()
    quantiles = torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(0.05, 0.95, steps))
    z = torch.cartesian_prod(quantiles.flip(0), quantiles).flip(1)  # rows top to bottom, z2 decreasing
    save_image(model.decode(z.to(model.device)).cpu(), path, nrow=steps, pad_value=1.0)


@torch.no_grad()
def save_interpolations(model: VAE, starts: torch.Tensor, ends: torch.Tensor, path: Path, steps: int = 10) -> None:
    """One row per pair: decoded points on the straight line between the two digits' latent means."""
    model.eval()
    z_start, z_end = model.encode(starts)[0], model.encode(ends)[0]
    weights = torch.linspace(0, 1, steps, device=z_start.device).view(1, steps, 1)
    z = z_start.unsqueeze(1) * (1 - weights) + z_end.unsqueeze(1) * weights
    save_image(model.decode(z.flatten(0, 1)).cpu(), path, nrow=steps, pad_value=1.0)
