"""Stage evaluate@<arch>-<seed>: every test-set figure of one trained model -> metrics/eval/<arch>-<seed>.json.

Likelihood (ELBO, IWAE bound), reconstruction, sample quality judged by the MNIST judge (Fréchet
distance, class spread, Inception Score, accuracy on reconstructions) and representation (active
units, linear probe). The figures are also added to the model's MLflow training run.
"""

import _venv  # noqa: F401  # isort: skip  (first: one line if vaebench is not installed)


import torch

from vaebench import paths
from vaebench.evaluate import evaluate_model, linear_probe_accuracy
from vaebench.io import read_json, write_json
from vaebench.judge import accuracy, judge_outputs, load_judge
from vaebench.models import count_parameters, load_model
from vaebench.models.base import VAE
from vaebench.params import Params, load_params
from vaebench.quality import class_figures, frechet_distance
from vaebench.runtime import configure
from vaebench.splits import binarized, load_split
from vaebench.stage import arch_and_seed, run_stage
from vaebench.tracking import add_to_run, use_experiment


def test_split(params: Params, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = load_split(paths.PROCESSED, "test", device)
    n = params.evaluate.test_subset or len(images)
    return images[:n], labels[:n]


def sample_and_reconstruction_figures(
    model: VAE, judge: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, params: Params
) -> dict[str, float]:
    """What the judge says of prior samples (vs the test set) and of reconstructions."""
    test_features, _ = judge_outputs(judge, images)
    samples = model.sample(params.evaluate.n_samples, seed=params.evaluate.seed)
    sample_features, sample_probs = judge_outputs(judge, samples)
    return {
        "fid": frechet_distance(sample_features, test_features),
        **{f"sample_{k}": v for k, v in class_figures(sample_probs).items()},
        "recon_judge_accuracy": accuracy(judge_outputs(judge, model.reconstruct(images).to(images.device))[1], labels),
    }


def main() -> None:
    arch, seed = arch_and_seed(__doc__)
    params = load_params()
    device = configure(params.runtime, params.evaluate.seed)
    use_experiment(params.mlflow.experiment)
    model_dir = paths.model_dir(arch, seed)
    model, run = load_model(model_dir, device), read_json(model_dir / "run.json")
    judge = load_judge(paths.JUDGE, device)
    train_images, train_labels = load_split(paths.PROCESSED, "train", device)
    images, labels = test_split(params, device)
    # The binarized protocol scores likelihoods on one fixed, seeded binarization of the test set.
    likelihood_images = binarized(images, params.data.seed) if params.data.binarize else images

    e = params.evaluate
    figures = evaluate_model(model, likelihood_images, params.loss.recon, e.iwae_k, e.batch_size)
    figures |= sample_and_reconstruction_figures(model, judge, images, labels, params)
    figures["linear_probe_accuracy"] = linear_probe_accuracy(
        model.encode_means(train_images), train_labels, model.encode_means(images), labels
    )
    figures |= {"latent": model.latent, "n_params": count_parameters(model), "train_seconds": run["train_seconds"]}
    figures |= {"iwae_k": e.iwae_k, "test_images": len(images), "binarized": int(params.data.binarize)}
    write_json(paths.eval_figures(arch, seed), {k: round(v, 6) for k, v in figures.items()})
    add_to_run(run["run_id"], metrics={f"test_{name}": value for name, value in figures.items()})
    print(f"{paths.run_name(arch, seed)}: " + ", ".join(f"{k} {v:.4g}" for k, v in figures.items()))


if __name__ == "__main__":
    run_stage(main)
