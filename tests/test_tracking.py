"""MLflow runs end with an honest status and land in the repository's SQLite store."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from vaebench.core.errors import StageError
from vaebench.tracking.runs import (
    add_to_run,
    close_stale_runs,
    fail_unlanded,
    provenance_tags,
    tracked_run,
    use_experiment,
)
from vaebench.tracking.store import HEALTH_TIMEOUT_S, check_tracking_server, tracking_uri


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


STOPPED = """
import os, signal, mlflow
from vaebench.tracking.runs import tracked_run, use_experiment

use_experiment("tests")
end_run = mlflow.end_run
def end_run_under_a_second_signal(status):
    os.kill(os.getpid(), signal.SIGTERM)  # a second stop signal while the run closes
    end_run(status)
mlflow.end_run = end_run_under_a_second_signal
try:
    with tracked_run(run_name="stopped") as run:
        print(run.info.run_id)
        os.kill(os.getpid(), signal.SIGTERM)  # only a request: the block goes on to its next check
        mlflow.log_metric("written", 1.0)
        print("the write finished")
except BaseException as exc:
    print(type(exc).__name__)
"""


def test_a_stop_signal_is_an_event_the_run_acts_on_when_it_closes(store: Path) -> None:
    """SIGTERM inside a run sets a flag: the write after it completes, the run ends KILLED at its
    close, and a second signal during the close changes nothing."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"} | {"DVC_ROOT": str(store)}
    # the limit only ends a hang: with a study beside the suite this start (torch, MLflow, a new store) once took >120 s
    result = subprocess.run([sys.executable, "-c", STOPPED], env=env, capture_output=True, text=True, timeout=600)
    run_id, *said = result.stdout.split()
    assert said == ["the", "write", "finished", "Terminated"], result.stdout + result.stderr
    assert status_of(run_id) == "KILLED"
    assert MlflowClient().get_run(run_id).data.metrics["written"] == 1.0


def test_provenance_tags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DVC_EXP_NAME", "exp-1")
    monkeypatch.setenv("VAEBENCH_ATTEMPT", "worker-1:1a2b")
    tags = provenance_tags("train@cnn-1", arch="cnn", seed="1")
    assert tags["arch"] == "cnn" and tags["seed"] == "1" and tags["dvc_exp_name"] == "exp-1"
    assert tags["vaebench_attempt"] == "worker-1:1a2b"
    assert tags["vaebench.stage"] == "train@cnn-1" and tags["pid"] == str(os.getpid())


def test_a_run_whose_process_died_is_closed_by_the_next(store: Path) -> None:
    """SIGKILL leaves a run RUNNING; the next run of the same stage marks it FAILED with a note."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    client = MlflowClient()
    experiment_id = mlflow.get_experiment_by_name("tests").experiment_id
    tags = provenance_tags("train@mlp-0") | {"pid": str(dead.pid)}
    stale = client.create_run(experiment_id, tags=tags).info.run_id
    alive = client.create_run(experiment_id, tags=provenance_tags("train@mlp-0")).info.run_id  # this process
    other = client.create_run(experiment_id, tags=provenance_tags("train@cnn-0") | {"pid": str(dead.pid)}).info.run_id
    assert close_stale_runs(experiment_id, "train@mlp-0") == [stale]
    assert status_of(stale) == "FAILED" and "died" in client.get_run(stale).data.tags["vaebench.note"]
    assert status_of(alive) == status_of(other) == "RUNNING"


def test_runs_of_an_attempt_that_did_not_land_end_failed_with_the_reason(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = MlflowClient()
    experiment_id = mlflow.get_experiment_by_name("tests").experiment_id

    def logged(attempt: str, status: str) -> str:
        monkeypatch.setenv("VAEBENCH_ATTEMPT", attempt)
        run_id = client.create_run(experiment_id, tags=provenance_tags("train@mlp-0")).info.run_id
        if status != "RUNNING":
            client.set_terminated(run_id, status, end_time=1_000)
        return run_id

    refused, still_closing, landed = logged("w1-a", "FINISHED"), logged("w1-a", "RUNNING"), logged("w2-b", "FINISHED")
    assert fail_unlanded({"w1-a": "did not land: push refused"}) == [refused]
    assert status_of(refused) == "FAILED" and client.get_run(refused).data.tags["vaebench.note"] == (
        "did not land: push refused"
    )
    assert client.get_run(refused).info.end_time == 1_000  # when it ended, not when it was found out
    assert status_of(still_closing) == "RUNNING" and status_of(landed) == "FINISHED"


def test_metrics_added_later_keep_the_training_duration(store: Path, tmp_path: Path) -> None:
    with tracked_run(run_name="mlp-0") as run:
        pass
    ended = mlflow.get_run(run.info.run_id).info.end_time
    time.sleep(0.05)
    add_to_run(run.info.run_id, metrics={"test_nll_iwae": 100.0})
    after = mlflow.get_run(run.info.run_id)
    assert after.info.end_time == ended and after.info.status == "FINISHED"
    assert after.data.metrics["test_nll_iwae"] == 100.0


def test_a_servers_internal_errors_point_at_its_own_store(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.exceptions import MlflowException

    from vaebench.tracking.runs import store_errors

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    said = "API request to http://127.0.0.1:5000/api/2.0/mlflow/runs/create failed: too many 500 error responses"
    down = r"database or artifact store is down: `vaebench team status` says which"
    with pytest.raises(StageError, match=down), store_errors():
        raise MlflowException(said)


def test_unreachable_server_fails_in_seconds_naming_it() -> None:
    start = time.perf_counter()
    with pytest.raises(StageError, match=r"MLflow tracking server http://127\.0\.0\.1:9 does not answer"):
        check_tracking_server("http://127.0.0.1:9")
    assert time.perf_counter() - start < HEALTH_TIMEOUT_S + 5


def test_a_store_copied_with_its_checkout_is_refused(store: Path, tmp_path_factory: pytest.TempPathFactory,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """`cp -a repo copy`: the copy's runs would write artifacts into the original's mlartifacts/."""
    copy = tmp_path_factory.mktemp("copy") / "repo"
    subprocess.run(["cp", "-a", str(store), str(copy)], check=True)  # not in-process: see test_pipeline_ops_e2e
    monkeypatch.setenv("DVC_ROOT", str(copy))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # mlflow.set_tracking_uri exports it
    with pytest.raises(
        StageError, match=rf"keeps experiment 'tests'.s artifacts in {store.as_uri()}/mlartifacts, outside"
    ):
        use_experiment("tests")


def test_a_store_that_is_not_a_database_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    (tmp_path / "mlflow.db").write_bytes(b"not an SQLite file, " * 200)  # what a truncated download leaves
    with pytest.raises(StageError, match=r"the MLflow store .*mlflow\.db cannot be used .*move it aside"):
        use_experiment("tests")


@pytest.mark.skipif(os.geteuid() != 0, reason="bind-mounts a folder read-only, which needs root")
def test_a_read_only_store_is_one_line(store: Path, tmp_path_factory: pytest.TempPathFactory,
                                       monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Root writes through file modes, so the store is made read-only the way a file system is."""
    view = tmp_path_factory.mktemp("read-only")
    if subprocess.run(["mount", "--bind", str(store), str(view)], capture_output=True).returncode:
        pytest.skip("cannot bind-mount here")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True)
        monkeypatch.setenv("DVC_ROOT", str(view))
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
        with pytest.raises(StageError, match=r"the MLflow store .*mlflow\.db cannot be used .*writable"):
            use_experiment("tests")
    finally:
        subprocess.run(["umount", str(view)], check=True)
