"""One evaluation of the pipeline (stage evaluate@<arch>-<seed>): every test-set metric of one trained model.

Likelihood (ELBO, IWAE bound), reconstruction, sample quality judged by the MNIST judge (Fréchet
distance, class spread, Inception Score, accuracy on reconstructions) and representation (active
units, linear probe). The metrics are also added to the model's MLflow training run.
"""

from __future__ import annotations

import torch

from vaebench.core import paths
from vaebench.core.io import read_json, write_json
from vaebench.core.params import Params
from vaebench.data.splits import binarized, load_split
from vaebench.evaluation.evaluate import evaluate_model, linear_probe_accuracy
from vaebench.evaluation.judge import accuracy, judge_outputs, load_judge
from vaebench.evaluation.quality import class_metrics, frechet_distance
from vaebench.models import count_parameters, load_model
from vaebench.models.base import VAE
from vaebench.speed import forms
from vaebench.tracking.runs import add_to_run


def test_split(params: Params, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = load_split(paths.PROCESSED, "test", device)
    n = params.evaluate.test_subset or len(images)
    return images[:n], labels[:n]


def sample_and_reconstruction_metrics(
    model: VAE, judge: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, params: Params
) -> dict[str, float]:
    """What the judge says of prior samples (vs the test set) and of reconstructions."""
    test_features, _ = judge_outputs(judge, images)
    samples = model.sample(params.evaluate.n_samples, seed=params.evaluate.seed)
    sample_features, sample_probs = judge_outputs(judge, samples)
    return {
        "fid": frechet_distance(sample_features, test_features),
        **{f"sample_{k}": v for k, v in class_metrics(sample_probs).items()},
        "recon_judge_accuracy": accuracy(judge_outputs(judge, model.reconstruct(images).to(images.device))[1], labels),
    }


def model_metrics(params: Params, arch: str, seed: int, device: torch.device) -> dict[str, float]:
    """Every metric of the trained model models/vae/<arch>-<seed>, and the settings they were measured with."""
    model_dir = paths.model_dir(arch, seed)
    model, run = load_model(model_dir, device), read_json(model_dir / "run.json")
    judge = load_judge(paths.JUDGE, device)
    train_images, train_labels = load_split(paths.PROCESSED, "train", device)
    images, labels = test_split(params, device)
    # The binarized protocol scores likelihoods on one fixed, seeded binarization of the test set.
    likelihood_images = binarized(images, params.data.seed) if params.data.binarize else images
    e = params.evaluate
    if params.runtime.fast:
        model = forms.accelerate(model)
    softplus = forms.softplus_of(params.runtime.fast)
    metrics = evaluate_model(model, likelihood_images, params.loss.recon, e.iwae_k, e.batch_size, softplus)
    metrics |= sample_and_reconstruction_metrics(model, judge, images, labels, params)
    metrics["linear_probe_accuracy"] = linear_probe_accuracy(
        model.encode_means(train_images), train_labels, model.encode_means(images), labels
    )
    metrics |= {"latent": model.latent, "n_params": count_parameters(model), "train_seconds": run["train_seconds"]}
    return metrics | {"iwae_k": e.iwae_k, "test_images": len(images), "binarized": int(params.data.binarize)}


def evaluate_and_save(params: Params, arch: str, seed: int, device: torch.device) -> dict[str, float]:
    """metrics/eval/<arch>-<seed>.json, and the same metrics (prefixed `test_`) on the training run."""
    metrics = {k: round(v, 6) for k, v in model_metrics(params, arch, seed, device).items()}
    write_json(paths.eval_metrics(arch, seed), metrics)
    run_id = read_json(paths.model_dir(arch, seed) / "run.json")["run_id"]
    add_to_run(run_id, metrics={f"test_{name}": value for name, value in metrics.items()})
    return metrics
