"""The real pipeline, end to end: `dvc repro` in a fresh git repository on tiny params.

One project is built per module and the steps run in order: full run, no-op rerun, a CNN-only
param change, an experiment. Each step asserts on what DVC and MLflow actually did.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from vaebench import load_model

REPO = Path(__file__).resolve().parents[1]
PROJECT_FILES = ["dvc.yaml", "params.yaml", ".dvcignore", ".gitignore", "stages", "src", ".dvc/config"]
EPOCHS = 2
TINY = {
    "data": {"subset": 600, "val_size": 500},
    "train": {"epochs": EPOCHS, "batch_size": 64},
    "evaluate": {"iwae_k": 2, "test_subset": 200},
}
ARCHS = ("mlp", "cnn")
pytestmark = pytest.mark.e2e


def set_params(project: Path, overrides: dict) -> None:
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for section, values in overrides.items():
        for key, value in values.items():
            node = params[section]
            *parents, leaf = key.split(".")
            for parent in parents:
                node = node[parent]
            node[leaf] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def run(project: Path, *command: str) -> str:
    """Run a command in the project with this venv's tools first on PATH; fail with its output."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    result = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{output}"
    return output


def stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, mnist_mirror: Path) -> Path:
    project = tmp_path_factory.mktemp("vaebench")
    for name in PROJECT_FILES:
        source, target = REPO / name, project / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(source, target)
    set_params(project, TINY)
    os.environ["MNIST_MIRROR"] = str(mnist_mirror)
    run(project, "git", "init", "-q", "-b", "main")
    run(project, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "empty")
    run(project, "git", "add", "-A")
    run(project, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "project")
    return project


@pytest.fixture(scope="module")
def first_repro(project: Path) -> str:
    return run(project, "dvc", "repro")


def mlflow_client(project: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")


def runs_by_name(project: Path) -> dict:
    client = mlflow_client(project)
    experiment = client.get_experiment_by_name("vaebench")
    runs = client.search_runs([experiment.experiment_id])
    return {run.info.run_name: run for run in runs}


def test_repro_runs_every_stage(first_repro: str) -> None:
    assert stages_run(first_repro) == {"download", "normalize", "train@mlp", "train@cnn", "evaluate", "render"}


def test_outputs(project: Path, first_repro: str) -> None:
    for arch in ARCHS:
        assert {p.name for p in (project / "models" / arch).iterdir()} == {
            "config.json",
            "weights.pt",
            "run.json",
            "snapshots.pt",
        }
        curve = (project / "metrics" / "train" / f"{arch}.csv").read_text().splitlines()
        assert curve[0].startswith("epoch,train_loss,train_recon,train_kl,val_loss,val_recon,val_kl")
        assert len(curve) == 1 + EPOCHS
        assert [p.name for p in sorted((project / "reports" / "snapshots" / arch).iterdir())] == [
            "epoch_001.png",
            "epoch_002.png",
        ]
    figures = json.loads((project / "metrics" / "eval.json").read_text())
    for arch in ARCHS:
        assert {"neg_elbo", "nll_iwae", "mse_per_pixel", "active_units", "n_params"} <= figures[arch].keys()
        assert figures[arch]["nll_iwae"] > 0
    assert "| neg_elbo" in (project / "reports" / "compare.md").read_text()
    assert {p.name for p in (project / "reports" / "figures").iterdir()} == {
        "loss_curves.png",
        *(f"{arch}_{kind}.png" for arch in ARCHS for kind in ("reconstructions", "samples", "progress")),
    }
    data = json.loads((project / "metrics" / "data.json").read_text())
    assert data["counts"]["train"]["total"] == 600 and data["counts"]["test"]["total"] == 10_000
    assert not list(project.rglob("*.tmp")), "a temporary output was left behind"


def test_mlflow_holds_both_finished_runs(project: Path, first_repro: str) -> None:
    client = mlflow_client(project)
    runs = runs_by_name(project)
    assert set(runs) == set(ARCHS)
    for arch, run in runs.items():
        assert run.info.status == "FINISHED"
        assert run.data.tags["arch"] == arch
        assert len(run.data.tags["mlflow.source.git.commit"]) == 40
        assert run.data.params["train.epochs"] == str(EPOCHS)
        history = client.get_metric_history(run.info.run_id, "val_loss")
        assert sorted(m.step for m in history) == list(range(1, EPOCHS + 1))
        assert "test_nll_iwae" in run.data.metrics and "test_active_units" in run.data.metrics
        images = [a.path for a in client.list_artifacts(run.info.run_id, "images")]
        assert any("reconstructions" in path for path in images), images
        figures = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "figures")}
        assert {"loss_curves.png", f"{arch}_samples.png", f"{arch}_progress.png"} <= figures
        models = client.search_logged_models(
            [run.info.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'"
        )
        assert len(models) == 1


def test_load_model_and_generate(project: Path, first_repro: str, tmp_path: Path) -> None:
    import torch

    model = load_model(project / "models" / "cnn")
    mu, logvar = model.encode(torch.rand(3, 1, 28, 28))
    assert mu.shape == logvar.shape == (3, 10)
    out = tmp_path / "samples.png"
    run(project, "vaebench", "generate", "--arch", "cnn", "--n", "16", "--mean", "0", "--std", "2", "--out", str(out))
    assert out.stat().st_size > 100


def test_second_repro_runs_nothing(project: Path, first_repro: str) -> None:
    output = run(project, "dvc", "repro")
    assert stages_run(output) == set(), output


def test_cnn_param_reruns_only_the_cnn_branch(project: Path, first_repro: str) -> None:
    mlp_run = json.loads((project / "models" / "mlp" / "run.json").read_text())["run_id"]
    set_params(project, {"model": {"cnn.latent": 4}})
    output = run(project, "dvc", "repro")
    assert stages_run(output) == {"train@cnn", "evaluate", "render"}, output
    assert json.loads((project / "models" / "mlp" / "run.json").read_text())["run_id"] == mlp_run
    assert json.loads((project / "metrics" / "eval.json").read_text())["cnn"]["latent"] == 4


def test_experiment_run_and_show(project: Path, first_repro: str) -> None:
    run(project, "git", "add", "-A")
    run(project, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "baseline")
    output = run(project, "dvc", "exp", "run", "-n", "k3", "-S", "evaluate.iwae_k=3")
    assert stages_run(output) == {"evaluate"}, output
    shown = json.loads(run(project, "dvc", "exp", "show", "--json"))
    experiments = [exp for baseline in shown for exp in baseline.get("experiments") or []]
    (k3,) = [exp for exp in experiments if exp["name"] == "k3"]
    revision = k3["revs"][0]["data"]
    assert revision["params"]["params.yaml"]["data"]["evaluate"]["iwae_k"] == 3
    assert "nll_iwae" in revision["metrics"]["metrics/eval.json"]["data"]["cnn"]
