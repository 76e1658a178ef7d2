"""Stage evaluate: test-set figures of both architectures -> metrics/eval.json, reports/compare.*."""

import mlflow
import pandas as pd

from vaebench.evaluate import evaluate_model
from vaebench.io import atomic_path, read_json, write_json, write_text
from vaebench.models import count_parameters, load_model
from vaebench.params import ARCHITECTURES, load_params
from vaebench.runtime import configure, resolve_device
from vaebench.splits import load_split
from vaebench.stage import run_stage
from vaebench.tracking import resumed_run, use_experiment


def _readable(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:.4g}"


def main() -> None:
    params = load_params()
    configure(params.train.seed, params.train.threads)
    device = resolve_device(params.train.device)
    use_experiment(params.mlflow.experiment)
    test_images, _ = load_split("data/processed", "test", device)
    if params.evaluate.test_subset:
        test_images = test_images[: params.evaluate.test_subset]

    results = {}
    for arch in ARCHITECTURES:
        model = load_model(f"models/{arch}", device)
        run = read_json(f"models/{arch}/run.json")
        figures = evaluate_model(
            model, test_images, params.loss.recon, params.evaluate.iwae_k, params.evaluate.batch_size
        )
        figures |= {"latent": model.latent, "n_params": count_parameters(model), "train_seconds": run["train_seconds"]}
        results[arch] = figures
        with resumed_run(run["run_id"]) as active:
            if active:
                mlflow.log_metrics({f"test_{name}": value for name, value in figures.items()})
        print(f"{arch}: " + ", ".join(f"{k} {v:.4g}" for k, v in figures.items()))

    with atomic_path("reports/compare.csv") as tmp:
        pd.DataFrame(results).rename_axis("figure").to_csv(tmp, float_format="%.6g")
    readable = pd.DataFrame({arch: {k: _readable(v) for k, v in f.items()} for arch, f in results.items()})
    markdown = readable.rename_axis("figure").to_markdown(colalign=("left", "right", "right"), disable_numparse=True)
    write_text("reports/compare.md", markdown + "\n")
    write_json("metrics/eval.json", {arch: {k: round(v, 5) for k, v in f.items()} for arch, f in results.items()})


if __name__ == "__main__":
    run_stage(main)
