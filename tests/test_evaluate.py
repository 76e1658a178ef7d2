"""Evaluation figures: the IWAE bound against the ELBO, and active units."""

from __future__ import annotations

import pytest
import torch
from test_training import blobs, recipe

from vaebench.evaluation.evaluate import evaluate_model, iwae_log_likelihood, linear_probe_accuracy
from vaebench.models import build_model
from vaebench.training.fit import fit


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    model = build_model("mlp", hidden=64, latent=4)
    fit(model, blobs(512), blobs(64), recipe(epochs=3))
    return model.eval()


def test_iwae_bound_is_above_the_elbo_and_rises_with_k(trained) -> None:
    x = blobs(64)
    torch.manual_seed(1)
    bounds = {k: iwae_log_likelihood(trained, x, k, "bce").mean().item() for k in (1, 8, 64)}
    assert bounds[1] < bounds[8] < bounds[64]


def test_evaluate_model_reports_consistent_figures(trained) -> None:
    torch.manual_seed(0)
    figures = evaluate_model(trained, blobs(100), "bce", iwae_k=16, batch_size=30)
    assert figures["neg_elbo"] == pytest.approx(figures["recon"] + figures["kl"], rel=1e-5)
    assert figures["nll_iwae"] < figures["neg_elbo"]
    assert figures["elbo_iwae_gap"] == pytest.approx(figures["neg_elbo"] - figures["nll_iwae"], rel=1e-5)
    assert 0 <= figures["mse_per_pixel"] < 1
    assert 0 <= figures["active_units"] <= 4


def test_iwae_chunking_does_not_change_the_bound(trained) -> None:
    """Chunks of 1, 7 or all 16 samples give the same bound up to sampling noise (about 0.1 nats on
    this mean); a normalisation bug per chunk would move it by log 16 = 2.8 nats."""
    x = blobs(64)
    means = []
    for chunk in (1, 7, 16):
        torch.manual_seed(3)
        means.append(iwae_log_likelihood(trained, x, 16, "bce", chunk=chunk).mean().item())
    assert means[0] == pytest.approx(means[2], abs=0.5)
    assert means[1] == pytest.approx(means[2], abs=0.5)


def test_linear_probe_separates_separable_codes() -> None:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(400) % 4
    means = torch.nn.functional.one_hot(labels, 4).float() * 5 + torch.randn(400, 4, generator=g)
    assert linear_probe_accuracy(means[:300], labels[:300], means[300:], labels[300:]) > 0.95
