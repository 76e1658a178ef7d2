"""Image grids shared by training (MLflow's reconstruction slider) and the render stage, apart from
render.py so that a change to a plot does not rerun every training."""

from __future__ import annotations

import torch
from torchvision.utils import make_grid


def originals_over_reconstructions(images: torch.Tensor, recons: torch.Tensor) -> torch.Tensor:
    """One grid image: the originals on the top row, their reconstructions below (the original recipe's 2xN)."""
    return make_grid(torch.cat([images.cpu(), recons.cpu()]), nrow=len(images), pad_value=1.0)
