"""A tiny β sweep through DVC's queue, two workers, gathered by `vaebench study`; runs after the other e2e modules."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from e2e import EPOCHS, commit, mlflow_client, run, tool_env

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("project")]  # one worker, in file order


def test_sweep_through_the_queue_in_parallel_and_study(project: Path, first_repro: str) -> None:
    commit(project, "before sweep")
    run(project, "dvc", "exp", "run", "--queue", "-S", "loss.kl_weight=0.5,2", "-S", "compare.seeds=[7]")
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

    output = run(project, "vaebench", "study")
    assert "skipped broken: the experiment is failed (see `dvc queue logs broken`)" in output, output
    points = pd.read_csv(project / "reports" / "study" / "points.csv")
    swept = points[points["kl_weight"] != 1.0]  # the baseline is the β = 1 point
    expected = [("cnn", 0.5), ("cnn", 2.0), ("mlp", 0.5), ("mlp", 2.0)]
    assert sorted(zip(swept["arch"], swept["kl_weight"], strict=True)) == expected
    written = {p.name for p in (project / "reports" / "study").iterdir()}
    assert {"rate_distortion.png", "vs_kl_weight.png", "study.md", "points.csv"} <= written
    assert "- broken: the experiment is failed" in (project / "reports" / "study" / "study.md").read_text()

    # Both parallel experiments logged complete runs to the repository's one SQLite store.
    client = mlflow_client(project)
    experiment = client.get_experiment_by_name("vaebench")
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.seed = '7'")
    assert sorted(r.info.run_name for r in runs) == ["cnn-7", "cnn-7", "mlp-7", "mlp-7"]
    for r in runs:
        assert r.info.status == "FINISHED" and "test_nll_iwae" in r.data.metrics and r.data.tags["dvc_exp_name"]
        assert len(client.get_metric_history(r.info.run_id, "val_loss")) == EPOCHS
    assert client.search_runs([experiment.experiment_id], filter_string="tags.role = 'study'")


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
