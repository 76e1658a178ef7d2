"""Stage train@<arch>-<seed>: fit one architecture with one seed as one MLflow run; write
models/vae/<arch>-<seed>/, metrics/train/<arch>-<seed>.csv and metrics/val/<arch>-<seed>.json."""

import _venv  # noqa: F401  # isort: skip  (first: one line if vaebench is not installed)

from vaebench.core import paths
from vaebench.core.matrix import arch_and_seed
from vaebench.core.params import load_params
from vaebench.core.runtime import configure
from vaebench.core.stage import run_stage
from vaebench.tracking.runs import close_stale_runs, use_experiment
from vaebench.training.run import train_and_save


def main() -> None:
    arch, seed = arch_and_seed(__doc__)
    params = load_params()
    device = configure(params.runtime, seed)
    experiment_id = use_experiment(params.mlflow.experiment)  # an unreachable server fails here, in seconds
    close_stale_runs(experiment_id, f"train@{paths.run_name(arch, seed)}")
    train_and_save(params, arch, seed, device)


if __name__ == "__main__":
    run_stage(main)
