"""The CNN VAE of the original recipe (`seed-models.md`): two parallel convolution branches of the same
shape with separate weights, one feeding mu and one log-variance, and a ConvTranspose decoder.

    each branch  Conv(1->16, k4 s2 p1) -> BN -> Tanh -> Conv(16->32, k4 s2 p1) -> BN -> Tanh
                 -> Conv(32->16, k3 s1 p1) -> BN -> Tanh -> flatten 16*7*7 = 784
    heads        Linear(784 -> 10) on branch 1 -> mu,  Linear(784 -> 10) on branch 2 -> log sigma^2
    decoder      Linear(10 -> 784) -> view 16x7x7 -> ConvT(16->16, k4 s2 p1) -> BN -> Tanh
                 -> ConvT(16->1, k4 s2 p1) -> Sigmoid (applied in VAE.decode)

The original recipe names the second branch's output `std` but uses it as log-variance; here it is
`logvar`. This file is the model as specified and the layout its weights are saved in; the forms
that compute the same function faster on a CPU are `vaebench.speed.forms`.
"""

from __future__ import annotations

import torch
from pydantic import Field, field_validator
from torch import nn

from vaebench.models.base import VAE, ModelConfig

# (kernel, stride) of the three encoder convolutions; padding is 1 for all
ENCODER_CONVS = ((4, 2), (4, 2), (3, 1))


class CNNConfig(ModelConfig):
    channels: list[int] = Field(default_factory=lambda: [16, 32, 16])  # conv 1, 2, 3 of each branch
    latent: int = Field(10, ge=1)

    @field_validator("channels")
    @classmethod
    def _three_positive(cls, channels: list[int]) -> list[int]:
        if len(channels) != 3:
            raise ValueError(f"{channels}: three channel counts are needed (conv 1, conv 2, conv 3)")
        if min(channels) < 1:
            raise ValueError(f"{channels}: every channel count must be >= 1")
        return channels


def encoder_branch(channels: list[int]) -> nn.Sequential:
    """1x28x28 -> c1x14x14 -> c2x7x7 -> c3x7x7: three Conv -> BatchNorm -> Tanh blocks."""
    layers: list[nn.Module] = []
    c_in = 1
    for c_out, (kernel, stride) in zip(channels, ENCODER_CONVS, strict=True):
        layers += [nn.Conv2d(c_in, c_out, kernel, stride, padding=1), nn.BatchNorm2d(c_out), nn.Tanh()]
        c_in = c_out
    return nn.Sequential(*layers)


class CNNVAE(VAE):
    Config = CNNConfig

    def __init__(self, config: CNNConfig | None = None) -> None:
        config = config or CNNConfig()
        super().__init__(config)
        c3, latent = config.channels[2], config.latent
        flat = c3 * 7 * 7
        self.mu_branch = encoder_branch(config.channels)
        self.logvar_branch = encoder_branch(config.channels)
        self.mu = nn.Linear(flat, latent)
        self.logvar = nn.Linear(flat, latent)
        self.decoder = nn.Sequential(
            nn.Linear(latent, flat),
            nn.Unflatten(1, (c3, 7, 7)),
            nn.ConvTranspose2d(c3, c3, 4, 2, 1),
            nn.BatchNorm2d(c3),
            nn.Tanh(),
            nn.ConvTranspose2d(c3, 1, 4, 2, 1),  # logits; the Sigmoid is VAE.decode's
        )

    def encoder_net(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mu(self.mu_branch(x).flatten(1)), self.logvar(self.logvar_branch(x).flatten(1))

    def decoder_net(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)
