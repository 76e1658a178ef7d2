"""What every architecture shares: its config type, input standardisation, the reparameterisation,
the decode, and the inference helpers (reconstruct, sample, encode means) that stages call.

A model carries its own config (pythae's habit): `save_model` writes it beside the weights, and
`load_model` rebuilds the module from it, as nanoGPT does with its constructor args.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

# exp(-20) to exp(10): wide enough for any useful posterior, narrow enough that exp() never overflows.
LOGVAR_MIN, LOGVAR_MAX = -20.0, 10.0


class ModelConfig(BaseModel):
    """The sizes of one architecture: the `model.<arch>` section of params.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    latent: int = Field(ge=1)


class VAE(nn.Module):
    """A VAE over 1x28x28 images with pixel values in [0, 1].

    Subclasses set `Config`, and implement `encoder_net` (x -> (mu, logvar)) and `decoder_net`
    (z -> logits). The decoder ends in logits, not a Sigmoid layer, so the BCE loss is computed
    stably on the logits (`loss.reconstruction`); `decode()` applies the Sigmoid, so callers get [0, 1].
    The reparameterisation is Kingma & Welling (2014, "Auto-Encoding Variational Bayes"), eq. 10.
    """

    Config: ClassVar[type[ModelConfig]] = ModelConfig

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.latent = config.latent
        # Identity unless the data stage asked for standardised encoder inputs; saved with the weights.
        self.register_buffer("input_mean", torch.zeros(()))
        self.register_buffer("input_std", torch.ones(()))

    @property
    def arch(self) -> str:
        """The architecture's name: its model file's name (models/<arch>.py)."""
        return type(self).__module__.rsplit(".", 1)[-1]

    @property
    def device(self) -> torch.device:
        return self.input_mean.device

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

    # Inference helpers: eval mode (BatchNorm uses its running statistics), no gradients, batched.

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """Deterministic reconstructions (decoded posterior means), on the CPU."""
        self.eval()
        return torch.cat([self.decode(self.encode(x)[0]).cpu() for x in images.split(batch_size)])

    @torch.no_grad()
    def encode_means(self, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        self.eval()
        return torch.cat([self.encode(x)[0] for x in images.split(batch_size)])

    @torch.no_grad()
    def sample(self, n: int, seed: int, mean: float = 0.0, std: float = 1.0, batch_size: int = 1000) -> torch.Tensor:
        """Decoded z ~ N(mean, std^2 I) (the prior when mean 0, std 1), seeded, on the model's device."""
        self.eval()
        z = torch.randn(n, self.latent, generator=torch.Generator().manual_seed(seed)) * std + mean
        return torch.cat([self.decode(chunk.to(self.device)) for chunk in z.split(batch_size)])


class Reconstructor(nn.Module):
    """Images in, deterministic reconstructions out: one tensor in, one out, which MLflow can serve."""

    def __init__(self, vae: VAE) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(self.vae.encode(x)[0])
