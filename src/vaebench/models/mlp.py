"""The MLP VAE of pytorch/examples `vae/main.py` and the original recipe (`seed-models.md`), the
architecture of Kingma & Welling (2014, "Auto-Encoding Variational Bayes", appendix C) with ReLU:

    encoder  flatten 784 -> Linear(784 -> 400) -> ReLU -> Linear(400 -> 20) for mu, Linear(400 -> 20) for log sigma^2
    decoder  Linear(20 -> 400) -> ReLU -> Linear(400 -> 784) -> Sigmoid (applied in VAE.decode)
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from vaebench.models.base import VAE, ModelConfig

PIXELS = 28 * 28


class MLPConfig(ModelConfig):
    hidden: int = Field(400, ge=1)
    latent: int = Field(20, ge=1)


class MLPVAE(VAE):
    Config = MLPConfig

    def __init__(self, config: MLPConfig | None = None) -> None:
        config = config or MLPConfig()
        super().__init__(config)
        hidden, latent = config.hidden, config.latent
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
