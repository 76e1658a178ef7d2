"""One training run of the pipeline (stage train@<arch>-<seed>): the data, the model, the MLflow run,
the fit, and the files it leaves: models/vae/<arch>-<seed>/ (config.json, weights.pt, snapshots.pt,
run.json), metrics/train/<arch>-<seed>.csv and metrics/val/<arch>-<seed>.json, each written atomically."""

from __future__ import annotations

import time

import mlflow
import pandas as pd
import torch

from vaebench.core import paths
from vaebench.core.io import atomic_path, write_json
from vaebench.core.params import Params, Recipe, flat_params
from vaebench.data.splits import binarized, load_split, processed_digest
from vaebench.figures.grids import originals_over_reconstructions
from vaebench.models import build_model, count_parameters, save_model
from vaebench.models.base import VAE
from vaebench.tracking.model import log_torch_model
from vaebench.tracking.runs import log_epoch, log_reconstructions, log_training_data, provenance_tags, tracked_run
from vaebench.training.fit import EpochMetrics, fit

SNAPSHOT_IMAGES = 5  # the original recipe's 2x5 progress grid


class Snapshots:
    """Reconstructions of a few fixed validation images at the snapshot epochs: an image slider in
    MLflow (`log_reconstructions`), and snapshots.pt for the progress montage that `render` draws."""

    def __init__(self, images: torch.Tensor, epochs: list[int]) -> None:
        self.images, self.epochs, self.recons = images.clone(), epochs, []  # a clone: not the whole split

    def take(self, model: VAE, epoch: int) -> torch.Tensor | None:
        """At a snapshot epoch, the originals over their reconstructions as one grid image; else None."""
        if epoch not in self.epochs:
            return None
        self.recons.append(model.reconstruct(self.images))
        return originals_over_reconstructions(self.images, self.recons[-1])

    def as_dict(self) -> dict[str, torch.Tensor]:
        return {"epochs": torch.tensor(self.epochs), "images": self.images.cpu(), "recons": torch.stack(self.recons)}


def validation_figures(last: EpochMetrics, seconds: float) -> dict[str, float]:
    """The kept (last epoch's) model on the validation split, per image, for `dvc exp show`: −ELBO at
    β = 1 whatever loss.kl_weight trained it (what `vaebench tune` minimises: never a test figure),
    its two terms, and the training time. The names are the test metrics' (metrics/eval/)."""
    return {
        "neg_elbo": round(last.val_recon + last.val_kl, 5),
        "recon": round(last.val_recon, 5),
        "kl": round(last.val_kl, 5),
        "epochs": last.epoch,
        "train_seconds": round(seconds, 2),
    }


def train_and_save(params: Params, arch: str, seed: int, device: torch.device) -> None:
    """Fit `arch` with `seed` as one MLflow run; write its model folder and loss curve only when it succeeds."""
    train_images, _ = load_split(paths.PROCESSED, "train", device)
    val_images, _ = load_split(paths.PROCESSED, "val", device)
    if params.data.binarize:
        val_images = binarized(val_images, params.data.seed)
    model = build_model(arch, params.model[arch])
    if params.data.standardize_input:
        model.set_input_standardization(train_images.mean().item(), train_images.std().item())
    model.to(device)
    snapshots = Snapshots(val_images[:SNAPSHOT_IMAGES], params.train.snapshots())
    name = paths.run_name(arch, seed)

    with (
        atomic_path(paths.model_dir(arch, seed)) as model_dir,
        atomic_path(paths.val_metrics(arch, seed)) as val,
        atomic_path(paths.train_curve(arch, seed)) as curve,  # innermost: a failed write here names this file
        tracked_run(run_name=name, tags=provenance_tags(f"train@{name}", arch=arch, seed=str(seed))) as run,
    ):
        mlflow.log_params(
            {**flat_params(params, arch, seed), "n_params": count_parameters(model), "device": str(device)}
        )
        log_training_data(train_images, processed_digest(), source=str(paths.PROCESSED / "train.pt"))
        start = time.perf_counter()

        def on_epoch(trained: VAE, metrics: EpochMetrics) -> None:
            log_epoch(metrics.as_dict())
            if (grid := snapshots.take(trained, metrics.epoch)) is not None:
                log_reconstructions(grid, metrics.epoch)

        history = fit(model, train_images, val_images, Recipe.of(params, seed), on_epoch)
        seconds = time.perf_counter() - start
        mlflow.log_metric("train_seconds", seconds)
        save_model(model, model_dir)
        torch.save(snapshots.as_dict(), model_dir / "snapshots.pt")
        write_json(model_dir / "run.json", {"run_id": run.info.run_id, "train_seconds": round(seconds, 2)})
        pd.DataFrame([m.as_dict() for m in history]).to_csv(curve, index=False, float_format="%.5f")
        write_json(val, validation_figures(history[-1], seconds))
        log_torch_model(model, snapshots.images[:2])
    print(f"{name}: {params.train.epochs} epochs in {seconds:.1f}s on {device}; MLflow run {run.info.run_id}")
