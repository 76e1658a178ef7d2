"""The CNN VAE's layout choices, one at a time: the same function, five ways of computing it.

  seed:           two encoder branches, contiguous (NCHW) weights, nn.ConvTranspose2d decoder, torch.tanh;
  fused:          the branches as one grouped stack (groups=2);
  channels_last:  fused, with channels_last convolution weights (what oneDNN prefers);
  sub_pixel:      channels_last and the decoder's last layer as a sub-pixel convolution;
  current:        sub_pixel, tanh as 2 sigmoid(2x) - 1 and, in eval mode, the decoder's head as one
                  affine map (CNNVAE as the pipeline builds it).

Training images per second (forward, backward, Adam on batches in memory) at batch 32 and 128, and
IWAE decodes per second as the evaluate stage runs them; interleaved, the best of --repeats each.
Run: `python bench/cnn_layout.py`. `original_model` is also the original recipe in bench/throughput.py.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from torch import nn

from vaebench.evaluation.evaluate import iwae_log_likelihood
from vaebench.models import build_model
from vaebench.models.base import VAE, Tanh
from vaebench.models.cnn import CNNVAE, branch
from vaebench.training.loss import vae_loss


class LayeredCNN(CNNVAE):
    """CNNVAE with its decoder run layer by layer in eval mode too (no affine head)."""

    def decoder_net(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)


class TwoBranchCNN(LayeredCNN):
    """The original recipe's layout: a separate branch for mu and for logvar, each run on its own."""

    def __init__(self) -> None:
        super().__init__()
        del self.encoder
        self.mu_branch, self.logvar_branch = branch(self.config.channels), branch(self.config.channels)

    def encoder_net(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mu(self.mu_branch(x).flatten(1)), self.logvar(self.logvar_branch(x).flatten(1))


def torch_tanh(model: VAE) -> VAE:
    """`model` with torch's own nn.Tanh wherever the project's Tanh is."""
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, Tanh):
                setattr(parent, name, nn.Tanh())
    return model


def original_model(arch: str) -> VAE:
    """The architecture as the original recipe wrote it: the CNN in the `original` layout below, the MLP as is."""
    return VARIANTS["original"]() if arch == "cnn" else torch_tanh(build_model(arch))


def plain(model: CNNVAE, memory_format: torch.memory_format) -> CNNVAE:
    """`model` with nn.ConvTranspose2d as its last layer (same weights) and its weights in `memory_format`."""
    last = nn.ConvTranspose2d(model.config.channels[2], 1, 4, 2, 1)
    last.load_state_dict(model.decoder[-1].state_dict())
    model.decoder[-1] = last
    return model.to(memory_format=memory_format)


VARIANTS: dict[str, Callable[[], CNNVAE]] = {
    "original": lambda: torch_tanh(plain(TwoBranchCNN(), torch.contiguous_format)),
    "fused": lambda: torch_tanh(plain(LayeredCNN(), torch.contiguous_format)),
    "channels_last": lambda: torch_tanh(plain(LayeredCNN(), torch.channels_last)),
    "sub_pixel": lambda: torch_tanh(LayeredCNN()),
    "current": CNNVAE,
}


def images_per_second(model: CNNVAE, data: torch.Tensor, batch: int) -> float:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    start = time.perf_counter()
    for x in data.split(batch):
        logits, mu, logvar = model(x)
        loss = vae_loss(logits, x, mu, logvar, "bce", 1.0).loss / len(x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return len(data) / (time.perf_counter() - start)


def decodes_per_second(model: CNNVAE, data: torch.Tensor, k: int = 200, in_flight: int = 2048) -> float:
    images = data[:500]
    start = time.perf_counter()
    iwae_log_likelihood(model.eval(), images, k, "bce", chunk=in_flight // len(images))
    return len(images) * k / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=3200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    data = torch.rand(args.images, 1, 28, 28)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.images} images, best of {args.repeats}")
    measures = {
        "train b32 img/s": lambda model: images_per_second(model, data, 32),
        "train b128 img/s": lambda model: images_per_second(model, data, 128),
        "IWAE decodes/s": lambda model: decodes_per_second(model, data),
    }
    best = {(variant, measure): 0.0 for variant in VARIANTS for measure in measures}
    for _ in range(args.repeats):
        for measure, run in measures.items():
            for variant, build in VARIANTS.items():
                best[variant, measure] = max(best[variant, measure], run(build()))
    print("| layout | " + " | ".join(measures) + " | " + " | ".join(f"{m} vs seed" for m in measures) + " |")
    print("| --- |" + " ---: |" * (2 * len(measures)))
    for variant in VARIANTS:
        figures = [f"{best[variant, m]:.0f}" for m in measures]
        ratios = [f"x{best[variant, m] / best['original', m]:.2f}" for m in measures]
        print(f"| {variant} | " + " | ".join(figures + ratios) + " |")


if __name__ == "__main__":
    main()
