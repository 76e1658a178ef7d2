"""Test-set figures for one trained model: ELBO, IWAE bound, reconstruction error, active units.

All likelihood figures are in nats per image with beta = 1 whatever the training kl_weight was:
only then is the ELBO a bound on log p(x). With loss.recon = mse they exclude the Gaussian's
constant (784 * log(pi) / 2 = 448.7 nats), so compare mse runs with mse runs only.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.distributions import Normal

from vaebench.models.base import VAE
from vaebench.training.loss import Recon, Softplus, kl_divergence, reconstruction

ACTIVE_UNIT_THRESHOLD = 0.01  # Burda et al. 2015: a unit is active if Var_x(E_q[z]) > 0.01
# Importance samples x images decoded at once: the memory IWAE needs, whatever k. On a CPU small
# chunks keep the decoder's activations in cache (docs/performance.md measures both sizes with
# bench/throughput.py); an accelerator wants large ones.
CPU_DECODES_IN_FLIGHT, ACCELERATOR_DECODES_IN_FLIGHT = 2_048, 32_768


@torch.no_grad()
def iwae_log_likelihood(
    model: VAE, x: torch.Tensor, k: int, recon: Recon, chunk: int | None = None, softplus: Softplus = F.softplus
) -> torch.Tensor:
    """Importance-weighted lower bound on log p(x) per image, with k samples drawn `chunk` at a time.

    log p(x) >= log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x). k = 1 is the ELBO. The log-sum-exp runs
    over the chunks, so memory is chunk x batch decodes whatever k is, and the result is the same.
    The default chunk keeps `decodes_in_flight` decodes in flight on the batch's device.
    """
    chunk = chunk or max(1, decodes_in_flight(x.device) // len(x))
    mu, logvar = model.encode(x)
    posterior, prior = Normal(mu, torch.exp(0.5 * logvar)), Normal(torch.zeros_like(mu), torch.ones_like(mu))
    running = torch.full((len(x),), -math.inf, device=x.device)
    for start in range(0, k, chunk):
        z = posterior.sample((min(chunk, k - start),))  # S x B x D
        logits = model.decode_logits(z.flatten(0, 1)).view(*z.shape[:2], 1, 28, 28)
        log_px_z = -reconstruction(logits, x.expand_as(logits), recon, softplus)
        log_weights = log_px_z + prior.log_prob(z).sum(-1) - posterior.log_prob(z).sum(-1)
        running = torch.logaddexp(running, torch.logsumexp(log_weights, dim=0))
    return running - math.log(k)


def decodes_in_flight(device: torch.device) -> int:
    return CPU_DECODES_IN_FLIGHT if device.type == "cpu" else ACCELERATOR_DECODES_IN_FLIGHT


@torch.no_grad()
def evaluate_model(
    model: VAE, images: torch.Tensor, recon: Recon, iwae_k: int, batch_size: int, softplus: Softplus = F.softplus
) -> dict[str, float]:
    """Per-image test figures of `model` (or of its speed form, with the loss's `softplus` form)."""
    model.eval()
    sums = {"neg_elbo": 0.0, "recon": 0.0, "kl": 0.0, "nll_iwae": 0.0, "sq_error": 0.0}
    means = []
    for x in images.split(batch_size):
        mu, logvar = model.encode(x)
        rec = reconstruction(model.decode_logits(model.reparameterize(mu, logvar)), x, recon, softplus)
        kl = kl_divergence(mu, logvar)
        sums["recon"] += rec.sum().item()
        sums["kl"] += kl.sum().item()
        sums["neg_elbo"] += (rec + kl).sum().item()
        sums["nll_iwae"] -= iwae_log_likelihood(model, x, iwae_k, recon, softplus=softplus).sum().item()
        sums["sq_error"] += (model.decode(mu) - x).pow(2).sum().item()
        means.append(mu)
    n = len(images)
    mu_variance = torch.cat(means).var(dim=0)
    return {
        "neg_elbo": sums["neg_elbo"] / n,
        "recon": sums["recon"] / n,
        "kl": sums["kl"] / n,
        "nll_iwae": sums["nll_iwae"] / n,
        "elbo_iwae_gap": (sums["neg_elbo"] - sums["nll_iwae"]) / n,
        "mse_per_pixel": sums["sq_error"] / images[0].numel() / n,
        "active_units": int((mu_variance > ACTIVE_UNIT_THRESHOLD).sum()),
    }


def linear_probe_accuracy(
    train_means: torch.Tensor, train_labels: torch.Tensor, test_means: torch.Tensor, test_labels: torch.Tensor
) -> float:
    """Test accuracy of a logistic regression on the latent means: how linearly the digits separate."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    probe.fit(train_means.cpu().numpy(), train_labels.cpu().numpy())
    return float(probe.score(test_means.cpu().numpy(), test_labels.cpu().numpy()))
