"""MLflow runs end with an honest status and land in the repository's SQLite store."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from vaebench.tracking import provenance_tags, tracked_run, tracking_uri, use_experiment


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    use_experiment("tests")
    return tmp_path


def status_of(run_id: str) -> str:
    return mlflow.get_run(run_id).info.status


def test_store_and_artifacts_live_at_dvc_root(store: Path) -> None:
    assert tracking_uri() == f"sqlite:///{store / 'mlflow.db'}"
    experiment = mlflow.get_experiment_by_name("tests")
    assert experiment.artifact_location == (store / "mlartifacts").as_uri()
    with tracked_run(run_name="here") as run:
        pass
    assert run.info.experiment_id == experiment.experiment_id


def test_tracking_uri_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_uri() == "http://127.0.0.1:5000"


def test_finished_failed_and_killed(store: Path) -> None:
    with tracked_run(run_name="ok") as run:
        pass
    assert status_of(run.info.run_id) == "FINISHED"

    with pytest.raises(ValueError), tracked_run(run_name="broken") as run:
        raise ValueError("boom")
    assert status_of(run.info.run_id) == "FAILED"

    with pytest.raises(KeyboardInterrupt), tracked_run(run_name="interrupted") as run:
        raise KeyboardInterrupt
    assert status_of(run.info.run_id) == "KILLED"


def test_provenance_tags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DVC_EXP_NAME", "exp-1")
    tags = provenance_tags("cnn")
    assert tags["arch"] == "cnn" and tags["dvc_exp_name"] == "exp-1"
