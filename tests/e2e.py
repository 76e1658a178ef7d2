"""Helpers of the end-to-end tests: a copy of this project in a fresh git repository, and its tools."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient

from vaebench.core.params import with_values

REPO = Path(__file__).resolve().parents[1]
PROJECT_FILES = ["dvc.yaml", "params.yaml", ".dvcignore", ".gitignore", "stages", "src", ".dvc/config", ".dvc/plots"]
EPOCHS = 2
SEEDS = (0, 1)
TINY = {
    "compare": {"seeds": list(SEEDS)},
    "data": {"subset": 600, "val_size": 500},
    # lr 0.01: two epochs of 600 images beat the constant model (training/fit.check_learnt) at every
    # seed; at 0.001 the CNN's seed 1 ended at 566 nats, above its 543
    "train": {"epochs": EPOCHS, "batch_size": 64, "lr": 0.01},
    "evaluate": {"iwae_k": 2, "test_subset": 500, "n_samples": 500},
    "judge": {"epochs": 1},  # it trains on all of data/raw: 3 epochs were half of a tiny pipeline's time
}
ARCHS = ("mlp", "cnn")
RUNS = tuple(f"{arch}-{seed}" for arch in ARCHS for seed in SEEDS)
GIT_USER = ("-c", "user.name=vaebench tests", "-c", "user.email=tests@vaebench.invalid")


def tool_env(**extra: str) -> dict[str, str]:
    """The environment with this venv's tools first on PATH and no tracking server unless given."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env | extra


def run(project: Path, *command: str, **env: str) -> str:
    """Run a command in the project; fail the test with its output if it fails."""
    result = subprocess.run(command, cwd=project, env=tool_env(**env), capture_output=True, text=True)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{output}"
    return output


def commit(project: Path, message: str) -> None:
    run(project, "git", "add", "-A")
    run(project, "git", *GIT_USER, "commit", "-q", "--allow-empty", "-m", message)


def set_params(project: Path, overrides: dict) -> None:
    """Set {section: {dotted key: value}} in the project's params.yaml."""
    path = project / "params.yaml"
    dotted = {f"{section}.{key}": value for section, values in overrides.items() for key, value in values.items()}
    path.write_text(yaml.safe_dump(with_values(yaml.safe_load(path.read_text()), dotted), sort_keys=False))


def set_space(project: Path, space: dict) -> None:
    """params.yaml's `tune:` section (its keys are dotted param names, not a path into the file)."""
    path = project / "params.yaml"
    path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), "tune": space}, sort_keys=False))


def stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def all_stages(project: Path) -> set[str]:
    """Every stage of the project's dvc.yaml, matrix stages expanded (train@mlp-0, ...), as DVC lists them."""
    return set(run(project, "dvc", "stage", "list", "--name-only").split())


SAMPLE = 64 << 10  # bytes read from each end of a file


def output_hashes(project: Path) -> dict[str, str]:
    """What a failed stage must leave exactly as it was: for every pipeline output file, the md5 of its
    size and its first and last 64 KiB (whole for small files). Cheap where reading all 140 MB of a tiny
    project around every failure case cost minutes; a truncated, rewritten or retrained file differs."""
    import hashlib

    fingerprints = {}
    for folder in ("data", "models", "metrics", "reports"):
        for path in sorted(p for p in (project / folder).rglob("*") if p.is_file()):
            size = path.stat().st_size
            digest = hashlib.md5(str(size).encode())
            with path.open("rb") as file:
                digest.update(file.read(SAMPLE))
                if size > 2 * SAMPLE:
                    file.seek(-SAMPLE, os.SEEK_END)
                digest.update(file.read(SAMPLE))
            fingerprints[str(path.relative_to(project))] = digest.hexdigest()
    return fingerprints


def make_project(root: Path, mirror: Path) -> Path:
    """This project's pipeline files in a fresh git repository, with tiny params."""
    for name in PROJECT_FILES:
        source, target = REPO / name, root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(source, target)
    set_params(root, TINY)
    os.environ["MNIST_MIRROR"] = str(mirror)
    run(root, "git", "init", "-q", "-b", "main")
    commit(root, "project")
    return root


def mlflow_client(project: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")


def runs_by_name(project: Path) -> dict:
    client = mlflow_client(project)
    experiment = client.get_experiment_by_name("vaebench")
    return {
        run.info.run_name: run for run in client.search_runs([experiment.experiment_id], order_by=["start_time ASC"])
    }
