"""Figures are written with the expected grid sizes, for any latent size."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from PIL import Image

from vaebench.figures.render import (
    save_interpolations,
    save_latent_map,
    save_loss_curves,
    save_manifold,
    save_prior_samples,
    save_progress_montage,
)
from vaebench.models import build_model

CELL = 28 + 2  # make_grid's default padding of 2 pixels around every image


def test_manifold_of_a_2d_latent_is_a_square_grid(tmp_path: Path) -> None:
    save_manifold(build_model("mlp", hidden=16, latent=2), tmp_path / "m.png", steps=5)
    assert Image.open(tmp_path / "m.png").size == (5 * CELL + 2, 5 * CELL + 2)


def test_interpolations_one_row_per_pair(tmp_path: Path) -> None:
    model = build_model("cnn", latent=3)
    save_interpolations(model, torch.rand(4, 1, 28, 28), torch.rand(4, 1, 28, 28), tmp_path / "i.png", steps=6)
    assert Image.open(tmp_path / "i.png").size == (6 * CELL + 2, 4 * CELL + 2)


def test_prior_samples_grid(tmp_path: Path) -> None:
    save_prior_samples(build_model("mlp", hidden=16, latent=4), tmp_path / "s.png", n=16)
    assert Image.open(tmp_path / "s.png").size == (4 * CELL + 2, 4 * CELL + 2)


@pytest.mark.parametrize("latent", [2, 6])
def test_latent_map_for_any_latent_size(latent: int, tmp_path: Path) -> None:
    save_latent_map(torch.randn(300, latent), torch.arange(300) % 10, tmp_path / "l.png", title="t")
    assert (tmp_path / "l.png").stat().st_size > 1000


def test_montage_and_curves(tmp_path: Path) -> None:
    snapshots = {
        "epochs": torch.tensor([1, 3]),
        "images": torch.rand(5, 1, 28, 28),
        "recons": torch.rand(2, 5, 1, 28, 28),
    }
    save_progress_montage(snapshots, tmp_path / "p.png", title="t")
    frame = pd.DataFrame({"epoch": [1, 2], "train_loss": [2.0, 1.0], "val_loss": [2.1, 1.2]})
    save_loss_curves({"mlp": [frame, frame * 1.1], "cnn": [frame]}, tmp_path / "c.png")
    assert (tmp_path / "p.png").stat().st_size > 1000 and (tmp_path / "c.png").stat().st_size > 1000
