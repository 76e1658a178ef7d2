"""Stage render: reconstructions, prior samples, progress montages and loss curves as PNGs."""

from pathlib import Path

import mlflow
import pandas as pd
import torch

from vaebench.io import atomic_path, read_json
from vaebench.models import load_model
from vaebench.params import ARCHITECTURES, load_params
from vaebench.render import save_loss_curves, save_prior_samples, save_progress_montage, save_reconstructions
from vaebench.runtime import configure
from vaebench.splits import load_split
from vaebench.stage import run_stage
from vaebench.tracking import resumed_run, use_experiment


def one_test_digit_per_class(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The first test image of each digit 0-9: fixed, and every class is shown."""
    return torch.stack([images[(labels == digit).nonzero()[0, 0]] for digit in range(10)])


def main() -> None:
    params = load_params()
    configure(params.train.seed, params.train.threads)
    use_experiment(params.mlflow.experiment)
    test_images, test_labels = load_split("data/processed", "test")
    digits = one_test_digit_per_class(test_images, test_labels)
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
        for arch in ARCHITECTURES:
            with resumed_run(read_json(f"models/{arch}/run.json")["run_id"]) as active:
                if active:
                    for figure in [out / "loss_curves.png", *sorted(out.glob(f"{arch}_*.png"))]:
                        mlflow.log_artifact(str(figure), artifact_path="figures")
    print(f"wrote {len(list(Path('reports/figures').glob('*.png')))} figures to reports/figures/")


if __name__ == "__main__":
    run_stage(main)
