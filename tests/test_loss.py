"""The objective: closed-form KL, and what a perfect reconstruction must cost."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal
from torch.distributions import kl_divergence as torch_kl

from vaebench.speed import forms
from vaebench.training.loss import kl_divergence, reconstruction, vae_loss


def test_kl_equals_closed_form_of_torch_distributions() -> None:
    torch.manual_seed(0)
    mu, logvar = torch.randn(5, 8), torch.randn(5, 8)
    expected = torch_kl(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(-1)
    assert torch.allclose(kl_divergence(mu, logvar), expected, atol=1e-5)


def test_kl_of_the_prior_is_zero() -> None:
    assert torch.equal(kl_divergence(torch.zeros(3, 4), torch.zeros(3, 4)), torch.zeros(3))


def test_perfect_mse_reconstruction_costs_nothing() -> None:
    x = torch.rand(4, 1, 28, 28).clamp(0.01, 0.99)
    assert torch.allclose(reconstruction(torch.logit(x), x, "mse"), torch.zeros(4), atol=1e-8)


def test_perfect_bce_reconstruction_costs_the_targets_entropy() -> None:
    """BCE on grey-level targets has a floor: the Bernoulli entropy of the targets themselves."""
    x = torch.rand(4, 1, 28, 28, dtype=torch.float64).clamp(0.01, 0.99)
    entropy = -(x * x.log() + (1 - x) * (1 - x).log()).flatten(1).sum(1)
    assert torch.allclose(reconstruction(torch.logit(x), x, "bce"), entropy)


def test_perfect_bce_on_binary_targets_approaches_zero() -> None:
    x = (torch.rand(2, 1, 28, 28) > 0.5).float()
    logits = (x * 2 - 1) * 30  # sigmoid(+-30) is 1 or 0 to 1e-13
    assert reconstruction(logits, x, "bce").max() < 1e-6


def test_loss_is_summed_terms_with_weighted_kl() -> None:
    torch.manual_seed(0)
    x, logits = torch.rand(6, 1, 28, 28), torch.randn(6, 1, 28, 28)
    mu, logvar = torch.randn(6, 3), torch.randn(6, 3)
    terms = vae_loss(logits, x, mu, logvar, "bce", kl_weight=0.5)
    assert terms.recon == pytest.approx(reconstruction(logits, x, "bce").sum().item())
    assert terms.kl == pytest.approx(kl_divergence(mu, logvar).sum().item())
    assert terms.loss == pytest.approx((terms.recon + 0.5 * terms.kl).item())


def test_unknown_reconstruction_names_allowed_values() -> None:
    with pytest.raises(ValueError, match="allowed: bce, mse"):
        reconstruction(torch.zeros(1, 1, 28, 28), torch.zeros(1, 1, 28, 28), "l1")  # type: ignore[arg-type]


@pytest.mark.parametrize("softplus", [F.softplus, forms.softplus], ids=["spec", "fast"])
def test_bce_is_torchs_binary_cross_entropy_with_logits(softplus) -> None:
    """The spec's and the log1p-free softplus: values and gradients as torch's own BCE, saturated logits included."""
    torch.manual_seed(0)
    logits = torch.cat(
        [torch.randn(2, 1, 28, 28) * 8, torch.full((1, 1, 28, 28), 120.0), torch.full((1, 1, 28, 28), -120.0)]
    )
    logits.requires_grad_()
    x = torch.cat([torch.rand(2, 1, 28, 28), torch.ones(1, 1, 28, 28), torch.zeros(1, 1, 28, 28)])
    got = reconstruction(logits, x, "bce", softplus)
    (grad,) = torch.autograd.grad(got.sum(), logits)
    expected = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
    (expected_grad,) = torch.autograd.grad(expected.sum(), logits)
    assert torch.allclose(got, expected, rtol=1e-6, atol=1e-4)
    assert torch.allclose(grad, expected_grad, atol=1e-6)
