"""The real pipeline, end to end: `dvc repro` in a fresh git repository on tiny params.

One project is built per session (conftest.py) and the steps run in order: full run, no-op rerun,
a CNN-only param change, an experiment. Each step asserts on what DVC and MLflow actually did.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from e2e import ARCHS, EPOCHS, commit, mlflow_client, run, runs_by_name, set_params, stages_run

from vaebench import load_model
from vaebench.report import FIGURES

pytestmark = pytest.mark.e2e


def test_repro_runs_every_stage(first_repro: str) -> None:
    assert stages_run(first_repro) == {
        "download", "normalize", "judge", "train@mlp", "train@cnn", "evaluate", "render", "report"
    }  # fmt: skip


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
        assert set(FIGURES) <= figures[arch].keys()
        assert figures[arch]["nll_iwae"] > 0 and 0 <= figures[arch]["linear_probe_accuracy"] <= 1
    assert figures["reference"]["fid_test_halves"] < figures["reference"]["fid_test_vs_noise"] / 10
    report = (project / "reports" / "compare.md").read_text()
    assert "| neg_elbo" in report and "| fid" in report and "![cnn samples](figures/cnn_samples.png)" in report
    kinds = ("reconstructions", "samples", "progress", "latent_map", "interpolations")
    assert {p.name for p in (project / "reports" / "figures").iterdir()} == {
        "loss_curves.png",
        *(f"{arch}_{kind}.png" for arch in ARCHS for kind in kinds),
    }
    assert json.loads((project / "metrics" / "judge.json").read_text())["test_accuracy"] >= 0.99  # real MNIST
    data = json.loads((project / "metrics" / "data.json").read_text())
    assert data["counts"]["train"]["total"] == 600 and data["counts"]["test"]["total"] == 10_000
    assert not list(project.rglob("*.tmp")), "a temporary output was left behind"


def test_mlflow_holds_both_finished_runs(project: Path, first_repro: str) -> None:
    client = mlflow_client(project)
    runs = runs_by_name(project)
    assert set(runs) == set(ARCHS)
    for arch, mlflow_run in runs.items():
        assert mlflow_run.info.status == "FINISHED"
        assert mlflow_run.data.tags["arch"] == arch
        assert len(mlflow_run.data.tags["mlflow.source.git.commit"]) == 40
        assert mlflow_run.data.params["train.epochs"] == str(EPOCHS)
        history = client.get_metric_history(mlflow_run.info.run_id, "val_loss")
        assert sorted(m.step for m in history) == list(range(1, EPOCHS + 1))
        assert {"test_nll_iwae", "test_fid", "test_linear_probe_accuracy", "reference_fid_test_halves"} <= (
            mlflow_run.data.metrics.keys()
        )
        images = [a.path for a in client.list_artifacts(mlflow_run.info.run_id, "images")]
        assert any("reconstructions" in path for path in images), images
        figures = {Path(a.path).name for a in client.list_artifacts(mlflow_run.info.run_id, "figures")}
        assert {"loss_curves.png", f"{arch}_samples.png", f"{arch}_latent_map.png"} <= figures
        assert {"compare.md", "compare.json"} <= {a.path for a in client.list_artifacts(mlflow_run.info.run_id)}
        models = client.search_logged_models(
            [mlflow_run.info.experiment_id], filter_string=f"source_run_id = '{mlflow_run.info.run_id}'"
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
    assert stages_run(output) == {"train@cnn", "evaluate", "render", "report"}, output
    assert json.loads((project / "models" / "mlp" / "run.json").read_text())["run_id"] == mlp_run
    assert json.loads((project / "metrics" / "eval.json").read_text())["cnn"]["latent"] == 4


def test_experiment_run_and_show(project: Path, first_repro: str) -> None:
    commit(project, "baseline")
    output = run(project, "dvc", "exp", "run", "-n", "k3", "-S", "evaluate.iwae_k=3")
    assert stages_run(output) == {"evaluate", "report"}, output
    shown = json.loads(run(project, "dvc", "exp", "show", "--json"))
    experiments = [exp for baseline in shown for exp in baseline.get("experiments") or []]
    (k3,) = [exp for exp in experiments if exp["name"] == "k3"]
    revision = k3["revs"][0]["data"]
    assert revision["params"]["params.yaml"]["data"]["evaluate"]["iwae_k"] == 3
    assert "nll_iwae" in revision["metrics"]["metrics/eval.json"]["data"]["cnn"]
