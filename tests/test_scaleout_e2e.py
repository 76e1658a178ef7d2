"""`vaebench queue --dask` for real, on loopback: the team stack's `dask scheduler` and two
`dask worker`s, a bare git remote, the DVC remote and the MLflow server; nothing shared on disk
but what those services hold. A sweep with a failing experiment, a worker killed mid-experiment
and then the client interrupted in one drain, nothing queued and an unreachable scheduler.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dvc.config import Config
from e2e import EPOCHS, run, tool_env
from test_team_e2e import CURVE_METRICS, artifact_files

pytestmark = [pytest.mark.e2e, pytest.mark.team, pytest.mark.xdist_group("team")]

# One training long enough to be caught mid-run twice (tiny data: a fraction of a second per epoch)
# while another experiment's five stages land; only the rerun after the interrupt trains it in full.
LONG = ("-S", "train.epochs=150")


@pytest.fixture
def user(stack, origin: Path, tmp_path: Path) -> Path:
    """The user's clone of conftest's `origin` (a baseline of the mlp with seed 0, its
    outputs in the stack's DVC remote): its outputs pulled, the team stack its DVC remote."""
    project = tmp_path / "user"
    run(tmp_path, "git", "clone", "-q", str(origin), project.name)
    for command in stack.dvc_remote_commands():
        run(project, *command)
    run(project, "dvc", "pull", "-q", **stack.worker_env())
    return project


def queue(project: Path, *args: str) -> None:
    run(project, "dvc", "exp", "run", "--queue", *args)


def drain(stack, project: Path, *options: str, address: str | None = None) -> subprocess.CompletedProcess:
    command = ["vaebench", "queue", "--dask", address or stack.scheduler_address, *options]
    return subprocess.run(command, cwd=project, env=tool_env(**stack.client_env()), capture_output=True, text=True)


def spawn_drain(stack, project: Path) -> subprocess.Popen:
    """The client in the background, with Ctrl-C as a terminal delivers it: pytest-xdist's workers
    ignore SIGINT, and a child inherits that (Python then never raises KeyboardInterrupt)."""
    command = ["vaebench", "queue", "--dask", stack.scheduler_address]
    env = tool_env(PYTHONUNBUFFERED="1", **stack.client_env())
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


def test_an_unreachable_scheduler_is_one_line_naming_it_and_dequeues_nothing(stack, user: Path, tmp_path: Path) -> None:
    from vaebench.ops.team import free_port

    queue(user, "-n", "waiting", "-S", "loss.kl_weight=0.5")
    address = f"tls://127.0.0.1:{free_port()}"
    start = time.monotonic()
    result = drain(stack, user, address=address)
    assert time.monotonic() - start < 30
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and address in result.stderr, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert queued_names(user) == ["waiting"]

    # A DVC remote without the baseline's outputs is said before anything is sent, and a resource
    # no worker offers is refused (Dask would wait for such a worker forever).
    run(user, "dvc", "remote", "add", "--local", "-d", "empty", str(tmp_path / "empty-remote"))
    start = time.monotonic()
    result = drain(stack, user, "--resources", "GPU=1")
    run(user, "dvc", "remote", "default", "--local", "team")
    assert time.monotonic() - start < 60 and result.returncode == 1, result.stdout + result.stderr
    assert "the DVC remote lacks this commit's data/" in result.stdout, result.stdout
    assert "no worker offers GPU=1" in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert queued_names(user) == ["waiting"]


def test_the_cluster_refuses_a_client_without_the_teams_certificate(stack, tmp_path: Path) -> None:
    """A hostile client on the same machine: in plain TCP, or with a certificate of its own CA, the
    scheduler refuses it at the handshake, so it reads no worker's environment and runs no code."""
    from distributed import Client

    from vaebench.ops.tls import make_certificates

    folder = stack.certificates.folder
    assert folder.stat().st_mode & 0o777 == 0o700
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in folder.iterdir())
    foreign = make_certificates(tmp_path / "foreign").security()
    plain = stack.scheduler_address.replace("tls://", "tcp://")
    for address, security in ((plain, None), (stack.scheduler_address, foreign)):
        with pytest.raises((OSError, TimeoutError)):
            Client(address, security=security, timeout="5s", set_as_default=False).close()
    team = stack.certificates.security()
    with Client(stack.scheduler_address, security=team, timeout="10s", set_as_default=False) as dask:
        assert len(dask.run(os.getpid)) == 2  # the team's own certificate: both workers answer


def test_nothing_queued_is_a_clear_line_and_exit_0(stack, user: Path) -> None:
    result = drain(stack, user)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "nothing queued" in result.stdout


