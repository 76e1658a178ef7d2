"""The VAE of Burda, Grosse & Salakhutdinov (2016, "Importance Weighted Autoencoders"), one
stochastic layer: 784 -> 200 -> 200 -> 50, tanh, Bernoulli decoder.

Their Table 1 gives it 86.76 nats of test NLL (k = 5000, dynamically binarized MNIST, 3,280
epochs): with it under the same protocol (`vaebench protocol`), one of our figures sits beside a
published one.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from vaebench.models.base import VAE, ModelConfig

PIXELS = 28 * 28


class BurdaConfig(ModelConfig):
    hidden: list[Annotated[int, Field(ge=1)]] = Field([200, 200], min_length=1)
    latent: int = Field(50, ge=1)


def tanh_stack(sizes: list[int]) -> nn.Sequential:
    """Linear layers between consecutive sizes, each followed by tanh."""
    return nn.Sequential(*[m for a, b in pairwise(sizes) for m in (nn.Linear(a, b), nn.Tanh())])


class BurdaVAE(VAE):
    Config = BurdaConfig

    def __init__(self, config: BurdaConfig | None = None) -> None:
        config = config or BurdaConfig()
        super().__init__(config)
        hidden, latent = list(config.hidden), config.latent
        self.body = nn.Sequential(nn.Flatten(), tanh_stack([PIXELS, *hidden]))
        self.mu = nn.Linear(hidden[-1], latent)
        self.logvar = nn.Linear(hidden[-1], latent)
        self.decoder = nn.Sequential(tanh_stack([latent, *reversed(hidden)]), nn.Linear(hidden[0], PIXELS))

    def encoder_net(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return self.mu(h), self.logvar(h)

    def decoder_net(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)
