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
import torch.nn.functional as F
from tqdm import tqdm

from vaebench.core import stop
from vaebench.core.errors import StageError
from vaebench.core.params import Recipe, Schedule
from vaebench.models.base import VAE
from vaebench.speed import forms
from vaebench.training.loss import Recon, Softplus, constant_model_loss, vae_loss

CHECK_EVERY = 50  # steps between finiteness checks: one device sync each, at most 50 steps late
FUSED_ADAM_DEVICES = frozenset({"cpu", "cuda"})  # where torch.optim.Adam(fused=True) has a kernel


class NonFiniteLossError(StageError):
    """The loss became NaN or Inf; training stops at once rather than writing a broken model."""


class NotLearntError(StageError):
    """Training ended with a validation loss worse than a model that learnt nothing: diverged
    without a NaN (a learning rate far too high), so the model is not written."""


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

    `forward` is the model or its torch.compile'd twin (same parameters). A stop request (Ctrl-C,
    SIGTERM, `dvc` gone: `core.stop`) ends the epoch at its next check, with the finiteness check's sync.
    """
    forward = model if forward is None else forward  # not `or`: a compiled module has no truth value
    model.train()
    order = torch.randperm(len(images), generator=generator).to(images.device)
    batches = order.split(recipe.train.batch_size)
    amp = recipe.train.amp and images.device.type == "cuda"  # bfloat16 autocast pays on GPUs only
    softplus = forms.softplus_of(recipe.fast)
    # Per-step terms stay on the device; they are read every CHECK_EVERY steps, not every step.
    terms_per_step = torch.empty(len(batches), 3, device=images.device)
    for step, idx in enumerate(tqdm(batches, desc=f"epoch {epoch}", leave=False, disable=None)):
        x = torch.bernoulli(images[idx]) if recipe.binarize else images[idx]
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=amp):
            logits, mu, logvar = forward(x)
        terms = vae_loss(
            logits.float(), x, mu.float(), logvar.float(), recipe.loss.recon, recipe.loss.kl_weight, softplus
        )
        optimizer.zero_grad(set_to_none=True)
        (terms.loss / len(x)).backward()
        optimizer.step()
        terms_per_step[step] = torch.stack(terms).detach()
        if step % CHECK_EVERY == CHECK_EVERY - 1 or step == len(batches) - 1:
            _stop_if_not_finite(terms_per_step[: step + 1], epoch)
            stop.check()
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
    model: VAE,
    images: torch.Tensor,
    recon: Recon,
    kl_weight: float,
    batch_size: int = 1000,
    softplus: Softplus = F.softplus,
) -> list[float]:
    """Per-image (loss, recon, kl) with one sampled z per image, in eval mode."""
    model.eval()
    totals = torch.zeros(3, device=images.device)
    for x in images.split(batch_size):
        logits, mu, logvar = model(x)
        totals += torch.stack(vae_loss(logits, x, mu, logvar, recon, kl_weight, softplus))
    return (totals / len(images)).tolist()


def adam(model: torch.nn.Module, lr: float) -> torch.optim.Adam:
    """Adam, fused into one kernel per parameter where torch has one (CPU, CUDA).

    The default on a CPU updates each parameter in a dozen separate ops, which dominate small
    batches (docs/performance.md); the fused one is the same update to float rounding.
    """
    device = next(model.parameters()).device
    return torch.optim.Adam(model.parameters(), lr=lr, fused=device.type in FUSED_ADAM_DEVICES)


def fit(
    model: VAE,
    train_images: torch.Tensor,
    val_images: torch.Tensor,
    recipe: Recipe,
    on_epoch: Callable[[VAE, EpochMetrics], None] = lambda model, metrics: None,
) -> list[EpochMetrics]:
    """Train `model` in place: Adam on the per-image loss, its learning rate set per epoch by the
    recipe's schedule, in the model's speed forms if the recipe says so. Calls `on_epoch` with the
    module being trained after each epoch (logging, snapshots)."""
    trained = forms.accelerate(model) if recipe.fast else model
    optimizer = adam(trained, recipe.train.lr)
    schedule, epochs = recipe.train.schedule, recipe.train.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda done: lr_factor(schedule, done + 1, epochs))
    forward = torch.compile(trained) if recipe.train.compile else trained
    softplus = forms.softplus_of(recipe.fast)
    generator = torch.Generator().manual_seed(recipe.seed)
    history = []
    for epoch in range(1, epochs + 1):
        start, epoch_lr = time.perf_counter(), optimizer.param_groups[0]["lr"]
        train = train_epoch(trained, optimizer, train_images, recipe, generator, epoch, forward)
        scheduler.step()
        val = evaluate_loss(trained, val_images, recipe.loss.recon, recipe.loss.kl_weight, softplus=softplus)
        if not all(math.isfinite(v) for v in val):
            raise NonFiniteLossError(f"validation loss is not finite after epoch {epoch}")
        metrics = EpochMetrics(epoch, *train, *val, lr=epoch_lr, seconds=time.perf_counter() - start)
        history.append(metrics)
        print(
            f"epoch {epoch:3d}/{epochs}  train {metrics.train_loss:9.3f}  val {metrics.val_loss:9.3f}"
            f"  (recon {metrics.val_recon:.3f}, kl {metrics.val_kl:.3f})  {metrics.seconds:.1f}s",
            flush=True,
        )
        on_epoch(trained, metrics)
        stop.check()
    check_learnt(history[-1], constant_model_loss(val_images, recipe.loss.recon), recipe)
    if trained is not model:
        model.load_state_dict(forms.specify(trained).state_dict())
    return history


def check_learnt(last: EpochMetrics, constant: float, recipe: Recipe) -> None:
    """NotLearntError where the last epoch's validation loss (the trained objective, recon + β KL)
    is worse than the constant model's, whose KL is 0 (`constant_model_loss`)."""
    if last.val_loss > constant:
        raise NotLearntError(
            f"diverged: the validation loss after epoch {last.epoch} is {last.val_loss:.4g} nats per image, worse"
            f" than the {constant:.1f} of a model that says 0.5 for every pixel; nothing is written"
            f" (train.lr = {recipe.train.lr:g}: try a lower one)"
        )