def test_a_sweep_runs_on_the_workers_and_lands_as_ordinary_experiments(
    stack, origin: Path, user: Path, tmp_path: Path
) -> None:
    queue(user, "-S", "loss.kl_weight=0.5,2")  # DVC's Hydra sweep: two experiments, DVC names them
    queue(user, "-n", "broken", "-S", "loss.recon=hinge")
    # the remote's password where DVC's docs put it: it must stay on this machine, in this file
    with Config(str(user / ".dvc")).edit("local") as local:  # DVC's API: no password on a command line
        local["remote"]["team"]["password"] = stack.dav_password
    secrets = {stack.dav_password, stack.worker_password, stack.admin_password, stack.pg_password}
    with CommandLines() as seen, refusing_kl_weight_2(origin):
        result = drain(stack, user)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "1 collected, 2 failed" in output and "broken" in output.splitlines()[-1], output
    assert "own credentials; not sent: password" in output, output
    assert seen.lines and not [line for line in seen.lines if any(secret in line for secret in secrets)]

    # β = 2 trained, then the git remote refused its push: its reason said, its runs not left FINISHED
    (refused,) = [name for name in queued_names(user) if name != "broken"]
    (line,) = [line for line in output.splitlines() if f"{refused} (" in line and "FAILED:" in line]
    assert "the git remote refused the push: pushes under refs/vaebench are closed this week" in line, line
    assert f"{refused} (" in output and "runs of attempts that did not land marked FAILED" in output, output
    assert not trainings(stack, refused, "FINISHED")
    (failed,) = trainings(stack, refused, "FAILED")
    assert failed.data.tags["vaebench.note"].startswith("did not land: push: the git remote refused"), failed.data.tags

    (failure,) = [line for line in output.splitlines() if "broken" in line and "FAILED:" in line]
    assert "loss.recon = 'hinge'" in failure, failure  # the stage's own error line
    log = user / failure.rsplit("log: ", 1)[1]
    assert "must be one of 'bce' or 'mse'" in log.read_text()
    assert log.stat().st_mode & 0o777 == 0o600 and not any(secret in log.read_text() for secret in secrets)
    assert sorted(queued_names(user)) == sorted(["broken", refused])  # failures stay queued; the landed one is gone

    done = {
        name: e for name, e in experiments(user).items() if name not in ("broken", refused)
    }  # queued ones listed too
    betas = [e["revs"][0]["data"]["params"]["params.yaml"]["data"]["loss"]["kl_weight"] for e in done.values()]
    assert betas == [0.5]
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
        assert artifact_files(stack, finished.info.run_id), f"no artifacts on the server for {name}"

    name = sorted(done)[0]
    run(user, "dvc", "exp", "apply", name)
    assert "up to date" in run(user, "dvc", "status").lower()  # its outputs came with it
    run(user, "git", "checkout", "--", ".")
    run(user, "dvc", "checkout", "--force")
    study = run(user, "vaebench", "study", "--no-mlflow", "--out", "study")
    assert "study of 2 experiments" in study, study  # the baseline and β = 0.5; the failures are skipped

    reader = tmp_path / "reader"  # a colleague's clone: the experiments and their outputs, nothing to retrain
    run(tmp_path, "git", "clone", "-q", str(origin), reader.name)
    for command in stack.dvc_remote_commands():
        run(reader, *command)
    for name in done:
        run(reader, "dvc", "exp", "pull", "origin", name, **stack.worker_env())
    run(reader, "dvc", "pull", "-q", **stack.worker_env())
    assert "up to date" in run(reader, "dvc", "status").lower()
    assert sorted(experiments(reader)) == sorted(done)


@contextlib.contextmanager
def refusing_kl_weight_2(origin: Path) -> Iterator[None]:
    """The git remote's pre-receive hook refuses to mark a β = 2 experiment done, as a team's hook
    might (the worker's `git push`; DVC's own `dvc exp push` to a path runs no hooks)."""
    hook = origin / "hooks" / "pre-receive"
    hook.write_text(
        "#!/bin/sh\n"
        "while read old new ref; do\n"
        '  case "$ref" in refs/vaebench/done/*)\n'
        '    if git show "$new:params.yaml" | grep -Eq "^  kl_weight: 2( |$)"; then\n'
        '      echo "pushes under refs/vaebench are closed this week" >&2; exit 1\n'
        "    fi;;\n"
        "  esac\n"
        "done\n"
    )
    hook.chmod(0o755)
    try:
        yield
    finally:
        hook.unlink()


class CommandLines:
    """Every command line of every process on this machine, sampled while the block runs: what
    any local user reads with `ps`."""

    def __enter__(self) -> CommandLines:
        import threading

        self.lines: set[str] = set()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while not self.done.wait(0.3):
            for path in Path("/proc").glob("[0-9]*/cmdline"):
                with contextlib.suppress(OSError):
                    self.lines.add(path.read_bytes().replace(b"\0", b" ").decode(errors="replace"))

    def __exit__(self, *exc_info: object) -> None:
        self.done.set()
        self.thread.join()


