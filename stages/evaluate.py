"""Stage evaluate@<arch>-<seed>: every test-set metric of one trained model -> metrics/eval/<arch>-<seed>.json,
also added to the model's MLflow training run."""

import _venv  # noqa: F401  # isort: skip  (first: one line if vaebench is not installed)

from vaebench.core import paths
from vaebench.core.matrix import arch_and_seed
from vaebench.core.params import load_params
from vaebench.core.runtime import configure
from vaebench.core.stage import run_stage
from vaebench.evaluation.run import evaluate_and_save
from vaebench.tracking.runs import use_experiment


def main() -> None:
    arch, seed = arch_and_seed(__doc__)
    params = load_params()
    device = configure(params.runtime, params.evaluate.seed)
    use_experiment(params.mlflow.experiment)
    metrics = evaluate_and_save(params, arch, seed, device)
    print(f"{paths.run_name(arch, seed)}: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))


if __name__ == "__main__":
    run_stage(main)
