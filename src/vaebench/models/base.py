"""What both architectures share: input standardisation, the reparameterisation, the decode."""

from __future__ import annotations

import torch
from torch import nn

# exp(-20) to exp(10): wide enough for any useful posterior, narrow enough that exp() never overflows.
LOGVAR_MIN, LOGVAR_MAX = -20.0, 10.0


class VAE(nn.Module):
    """A VAE over 1x28x28 images with pixel values in [0, 1].

    Subclasses set `latent`, `encoder_net` (x -> (mu, logvar)) and `decoder_net` (z -> logits).
    The decoder ends in logits, not a Sigmoid layer, so the BCE loss can use the stable
    `binary_cross_entropy_with_logits`; `decode()` applies the Sigmoid, so callers get [0, 1].
    """

    latent: int

    def __init__(self) -> None:
        super().__init__()
        # Identity unless the data stage asked for standardised encoder inputs; saved with the weights.
        self.register_buffer("input_mean", torch.zeros(()))
        self.register_buffer("input_std", torch.ones(()))

    def set_input_standardization(self, mean: float, std: float) -> None:
        self.input_mean.fill_(mean)
        self.input_std.fill_(std)

    def encoder_net(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def decoder_net(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) of q(z|x) for images in [0, 1]."""
        mu, logvar = self.encoder_net((x - self.input_mean) / self.input_std)
        return mu, logvar.clamp(LOGVAR_MIN, LOGVAR_MAX)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder_net(z).view(-1, 1, 28, 28)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Reconstructions in [0, 1]."""
        return torch.sigmoid(self.decode_logits(z))

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(reconstruction logits, mu, logvar) with one sampled z per image."""
        mu, logvar = self.encode(x)
        return self.decode_logits(self.reparameterize(mu, logvar)), mu, logvar