def test_a_killed_worker_and_an_interrupted_client_leave_one_experiment_each(stack, user: Path) -> None:
    """One drain, three faults: a second drain of the repository is refused; the worker running
    `long` is killed mid-training (the drain runs it again); then the client is interrupted (Ctrl-C)
    once `quick` has landed. Run again, it runs only `long`, and every attempt that did not land
    ends its MLflow runs, never RUNNING."""
    from distributed import Client

    queue(user, "-n", "quick", "-S", "loss.kl_weight=0.25")
    queue(user, "-n", "long", *LONG)
    client_process, seen = spawn_drain(stack, user), []
    line = wait_for_line(client_process, seen, "long (", "running on")
    second = drain(stack, user)  # a colleague's, or a second terminal's: refused, nothing dequeued
    assert second.returncode == 1 and second.stderr.strip().count("\n") == 0, second.stdout + second.stderr
    assert f"already being drained by `vaebench queue` (pid {client_process.pid}" in second.stderr
    victim = line.split("running on ")[1].strip()
    first = wait_for_training(stack, client_process, seen, "long")
    security = stack.certificates.security()
    with Client(stack.scheduler_address, timeout="10s", security=security, set_as_default=False) as dask:
        workers = dask.run(lambda dask_worker: (str(dask_worker.name), os.getpid()))
    pids = dict(workers.values())
    assert victim in pids, f"{victim} is not one of {pids}"
    os.kill(pids[victim], signal.SIGKILL)  # the worker process; its nanny starts a new one

    wait_for_training(stack, client_process, seen, "long", after=first)  # the drain ran it again
    if not any("quick (" in line and "done on" in line for line in seen):
        wait_for_line(client_process, seen, "quick (", "done on")
    client_process.send_signal(signal.SIGINT)  # Ctrl-C
    output = "".join(seen) + client_process.communicate(timeout=120)[0]
    assert client_process.returncode == 130, output
    assert "interrupted" in output and "Traceback" not in output, output
    assert queued_names(user) == ["long"]

    again = drain(stack, user)
    output = again.stdout + again.stderr
    assert again.returncode == 0, output
    assert "1 queued; 1 to run" in output and "quick" not in output
    assert sorted(experiments(user)) == ["long", "quick"]
    assert len(trainings(stack, "quick", "FINISHED")) == 1  # its one seed, once
    assert not [r for r in exp_runs(stack, "long") if r.info.status == "RUNNING"]
    assert len(trainings(stack, "long", "FINISHED")) == 1  # neither stopped attempt finished too
    notes = [r.data.tags.get("vaebench.note", "") for r in trainings(stack, "long", "FAILED")]
    assert any("dvc process that ran this stage died" in note for note in notes), notes


def wait_for_training(stack, process: subprocess.Popen, seen: list[str], name: str, after: str = "") -> str:
    """The run id of experiment `name`'s training once it has logged two epochs (a run other than `after`)."""
    deadline = time.monotonic() + 300
    while not (running := _training_under_way(stack, name, after)):
        assert time.monotonic() < deadline and process.poll() is None, "".join(seen)
        time.sleep(0.5)
    return running


def _training_under_way(stack, name: str, after: str) -> str:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=stack.tracking_uri)
    running = [r.info.run_id for r in trainings(stack, name, "RUNNING")]
    logged = [i for i in running if i != after and len(client.get_metric_history(i, "val_loss")) >= 2]
    return logged[0] if logged else ""


def test_tune_keeps_both_workers_busy_and_retrains_the_best_on_the_cluster(stack, user: Path) -> None:
    """`vaebench tune --sampler tpe` on the two workers: two trials in flight from the start, one on
    each worker (the scheduler hands a thread one task), the third asked once the first is told;
    each trial an experiment collected here with its training run tagged with the study on the
    team's server; then `--retrain` runs the best recipe's whole pipeline on a worker."""
    from distributed import Client
    from e2e import set_space

    with Client(stack.scheduler_address, security=stack.certificates.security(), set_as_default=False) as client:
        saturation = client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.WORKER_SATURATION)
    assert saturation == 1.0  # a queued experiment waits on the scheduler for a free thread, not behind a busy one
    set_space(user, {"train.lr": {"low": 0.001, "high": 0.003, "log": True}})
    command = ["vaebench", "tune", "d", "--arch", "mlp", "--trials", "3", "--sampler", "tpe"]
    result = subprocess.run(command, cwd=user, env=tool_env(**stack.client_env()), capture_output=True, text=True)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    before_first_done = output.split("done on")[0]
    assert "started on worker-1" in before_first_done and "started on worker-2" in before_first_done, output
    lines = output.splitlines()
    third = next(i for i, line in enumerate(lines) if "d-mlp-002  queued" in line)
    assert any("d-mlp-00" in line and "validation −ELBO" in line for line in lines[:third]), output
    names = [f"d-mlp-{n:03d}" for n in range(3)]
    assert set(names) <= set(experiments(user)) and queued_names(user) == []
    for name in names:
        (training,) = trainings(stack, name, "FINISHED")
        assert training.data.tags["vaebench.tune.study"] == "d", training.data.tags

    retrained = subprocess.run(
        ["vaebench", "tune", "d", "--retrain"], cwd=user, env=tool_env(**stack.client_env()), capture_output=True,
        text=True,
    )  # fmt: skip
    output = retrained.stdout + retrained.stderr
    assert retrained.returncode == 0, output
    commit = experiments(user)["d-mlp-best-0"]["revs"][0]["rev"]
    assert json.loads(run(user, "git", "show", f"{commit}:metrics/eval/mlp-0.json"))["nll_iwae"] > 0
    assert "Best recipes against params.yaml" in (user / "reports/tune/d/tune.md").read_text()
