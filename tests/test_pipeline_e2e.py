"""The real pipeline, end to end: `dvc repro` in a fresh git repository on tiny params, 2 seeds.

One project is built per session (conftest.py) and the steps run in order: full run, no-op rerun,
a code edit; each step asserts on what DVC and MLflow actually did. A CNN-only param change, as
queued experiments, is test_study_e2e.py's sweep.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from e2e import ARCHS, EPOCHS, RUNS, SEEDS, all_stages, mlflow_client, run, runs_by_name, stages_run
from scipy import stats

from vaebench.comparison.aggregate import METRICS
from vaebench.models import load_model

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("project")]  # one worker, in file order


def test_repro_runs_every_stage(project: Path, first_repro: str) -> None:
    assert {f"{stage}@{name}" for stage in ("train", "evaluate") for name in RUNS} <= all_stages(project)
    assert stages_run(first_repro) == all_stages(project)


def test_outputs(project: Path, first_repro: str) -> None:
    for name in RUNS:
        model_dir = project / "models" / "vae" / name
        assert {p.name for p in model_dir.iterdir()} == {"config.json", "weights.pt", "run.json", "snapshots.pt"}
        assert (model_dir / "snapshots.pt").stat().st_size < 100_000  # 5 images and their reconstructions, no more
        curve = (project / "metrics" / "train" / f"{name}.csv").read_text().splitlines()
        assert curve[0].startswith("epoch,train_loss,train_recon,train_kl,val_loss,val_recon,val_kl")
        assert len(curve) == 1 + EPOCHS
        figures = json.loads((project / "metrics" / "eval" / f"{name}.json").read_text())
        assert set(METRICS) <= figures.keys() and figures["nll_iwae"] > 0
    judge = json.loads((project / "metrics" / "judge.json").read_text())
    assert judge["test_accuracy"] >= 0.98  # real MNIST, after one epoch (the default's three: test_judge.py)
    assert judge["fid_test_halves"] < judge["fid_test_vs_noise"] / 10
    kinds = ("reconstructions", "samples", "progress", "latent_map", "interpolations")
    assert {p.name for p in (project / "reports" / "figures").iterdir()} == {
        "loss_curves.png",
        *(f"{arch}_{kind}.png" for arch in ARCHS for kind in kinds),
    }
    data = json.loads((project / "reports" / "data.json").read_text())
    assert data["counts"]["train"]["total"] == 600 and data["counts"]["test"]["total"] == 10_000
    assert not list(project.rglob("*.tmp")), "a temporary output was left behind"


def test_aggregate_is_the_mean_and_interval_of_the_seeds(project: Path, first_repro: str) -> None:
    aggregate = json.loads((project / "metrics" / "compare.json").read_text())
    report = (project / "reports" / "compare.md").read_text()
    assert aggregate["seeds"] == len(SEEDS) and "mlp: 2, cnn: 2" in report
    per_seed = {n: json.loads((project / "metrics" / "eval" / f"{n}.json").read_text()) for n in RUNS}
    for figure in ("nll_iwae", "fid", "linear_probe_accuracy"):
        values = {arch: [per_seed[f"{arch}-{s}"][figure] for s in SEEDS] for arch in ARCHS}
        for arch, series in values.items():
            mean, sem = sum(series) / len(series), stats.sem(series)
            half = stats.t.ppf(0.975, len(series) - 1) * sem
            assert aggregate[arch][figure]["mean"] == pytest.approx(mean, rel=1e-4)
            assert aggregate[arch][figure]["ci95"] == pytest.approx(half, rel=1e-3, abs=1e-6)
        p = stats.ttest_ind(values["cnn"], values["mlp"], equal_var=False).pvalue
        verdict = aggregate["verdicts"]["mlp_vs_cnn"][figure]
        assert (verdict == "no clear difference") == (p >= 0.05 or p != p), (figure, p, verdict)
        assert f"| {figure} " in report and verdict in report


def test_one_mlflow_run_per_arch_and_seed(project: Path, first_repro: str) -> None:
    client = mlflow_client(project)
    runs = runs_by_name(project)
    assert set(RUNS) | {"comparison"} == set(runs)
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    (processed,) = [o["md5"] for o in lock["stages"]["normalize"]["outs"] if o["path"] == "data/processed"]
    for name in RUNS:
        mlflow_run = runs[name]
        arch, seed = name.split("-")
        assert mlflow_run.info.status == "FINISHED"
        assert (mlflow_run.data.tags["arch"], mlflow_run.data.tags["seed"]) == (arch, seed)
        assert mlflow_run.data.params["seed"] == seed and mlflow_run.data.params["train.epochs"] == str(EPOCHS)
        assert len(mlflow_run.data.tags["mlflow.source.git.commit"]) == 40
        history = client.get_metric_history(mlflow_run.info.run_id, "val_loss")
        assert sorted(m.step for m in history) == list(range(1, EPOCHS + 1))
        assert {"test_nll_iwae", "test_fid", "test_linear_probe_accuracy"} <= mlflow_run.data.metrics.keys()
        (dataset,) = mlflow_run.inputs.dataset_inputs
        assert dataset.dataset.digest == processed  # DVC's hash of the data the model saw
        # Duration is the training's: evaluation added its figures without reopening the run.
        evaluated = (project / "metrics" / "eval" / f"{name}.json").stat().st_mtime * 1000
        assert mlflow_run.info.end_time < evaluated
        images = [a.path for a in client.list_artifacts(mlflow_run.info.run_id, "images")]
        assert any("reconstructions" in path for path in images), images
        models = client.search_logged_models(
            [mlflow_run.info.experiment_id], filter_string=f"source_run_id = '{mlflow_run.info.run_id}'"
        )
        assert len(models) == 1
    comparison = runs["comparison"]
    artifacts = {a.path for a in client.list_artifacts(comparison.info.run_id)}
    assert {"compare.md", "compare.csv", "compare.json", "per_seed.json", "summary.json", "figures"} <= artifacts
    assert set(comparison.data.params["runs"].split(",")) == set(RUNS)


def test_load_model_and_generate(project: Path, first_repro: str, tmp_path: Path) -> None:
    import torch

    model = load_model(project / "models" / "vae" / "cnn-0")
    mu, logvar = model.encode(torch.rand(3, 1, 28, 28))
    assert mu.shape == logvar.shape == (3, 10)
    out = tmp_path / "samples.png"
    run(project, "vaebench", "generate", "--model", "models/vae/cnn-1", "--n", "16", "--std", "2", "--out", str(out))
    assert out.stat().st_size > 100


def test_second_repro_runs_nothing(project: Path, first_repro: str) -> None:
    output = run(project, "dvc", "repro")
    assert stages_run(output) == set(), output


def test_a_code_edit_reruns_exactly_the_stages_that_run_it(project: Path, first_repro: str) -> None:
    """Editing how training is seeded, or how pixels are binarized, makes DVC rerun every stage that
    runs that code (and no other): `dvc status` lists the stages whose own deps changed."""
    every_run = {f"{stage}@{name}" for stage in ("train", "evaluate") for name in RUNS}
    cases = {
        "src/vaebench/core/runtime.py": {"judge", "render"} | every_run,  # the seeding
        "src/vaebench/data/splits.py": {"download", "normalize", "judge", "render"} | every_run,  # the binarization
    }
    for path, expected in cases.items():
        original = (project / path).read_text()
        (project / path).write_text(original + "\n# an edit\n")
        try:
            changed = set(json.loads(run(project, "dvc", "status", "--json")))
        finally:
            (project / path).write_text(original)
        assert changed == expected, (path, sorted(changed ^ expected))
    assert json.loads(run(project, "dvc", "status", "--json")) == {}
