"""The MNIST judge: a small classifier trained once, used only to score the VAEs' images.

Its penultimate layer gives the features of the Fréchet distance; its class probabilities give
the class spread and the Inception Score of samples, and its accuracy on reconstructions.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vaebench.core.io import load_tensors, unreadable


class Judge(nn.Module):
    FEATURES = 128

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 7 * 7, self.FEATURES), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Linear(self.FEATURES, 10)
        self.to(memory_format=torch.channels_last)  # oneDNN's convolutions run faster on it

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def train_judge(
    images: torch.Tensor, labels: torch.Tensor, *, epochs: int, batch_size: int, lr: float, seed: int
) -> Judge:
    """Adam with a one-cycle schedule peaking at `lr`, on in-memory tensors in [0, 1].

    The schedule is what gets a small net past 99% test accuracy in 3 epochs.
    """
    judge = Judge().to(images.device).train()
    optimizer = torch.optim.Adam(judge.parameters(), lr=lr)
    steps = epochs * -(-len(images) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(images), generator=generator).to(images.device).split(batch_size):
            loss = F.cross_entropy(judge(images[idx]), labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return judge.eval()


@torch.no_grad()
def judge_outputs(judge: Judge, images: torch.Tensor, batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """(penultimate features, class probabilities) of every image, on the CPU in float64."""
    judge.eval()
    features, probs = [], []
    for x in images.split(batch_size):
        h = judge.features(x)
        features.append(h.double().cpu())
        probs.append(F.softmax(judge.head(h), dim=1).double().cpu())
    return torch.cat(features), torch.cat(probs)


def accuracy(probs: torch.Tensor, labels: torch.Tensor) -> float:
    return float((probs.argmax(1) == labels.cpu()).double().mean())


def reference_metrics(judge: Judge, test_images: torch.Tensor, test_labels: torch.Tensor) -> dict[str, float]:
    """The judge's figures for real data: the bounds that the VAEs' figures are read against.

    Test-set halves are random (MNIST's test set is ordered: its first 5,000 digits come from
    other writers); noise is uniform pixels, seeded.
    """
    from vaebench.evaluation.quality import class_metrics, frechet_distance

    features, probs = judge_outputs(judge, test_images)
    halves = torch.randperm(len(features), generator=torch.Generator().manual_seed(0)).chunk(2)
    noise = torch.rand(test_images.shape, generator=torch.Generator().manual_seed(0)).to(test_images.device)
    return {
        "test_accuracy": accuracy(probs, test_labels),
        "fid_test_halves": frechet_distance(features[halves[0]], features[halves[1]]),
        "fid_test_vs_noise": frechet_distance(features, judge_outputs(judge, noise)[0]),
        **{f"test_{k}": v for k, v in class_metrics(probs).items()},
    }


def save_judge(judge: Judge, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.cpu() for k, v in judge.state_dict().items()}, directory / "weights.pt")


def load_judge(directory: str | Path, device: torch.device | str = "cpu") -> Judge:
    path = Path(directory) / "weights.pt"
    judge = Judge()
    state = load_tensors(path, device)
    try:
        judge.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise unreadable(path, exc) from None
    return judge.to(device).eval()
