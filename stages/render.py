"""Stage render: the figures of every architecture (its first seed) and the loss curves of all
seeds, as PNGs under reports/figures/."""

import _venv  # noqa: F401  # isort: skip  (first: one line if vaebench is not installed)

from pathlib import Path

import pandas as pd
import torch

from vaebench import paths
from vaebench.io import atomic_path, unreadable
from vaebench.models import load_model
from vaebench.params import load_params
from vaebench.render import (
    save_interpolations,
    save_latent_map,
    save_loss_curves,
    save_manifold,
    save_prior_samples,
    save_progress_montage,
    save_reconstructions,
)
from vaebench.runtime import configure
from vaebench.splits import load_split
from vaebench.stage import run_stage

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


def render_architecture(arch: str, seed: int, images: torch.Tensor, labels: torch.Tensor, out: Path) -> None:
    model = load_model(paths.model_dir(arch, seed))
    digits = one_test_digit_per_class(images, labels)
    starts = torch.stack([digits[a] for a, _ in PAIRS])
    ends = torch.stack([one_test_digit_per_class(images, labels, skip=1)[b] for _, b in PAIRS])
    save_reconstructions(model, digits, out / f"{arch}_reconstructions.png")
    save_prior_samples(model, out / f"{arch}_samples.png", seed=seed)
    snapshots = torch.load(paths.model_dir(arch, seed) / "snapshots.pt", weights_only=True)
    save_progress_montage(snapshots, out / f"{arch}_progress.png", title=f"{arch}: reconstructions by epoch")
    means = model.encode_means(images)
    save_latent_map(means, labels, out / f"{arch}_latent_map.png", title=f"{arch}: test set latent means")
    save_interpolations(model, starts, ends, out / f"{arch}_interpolations.png")
    if model.latent == 2:
        save_manifold(model, out / f"{arch}_manifold.png")


def main() -> None:
    params = load_params()
    archs, seeds = params.compare.archs, params.compare.seeds
    configure(params.runtime, seeds[0])
    images, labels = load_split(paths.PROCESSED, "test")
    curves = {arch: [read_curve(paths.train_curve(arch, seed)) for seed in seeds] for arch in archs}
    with atomic_path(paths.FIGURES) as out:
        out.mkdir()
        save_loss_curves(curves, out / "loss_curves.png")
        for arch in archs:
            render_architecture(arch, seeds[0], images, labels, out)
    print(f"wrote {len(list(paths.FIGURES.glob('*.png')))} figures to {paths.FIGURES}/")


if __name__ == "__main__":
    run_stage(main)
