"""Stage train@<arch>: fit one architecture, log it to MLflow, write models/<arch>/ and its curves."""

import argparse
import time
from pathlib import Path

import mlflow
import pandas as pd
import torch
from torchvision.utils import save_image

from vaebench.io import atomic_path, write_json
from vaebench.models import REGISTRY, build_model, count_parameters, model_kwargs, save_model
from vaebench.params import flat_params, load_params
from vaebench.render import originals_over_reconstructions, to_pil
from vaebench.runtime import configure, resolve_device
from vaebench.splits import binarized, load_split
from vaebench.stage import run_stage
from vaebench.tracking import log_torch_model, provenance_tags, tracked_run, use_experiment
from vaebench.train import EpochMetrics, fit, reconstruct

SNAPSHOT_IMAGES = 5  # the seed's 2x5 progress grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("arch", choices=sorted(REGISTRY))
    arch = parser.parse_args().arch
    params = load_params()
    configure(params.train.seed, params.train.threads)
    device = resolve_device(params.train.device)

    train_images, _ = load_split("data/processed", "train", device)
    val_images, _ = load_split("data/processed", "val", device)
    if params.data.binarize:
        val_images = binarized(val_images, params.data.seed)
    kwargs = model_kwargs(params, arch)
    model = build_model(arch, **kwargs)
    if params.data.standardize_input:
        model.set_input_standardization(train_images.mean().item(), train_images.std().item())
    model.to(device)
    fixed = val_images[:SNAPSHOT_IMAGES]
    snapshot_epochs = params.train.snapshots()
    recons: list[torch.Tensor] = []
    experiment_id = use_experiment(params.mlflow.experiment)

    with (
        atomic_path(Path("models") / arch) as model_dir,
        atomic_path(Path("reports/snapshots") / arch) as snapshot_dir,
        atomic_path(Path("metrics/train") / f"{arch}.csv") as csv_path,
        tracked_run(run_name=arch, tags=provenance_tags(arch)) as run,
    ):
        snapshot_dir.mkdir()
        mlflow.log_params({**flat_params(params, arch), "n_params": count_parameters(model), "device": str(device)})

        def on_epoch(metrics: EpochMetrics) -> None:
            mlflow.log_metrics({k: v for k, v in metrics.as_dict().items() if k != "epoch"}, step=metrics.epoch)
            if metrics.epoch in snapshot_epochs:
                recons.append(reconstruct(model, fixed))
                grid = originals_over_reconstructions(fixed, recons[-1])
                save_image(grid, snapshot_dir / f"epoch_{metrics.epoch:03d}.png")
                mlflow.log_image(to_pil(grid), key="reconstructions", step=metrics.epoch)

        start = time.perf_counter()
        history = fit(
            model, train_images, val_images,
            epochs=params.train.epochs, batch_size=params.train.batch_size, lr=params.train.lr,
            recon=params.loss.recon, kl_weight=params.loss.kl_weight, seed=params.train.seed,
            compile=params.train.compile, amp=params.train.amp and device.type == "cuda",
            binarize=params.data.binarize, on_epoch=on_epoch,
        )  # fmt: skip
        train_seconds = time.perf_counter() - start

        save_model(model, arch, kwargs, model_dir)
        snapshots = {"epochs": torch.tensor(snapshot_epochs), "images": fixed.cpu(), "recons": torch.stack(recons)}
        torch.save(snapshots, model_dir / "snapshots.pt")
        write_json(
            model_dir / "run.json",
            {"run_id": run.info.run_id, "experiment_id": experiment_id, "train_seconds": round(train_seconds, 2)},
        )
        pd.DataFrame([m.as_dict() for m in history]).to_csv(csv_path, index=False, float_format="%.5f")
        mlflow.log_metric("train_seconds", train_seconds)
        log_torch_model(model, fixed[:2])
    print(f"{arch}: {params.train.epochs} epochs in {train_seconds:.1f}s on {device}; MLflow run {run.info.run_id}")


if __name__ == "__main__":
    run_stage(main)
