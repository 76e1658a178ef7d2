"""The original recipe's two architectures match ../shared/seed-models.md and Burda et al.'s matches its paper:
shapes, output range and parameter counts."""

from __future__ import annotations

import pytest
import torch

from vaebench.core.errors import StageError
from vaebench.models import architectures, build_model, count_parameters, load_model, save_model
from vaebench.models.base import LOGVAR_MAX, LOGVAR_MIN
from vaebench.models.cnn import CNNVAE


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


def test_burda_parameter_count_matches_the_paper() -> None:
    """784-200-200-50 with tanh, and its mirror image as the decoder (Burda et al. 2016, sec. 5)."""
    encoder = linear(784, 200) + linear(200, 200) + 2 * linear(200, 50)
    decoder = linear(50, 200) + linear(200, 200) + linear(200, 784)
    assert count_parameters(build_model("burda")) == encoder + decoder
    assert sum(isinstance(m, torch.nn.Tanh) for m in build_model("burda").modules()) == 4


def test_sizes_are_params() -> None:
    assert count_parameters(build_model("mlp", hidden=64, latent=2)) == expected_mlp(64, 2)
    assert count_parameters(build_model("cnn", channels=[8, 16, 4], latent=3)) == expected_cnn(8, 16, 4, 3)


@pytest.mark.parametrize(("arch", "latent"), [("mlp", 20), ("cnn", 10), ("burda", 50)])
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
    """Changing the logvar branch leaves mu untouched."""
    torch.manual_seed(0)
    model = build_model("cnn").eval()
    x = torch.rand(4, 1, 28, 28)
    mu, logvar = model.encode(x)
    with torch.no_grad():
        for layer in model.logvar_branch:
            if isinstance(layer, (torch.nn.Conv2d, torch.nn.BatchNorm2d)):
                layer.weight += 1.0
    mu2, logvar2 = model.encode(x)
    assert torch.equal(mu, mu2) and not torch.allclose(logvar, logvar2)


def test_saved_weights_load_into_the_spec_class_with_plain_pytorch(tmp_path) -> None:
    """weights.pt is the specification's state dict: torch.load and CNNVAE's load_state_dict, nothing of ours."""
    torch.manual_seed(0)
    model = build_model("cnn")
    save_model(model, tmp_path)
    plain = CNNVAE()
    plain.load_state_dict(torch.load(tmp_path / "weights.pt", weights_only=True))
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), model.state_dict().values(), strict=True))
    assert any(k.startswith("mu_branch.") for k in plain.state_dict())


def test_a_helper_module_in_models_is_not_an_architecture(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    import vaebench.models as models

    (tmp_path / "helpers.py").write_text("from torch import nn\n\nclass Block(nn.Module):\n    pass\n")
    monkeypatch.setattr(models, "__path__", [*models.__path__, str(tmp_path)])
    assert "helpers" not in architectures()
    with pytest.raises(StageError, match="unknown architecture 'helpers'"):
        build_model("helpers")


def test_unknown_architecture_names_allowed_values() -> None:
    with pytest.raises(StageError, match="allowed: burda, cnn, mlp"):
        build_model("resnet")


@pytest.mark.parametrize("arch", architectures())
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


def test_broken_model_directories_name_the_file(dvc_project) -> None:
    model_dir = dvc_project / "models" / "vae" / "mlp-0"
    save_model(build_model("mlp", hidden=8, latent=2), model_dir)
    weights = (model_dir / "weights.pt").read_bytes()
    (model_dir / "weights.pt").write_bytes(weights[: len(weights) // 2])
    with pytest.raises(StageError, match=r"mlp-0/weights\.pt is unreadable .*dvc repro -f train@mlp-0"):
        load_model(model_dir)
    (model_dir / "config.json").write_text('{"arch": "resnet", "config": {}}')
    with pytest.raises(StageError, match=r"mlp-0/config\.json is unreadable \(unknown architecture 'resnet'"):
        load_model(model_dir)
    (model_dir / "config.json").unlink()
    with pytest.raises(StageError, match=r"mlp-0/config\.json is missing: restore it with `dvc checkout"):
        load_model(model_dir)


def test_weights_that_are_not_plain_tensors_or_do_not_fit_are_named(tmp_path) -> None:
    import datetime
    import json

    model_dir = tmp_path / "models" / "vae" / "mlp-0"
    save_model(build_model("mlp", hidden=8, latent=2), model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    config["config"]["hidden"] = 9  # edited by hand, or copied from another run
    (model_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        StageError,
        match=r"config\.json is unreadable \(config\.hidden = 9 does not fit weights\.pt, trained with hidden = 8\)",
    ):
        load_model(model_dir)
    torch.save({"when": datetime.datetime(2020, 1, 1)}, model_dir / "weights.pt")  # a pickle, not tensors
    with pytest.raises(StageError, match=r"weights\.pt is not plain tensor data .*it was not loaded") as error:
        load_model(model_dir)
    assert "weights_only=False" not in str(error.value)
