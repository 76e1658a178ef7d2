"""The MLP VAE of pytorch/examples and the seed: 784 -> hidden -> (mu, logvar), ReLU."""

from __future__ import annotations

import torch
from torch import nn

from vaebench.models.base import VAE

PIXELS = 28 * 28


class MLPVAE(VAE):
    def __init__(self, hidden: int = 400, latent: int = 20) -> None:
        super().__init__()
        self.latent = latent
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(PIXELS, hidden), nn.ReLU())
        self.mu = nn.Linear(hidden, latent)
        self.logvar = nn.Linear(hidden, latent)
        # The spec's final Sigmoid is applied in VAE.decode (see VAE's docstring).
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, PIXELS))

    def encoder_net(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return self.mu(h), self.logvar(h)

    def decoder_net(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)
