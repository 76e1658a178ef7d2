"""Sample-quality figures from the judge's outputs: Fréchet distance, class spread, Inception Score.

Written by hand: torchmetrics' FID needs torch-fidelity and Inception weights from the network,
and an Inception network trained on ImageNet is the wrong judge for MNIST digits anyway. The
formulas are the standard ones; figures are comparable only with the same judge.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(values.clip(min=0))) @ vectors.T


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) between two feature sets (N x D).

    Tr((S_a S_b)^(1/2)) is computed as the sum of the square roots of the eigenvalues of the
    symmetric S_a^(1/2) S_b S_a^(1/2): the same number, without sqrtm's complex round-off.
    """
    mu_a, mu_b = a.mean(0).numpy(), b.mean(0).numpy()
    cov_a, cov_b = np.cov(a.numpy(), rowvar=False), np.cov(b.numpy(), rowvar=False)
    root_a = _sqrt_psd(cov_a)
    trace_covmean = np.sqrt(np.linalg.eigvalsh(root_a @ cov_b @ root_a).clip(min=0)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_covmean)


def class_metrics(probs: torch.Tensor) -> dict[str, float]:
    """How the judge spreads images over the 10 digits.

    digits_present: classes that get at least 1% of the images (10 = all digits are generated);
    class_entropy: entropy of the predicted-class histogram in nats (ln 10 = 2.303 is uniform);
    inception_score: exp(E_x KL(p(y|x) || p(y))), 1 to 10, high when images are both clear and varied.
    """
    counts = torch.bincount(probs.argmax(1), minlength=10).double()
    share = counts / counts.sum()
    entropy = -(share[share > 0] * share[share > 0].log()).sum()
    marginal = probs.mean(0, keepdim=True)
    kl = (probs * (probs.clamp_min(1e-12).log() - marginal.clamp_min(1e-12).log())).sum(1)
    return {
        "digits_present": int((share >= 0.01).sum()),
        "class_entropy": float(entropy),
        "inception_score": float(math.exp(kl.mean())),
    }
