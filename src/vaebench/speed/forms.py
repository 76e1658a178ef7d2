"""The CPU speed forms: the specified models (`vaebench.models`) and loss computed faster, each form the
same function as the specification (tests/test_speed.py checks outputs and gradients).

`accelerate(model)` turns a specified model into its fast form for training or evaluation, and
`specify(fast)` turns it back, with the same weights, for saving: saved weights are always in the
specification's layout. The forms are found in the model's structure (its modules), not by its
class, so this module imports no model file and a new architecture gets the forms that fit it.
`softplus` is the Bernoulli loss's fast form. `runtime.fast` in params.yaml is the one switch (read
by training and evaluation); accelerators keep torch's own operations in every form.

The forms, and why each one pays on a CPU (docs/performance.md has the measurements):
- tanh as 2 sigmoid(2x) - 1 and softplus as relu(l) - log sigmoid(|l|): torch's CPU tanh and log1p
  (which softplus and binary_cross_entropy_with_logits go through) are several times slower than
  its sigmoid, exp and log on some vector units.
- the CNN's two encoder branches as one grouped stack (`groups=2`): the same function in half the
  kernel launches, which dominate at small batches.
- channels_last convolution weights, which oneDNN's convolutions prefer.
- the CNN decoder's last layer (16 -> 1 channel) as a sub-pixel convolution: oneDNN's transposed
  convolution is slow with one output channel.
- in eval mode, the CNN decoder's Linear, ConvTranspose2d and BatchNorm as the one affine map they
  are: one matrix product per decode where the IWAE bound decodes thousands of samples per image.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from vaebench.models.base import VAE

# tanh and softplus through sigmoid


class _TanhFromSigmoid(torch.autograd.Function):
    """tanh(x) = 2 sigmoid(2x) - 1 forward, tanh's own backward (1 - y^2) from the saved output."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor) -> torch.Tensor:
        y = x.mul(2).sigmoid_().mul_(2).sub_(1)  # in place: one buffer, four passes
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)


class Tanh(nn.Tanh):
    """nn.Tanh, computed on the CPU as 2 sigmoid(2x) - 1 (equal within 1e-6)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _TanhFromSigmoid.apply(x) if x.device.type == "cpu" else torch.tanh(x)


class _SoftplusFromSigmoid(torch.autograd.Function):
    """softplus(l) = relu(l) - log(sigmoid(|l|)) forward, softplus's own backward, sigmoid(l)."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, logits: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(logits)
        return logits.relu().sub_(logits.abs().sigmoid_().log_())  # log of [0.5, 1): no overflow

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        (logits,) = ctx.saved_tensors
        return grad * torch.sigmoid(logits)


def softplus(logits: torch.Tensor) -> torch.Tensor:
    """log(1 + e^l) without log1p on the CPU: F.softplus within float rounding (6e-8 per pixel where
    sigmoid(|l|) rounds to 1)."""
    return _SoftplusFromSigmoid.apply(logits) if logits.device.type == "cpu" else F.softplus(logits)


def softplus_of(fast: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    """The loss's softplus: this fast form, or torch's."""
    return softplus if fast else F.softplus


def _swap_tanh(model: nn.Module, tanh: type[nn.Module]) -> None:
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.Tanh):
                setattr(parent, name, tanh())


# the two-branch encoder (the CNN's) as one grouped stack


def _fused_layer(a: nn.Module, b: nn.Module, first: bool) -> nn.Module:
    """Layer `a` of the mu branch and its twin `b` of the logvar branch as one layer over 2 x c channels,
    each half seeing only its own half (the first convolution reads the one image channel for both)."""
    if isinstance(a, nn.Conv2d):
        groups = 1 if first else 2
        fused = nn.Conv2d(a.in_channels * groups, 2 * a.out_channels, a.kernel_size, a.stride, a.padding, groups=groups)
    elif isinstance(a, nn.BatchNorm2d):
        fused = nn.BatchNorm2d(2 * a.num_features, a.eps, a.momentum)
    elif isinstance(a, nn.Tanh):
        return Tanh()
    else:
        raise TypeError(f"no fused form of {type(a).__name__}")
    state = {k: v if v.dim() == 0 else torch.cat([v, b.state_dict()[k]]) for k, v in a.state_dict().items()}
    fused.load_state_dict(state)
    return fused


# ConvTranspose2d(kernel 4, stride 2, padding 1) writes output row 2i + a from input rows i - 1, i,
# i + 1 through these rows of its kernel (4: no tap, a zero); the same holds for columns.
_TAPS = ((3, 1, 4), (4, 2, 0))


