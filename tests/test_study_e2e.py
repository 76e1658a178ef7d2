"""A tiny sweep of the CNN's latent size through DVC's queue, two workers, gathered by `vaebench study`;
runs after the other e2e modules."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from e2e import EPOCHS, commit, mlflow_client, run, stages_run, tool_env

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("project")]  # one worker, in file order


def test_a_cnn_sweep_through_the_queue_reruns_its_branch_and_is_studied(project: Path, first_repro: str) -> None:
    """Two CNN latent sizes (one seed) as DVC's Hydra sweep, run by DVC's queue with two workers at once: each
    experiment reruns the CNN's branch and nothing else, both log complete runs to the repository's
    one SQLite store, `dvc exp show` lists their params and summary, and `vaebench study` gathers
    them (a failed experiment is skipped with the reason)."""
    commit(project, "before sweep")
    run(project, "dvc", "exp", "run", "--queue", "-S", "model.cnn.latent=4,6", "-S", "compare.seeds=[0]")
    run(project, "dvc", "exp", "run", "--queue", "-n", "broken", "-S", "train.epochs=0")  # fails in validate
    # Not run(): the workers DVC spawns inherit its stdout, and one of two can hang in celery's
    # shutdown after the queue empties, which would hold the pipe (and this test) open.
    subprocess.run(["dvc", "queue", "start", "-j", "2"], cwd=project, env=tool_env(), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 900
        while re.search(r"\b(Queued|Running)\b", status := run(project, "dvc", "queue", "status")):
            assert time.monotonic() < deadline, status
            time.sleep(3)
    finally:
        stop_workers(project)
    assert status.count("Success") >= 2 and "Failed" in status, status

    swept = {e["name"]: e["revs"][0]["data"] for e in experiments(project) if e["name"] != "broken"}
    assert sorted(d["params"]["params.yaml"]["data"]["model"]["cnn"]["latent"] for d in swept.values()) == [4, 6]
    cnn_branch = {"train@cnn-0", "evaluate@cnn-0"}  # one seed is enough to see which branch reruns
    for name, revision in swept.items():
        assert stages_run(run(project, "dvc", "queue", "logs", name)) == {"validate", "render", "report"} | cnn_branch
        metrics = revision["metrics"]
        # the aggregate, and each training's validation figures (what `vaebench tune` reads); the test
        # set's per-seed detail and the judge's reference stay out of the table
        assert set(metrics) == {"metrics/compare.json", "metrics/val/mlp-0.json", "metrics/val/cnn-0.json"}
        assert list(metrics["metrics/compare.json"]["data"])[:3] == ["seeds", "judge_accuracy", "verdicts"]
        latent = revision["params"]["params.yaml"]["data"]["model"]["cnn"]["latent"]
        assert metrics["metrics/compare.json"]["data"]["cnn"]["latent"]["mean"] == latent

    output = run(project, "vaebench", "study")
    assert "skipped broken: the experiment is failed (see `dvc queue logs broken`)" in output, output
    points = pd.read_csv(project / "reports" / "study" / "points.csv")
    studied = points[points["experiment"].isin(list(swept))]
    assert sorted(zip(studied["arch"], studied["latent"], strict=True)) == [
        ("cnn", 4),
        ("cnn", 6),
        ("mlp", 20),
        ("mlp", 20),
    ]
    written = {p.name for p in (project / "reports" / "study").iterdir()}
    assert {"rate_distortion.png", "vs_latent.png", "study.md", "points.csv"} <= written
    assert "- broken: the experiment is failed" in (project / "reports" / "study" / "study.md").read_text()

    client = mlflow_client(project)
    experiment = client.get_experiment_by_name("vaebench")
    for name in swept:
        runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.dvc_exp_name = '{name}'")
        assert sorted(r.info.run_name for r in runs) == ["cnn-0", "comparison"]
        for r in (r for r in runs if r.info.run_name != "comparison"):
            assert r.info.status == "FINISHED" and "test_nll_iwae" in r.data.metrics
            assert len(client.get_metric_history(r.info.run_id, "val_loss")) == EPOCHS
    assert client.search_runs([experiment.experiment_id], filter_string="tags.role = 'study'")


def experiments(project: Path) -> list[dict]:
    """The entries `dvc exp show --json` lists under the project's HEAD."""
    shown = json.loads(run(project, "dvc", "exp", "show", "--json"))
    return [e for baseline in shown for e in baseline.get("experiments") or []]


def stop_workers(project: Path) -> None:
    """SIGTERM whatever queue worker is still alive once the queue is empty (its pid files)."""
    for pid_file in (project / ".dvc" / "tmp" / "exps" / "celery").glob("*.pid"):
        with contextlib.suppress(ValueError, ProcessLookupError):
            os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)


def test_a_study_with_fewer_experiments_does_not_replace_the_one_there(project: Path, first_repro: str) -> None:
    """`vaebench study` on a commit without the sweep (read out of order, say) would rewrite the
    study from one experiment: it refuses in one line and writes nothing, unless asked with --force."""
    study = project / "reports" / "study"
    before = {p.name: p.read_bytes() for p in study.iterdir()}
    assert len(set(pd.read_csv(study / "points.csv")["experiment"])) >= 3  # the sweep's study, above
    client = mlflow_client(project)
    experiment = client.get_experiment_by_name("vaebench")
    studies = len(client.search_runs([experiment.experiment_id], filter_string="tags.role = 'study'"))
    commit(project, "past the sweep")  # its experiments stay listed under the commit they were queued on
    result = subprocess.run(["vaebench", "study"], cwd=project, env=tool_env(), capture_output=True, text=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert re.search(
        r"reports/study/ holds a study of \d+ experiments and this one has 1 .*not replaced", result.stderr
    )
    assert {p.name: p.read_bytes() for p in study.iterdir()} == before
    assert len(client.search_runs([experiment.experiment_id], filter_string="tags.role = 'study'")) == studies
    run(project, "vaebench", "study", "--force", "--no-mlflow")
    assert len(pd.read_csv(study / "points.csv")) == 2  # asked for: the baseline's two architectures
