"""`vaebench queue --dask` for real, on loopback: the team stack's `dask scheduler` and two
`dask worker`s, a bare git remote, the S3 DVC remote and the MLflow server; nothing shared on disk
but what those services hold. A sweep with a failing experiment, a worker killed mid-experiment, an
interrupted client, nothing queued and an unreachable scheduler.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from e2e import EPOCHS, run, tool_env
from test_team_e2e import CURVE_METRICS, artifact_objects, s3_client

pytestmark = [pytest.mark.e2e, pytest.mark.team, pytest.mark.xdist_group("team")]

# One training, long enough to be caught mid-run (tiny data: a fraction of a second per epoch), and
# no longer: a killed one runs again in full. SLOW outlasts another experiment's five stages.
LONG = ("-S", "train.epochs=60")
SLOW = ("-S", "train.epochs=150")


@pytest.fixture
def user(stack, origin: Path, tmp_path: Path) -> Path:
    """The user's clone of conftest's `origin` (a baseline of the mlp with seed 0, its
    outputs in the stack's S3 remote): its outputs pulled, the team stack its DVC remote."""
    project = tmp_path / "user"
    run(tmp_path, "git", "clone", "-q", str(origin), project.name)
    for command in stack.dvc_remote_commands():
        run(project, *command)
    run(project, "dvc", "pull", "-q", **stack.worker_env())
    return project


def queue(project: Path, *args: str) -> None:
    run(project, "dvc", "exp", "run", "--queue", *args)


def drain(stack, project: Path, address: str | None = None) -> subprocess.CompletedProcess:
    command = ["vaebench", "queue", "--dask", address or stack.scheduler_address]
    return subprocess.run(command, cwd=project, env=tool_env(**stack.worker_env()), capture_output=True, text=True)


def spawn_drain(stack, project: Path) -> subprocess.Popen:
    """The client in the background, with Ctrl-C as a terminal delivers it: pytest-xdist's workers
    ignore SIGINT, and a child inherits that (Python then never raises KeyboardInterrupt)."""
    command = ["vaebench", "queue", "--dask", stack.scheduler_address]
    env = tool_env(PYTHONUNBUFFERED="1", **stack.worker_env())
    return subprocess.Popen(
        command, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip


def wait_for_line(process: subprocess.Popen, seen: list[str], *needles: str, timeout: float = 300) -> str:
    """The client's next output line holding every needle (each line read is kept in `seen`)."""
    deadline = time.monotonic() + timeout
    for line in process.stdout:
        seen.append(line)
        if all(needle in line for needle in needles):
            return line
        assert time.monotonic() < deadline, f"no line with {needles} within {timeout}s:\n{''.join(seen)}"
    raise AssertionError(f"the client ended without a line with {needles}:\n{''.join(seen)}")


def experiments(project: Path) -> dict[str, dict]:
    """{name: exp show entry} of the baseline's experiments (queued ones included)."""
    shown = json.loads(run(project, "dvc", "exp", "show", "--json"))
    (baseline,) = [b for b in shown if b["rev"] != "workspace"]
    return {e["name"]: e for e in baseline.get("experiments") or []}


def queued_names(project: Path) -> list[str]:
    lines = run(project, "dvc", "queue", "status").splitlines()
    return [line.split()[1] for line in lines[1:] if line.strip() and not line.startswith("Worker")]


def mlflow_client(stack):
    from mlflow.tracking import MlflowClient

    os.environ |= {"MLFLOW_TRACKING_USERNAME": "worker", "MLFLOW_TRACKING_PASSWORD": stack.worker_password}
    return MlflowClient(tracking_uri=stack.tracking_uri)


def exp_runs(stack, name: str) -> list:
    """The MLflow runs the stages of experiment `name` logged on the tracking server."""
    mlflow = mlflow_client(stack)
    experiment = mlflow.get_experiment_by_name("vaebench")
    return mlflow.search_runs([experiment.experiment_id], filter_string=f"tags.dvc_exp_name = '{name}'")


def trainings(stack, name: str, status: str) -> list:
    return [r for r in exp_runs(stack, name) if r.info.status == status and r.info.run_name.startswith("mlp-")]


def test_an_unreachable_scheduler_is_one_line_naming_it_and_dequeues_nothing(stack, user: Path) -> None:
    from vaebench.ops.team import free_port

    queue(user, "-n", "waiting", "-S", "loss.kl_weight=0.5")
    address = f"tcp://127.0.0.1:{free_port()}"
    start = time.monotonic()
    result = drain(stack, user, address)
    assert time.monotonic() - start < 30
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and address in result.stderr, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert queued_names(user) == ["waiting"]


def test_nothing_queued_is_a_clear_line_and_exit_0(stack, user: Path) -> None:
    result = drain(stack, user)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "nothing queued" in result.stdout


def test_a_sweep_runs_on_the_workers_and_lands_as_ordinary_experiments(
    stack, origin: Path, user: Path, tmp_path: Path
) -> None:
    queue(user, "-S", "loss.kl_weight=0.5,2")  # DVC's Hydra sweep: two experiments, DVC names them
    queue(user, "-n", "broken", "-S", "loss.recon=hinge")
    result = drain(stack, user)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "2 collected, 1 failed" in output and "failed: broken" in output

    (failure,) = [line for line in output.splitlines() if "broken" in line and "FAILED" in line]
    assert "loss.recon = 'hinge'" in failure, failure  # the stage's own error line
    log = user / failure.rsplit("log: ", 1)[1]
    assert "must be one of 'bce' or 'mse'" in log.read_text()
    assert queued_names(user) == ["broken"]  # the failure stays queued; the drained entries are gone

    found = experiments(user)
    done = {name: e for name, e in found.items() if name != "broken"}
    betas = sorted(e["revs"][0]["data"]["params"]["params.yaml"]["data"]["loss"]["kl_weight"] for e in done.values())
    assert betas == [0.5, 2]
    for name, e in done.items():
        metrics = e["revs"][0]["data"]["metrics"]["metrics/compare.json"]["data"]
        assert metrics["mlp"]["nll_iwae"]["mean"] > 0
        stages = [line for line in output.splitlines() if line.split()[1:2] == [name] and "done on" in line]
        assert stages and "judge" not in stages[0] and "train@mlp-0" in stages[0], stages  # the baseline's reused
        (finished,) = trainings(stack, name, "FINISHED")  # on the team's tracking server, one per seed
        assert finished.info.run_name == "mlp-0" and finished.data.metrics["test_nll_iwae"] > 0
        assert set(finished.data.metrics) >= CURVE_METRICS
        for key in CURVE_METRICS:
            assert len(mlflow_client(stack).get_metric_history(finished.info.run_id, key)) == EPOCHS
        assert artifact_objects(s3_client(stack), finished.info.run_id), f"no artifacts in S3 for {name}"

    name = sorted(done)[0]
    run(user, "dvc", "exp", "apply", name)
    assert "up to date" in run(user, "dvc", "status").lower()  # its outputs came with it
    run(user, "git", "checkout", "--", ".")
    run(user, "dvc", "checkout", "--force")
    study = run(user, "vaebench", "study", "--no-mlflow", "--out", "study")
    assert "study of 3 experiments" in study, study  # the baseline and the two betas; broken is skipped

    reader = tmp_path / "reader"  # a colleague's clone: the experiments and their outputs, nothing to retrain
    run(tmp_path, "git", "clone", "-q", str(origin), reader.name)
    for command in stack.dvc_remote_commands():
        run(reader, *command)
    for name in done:
        run(reader, "dvc", "exp", "pull", "origin", name, **stack.worker_env())
    run(reader, "dvc", "pull", "-q", **stack.worker_env())
    assert "up to date" in run(reader, "dvc", "status").lower()
    assert sorted(experiments(reader)) == sorted(done)


def test_a_worker_killed_mid_experiment_leaves_one_experiment_and_no_running_run(stack, user: Path) -> None:
    from distributed import Client

    queue(user, "-n", "long", *LONG)
    client_process, seen = spawn_drain(stack, user), []
    line = wait_for_line(client_process, seen, "long (", "running on")
    victim = line.split("running on ")[1].strip()
    deadline = time.monotonic() + 300
    while not _logged_epochs(stack, "long"):
        assert time.monotonic() < deadline and client_process.poll() is None, "".join(seen)
        time.sleep(0.5)
    with Client(stack.scheduler_address, timeout="10s", set_as_default=False) as dask:
        workers = dask.run(lambda dask_worker: (str(dask_worker.name), os.getpid()))
    pids = dict(workers.values())
    assert victim in pids, f"{victim} is not one of {pids}"
    os.kill(pids[victim], signal.SIGKILL)  # the worker process; its nanny starts a new one

    rest = client_process.communicate(timeout=600)[0]
    output = "".join(seen) + rest
    assert client_process.returncode == 0, output
    assert "1 collected, 0 failed" in output
    assert list(experiments(user)) == ["long"]
    assert not [r for r in exp_runs(stack, "long") if r.info.status == "RUNNING"]
    assert len(trainings(stack, "long", "FINISHED")) == 1  # the dead attempt's orphan did not finish too
    (dead,) = trainings(stack, "long", "FAILED")
    assert "dvc process that ran this stage died" in dead.data.tags["vaebench.note"]


def _logged_epochs(stack, name: str) -> bool:
    from mlflow.tracking import MlflowClient

    running = [r for r in exp_runs(stack, name) if r.info.status == "RUNNING" and r.info.run_name == "mlp-0"]
    client = MlflowClient(tracking_uri=stack.tracking_uri)
    return bool(running) and len(client.get_metric_history(running[0].info.run_id, "val_loss")) >= 2


def test_an_interrupted_client_run_again_reruns_only_what_had_not_finished(stack, user: Path) -> None:
    queue(user, "-n", "quick", "-S", "loss.kl_weight=0.25")
    queue(user, "-n", "slow", *SLOW)
    client_process, seen = spawn_drain(stack, user), []
    wait_for_line(client_process, seen, "quick (", "done on")
    client_process.send_signal(signal.SIGINT)  # Ctrl-C
    output = "".join(seen) + client_process.communicate(timeout=120)[0]
    assert client_process.returncode == 130, output
    assert "interrupted" in output and "Traceback" not in output, output
    assert queued_names(user) == ["slow"]

    again = drain(stack, user)
    output = again.stdout + again.stderr
    assert again.returncode == 0, output
    assert "1 queued; 1 to run" in output and "quick" not in output
    assert sorted(experiments(user)) == ["quick", "slow"]
    assert len(trainings(stack, "quick", "FINISHED")) == 1  # its one seed, once
    # slow's training may have finished before the interrupt (under load quick's seven stages can take
    # longer), but not its experiment: it ran again, and its first attempt's stages stopped
    assert 1 <= len(trainings(stack, "slow", "FINISHED")) <= 2
    assert not [r for r in exp_runs(stack, "slow") if r.info.status == "RUNNING"]