class SubPixelConvTranspose2d(nn.ConvTranspose2d):
    """ConvTranspose2d(c_in, c_out, 4, 2, 1) computed as a 3x3 convolution with 4 x c_out outputs
    (one per output phase) and a pixel shuffle: the same function, parameters and state dict."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, 4, 2, 1)
        rows = torch.tensor(_TAPS).view(2, 1, 3, 1).expand(2, 2, 3, 3)
        cols = torch.tensor(_TAPS).view(1, 2, 1, 3).expand(2, 2, 3, 3)
        self.register_buffer("taps", (rows * 5 + cols).flatten(), persistent=False)  # into a 5x5 kernel

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        c_in, c_out = self.weight.shape[:2]
        kernel = F.pad(self.weight, (0, 1, 0, 1)).flatten(2)[:, :, self.taps]  # c_in x c_out x (2*2*3*3)
        kernel = kernel.view(c_in, c_out * 4, 3, 3).transpose(0, 1)
        bias = self.bias.repeat_interleave(4) if self.bias is not None else None
        return F.pixel_shuffle(F.conv2d(x, kernel, bias, padding=1), 2)


def affine_head(head: nn.Module, z: torch.Tensor, latent: int) -> torch.Tensor:
    """`head` (Linear, view, ConvTranspose2d, BatchNorm in eval mode: nothing non-linear) applied to z
    as the one affine map it is, read off by passing 0 and the unit vectors through it."""
    basis = torch.cat([torch.zeros(1, latent), torch.eye(latent)]).to(z)
    out = head(basis).permute(0, 2, 3, 1)  # channels last, as the next convolution prefers
    bias, weight = out[0], out[1:] - out[0]
    return torch.addmm(bias.flatten(), z, weight.flatten(1)).view(-1, *out.shape[1:]).permute(0, 3, 1, 2)


AFFINE_IN_EVAL = (nn.Linear, nn.Unflatten, nn.ConvTranspose2d, nn.BatchNorm2d)


def _affine_prefix(decoder: nn.Sequential) -> int:
    """How many leading layers of `decoder` are affine in eval mode, where they include a convolution
    (a lone Linear is one matrix product already); 0 where there is nothing to gain."""
    n = 0
    while n < len(decoder) and isinstance(decoder[n], AFFINE_IN_EVAL):
        n += 1
    return n if any(isinstance(m, nn.ConvTranspose2d) for m in decoder[:n]) else 0


class TwoBranchFastVAE(VAE):
    """The fast form of a model whose encoder is two branches of the same layers, `mu_branch` and
    `logvar_branch`, feeding the heads `mu` and `logvar` (the CNN): the branches fused (`fuse`,
    `unfuse` map the state dicts), and the decoder in its fast forms (`_fast_decoder`)."""

    def __init__(self, spec: VAE) -> None:
        super().__init__(spec.config)
        self.spec_class = type(spec)
        pairs = zip(spec.mu_branch, spec.logvar_branch, strict=True)
        self.encoder = nn.Sequential(*[_fused_layer(a, b, first=i == 0) for i, (a, b) in enumerate(pairs)])
        self.mu, self.logvar = copy.deepcopy(spec.mu), copy.deepcopy(spec.logvar)
        self.decoder = _fast_decoder(spec.decoder)
        self.head_layers = _affine_prefix(self.decoder)
        self.input_mean.copy_(spec.input_mean)
        self.input_std.copy_(spec.input_std)
        self.to(memory_format=torch.channels_last)

    @property
    def arch(self) -> str:
        return self.spec_class.__module__.rsplit(".", 1)[-1]

    def encoder_net(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h_mu, h_logvar = self.encoder(x).chunk(2, dim=1)  # channels [0, c) feed mu, [c, 2c) feed logvar
        return self.mu(h_mu.flatten(1)), self.logvar(h_logvar.flatten(1))

    def decoder_net(self, z: torch.Tensor) -> torch.Tensor:
        if self.training or not self.head_layers:
            return self.decoder(z)
        n = self.head_layers
        return self.decoder[n:](affine_head(self.decoder[:n], z, self.latent))


def _fast_decoder(decoder: nn.Sequential) -> nn.Sequential:
    """A copy of `decoder` with fast tanh and a one-channel ConvTranspose2d(k4, s2, p1) as a sub-pixel convolution."""
    fast = copy.deepcopy(decoder)
    _swap_tanh(fast, Tanh)
    for i, layer in enumerate(fast):
        shape = (layer.kernel_size, layer.stride, layer.padding) if isinstance(layer, nn.ConvTranspose2d) else None
        if shape == ((4, 4), (2, 2), (1, 1)) and layer.out_channels == 1:
            sub_pixel = SubPixelConvTranspose2d(layer.in_channels, layer.out_channels)
            sub_pixel.load_state_dict(layer.state_dict())
            fast[i] = sub_pixel
    return fast


def _two_branches(model: VAE) -> bool:
    return isinstance(model, VAE) and hasattr(model, "mu_branch") and hasattr(model, "logvar_branch")


def unfuse(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """TwoBranchFastVAE's state dict in the spec's layout: each fused tensor split into its two branches'."""
    spec = {k: v for k, v in state.items() if not k.startswith("encoder.")}
    for key in [k for k in state if k.startswith("encoder.")]:
        suffix, value = key.removeprefix("encoder."), state[key]
        mu, logvar = (value, value) if value.dim() == 0 else value.chunk(2)
        spec[f"mu_branch.{suffix}"], spec[f"logvar_branch.{suffix}"] = mu.contiguous(), logvar.contiguous()
    return spec


def accelerate(model: VAE) -> VAE:
    """The fast form of a specified model, with its weights (a new module; `model` is unchanged)."""
    if _two_branches(model):
        fast = TwoBranchFastVAE(model)
    else:
        fast = copy.deepcopy(model)
        _swap_tanh(fast, Tanh)
    return fast.to(model.device).train(model.training)


def specify(model: VAE) -> VAE:
    """The specified model with the weights of its fast form (or of itself): what `save_model` writes."""
    if isinstance(model, TwoBranchFastVAE):
        spec = model.spec_class(model.config)
        spec.load_state_dict(unfuse(model.state_dict()))
        return spec.to(model.device).train(model.training)
    spec = copy.deepcopy(model)
    _swap_tanh(spec, nn.Tanh)
    return spec
