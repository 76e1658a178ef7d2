"""The VAE objective, summed over pixels and latent dimensions and reported per image.

Both terms are sums (as in pytorch/examples), divided by the batch size at the end: a
mean-reduced reconstruction beside a summed KL would let the KL dominate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F

Recon = Literal["bce", "mse"]
Softplus = Callable[[torch.Tensor], torch.Tensor]


class LossTerms(NamedTuple):
    """Sums over the batch; divide by the number of images for per-image figures."""

    loss: torch.Tensor
    recon: torch.Tensor
    kl: torch.Tensor


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) per image, in closed form: Kingma & Welling (2014, "Auto-Encoding
    Variational Bayes"), appendix B: -KL = 1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2)."""
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=-1)


def reconstruction(logits: torch.Tensor, x: torch.Tensor, kind: Recon, softplus: Softplus = F.softplus) -> torch.Tensor:
    """-log p(x|z) per image, summed over pixels (leading dims kept).

    bce: the Bernoulli likelihood of Kingma & Welling's appendix C.1 on the decoder's logits l,
    softplus(l) - x l, which is binary_cross_entropy_with_logits: the original recipe's Sigmoid + BCE,
    stable for any logit. `softplus` may be a faster form of torch's (`vaebench.speed.forms`).
    mse: the original recipe's summed squared error on sigmoid(logits), i.e. a Gaussian with variance
    1/2 without its constant (784 * log(pi) / 2 = 448.7 nats per image).
    """
    if kind == "bce":
        per_pixel = softplus(logits) - x * logits
    elif kind == "mse":
        per_pixel = (torch.sigmoid(logits) - x).pow(2)
    else:
        raise ValueError(f"unknown reconstruction loss {kind!r}; allowed: bce, mse")
    return per_pixel.flatten(start_dim=-3).sum(dim=-1)


def vae_loss(
    logits: torch.Tensor,
    x: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    kind: Recon,
    kl_weight: float,
    softplus: Softplus = F.softplus,
) -> LossTerms:
    """The negative ELBO (Kingma & Welling, eq. 10) with the KL weighted by `kl_weight` (beta)."""
    recon = reconstruction(logits, x, kind, softplus).sum()
    kl = kl_divergence(mu, logvar).sum()
    return LossTerms(recon + kl_weight * kl, recon, kl)


def constant_model_loss(x: torch.Tensor, kind: Recon) -> float:
    """The per-image loss of the model that has learnt nothing: it says 0.5 for every pixel (logits
    0) and its posterior is the prior (KL 0). Under bce that is 784 ln 2 = 543.4 nats for any image;
    under mse it depends on the images. A trained model whose validation loss ends above it diverged."""
    return reconstruction(torch.zeros_like(x), x, kind).mean().item()
