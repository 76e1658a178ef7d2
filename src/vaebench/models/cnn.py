"""The original recipe's CNN VAE: two parallel conv branches (one for mu, one for logvar), ConvTranspose decoder.

The two branches have the same shapes and separate weights, so they run as one stack: the first
convolution has both branches' filters (2 x c1 outputs), the next ones are grouped (`groups=2`:
each half of the channels sees only its own half), and BatchNorm normalises each channel on its
own, as two BatchNorms would. The same function as two branches, in half the kernel launches
(tests/test_models.py checks outputs and gradients against the branch-by-branch form). Models
saved in the two-branch layout (`mu_branch.*`, `logvar_branch.*`) load through `_fuse_branches`.

Two layout choices make it faster on the CPU without changing the function or the state dict
(bench/cnn_layout.py measures both): the weights are channels_last, which oneDNN's convolutions
prefer, and the decoder's last layer (16 -> 1 channel) runs as a sub-pixel convolution, because
oneDNN's transposed convolution is slow with one output channel.

The original recipe names the second branch's output `std` but uses it as log-variance; here it is `logvar`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import nn

from vaebench.models.base import VAE, ModelConfig, Tanh

# (kernel, stride) of the three encoder convolutions; padding is 1 for all
ENCODER_CONVS = ((4, 2), (4, 2), (3, 1))


class CNNConfig(ModelConfig):
    channels: list[int] = Field(default_factory=lambda: [16, 32, 16])
    latent: int = Field(10, ge=1)

    @field_validator("channels")
    @classmethod
    def _three_positive(cls, channels: list[int]) -> list[int]:
        if len(channels) != 3:
            raise ValueError(f"{channels}: three channel counts are needed (conv 1, conv 2, conv 3)")
        if min(channels) < 1:
            raise ValueError(f"{channels}: every channel count must be >= 1")
        return channels


def branch(channels: list[int], groups: int = 1) -> nn.Sequential:
    """1x28x28 -> c1x14x14 -> c2x7x7 -> c3x7x7, `groups` branches side by side (groups x c channels)."""
    layers: list[nn.Module] = []
    c_in = 1
    for i, (c_out, (kernel, stride)) in enumerate(zip(channels, ENCODER_CONVS, strict=True)):
        conv_groups = 1 if i == 0 else groups  # the first convolution reads the one image channel
        layers += [
            nn.Conv2d(c_in * (groups if i else 1), c_out * groups, kernel, stride, 1, groups=conv_groups),
            nn.BatchNorm2d(c_out * groups),
            Tanh(),
        ]
        c_in = c_out
    return nn.Sequential(*layers)


class CNNVAE(VAE):
    Config = CNNConfig

    def __init__(self, config: CNNConfig | None = None) -> None:
        config = config or CNNConfig()
        super().__init__(config)
        c3, latent = config.channels[2], config.latent
        flat = c3 * 7 * 7
        self.encoder = branch(config.channels, groups=2)  # channels [0, c) feed mu, [c, 2c) feed logvar
        self.mu = nn.Linear(flat, latent)
        self.logvar = nn.Linear(flat, latent)
        self.decoder = nn.Sequential(
            nn.Linear(latent, flat),
            nn.Unflatten(1, (c3, 7, 7)),
            nn.ConvTranspose2d(c3, c3, 4, 2, 1),
            nn.BatchNorm2d(c3),
            Tanh(),
            SubPixelConvTranspose2d(c3, 1),  # the spec's Sigmoid is applied in VAE.decode
        )
        self._register_load_state_dict_pre_hook(_fuse_branches)
        self.to(memory_format=torch.channels_last)  # conv weights only; loading keeps the layout

    def encoder_net(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h_mu, h_logvar = self.encoder(x).chunk(2, dim=1)
        return self.mu(h_mu.flatten(1)), self.logvar(h_logvar.flatten(1))

    def decoder_net(self, z: torch.Tensor) -> torch.Tensor:
        if self.training:
            return self.decoder(z)
        return self.decoder[4:](self._affine_head(z))  # tanh, then the last layer

    def _affine_head(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's Linear, ConvTranspose2d and BatchNorm in eval mode, as the one affine map they are.

        With BatchNorm on its running statistics nothing between z and the first tanh is non-linear,
        so the three layers collapse into one latent x (c3 x 14 x 14) matrix, read off by passing 0
        and the unit vectors through them: one matmul per decode instead of a transposed convolution.
        The IWAE bound decodes 5,000 samples per test image, and this is a third of the CNN's time.
        """
        head = self.decoder[:4]
        basis = torch.cat([torch.zeros(1, self.latent), torch.eye(self.latent)]).to(z)
        out = head(basis).permute(0, 2, 3, 1)  # channels last, as the next convolution prefers
        bias, weight = out[0], out[1:] - out[0]
        return torch.addmm(bias.flatten(), z, weight.flatten(1)).view(-1, *out.shape[1:]).permute(0, 3, 1, 2)


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


def _fuse_branches(state: dict[str, Any], prefix: str, *args: Any) -> None:
    """Rewrite a two-branch state dict (`mu_branch.N.*`, `logvar_branch.N.*`) into the fused one:
    each tensor of the fused layer is the mu branch's stacked on the logvar branch's."""
    for key in [k for k in state if k.startswith(f"{prefix}mu_branch.")]:
        suffix = key.removeprefix(f"{prefix}mu_branch.")
        mu, logvar = state.pop(key), state.pop(f"{prefix}logvar_branch.{suffix}")
        state[f"{prefix}encoder.{suffix}"] = mu if mu.dim() == 0 else torch.cat([mu, logvar])
