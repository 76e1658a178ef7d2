"""The team stack for real, on loopback: MLflow with basic-auth on PostgreSQL and its artifacts on
disk, the DVC remote over WebDAV, credentials at every door, concurrent load, faults, the served
model, and every part restarted with its data. Two workers' experiments and a reader that pulls
them all are test_scaleout_e2e.py's sweep.

One stack and one tiny project pushed to a bare git remote for the session (conftest's `stack`, `origin`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from base64 import b64encode
from pathlib import Path

import pytest
from e2e import output_hashes, run, set_params, tool_env

pytestmark = [pytest.mark.e2e, pytest.mark.team, pytest.mark.xdist_group("team")]

EPOCHS = 2  # e2e.TINY's
CURVE_METRICS = {"train_loss", "train_recon", "train_kl", "val_loss", "val_recon", "val_kl", "lr", "seconds"}


def worker(stack, **extra: str) -> dict[str, str]:
    return {**stack.worker_env(), **extra}


def run_as(stack, project: Path, *command: str) -> str:
    return run(project, *command, **worker(stack))


def spawn(stack, project: Path, *command: str) -> subprocess.Popen:
    """A worker's command in the background, in its own process group (a test may kill it whole)."""
    return subprocess.Popen(
        command, cwd=project, env=tool_env(**worker(stack)), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )  # fmt: skip


def client(stack):
    from mlflow.tracking import MlflowClient

    os.environ |= {"MLFLOW_TRACKING_USERNAME": "worker", "MLFLOW_TRACKING_PASSWORD": stack.worker_password}
    return MlflowClient(tracking_uri=stack.tracking_uri)


def runs(stack) -> dict[str, list]:
    """Every run of the experiment by name (a name can repeat across workers and reruns)."""
    mlflow = client(stack)
    experiment = mlflow.get_experiment_by_name("vaebench")
    found: dict[str, list] = {}
    for r in mlflow.search_runs([experiment.experiment_id], max_results=1000):
        found.setdefault(r.info.run_name, []).append(r)
    return found


def clone(stack, origin: Path, into: Path) -> Path:
    run(into.parent, "git", "clone", "-q", str(origin), into.name)
    for command in stack.dvc_remote_commands():
        run(into, *command)
    return into


def test_requests_without_valid_credentials_get_401_and_write_nothing(stack) -> None:
    """Every door of the stack: the tracking server's API and its artifacts, and the DVC remote."""
    body = json.dumps({"name": "intruder"}).encode()
    doors = (
        ("POST", f"{stack.tracking_uri}/api/2.0/mlflow/experiments/create", body),
        ("GET", f"{stack.tracking_uri}/api/2.0/mlflow-artifacts/artifacts", None),
        ("PUT", f"{stack.dvc_remote_url.replace('webdav://', 'http://')}/intruder.txt", b"overwritten"),
        ("GET", stack.dvc_remote_url.replace("webdav://", "http://") + "/", None),
    )
    for method, url, data in doors:
        for credentials in (None, "worker:wrong-password"):
            request = urllib.request.Request(url, data, {"Content-Type": "application/json"}, method=method)
            if credentials:
                request.add_header("Authorization", "Basic " + b64encode(credentials.encode()).decode())
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=10)
            assert refused.value.code == 401, (method, url, credentials)
    assert client(stack).get_experiment_by_name("intruder") is None
    assert not list((stack.root / "dvc-remote").rglob("intruder.txt"))


def artifact_files(stack, run_id: str) -> list[Path]:
    """The files the tracking server keeps for a run (it proxies artifacts to its own disk)."""
    return [p for p in (stack.root / "artifacts").rglob("*") if p.is_file() and run_id in p.parts]


@pytest.fixture
def workspace(stack, origin: Path, tmp_path: Path) -> Path:
    """A clone with every output pulled from the DVC remote."""
    project = clone(stack, origin, tmp_path / "workspace")
    run_as(stack, project, "dvc", "pull", "-q")
    return project


def test_four_trainings_log_to_the_server_at_once_and_none_is_lost(stack, workspace: Path) -> None:
    seeds = range(10, 14)  # four writers at once on one PostgreSQL store
    processes = [spawn(stack, workspace, "python", "stages/train.py", "mlp", str(seed)) for seed in seeds]
    for process in processes:
        output = process.communicate(timeout=600)[0]
        assert process.returncode == 0, output
    found = runs(stack)
    mlflow = client(stack)
    for seed in seeds:
        (training,) = found[f"mlp-{seed}"]
        assert training.info.status == "FINISHED"
        for key in CURVE_METRICS:
            steps = [m.step for m in mlflow.get_metric_history(training.info.run_id, key)]
            assert sorted(steps) == list(range(1, EPOCHS + 1)), f"mlp-{seed} {key}: steps {steps}"


def _start_long_training(stack, project: Path) -> tuple[subprocess.Popen, str]:
    """`dvc repro` of train@mlp-0 with enough epochs to be caught mid-run; (process, its run id)."""
    set_params(project, {"train": {"epochs": 400}})
    before = {r.info.run_id for rs in runs(stack).values() for r in rs}
    process = spawn(stack, project, "dvc", "repro", "-s", "train@mlp-0")
    mlflow, deadline = client(stack), time.monotonic() + 300
    while time.monotonic() < deadline:
        new = [r for rs in runs(stack).values() for r in rs if r.info.run_id not in before]
        if new and len(mlflow.get_metric_history(new[0].info.run_id, "val_loss")) >= 3:
            return process, new[0].info.run_id
        assert process.poll() is None, process.communicate()[0]
        time.sleep(0.5)
    raise AssertionError("the training run never logged three epochs")


