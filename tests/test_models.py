"""The original recipe's two architectures match ../shared/seed-models.md and Burda et al.'s matches its paper:
shapes, output range and parameter counts."""

from __future__ import annotations

import pytest
import torch

from vaebench.core.errors import StageError
from vaebench.models import architectures, build_model, count_parameters, load_model, save_model
from vaebench.models.base import LOGVAR_MAX, LOGVAR_MIN, Tanh
from vaebench.models.cnn import SubPixelConvTranspose2d, branch


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
    assert sum(isinstance(m, Tanh) for m in build_model("burda").modules()) == 4


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
    """Changing the logvar branch's half of every encoder layer leaves mu untouched."""
    torch.manual_seed(0)
    model = build_model("cnn").eval()
    x = torch.rand(4, 1, 28, 28)
    mu, logvar = model.encode(x)
    with torch.no_grad():
        for layer in model.encoder:
            if isinstance(layer, (torch.nn.Conv2d, torch.nn.BatchNorm2d)):
                layer.weight[layer.weight.shape[0] // 2 :] += 1.0
    mu2, logvar2 = model.encode(x)
    assert torch.equal(mu, mu2) and not torch.allclose(logvar, logvar2)


class TwoBranchCNN(torch.nn.Module):
    """The original recipe's encoder as written: two separate branches, each with its own head."""

    def __init__(self, channels: list[int], latent: int) -> None:
        super().__init__()
        self.mu_branch, self.logvar_branch = branch(channels), branch(channels)
        self.mu = torch.nn.Linear(channels[2] * 49, latent)
        self.logvar = torch.nn.Linear(channels[2] * 49, latent)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mu(self.mu_branch(x).flatten(1)), self.logvar(self.logvar_branch(x).flatten(1))


@pytest.mark.parametrize("channels", [[16, 32, 16], [3, 5, 2]])
def test_fused_encoder_is_the_two_branch_encoder(channels: list[int]) -> None:
    """Same weights, same outputs and same gradients, in training mode (batch statistics) and eval."""
    torch.manual_seed(0)
    reference = TwoBranchCNN(channels, latent=4)
    for module in reference.modules():  # non-trivial BatchNorm affine parameters and statistics
        if isinstance(module, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(module.weight, 0.5, 1.5)
            torch.nn.init.uniform_(module.bias, -0.5, 0.5)
    reference.train()(torch.rand(8, 1, 28, 28))
    fused = build_model("cnn", channels=channels, latent=4)
    missing = fused.load_state_dict(reference.state_dict(), strict=False)  # the two-branch layout converts
    assert not missing.unexpected_keys and all(k.startswith(("decoder", "input_")) for k in missing.missing_keys)
    x = torch.rand(6, 1, 28, 28)
    for mode in ("train", "eval"):
        reference.train(mode == "train")
        fused.train(mode == "train")
        expected, got = reference(x), fused.encoder_net(x)
        for a, b in zip(expected, got, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    reference.zero_grad()
    fused.zero_grad()
    sum(t.square().sum() for t in reference(x)).backward()
    sum(t.square().sum() for t in fused.encoder_net(x)).backward()
    ref = dict(reference.named_parameters())
    for name, param in fused.encoder.named_parameters():
        expected = torch.cat([ref[f"mu_branch.{name}"].grad, ref[f"logvar_branch.{name}"].grad])
        torch.testing.assert_close(param.grad, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("c_in", "c_out", "height", "width"), [(16, 1, 14, 14), (16, 16, 7, 7), (3, 5, 4, 6)])
def test_subpixel_layer_is_the_transposed_convolution(c_in: int, c_out: int, height: int, width: int) -> None:
    """The decoder's sub-pixel layer against nn.ConvTranspose2d(c_in, c_out, 4, 2, 1) with its weights:
    equal outputs and equal gradients for input, weight and bias, channels_last or not."""
    torch.manual_seed(0)
    reference = torch.nn.ConvTranspose2d(c_in, c_out, 4, 2, 1)
    layer = SubPixelConvTranspose2d(c_in, c_out)
    layer.load_state_dict(reference.state_dict())
    for memory_format in (torch.contiguous_format, torch.channels_last):
        x = torch.randn(5, c_in, height, width).contiguous(memory_format=memory_format).requires_grad_()
        expected, got = reference(x), layer.to(memory_format=memory_format)(x)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
        upstream = torch.randn_like(expected)
        for a, b in zip(
            torch.autograd.grad(got, [x, layer.weight, layer.bias], upstream),
            torch.autograd.grad(expected, [x, reference.weight, reference.bias], upstream),
            strict=True,
        ):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_tanh_from_sigmoid_is_tanh() -> None:
    """Outputs and input gradients of the models' Tanh against torch.tanh, saturated tails included."""
    x = torch.linspace(-30, 30, 20_001, dtype=torch.float32).requires_grad_()
    got, expected = Tanh()(x), torch.tanh(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    upstream = torch.randn_like(x)
    torch.testing.assert_close(
        torch.autograd.grad(got, x, upstream)[0], torch.autograd.grad(expected, x, upstream)[0], rtol=0, atol=1e-6
    )


@pytest.mark.parametrize(("channels", "latent"), [([16, 32, 16], 10), ([3, 5, 2], 4)])
def test_cnn_eval_decoder_is_the_layered_decoder(channels: list[int], latent: int) -> None:
    """In eval mode the decoder's head runs as one affine map; layer by layer it must give the same
    logits, with non-trivial BatchNorm statistics and affine parameters, and the same gradients."""
    torch.manual_seed(0)
    model = build_model("cnn", channels=channels, latent=latent)
    norm = model.decoder[3]
    norm.running_mean.uniform_(-1, 1)
    norm.running_var.uniform_(0.2, 3)
    torch.nn.init.uniform_(norm.weight, 0.5, 1.5)
    torch.nn.init.uniform_(norm.bias, -0.5, 0.5)
    model.eval()
    z = torch.randn(37, latent)
    got, expected = model.decoder_net(z), model.decoder(z)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    params = list(model.decoder.parameters())
    for a, b in zip(torch.autograd.grad(got.sum(), params), torch.autograd.grad(expected.sum(), params), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_cnn_weights_stay_channels_last_through_save_and_load(tmp_path) -> None:
    save_model(build_model("cnn"), tmp_path)
    conv = load_model(tmp_path).encoder[3].weight  # the second convolution: more than one input channel
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()


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


def test_broken_model_directories_name_the_file(tmp_path) -> None:
    model_dir = tmp_path / "models" / "vae" / "mlp-0"
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
