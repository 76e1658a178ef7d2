"""Stage render: the figures of both architectures as PNGs under reports/figures/, logged to MLflow."""

from pathlib import Path

import mlflow
import pandas as pd
import torch

from vaebench.evaluate import encode_means
from vaebench.io import atomic_path, read_json
from vaebench.models import load_model
from vaebench.params import ARCHITECTURES, load_params
from vaebench.render import (
    save_interpolations,
    save_latent_map,
    save_loss_curves,
    save_manifold,
    save_prior_samples,
    save_progress_montage,
    save_reconstructions,
)
from vaebench.runtime import configure
from vaebench.splits import load_split
from vaebench.stage import run_stage
from vaebench.tracking import resumed_run, use_experiment


def one_test_digit_per_class(images: torch.Tensor, labels: torch.Tensor, skip: int = 0) -> torch.Tensor:
    """The (skip+1)-th test image of each digit 0-9: fixed, and every class is shown."""
    return torch.stack([images[(labels == digit).nonzero()[skip, 0]] for digit in range(10)])


def main() -> None:
    params = load_params()
    configure(params.train.seed, params.train.threads)
    use_experiment(params.mlflow.experiment)
    test_images, test_labels = load_split("data/processed", "test")
    digits = one_test_digit_per_class(test_images, test_labels)
    # Interpolation pairs: 0->1, 2->3, ..., 8->9, and 1->7, 4->9, 3->8 (digits that look alike).
    pairs = [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (1, 7), (4, 9), (3, 8)]
    starts = torch.stack([digits[a] for a, _ in pairs])
    ends = torch.stack([one_test_digit_per_class(test_images, test_labels, skip=1)[b] for _, b in pairs])
    histories = {arch: pd.read_csv(f"metrics/train/{arch}.csv") for arch in ARCHITECTURES}

    with atomic_path("reports/figures") as out:
        out.mkdir()
        save_loss_curves(histories, out / "loss_curves.png")
        for arch in ARCHITECTURES:
            model = load_model(f"models/{arch}")
            save_reconstructions(model, digits, out / f"{arch}_reconstructions.png")
            save_prior_samples(model, out / f"{arch}_samples.png", seed=params.train.seed)
            snapshots = torch.load(f"models/{arch}/snapshots.pt", weights_only=True)
            save_progress_montage(snapshots, out / f"{arch}_progress.png", title=f"{arch}: reconstructions by epoch")
            means = encode_means(model, test_images)
            save_latent_map(means, test_labels, out / f"{arch}_latent_map.png", title=f"{arch}: test set latent means")
            save_interpolations(model, starts, ends, out / f"{arch}_interpolations.png")
            if model.latent == 2:
                save_manifold(model, out / f"{arch}_manifold.png")
        for arch in ARCHITECTURES:
            with resumed_run(read_json(f"models/{arch}/run.json")["run_id"]) as active:
                if active:
                    for figure in [out / "loss_curves.png", *sorted(out.glob(f"{arch}_*.png"))]:
                        mlflow.log_artifact(str(figure), artifact_path="figures")
    print(f"wrote {len(list(Path('reports/figures').glob('*.png')))} figures to reports/figures/")


if __name__ == "__main__":
    run_stage(main)
