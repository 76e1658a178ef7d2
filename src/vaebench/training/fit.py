"""One training loop for every architecture.

The whole split lives on the device as one tensor and batches are drawn by shuffled indices: no
DataLoader, no per-item transforms, no worker processes. Loss sums stay on the device and are read
once per epoch, so nothing forces a device sync every step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from tqdm import tqdm

from vaebench.core.errors import StageError
from vaebench.core.params import Params, Schedule
from vaebench.models.base import VAE
from vaebench.training.loss import Recon, vae_loss

CHECK_EVERY = 50  # steps between finiteness checks: one device sync each, at most 50 steps late
FUSED_ADAM_DEVICES = frozenset({"cpu", "cuda"})  # where torch.optim.Adam(fused=True) has a kernel


class NonFiniteLossError(StageError):
    """The loss became NaN or Inf; training stops at once rather than writing a broken model."""


@dataclass(frozen=True)
class EpochMetrics:
    """Per-image losses of one epoch: a row of metrics/train/<arch>-<seed>.csv and the MLflow metrics."""

    epoch: int
    train_loss: float
    train_recon: float
    train_kl: float
    val_loss: float
    val_recon: float
    val_kl: float
    lr: float
    seconds: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Recipe:
    """How to train, besides the model and the data: what `fit` and `train_epoch` read.

    `compile` trains through torch.compile (the saved model is the plain module, same weights);
    `amp` is bfloat16 autocast for the training forward pass (CUDA). Both are off by default: on
    the CPU compile gains the CNN under 10 % after 2-20 s of compiling and the MLP nothing
    (bench/throughput.py), and it needs a C compiler; on a GPU both can pay. `binarize` draws a
    fresh Bernoulli sample of every batch's pixel intensities (dynamic binarization).
    """

    epochs: int
    batch_size: int
    lr: float
    recon: Recon
    kl_weight: float
    seed: int
    schedule: Schedule = "constant"
    compile: bool = False
    amp: bool = False
    binarize: bool = False

    @classmethod
    def from_params(cls, params: Params, seed: int, device: torch.device) -> Recipe:
        t = params.train
        return cls(
            epochs=t.epochs, batch_size=t.batch_size, lr=t.lr, schedule=t.schedule, compile=t.compile,
            amp=t.amp and device.type == "cuda",  # bfloat16 autocast pays on GPUs only
            recon=params.loss.recon, kl_weight=params.loss.kl_weight, binarize=params.data.binarize, seed=seed,
        )  # fmt: skip


BURDA_STAGES = 8  # Burda et al. 2016: stage i lasts 3**i epochs at lr * 10**(-i/7); 3,280 epochs in all


def lr_factor(schedule: Schedule, epoch: int, epochs: int) -> float:
    """The learning rate of (1-based) `epoch` as a fraction of train.lr.

    Constant-lr runs stop short of the literature's likelihoods. `burda` is the IWAE paper's staged
    decay: a run shorter than its 3,280 epochs ends inside a stage, a longer one stays at the last
    rate. `cosine` falls from lr towards 0 over `epochs` (half a cosine).
    """
    if schedule == "burda":
        stage, stage_end = 0, 1
        while epoch > stage_end and stage < BURDA_STAGES - 1:
            stage += 1
            stage_end += 3**stage
        return 10 ** (-stage / 7)
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * (epoch - 1) / epochs))
    return 1.0


def train_epoch(
    model: VAE,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    recipe: Recipe,
    generator: torch.Generator,
    epoch: int,
    forward: Callable[[torch.Tensor], tuple[torch.Tensor, ...]] | None = None,
) -> list[float]:
    """One pass over `images` in shuffled batches; per-image (loss, recon, kl) of the epoch.

    `forward` is the model or its torch.compile'd twin (same parameters).
    """
    forward = model if forward is None else forward  # not `or`: a compiled module has no truth value
    model.train()
    order = torch.randperm(len(images), generator=generator).to(images.device)
    batches = order.split(recipe.batch_size)
    # Per-step terms stay on the device; they are read every CHECK_EVERY steps, not every step.
    terms_per_step = torch.empty(len(batches), 3, device=images.device)
    for step, idx in enumerate(tqdm(batches, desc=f"epoch {epoch}", leave=False, disable=None)):
        x = torch.bernoulli(images[idx]) if recipe.binarize else images[idx]
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=recipe.amp):
            logits, mu, logvar = forward(x)
        terms = vae_loss(logits.float(), x, mu.float(), logvar.float(), recipe.recon, recipe.kl_weight)
        optimizer.zero_grad(set_to_none=True)
        (terms.loss / len(x)).backward()
        optimizer.step()
        terms_per_step[step] = torch.stack(terms).detach()
        if step % CHECK_EVERY == CHECK_EVERY - 1 or step == len(batches) - 1:
            _stop_if_not_finite(terms_per_step[: step + 1], epoch)
    return (terms_per_step.sum(0) / len(images)).tolist()


def _stop_if_not_finite(terms_per_step: torch.Tensor, epoch: int) -> None:
    bad = (~torch.isfinite(terms_per_step).all(dim=1)).nonzero()
    if len(bad):
        raise NonFiniteLossError(
            f"loss is not finite at epoch {epoch}, batch {int(bad[0]) + 1}; training stopped"
            " (try a lower train.lr, or loss.recon = bce)"
        )


@torch.no_grad()
def evaluate_loss(
    model: VAE, images: torch.Tensor, recon: Recon, kl_weight: float, batch_size: int = 1000
) -> list[float]:
    """Per-image (loss, recon, kl) with one sampled z per image, in eval mode."""
    model.eval()
    totals = torch.zeros(3, device=images.device)
    for x in images.split(batch_size):
        logits, mu, logvar = model(x)
        totals += torch.stack(vae_loss(logits, x, mu, logvar, recon, kl_weight))
    return (totals / len(images)).tolist()


def adam(model: torch.nn.Module, lr: float) -> torch.optim.Adam:
    """Adam, fused into one kernel per parameter where torch has one (CPU, CUDA).

    The default on a CPU updates each parameter in a dozen separate ops: at batch 32 that was a
    third of the MLP's training step (bench/throughput.py). The same update to float
    rounding.
    """
    device = next(model.parameters()).device
    return torch.optim.Adam(model.parameters(), lr=lr, fused=device.type in FUSED_ADAM_DEVICES)


def fit(
    model: VAE,
    train_images: torch.Tensor,
    val_images: torch.Tensor,
    recipe: Recipe,
    on_epoch: Callable[[EpochMetrics], None] = lambda metrics: None,
) -> list[EpochMetrics]:
    """Adam on the per-image loss, its learning rate set per epoch by the recipe's schedule; calls
    `on_epoch` after each epoch (logging, snapshots)."""
    optimizer = adam(model, recipe.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda done: lr_factor(recipe.schedule, done + 1, recipe.epochs)
    )
    forward = torch.compile(model) if recipe.compile else model
    generator = torch.Generator().manual_seed(recipe.seed)
    history = []
    for epoch in range(1, recipe.epochs + 1):
        start, epoch_lr = time.perf_counter(), optimizer.param_groups[0]["lr"]
        train = train_epoch(model, optimizer, train_images, recipe, generator, epoch, forward)
        scheduler.step()
        val = evaluate_loss(model, val_images, recipe.recon, recipe.kl_weight)
        if not all(math.isfinite(v) for v in val):
            raise NonFiniteLossError(f"validation loss is not finite after epoch {epoch}")
        metrics = EpochMetrics(epoch, *train, *val, lr=epoch_lr, seconds=time.perf_counter() - start)
        history.append(metrics)
        print(
            f"epoch {epoch:3d}/{recipe.epochs}  train {metrics.train_loss:9.3f}  val {metrics.val_loss:9.3f}"
            f"  (recon {metrics.val_recon:.3f}, kl {metrics.val_kl:.3f})  {metrics.seconds:.1f}s",
            flush=True,
        )
        on_epoch(metrics)
    return history
