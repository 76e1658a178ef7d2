"""The CNN's encoder as two branches (the seed's layout) against the fused, grouped stack.

Training steps per second of the whole CNN VAE (forward, backward, Adam) on batches in memory,
both forms interleaved, the best of --repeats each. Run: `python bench/fused_cnn.py`.
"""

from __future__ import annotations

import argparse
import time

import torch

from vaebench.loss import vae_loss
from vaebench.models.cnn import CNNVAE, branch


class TwoBranchCNN(CNNVAE):
    """The seed's layout: a separate branch for mu and for logvar, each run on its own."""

    def __init__(self) -> None:
        super().__init__()
        del self.encoder
        self.mu_branch, self.logvar_branch = branch(self.config.channels), branch(self.config.channels)

    def encoder_net(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mu(self.mu_branch(x).flatten(1)), self.logvar(self.logvar_branch(x).flatten(1))


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=3200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    data = torch.rand(args.images, 1, 28, 28)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.images} images, best of {args.repeats}")
    for batch in (32, 128):
        best = {"two branches": 0.0, "fused": 0.0}
        for _ in range(args.repeats):
            for name, model in (("two branches", TwoBranchCNN()), ("fused", CNNVAE())):
                best[name] = max(best[name], images_per_second(model, data, batch))
        ratio = best["fused"] / best["two branches"]
        two, fused = best["two branches"], best["fused"]
        print(f"batch {batch:4d}: two branches {two:7.0f} img/s, fused {fused:7.0f} img/s, x{ratio:.2f}")


if __name__ == "__main__":
    main()
