"""Figures (PNG): torchvision's make_grid/save_image for image grids, matplotlib where axes need labels;
the render stage's set of them at the end."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from matplotlib.figure import Figure  # matplotlib's object API: no pyplot, no backend to choose headless
from matplotlib.ticker import MaxNLocator
from torchvision.utils import make_grid, save_image

from vaebench.core import paths
from vaebench.core.io import load_tensors, unreadable
from vaebench.core.paths import arch_figure
from vaebench.figures.grids import originals_over_reconstructions
from vaebench.models import load_model
from vaebench.models.base import VAE


def save_reconstructions(model: VAE, images: torch.Tensor, path: Path) -> None:
    save_image(originals_over_reconstructions(images, model.reconstruct(images)), path)


def save_prior_samples(model: VAE, path: Path, n: int = 64, mean: float = 0.0, std: float = 1.0, seed: int = 0) -> None:
    """Decode z ~ N(mean, std^2 I): N(0, I) is the prior; other values show the original recipe's knob."""
    samples = model.sample(n, seed, mean, std)
    save_image(samples.cpu(), path, nrow=int(n**0.5) or 1, pad_value=1.0)


def save_progress_montage(snapshots: dict[str, torch.Tensor], path: Path, title: str) -> None:
    """The originals, then one row of reconstructions per snapshot epoch (the original recipe's sequence)."""
    epochs = snapshots["epochs"].tolist()
    rows = torch.cat([snapshots["images"], snapshots["recons"].flatten(0, 1)])
    grid = make_grid(rows, nrow=len(snapshots["images"]), pad_value=1.0)
    fig = Figure(figsize=(4, 0.75 * (len(epochs) + 1) + 0.6))
    ax = fig.subplots()
    ax.imshow(grid.permute(1, 2, 0).numpy(), cmap="gray")
    row_height = grid.shape[1] / (len(epochs) + 1)
    ax.set_yticks([row_height * (i + 0.5) for i in range(len(epochs) + 1)])
    ax.set_yticklabels(["input"] + [f"epoch {e}" for e in epochs])
    ax.set_xticks([])
    ax.set_title(title)
    fig.savefig(path, dpi=120, bbox_inches="tight")


def save_loss_curves(histories: dict[str, list[pd.DataFrame]], path: Path) -> None:
    """Mean train and validation loss per epoch of every architecture over its seeds, the band
    spanning the seeds' lowest to highest value, on one set of axes."""
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
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


def save_latent_map(means: torch.Tensor, labels: torch.Tensor, path: Path, title: str) -> None:
    """The test set's latent means projected to 2-D by PCA, one colour per digit."""
    means = means.cpu().double()
    centered = means - means.mean(0)
    if means.shape[1] > 2:
        _, _, v = torch.pca_lowrank(centered, q=2, center=False)
        points = centered @ v[:, :2]
    else:
        points = torch.nn.functional.pad(centered, (0, 2 - means.shape[1]))
    fig = Figure(figsize=(5.5, 5))
    ax = fig.subplots()
    scatter = ax.scatter(points[:, 0], points[:, 1], c=labels.cpu(), cmap="tab10", s=2, alpha=0.6)
    ax.legend(*scatter.legend_elements(), title="digit", loc="best", fontsize=7, markerscale=1.5)
    ax.set_title(title)
    ax.set_xlabel("PC 1" if means.shape[1] > 2 else "z 1")
    ax.set_ylabel("PC 2" if means.shape[1] > 2 else "z 2")
    fig.savefig(path, dpi=120, bbox_inches="tight")


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


# Interpolation pairs: 0->1, 2->3, ..., 8->9, and 1->7, 4->9, 3->8 (digits that look alike).
PAIRS = [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (1, 7), (4, 9), (3, 8)]


def one_test_digit_per_class(images: torch.Tensor, labels: torch.Tensor, skip: int = 0) -> torch.Tensor:
    """The (skip+1)-th test image of each digit 0-9: fixed, and every class is shown."""
    return torch.stack([images[(labels == digit).nonzero()[skip, 0]] for digit in range(10)])


def read_curve(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise unreadable(path, exc) from None


def render_all(archs: list[str], seeds: list[int], images: torch.Tensor, labels: torch.Tensor, out: Path) -> None:
    """The loss curves of every seed and each architecture's figures of its first seed, into `out`."""
    curves = {arch: [read_curve(paths.train_curve(arch, seed)) for seed in seeds] for arch in archs}
    save_loss_curves(curves, out / paths.LOSS_CURVES.name)
    for arch in archs:
        render_architecture(arch, seeds[0], images, labels, out)


def render_architecture(arch: str, seed: int, images: torch.Tensor, labels: torch.Tensor, out: Path) -> None:
    """Every one of paths.ARCH_FIGURES for the trained model models/vae/<arch>-<seed>, into `out`."""
    model = load_model(paths.model_dir(arch, seed))
    digits = one_test_digit_per_class(images, labels)
    starts = torch.stack([digits[a] for a, _ in PAIRS])
    ends = torch.stack([one_test_digit_per_class(images, labels, skip=1)[b] for _, b in PAIRS])
    save_reconstructions(model, digits, arch_figure(arch, "reconstructions", out))
    save_prior_samples(model, arch_figure(arch, "samples", out), seed=seed)
    snapshots_path = paths.model_dir(arch, seed) / "snapshots.pt"
    try:
        title = f"{arch}: reconstructions by epoch"
        save_progress_montage(load_tensors(snapshots_path), arch_figure(arch, "progress", out), title=title)
    except (KeyError, TypeError, AttributeError, IndexError) as exc:
        raise unreadable(snapshots_path, f"not the snapshots the train stage writes: {exc!r}") from None
    means = model.encode_means(images)
    save_latent_map(means, labels, arch_figure(arch, "latent_map", out), title=f"{arch}: test set latent means")
    save_interpolations(model, starts, ends, arch_figure(arch, "interpolations", out))
    if model.latent == 2:
        save_manifold(model, arch_figure(arch, "manifold", out))
