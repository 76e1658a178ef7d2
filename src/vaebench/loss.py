"""The VAE objective, summed over pixels and latent dimensions and reported per image.

Both terms are sums (as in pytorch/examples), divided by the batch size at the end: a
mean-reduced reconstruction beside a summed KL would let the KL dominate.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F

Recon = Literal["bce", "mse"]


class LossTerms(NamedTuple):
    """Sums over the batch; divide by the number of images for per-image figures."""

    loss: torch.Tensor
    recon: torch.Tensor
    kl: torch.Tensor


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) per image, closed form: -1/2 sum(1 + logvar - mu^2 - exp(logvar))."""
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=-1)


def reconstruction(logits: torch.Tensor, x: torch.Tensor, kind: Recon) -> torch.Tensor:
    """-log p(x|z) per image, summed over pixels (leading dims kept).

    bce: Bernoulli likelihood on the logits (stable; the seed's Sigmoid + BCE in one op).
    mse: the seed's summed squared error on sigmoid(logits), i.e. a Gaussian with variance 1/2
    without its constant (784 * log(pi) / 2 = 448.7 nats per image).
    """
    if kind == "bce":
        per_pixel = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    elif kind == "mse":
        per_pixel = (torch.sigmoid(logits) - x).pow(2)
    else:
        raise ValueError(f"unknown reconstruction loss {kind!r}; allowed: bce, mse")
    return per_pixel.flatten(start_dim=-3).sum(dim=-1)


def vae_loss(
    logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, kind: Recon, kl_weight: float
) -> LossTerms:
    recon = reconstruction(logits, x, kind).sum()
    kl = kl_divergence(mu, logvar).sum()
    return LossTerms(recon + kl_weight * kl, recon, kl)