def test_a_killed_worker_and_a_stopped_tracking_server_leave_no_running_run(stack, workspace: Path) -> None:
    """Two faults mid-training, one after the other. SIGKILL leaves its run RUNNING (what the README
    says) and the stage's next run closes it; the tracking server stopped under that next run fails
    it in one line with nothing half-written; after a restart a rerun completes and closes it too."""
    from vaebench.ops import team

    before = output_hashes(workspace)
    process, killed = _start_long_training(stack, workspace)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert client(stack).get_run(killed).info.status == "RUNNING"  # nothing can close it but the next run

    process, cut = _start_long_training(stack, workspace)
    assert client(stack).get_run(killed).info.status == "FAILED"
    team.stop_process(stack.pids["mlflow"])
    down = [part for part, _, up, _ in team.status(stack.root) if not up]
    assert down == ["MLflow tracking server"], down  # what `vaebench team status` prints DOWN
    output = process.communicate(timeout=300)[0]
    assert process.returncode != 0
    assert f"marked MLflow run {killed} FAILED" in output
    assert f"MLflow at {stack.tracking_uri}" in output and "Traceback" not in output, output
    assert output_hashes(workspace) == before  # nothing half-written

    team.up(stack.root)  # starts what is down: the tracking server
    set_params(workspace, {"train": {"epochs": EPOCHS}})
    output = run_as(stack, workspace, "dvc", "repro", "-s", "-f", "train@mlp-0")
    assert f"marked MLflow run {cut} FAILED" in output  # the run the outage left RUNNING
    assert client(stack).get_run(cut).info.status == "FAILED"


def test_the_logged_model_is_served_over_http(stack, workspace: Path) -> None:
    import numpy as np

    from vaebench.ops.team import free_port, http_ok

    (training, *_) = runs(stack)["mlp-0"]
    model_uri = f"runs:/{training.info.run_id}/model"
    port = free_port()
    serve = ("mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port))
    server = spawn(stack, workspace, *serve)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while not http_ok(f"{url}/ping"):
            assert server.poll() is None and time.monotonic() < deadline, server.communicate()[0]
            time.sleep(0.5)
        images = np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32)
        status, body = _post(f"{url}/invocations", {"inputs": images.tolist()})
        assert status == 200, body
        reconstructions = np.asarray(json.loads(body)["predictions"])
        assert reconstructions.shape == (3, 1, 28, 28)
        assert reconstructions.min() >= 0 and reconstructions.max() <= 1
        status, body = _post(f"{url}/invocations", {"inputs": images.reshape(3, 784).tolist()})
        assert 400 <= status < 500 and "shape" in body.lower(), body
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def _post(url: str, payload: dict) -> tuple[int, str]:
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_every_part_restarts_with_its_data(stack, origin: Path, tmp_path: Path) -> None:
    """`team down` under a running drain, then `team up`: the drain says in one line that the
    scheduler went away; after the restart the same runs, their artifacts and every DVC object are
    there, and a fresh clone pulls the baseline's outputs (last in the module: every part restarts)."""
    from vaebench.ops import team

    before = {r.info.run_id for found in runs(stack).values() for r in found}
    (training, *_) = runs(stack)["mlp-0"]
    objects = sorted(p.relative_to(stack.root) for p in (stack.root / "dvc-remote").rglob("*") if p.is_file())
    user = clone(stack, origin, tmp_path / "user")
    run_as(stack, user, "dvc", "exp", "run", "--queue", "-n", "orphan", "-S", "train.epochs=150")
    environment = tool_env(PYTHONUNBUFFERED="1", **stack.client_env())
    drain = subprocess.Popen(
        ["vaebench", "queue"], cwd=user, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    seen = []
    for line in iter(drain.stdout.readline, ""):
        seen.append(line)
        if "orphan (" in line and "running on" in line:
            break
    team.down(stack.root)
    output = "".join(seen) + drain.communicate(timeout=120)[0]
    assert drain.returncode == 1 and "Traceback" not in output, output
    assert f"the Dask scheduler at {stack.scheduler_address} went away" in output, output

    assert not [part for part, _, up, _ in team.status(stack.root) if up]
    restarted = team.up(stack.root)
    assert all(up for _, _, up, _ in team.status(stack.root))
    assert (restarted.tracking_uri, restarted.scheduler_address) == (stack.tracking_uri, stack.scheduler_address)
    assert before <= {r.info.run_id for found in runs(stack).values() for r in found}
    mlflow = client(stack)  # the artifacts, through the restarted server's proxy
    listed = mlflow.list_artifacts(training.info.run_id, "images")  # its reconstructions, one per snapshot
    assert listed, "the training run lists no images"
    assert Path(mlflow.download_artifacts(training.info.run_id, listed[0].path, str(tmp_path))).stat().st_size > 0
    after = sorted(p.relative_to(stack.root) for p in (stack.root / "dvc-remote").rglob("*") if p.is_file())
    assert set(objects) <= set(after)
    reader = clone(stack, origin, tmp_path / "reader")
    run_as(stack, reader, "dvc", "pull", "-q")
    assert "up to date" in run(reader, "dvc", "status").lower()
