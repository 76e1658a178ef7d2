"""The seed's CNN VAE: two parallel conv branches (one for mu, one for logvar), ConvTranspose decoder.

The seed names the second branch's output `std` but uses it as log-variance; here it is `logvar`.
"""

from __future__ import annotations

import torch
from pydantic import Field, field_validator
from torch import nn

from vaebench.models.base import VAE, ModelConfig


class CNNConfig(ModelConfig):
    channels: list[int] = Field(default_factory=lambda: [16, 32, 16])
    latent: int = Field(10, ge=1)

    @field_validator("channels")
    @classmethod
    def _three_positive(cls, channels: list[int]) -> list[int]:
        if len(channels) != 3:
            raise ValueError(f"{channels}: three channel counts are needed (conv 1, conv 2, conv 3)")
        if min(channels) < 1:
            raise ValueError(f"{channels}: every channel count must be >= 1")
        return channels


def _conv_block(c_in: int, c_out: int, kernel: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel, stride, 1), nn.BatchNorm2d(c_out), nn.Tanh()]


def _branch(channels: list[int]) -> nn.Sequential:
    """1x28x28 -> c1x14x14 -> c2x7x7 -> c3x7x7 -> flat c3*49."""
    c1, c2, c3 = channels
    return nn.Sequential(
        *_conv_block(1, c1, 4, 2), *_conv_block(c1, c2, 4, 2), *_conv_block(c2, c3, 3, 1), nn.Flatten()
    )


class CNNVAE(VAE):
    Config = CNNConfig

    def __init__(self, config: CNNConfig | None = None) -> None:
        config = config or CNNConfig()
        super().__init__(config)
        c3, latent = config.channels[2], config.latent
        flat = c3 * 7 * 7
        self.mu_branch, self.logvar_branch = _branch(config.channels), _branch(config.channels)
        self.mu = nn.Linear(flat, latent)
        self.logvar = nn.Linear(flat, latent)
        self.decoder = nn.Sequential(
            nn.Linear(latent, flat),
            nn.Unflatten(1, (c3, 7, 7)),
            nn.ConvTranspose2d(c3, c3, 4, 2, 1),
            nn.BatchNorm2d(c3),
            nn.Tanh(),
            nn.ConvTranspose2d(c3, 1, 4, 2, 1),  # the spec's Sigmoid is applied in VAE.decode
        )

    def encoder_net(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mu(self.mu_branch(x)), self.logvar(self.logvar_branch(x))

    def decoder_net(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)
