"""The shared training loop: it learns, it is reproducible, and a NaN stops it at once."""

from __future__ import annotations

import pytest
import torch

from vaebench.core.params import Recipe, TrainParams, load_params
from vaebench.data.splits import binarized
from vaebench.models import build_model
from vaebench.training.fit import NonFiniteLossError, fit, lr_factor

LR = 1e-3


def recipe(binarize: bool = False, fast: bool = True, seed: int = 0, **train) -> Recipe:
    """The repository's recipe (BCE, beta = 1) at batch 32 and lr 1e-3, with these train.* values."""
    params = load_params()
    section = TrainParams.model_validate({**params.train.model_dump(), "batch_size": 32, "lr": LR, **train})
    loss = params.loss.model_copy(update={"recon": "bce", "kl_weight": 1.0})
    return Recipe(train=section, loss=loss, binarize=binarize, fast=fast, seed=seed)


def blobs(n: int = 256) -> torch.Tensor:
    """Images with structure to learn: a bright square at one of four places."""
    images = torch.zeros(n, 1, 28, 28)
    for i in range(n):
        r, c = divmod(i % 4, 2)
        images[i, 0, 4 + 12 * r : 12 + 12 * r, 4 + 12 * c : 12 + 12 * c] = 1.0
    return images


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_loss_falls_and_callback_sees_every_epoch(arch: str) -> None:
    torch.manual_seed(0)
    seen = []
    history = fit(
        build_model(arch), blobs(), blobs(64), recipe(epochs=3), on_epoch=lambda model, metrics: seen.append(metrics)
    )
    assert [m.epoch for m in seen] == [1, 2, 3]
    assert history[-1].val_loss < history[0].val_loss
    assert history[0].train_loss == pytest.approx(history[0].train_recon + history[0].train_kl, rel=1e-5)


def test_same_seed_same_result() -> None:
    def once() -> float:
        torch.manual_seed(0)
        return fit(build_model("mlp", hidden=32, latent=2), blobs(), blobs(64), recipe(epochs=2))[-1].val_loss

    assert once() == once()


def test_nan_stops_training_naming_epoch_and_batch() -> None:
    """Batch 3 of 4 gets the NaN image (the shuffle is seeded); training stops in epoch 1."""
    images = blobs(128)
    order = torch.randperm(128, generator=torch.Generator().manual_seed(0))
    images[order[70]] = float("nan")  # position 70 is in batch 3 of size 32
    seen = []
    with pytest.raises(NonFiniteLossError, match=r"not finite at epoch 1, batch 3;"):
        fit(
            build_model("mlp", hidden=16, latent=2),
            images,
            blobs(32),
            recipe(epochs=2),
            on_epoch=lambda model, metrics: seen.append(metrics),
        )
    assert seen == []


def test_bfloat16_autocast_trains() -> None:
    """The amp path (CUDA in the pipeline) runs the same loop; on the CPU autocast works as well."""
    torch.manual_seed(0)
    history = fit(build_model("mlp", hidden=32, latent=2), blobs(), blobs(64), recipe(epochs=2, amp=True))
    assert history[-1].val_loss < history[0].val_loss


def test_binarized_protocol() -> None:
    """Dynamic binarization trains; the fixed test binarization is binary, seeded and unbiased."""
    torch.manual_seed(0)
    history = fit(build_model("mlp", hidden=32, latent=2), blobs() * 0.7, blobs(64), recipe(epochs=2, binarize=True))
    assert history[-1].val_loss < history[0].val_loss
    grey = torch.full((200, 1, 28, 28), 0.3)
    fixed = binarized(grey, seed=5)
    assert set(fixed.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(fixed, binarized(grey, seed=5)) and not torch.equal(fixed, binarized(grey, seed=6))
    assert fixed.mean().item() == pytest.approx(0.3, abs=0.01)


def test_compiled_training_learns_and_saves_the_plain_module() -> None:
    """train.compile trains through torch.compile's wrapper; the model returned is the plain module."""
    torch.manual_seed(0)
    model = build_model("mlp", hidden=32, latent=2)
    history = fit(model, blobs(), blobs(64), recipe(epochs=2, compile=True))
    assert history[-1].val_loss < history[0].val_loss
    assert type(model).__name__ == "MLPVAE" and "_orig_mod" not in next(iter(model.state_dict()))


def test_burda_schedule_is_the_papers_stages() -> None:
    """Stage i lasts 3**i epochs at lr * 10**(-i/7): epochs 1 | 2-4 | 5-13 | ... | 1094-3280, then stays."""
    stage_of = {1: 0, 2: 1, 4: 1, 5: 2, 13: 2, 14: 3, 40: 3, 41: 4, 121: 4, 122: 5, 364: 5, 365: 6, 1093: 6}
    stage_of |= {1094: 7, 3280: 7, 5000: 7}
    for epoch, stage in stage_of.items():
        assert lr_factor("burda", epoch, epochs=3280) == pytest.approx(10 ** (-stage / 7)), epoch


def test_cosine_and_constant_schedules() -> None:
    assert [lr_factor("cosine", e, epochs=4) for e in (1, 3)] == pytest.approx([1.0, 0.5])
    assert 0 < lr_factor("cosine", 4, epochs=4) < 0.2
    assert {lr_factor("constant", e, epochs=4) for e in range(1, 5)} == {1.0}


def test_fit_follows_the_schedule_and_reports_each_epochs_rate() -> None:
    torch.manual_seed(0)
    model = build_model("burda", hidden=[16], latent=2)
    history = fit(model, blobs(64), blobs(32), recipe(epochs=5, schedule="burda"))
    expected = [LR * 10 ** (-stage / 7) for stage in (0, 1, 1, 1, 2)]
    assert [m.lr for m in history] == pytest.approx(expected)


def test_constant_model_loss_is_784_ln2_under_bce_whatever_the_images() -> None:
    import math

    from vaebench.training.loss import constant_model_loss

    assert constant_model_loss(blobs(8), "bce") == pytest.approx(784 * math.log(2), rel=1e-6)
    assert constant_model_loss(torch.full((2, 1, 28, 28), 0.5), "mse") == 0.0


def test_a_model_worse_than_the_constant_one_is_refused_naming_the_rate() -> None:
    """A learning rate far too high that never yields a NaN: the model is not kept."""
    from vaebench.training.fit import EpochMetrics, NotLearntError, check_learnt

    last = EpochMetrics(20, 1e30, 1e30, 1.0, 2e33, 2e33, 1.0, lr=1e6, seconds=1.0)
    expected = r"after epoch 20 is 2e\+33 nats .* worse than the 543\.4 .*train\.lr = 1e\+06"
    with pytest.raises(NotLearntError, match=expected):
        check_learnt(last, 543.4, recipe(lr=1e6))
    check_learnt(EpochMetrics(20, 90, 80, 10, 100, 90, 10, lr=1e-3, seconds=1.0), 543.4, recipe())


def test_fit_checks_the_last_epoch_against_the_constant_model() -> None:
    from vaebench.training.fit import NotLearntError

    with pytest.raises((NotLearntError, NonFiniteLossError)):
        fit(build_model("mlp", hidden=16, latent=2), blobs(64), blobs(32), recipe(epochs=1, lr=1e6))
