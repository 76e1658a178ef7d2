"""Both architectures match ../shared/seed-models.md: shapes, output range and parameter counts."""

from __future__ import annotations

import pytest
import torch

from vaebench import load_model
from vaebench.errors import StageError
from vaebench.models import build_model, count_parameters, save_model
from vaebench.models.base import LOGVAR_MAX, LOGVAR_MIN


def linear(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def conv(c_in: int, c_out: int, k: int) -> int:
    return c_in * c_out * k * k + c_out


def batchnorm(c: int) -> int:
    return 2 * c


def expected_mlp(hidden: int = 400, latent: int = 20) -> int:
    return linear(784, hidden) + 2 * linear(hidden, latent) + linear(latent, hidden) + linear(hidden, 784)


def expected_cnn(c1: int = 16, c2: int = 32, c3: int = 16, latent: int = 10) -> int:
    branch = conv(1, c1, 4) + batchnorm(c1) + conv(c1, c2, 4) + batchnorm(c2) + conv(c2, c3, 3) + batchnorm(c3)
    heads = 2 * linear(c3 * 49, latent)
    decoder = linear(latent, c3 * 49) + conv(c3, c3, 4) + batchnorm(c3) + conv(c3, 1, 4)  # ConvT counts as conv
    return 2 * branch + heads + decoder


def test_mlp_parameter_count_matches_spec() -> None:
    assert count_parameters(build_model("mlp")) == expected_mlp() == 652_824


def test_cnn_parameter_count_matches_spec() -> None:
    assert count_parameters(build_model("cnn")) == expected_cnn()


def test_sizes_are_params() -> None:
    assert count_parameters(build_model("mlp", hidden=64, latent=2)) == expected_mlp(64, 2)
    assert count_parameters(build_model("cnn", channels=[8, 16, 4], latent=3)) == expected_cnn(8, 16, 4, 3)


@pytest.mark.parametrize(("arch", "latent"), [("mlp", 20), ("cnn", 10)])
def test_shapes_and_ranges(arch: str, latent: int) -> None:
    torch.manual_seed(0)
    model = build_model(arch).eval()
    x = torch.rand(7, 1, 28, 28)
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (7, latent)
    assert logvar.min() >= LOGVAR_MIN and logvar.max() <= LOGVAR_MAX
    recon = model.decode(mu)
    assert recon.shape == (7, 1, 28, 28)
    assert recon.min() >= 0.0 and recon.max() <= 1.0
    logits, mu2, _ = model(x)
    assert logits.shape == (7, 1, 28, 28)
    assert torch.equal(mu, mu2)


def test_cnn_branches_have_separate_weights() -> None:
    model = build_model("cnn")
    assert model.mu_branch[0].weight.data_ptr() != model.logvar_branch[0].weight.data_ptr()


def test_unknown_architecture_names_allowed_values() -> None:
    with pytest.raises(StageError, match="allowed: cnn, mlp"):
        build_model("resnet")


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_save_and_load_round_trip(arch: str, tmp_path) -> None:
    torch.manual_seed(0)
    model = build_model(arch)
    model.set_input_standardization(0.13, 0.31)
    model.train()(torch.rand(4, 1, 28, 28))  # move BatchNorm running stats away from their init
    save_model(model, tmp_path)
    loaded = load_model(tmp_path)
    assert not loaded.training
    x = torch.rand(3, 1, 28, 28)
    model.eval()
    for a, b in zip(model.encode(x), loaded.encode(x), strict=True):
        assert torch.equal(a, b)
    assert float(loaded.input_std) == pytest.approx(0.31)
