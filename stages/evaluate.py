"""Stage evaluate: every test-set figure of both architectures -> metrics/eval.json, reports/compare.csv.

Likelihood (ELBO, IWAE bound), reconstruction, sample quality judged by the MNIST judge (Fréchet
distance, class spread, Inception Score, accuracy on reconstructions) and representation (active
units, linear probe). `reference` holds the same figures for real data, as sanity bounds.
"""

import mlflow
import pandas as pd
import torch

from vaebench.evaluate import encode_means, evaluate_model, linear_probe_accuracy, sample_prior
from vaebench.io import atomic_path, read_json, write_json
from vaebench.judge import accuracy, judge_outputs, load_judge
from vaebench.models import count_parameters, load_model
from vaebench.params import ARCHITECTURES, load_params
from vaebench.quality import class_figures, frechet_distance
from vaebench.runtime import configure, resolve_device
from vaebench.splits import binarized, load_split
from vaebench.stage import run_stage
from vaebench.tracking import resumed_run, use_experiment
from vaebench.train import reconstruct


def main() -> None:
    params = load_params()
    configure(params.train.seed, params.train.threads)
    device = resolve_device(params.train.device)
    use_experiment(params.mlflow.experiment)
    train_images, train_labels = load_split("data/processed", "train", device)
    test_images, test_labels = load_split("data/processed", "test", device)
    if params.evaluate.test_subset:
        test_images, test_labels = (
            test_images[: params.evaluate.test_subset],
            test_labels[: params.evaluate.test_subset],
        )
    # The binarized protocol scores likelihoods on one fixed, seeded binarization of the test set.
    likelihood_images = binarized(test_images, params.data.seed) if params.data.binarize else test_images

    judge = load_judge("models/judge", device)
    test_features, test_probs = judge_outputs(judge, test_images)
    # Random halves: MNIST's test set is ordered (its first 5,000 digits come from other writers).
    halves = torch.randperm(len(test_features), generator=torch.Generator().manual_seed(0)).chunk(2)
    noise_features, _ = judge_outputs(
        judge, torch.rand(test_images.shape, generator=torch.Generator().manual_seed(0)).to(device)
    )
    reference = {
        "judge_test_accuracy": accuracy(test_probs, test_labels),
        "fid_test_halves": frechet_distance(test_features[halves[0]], test_features[halves[1]]),
        "fid_test_vs_noise": frechet_distance(test_features, noise_features),
        **{f"test_{k}": v for k, v in class_figures(test_probs).items()},
    }
    print("reference: " + ", ".join(f"{k} {v:.4g}" for k, v in reference.items()))

    results = {}
    for arch in ARCHITECTURES:
        model = load_model(f"models/{arch}", device)
        run = read_json(f"models/{arch}/run.json")
        figures = evaluate_model(
            model, likelihood_images, params.loss.recon, params.evaluate.iwae_k, params.evaluate.batch_size
        )
        sample_features, sample_probs = judge_outputs(judge, sample_prior(model, params.evaluate.n_samples, seed=1))
        figures["fid"] = frechet_distance(sample_features, test_features)
        figures |= {f"sample_{k}": v for k, v in class_figures(sample_probs).items()}
        figures["recon_judge_accuracy"] = accuracy(
            judge_outputs(judge, reconstruct(model, test_images).to(device))[1], test_labels
        )
        figures["linear_probe_accuracy"] = linear_probe_accuracy(
            encode_means(model, train_images), train_labels, encode_means(model, test_images), test_labels
        )
        figures |= {"latent": model.latent, "n_params": count_parameters(model), "train_seconds": run["train_seconds"]}
        results[arch] = figures
        with resumed_run(run["run_id"]) as active:
            if active:
                mlflow.log_metrics({f"test_{name}": value for name, value in figures.items()})
                mlflow.log_metrics({f"reference_{name}": value for name, value in reference.items()})
        print(f"{arch}: " + ", ".join(f"{k} {v:.4g}" for k, v in figures.items()))

    with atomic_path("reports/compare.csv") as tmp:
        pd.DataFrame(results).rename_axis("figure").to_csv(tmp, float_format="%.6g")
    rounded = {name: {k: round(v, 5) for k, v in f.items()} for name, f in (results | {"reference": reference}).items()}
    write_json("metrics/eval.json", rounded | {"iwae_k": params.evaluate.iwae_k, "binarized": params.data.binarize})


if __name__ == "__main__":
    run_stage(main)
