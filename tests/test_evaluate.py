"""Evaluation figures: the IWAE bound against the ELBO, and active units."""

from __future__ import annotations

import pytest
import torch
from test_training import KW, blobs

from vaebench.evaluate import evaluate_model, iwae_log_likelihood
from vaebench.models import build_model
from vaebench.train import fit


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    model = build_model("mlp", hidden=64, latent=4)
    fit(model, blobs(512), blobs(64), epochs=3, **KW)
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
