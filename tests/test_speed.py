"""Each CPU speed form (vaebench.speed.forms) is the specified function: outputs and gradients of the
spec model and its fast form, form by form and whole, in training and eval mode, and back again."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vaebench.core.params import Recipe, load_params
from vaebench.models import architectures, build_model
from vaebench.models.cnn import CNNVAE
from vaebench.speed import forms
from vaebench.training.fit import fit


def nontrivial_batchnorm(model: torch.nn.Module) -> None:
    """BatchNorm affine parameters and running statistics away from their identity initialisation."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(module.weight, 0.5, 1.5)
            torch.nn.init.uniform_(module.bias, -0.5, 0.5)
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.2, 3)


def assert_same_grads(spec: torch.nn.Module, fast: torch.nn.Module) -> None:
    """The fast form's gradients, mapped to the spec's layout, are the spec's to float rounding at the
    scale of the largest gradient (a conv bias before BatchNorm has a gradient of ~0 plus rounding)."""
    grads = {name: p.grad for name, p in fast.named_parameters()}
    mapped = forms.unfuse(grads) if isinstance(fast, forms.TwoBranchFastVAE) else grads
    scale = max(p.grad.abs().max().item() for p in spec.parameters())
    for name, param in spec.named_parameters():
        torch.testing.assert_close(mapped[name], param.grad, rtol=1e-4, atol=1e-5 * scale, msg=name)


@pytest.mark.parametrize(("arch", "sizes"), [("cnn", {}), ("cnn", {"channels": [3, 5, 2], "latent": 4}), ("mlp", {})])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_the_fast_form_is_the_spec_model(arch: str, sizes: dict, mode: str) -> None:
    torch.manual_seed(0)
    spec = build_model(arch, **sizes)
    nontrivial_batchnorm(spec)
    fast = forms.accelerate(spec)
    spec.train(mode == "train")
    fast.train(mode == "train")
    x = torch.rand(6, 1, 28, 28)
    for a, b in zip(spec.encode(x), fast.encode(x), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
    z = torch.randn(6, spec.latent)
    torch.testing.assert_close(fast.decode_logits(z), spec.decode_logits(z), rtol=1e-5, atol=1e-4)
    for model in (spec, fast):
        model.zero_grad()
        mu, logvar = model.encode(x)
        (model.decode_logits(z + mu).square().sum() + logvar.square().sum()).backward()
    assert_same_grads(spec, fast)


@pytest.mark.parametrize("arch", architectures())
def test_specify_undoes_accelerate(arch: str) -> None:
    torch.manual_seed(0)
    spec = build_model(arch)
    back = forms.specify(forms.accelerate(spec))
    assert type(back) is type(spec)
    assert back.state_dict().keys() == spec.state_dict().keys()
    assert all(torch.equal(back.state_dict()[k], v) for k, v in spec.state_dict().items())
    assert not any(isinstance(m, forms.Tanh) for m in back.modules())


def test_the_cnns_fast_form_fuses_branches_into_one_grouped_stack() -> None:
    fast = forms.accelerate(build_model("cnn"))
    assert isinstance(fast, forms.TwoBranchFastVAE) and not hasattr(fast, "mu_branch")
    assert [m.groups for m in fast.encoder if isinstance(m, torch.nn.Conv2d)] == [1, 2, 2]
    assert isinstance(fast.decoder[-1], forms.SubPixelConvTranspose2d)
    assert fast.encoder[3].weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize(("c_in", "c_out", "height", "width"), [(16, 1, 14, 14), (16, 16, 7, 7), (3, 5, 4, 6)])
def test_subpixel_layer_is_the_transposed_convolution(c_in: int, c_out: int, height: int, width: int) -> None:
    """Against nn.ConvTranspose2d(c_in, c_out, 4, 2, 1) with its weights: equal outputs and gradients
    for input, weight and bias, channels_last or not."""
    torch.manual_seed(0)
    reference = torch.nn.ConvTranspose2d(c_in, c_out, 4, 2, 1)
    layer = forms.SubPixelConvTranspose2d(c_in, c_out)
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


def test_the_affine_head_is_the_layered_decoder_head() -> None:
    torch.manual_seed(0)
    model = build_model("cnn")
    nontrivial_batchnorm(model)
    head = model.decoder[:4].eval()
    z = torch.randn(37, model.latent)
    got, expected = forms.affine_head(head, z, model.latent), head(z)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    params = list(head.parameters())
    for a, b in zip(torch.autograd.grad(got.sum(), params), torch.autograd.grad(expected.sum(), params), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)


def test_tanh_from_sigmoid_is_tanh() -> None:
    """Outputs and input gradients against torch.tanh, saturated tails included."""
    x = torch.linspace(-30, 30, 20_001, dtype=torch.float32).requires_grad_()
    got, expected = forms.Tanh()(x), torch.tanh(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    upstream = torch.randn_like(x)
    torch.testing.assert_close(
        torch.autograd.grad(got, x, upstream)[0], torch.autograd.grad(expected, x, upstream)[0], rtol=0, atol=1e-6
    )


def test_softplus_from_sigmoid_is_softplus_over_the_float_range() -> None:
    logits = torch.linspace(-100, 100, 20001)
    torch.testing.assert_close(forms.softplus(logits), F.softplus(logits), rtol=1e-6, atol=1e-7)


def test_training_in_the_fast_forms_trains_the_spec_model_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    """One epoch with runtime.fast on and off from the same start: `fit` leaves the spec model (its
    class, its layout) trained in place, to the same loss. Not to the same weights: a conv bias before
    BatchNorm has a gradient of ~0 plus rounding, and Adam's normalised step turns rounding into a
    step of size lr, so the runs part after the first steps (the forms are equal as functions, above)."""
    params = load_params()
    train = params.train.model_copy(update={"epochs": 1, "batch_size": 32})
    # one epoch on noise learns less than the constant model (training/fit.check_learnt): not what is tested
    monkeypatch.setattr("vaebench.training.fit.constant_model_loss", lambda images, kind: float("inf"))
    torch.manual_seed(1)
    images = torch.rand(256, 1, 28, 28)
    trained = {}
    for fast in (False, True):
        torch.manual_seed(0)
        model = build_model("cnn", channels=[4, 8, 4], latent=3)
        recipe = Recipe(train=train, loss=params.loss, binarize=False, fast=fast, seed=0)
        trained[fast] = (model, fit(model, images, images[:64], recipe)[-1])
    (_, slow_metrics), (fast, fast_metrics) = trained[False], trained[True]
    assert type(fast) is CNNVAE
    assert fast_metrics.train_loss == pytest.approx(slow_metrics.train_loss, rel=2e-3)
    assert fast_metrics.val_loss == pytest.approx(slow_metrics.val_loss, rel=2e-3)
    torch.manual_seed(0)
    untrained = build_model("cnn", channels=[4, 8, 4], latent=3).state_dict()
    assert not torch.equal(fast.state_dict()["mu.weight"], untrained["mu.weight"])
