"""The team stack on loopback: what a team runs when it outgrows one machine, started in one command.

- PostgreSQL (Debian's `postgresql`): MLflow's runs, and the users of its basic-auth app;
- an S3 endpoint (`moto[server]`, the one MLflow's own tests use; in production real S3 or MinIO):
  MLflow's artifacts and the DVC remote;
- `mlflow server --app-name basic-auth` on both, proxying artifacts, so a worker needs two URIs
  (tracking server, DVC remote) and two credentials (MLflow user, S3 key) and nothing else;
- a Dask cluster, the real `dask scheduler` and two `dask worker`s of one thread each (each in its
  own directory, with that environment), for `vaebench queue --dask`.

`vaebench team up` starts it under `.team/` (data, logs, `stack.json` with ports, pids and
passwords, mode 0600) and prints the environment a worker exports; `vaebench team down` stops it.
Everything binds to 127.0.0.1. PostgreSQL refuses to run as root, so as root its commands run as
the `postgres` user that Debian's package creates.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vaebench.core.errors import StageError

HOST = "127.0.0.1"
ARTIFACT_BUCKET, DVC_BUCKET = "mlflow-artifacts", "dvc-remote"
WORKER_USER = "worker"
START_TIMEOUT_S = 60


class TeamStackError(StageError):
    """A part of the stack did not start; names it and its log."""


@dataclass
class Stack:
    """Where the stack lives and how to reach it: written to .team/stack.json by `up`."""

    root: Path
    pg_port: int = 0
    s3_port: int = 0
    mlflow_port: int = 0
    dask_port: int = 0
    pg_password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    worker_password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    s3_key: str = "vaebench"
    s3_secret: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def tracking_uri(self) -> str:
        return f"http://{HOST}:{self.mlflow_port}"

    @property
    def scheduler_address(self) -> str:
        return f"tcp://{HOST}:{self.dask_port}"

    @property
    def s3_endpoint(self) -> str:
        return f"http://{HOST}:{self.s3_port}"

    @property
    def dvc_remote_url(self) -> str:
        return f"s3://{DVC_BUCKET}/vaebench"

    def database_uri(self, database: str) -> str:
        return f"postgresql://mlflow:{self.pg_password}@{HOST}:{self.pg_port}/{database}"

    def s3_env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.s3_key,
            "AWS_SECRET_ACCESS_KEY": self.s3_secret,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def worker_env(self) -> dict[str, str]:
        """What a worker exports: the tracking server with its user, and the S3 key for `dvc push`."""
        return {
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "MLFLOW_TRACKING_USERNAME": WORKER_USER,
            "MLFLOW_TRACKING_PASSWORD": self.worker_password,
            **self.s3_env(),
        }

    def dvc_remote_commands(self, name: str = "team") -> list[list[str]]:
        """How a clone points its DVC remote at the stack (credentials stay in the environment)."""
        return [
            ["dvc", "remote", "add", "--local", "--force", "-d", name, self.dvc_remote_url],
            ["dvc", "remote", "modify", "--local", name, "endpointurl", self.s3_endpoint],
        ]

    def save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / "stack.json"
        path.write_text(json.dumps({**asdict(self), "root": str(self.root)}, indent=2))
        path.chmod(0o600)

    @classmethod
    def load(cls, root: Path) -> Stack:
        try:
            data = json.loads((root / "stack.json").read_text())
        except (OSError, ValueError) as exc:
            raise TeamStackError(f"no team stack in {root} ({exc}); start one with `vaebench team up`") from None
        return cls(**{**data, "root": Path(data["root"])})


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _wait_until(
    check: Callable[[], bool], what: str, log: Path, process: subprocess.Popen, timeout: float = START_TIMEOUT_S
) -> None:
    """Until `check()` holds; fails at once, with the log's last line, if the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if check():
            return
        time.sleep(0.3)
    tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
    exited = process.poll() is not None
    state = f"exited with {process.returncode}" if exited else f"did not start within {timeout:.0f}s"
    raise TeamStackError(f"{what} {state}; see {log}: {' '.join(tail)}")


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _start(command: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, start_new_session=True
        )


# PostgreSQL


def postgres_bin() -> Path:
    """The newest installed PostgreSQL's binaries (Debian keeps them off PATH)."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if not versions:
        raise TeamStackError("PostgreSQL is not installed: `apt-get install -y postgresql` (Debian's package)")
    return versions[-1].parent


def _as_postgres_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def start_postgres(stack: Stack) -> None:
    data, log = stack.root / "postgres", stack.root / "postgres.log"
    pwfile = stack.root / "pgpass.tmp"
    data.mkdir(parents=True)
    pwfile.write_text(stack.pg_password + "\n")
    if os.geteuid() == 0:
        shutil.chown(data, "postgres")
        shutil.chown(pwfile, "postgres")
        shutil.chown(stack.root, "postgres")  # the server writes its log here
    bin_dir = postgres_bin()
    initdb = [str(bin_dir / "initdb"), "-D", str(data), "-U", "mlflow", f"--pwfile={pwfile}", "-A", "scram-sha-256"]
    subprocess.run(_as_postgres_user(initdb), check=True, capture_output=True)
    pwfile.unlink()
    options = f"-h {HOST} -p {stack.pg_port} -k {data}"  # the unix socket in the data folder, not /var/run
    pg_ctl = [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "start"]
    subprocess.run(_as_postgres_user(pg_ctl), check=True, capture_output=True)
    env = {"PGPASSWORD": stack.pg_password}
    for database in ("mlflow", "mlflow_auth"):
        createdb = [str(bin_dir / "createdb"), "-h", HOST, "-p", str(stack.pg_port), "-U", "mlflow", database]
        subprocess.run(createdb, check=True, capture_output=True, env={**os.environ, **env})


def stop_postgres(stack: Stack) -> None:
    data = stack.root / "postgres"
    if (data / "postmaster.pid").exists():
        pg_ctl = [str(postgres_bin() / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]
        subprocess.run(_as_postgres_user(pg_ctl), capture_output=True)


# S3 (moto) and the MLflow server


def start_s3(stack: Stack) -> None:
    log = stack.root / "s3.log"
    command = [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(stack.s3_port)]
    process = _start(command, log)
    stack.pids["s3"] = process.pid
    _wait_until(lambda: http_ok(f"{stack.s3_endpoint}/moto-api/"), "the S3 endpoint (moto)", log, process)
    import boto3

    s3 = boto3.client("s3", endpoint_url=stack.s3_endpoint, **boto_credentials(stack))
    for bucket in (ARTIFACT_BUCKET, DVC_BUCKET):
        s3.create_bucket(Bucket=bucket)


def boto_credentials(stack: Stack) -> dict[str, str]:
    return {"aws_access_key_id": stack.s3_key, "aws_secret_access_key": stack.s3_secret, "region_name": "us-east-1"}


def start_mlflow(stack: Stack) -> None:
    log, config = stack.root / "mlflow.log", stack.root / "basic_auth.ini"
    config.write_text(
        "[mlflow]\ndefault_permission = EDIT\n"
        f"database_uri = {stack.database_uri('mlflow_auth')}\n"
        f"admin_username = admin\nadmin_password = {stack.admin_password}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    config.chmod(0o600)
    env = {
        **stack.s3_env(),
        "MLFLOW_S3_ENDPOINT_URL": stack.s3_endpoint,
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_urlsafe(16),
        # MLflow 3's GenAI job runner (eight huey consumer processes), which nothing here uses
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    stack.pids["mlflow"] = start_mlflow_server(stack, env, log)
    create_worker_user(stack)


def start_mlflow_server(stack: Stack, env: dict[str, str] | None = None, log: Path | None = None) -> int:
    """`mlflow server` with basic-auth on PostgreSQL and S3; also what a test restarts after a fault."""
    log = log or stack.root / "mlflow.log"
    if env is None:  # a restart: the same settings as `up` gave it
        env = json.loads((stack.root / "mlflow.env.json").read_text())
    (stack.root / "mlflow.env.json").write_text(json.dumps(env))
    (stack.root / "mlflow.env.json").chmod(0o600)
    command = ["mlflow", "server", "--app-name", "basic-auth", "--host", HOST, "--port", str(stack.mlflow_port)]
    command += [
        "--backend-store-uri",
        stack.database_uri("mlflow"),
        "--artifacts-destination",
        f"s3://{ARTIFACT_BUCKET}",
    ]
    command += ["--workers", "2"]
    process = _start(command, log, env)
    _wait_until(lambda: http_ok(f"{stack.tracking_uri}/health"), "the MLflow server", log, process, timeout=120)
    return process.pid


def create_worker_user(stack: Stack) -> None:
    """The user workers log as; `default_permission = EDIT` lets every user write to every experiment."""
    from mlflow.server.auth.client import AuthServiceClient

    os.environ |= {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": stack.admin_password}
    try:
        AuthServiceClient(stack.tracking_uri).create_user(WORKER_USER, stack.worker_password)
    finally:
        del os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]


def stop_processes(pids: list[int], timeout: float = 10.0) -> None:
    """SIGTERM each process group, then SIGKILL what is left of them after `timeout` (all at once)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = [pid for pid in pids if _signal_group(pid, sig)]
        deadline = time.monotonic() + timeout
        while alive and time.monotonic() < deadline:
            time.sleep(0.2)
            alive = [pid for pid in alive if _signal_group(pid, 0)]
        if not alive:
            return
        pids = alive


def _signal_group(pid: int, sig: int) -> bool:
    """Send `sig` to the process group; whether it still exists."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return False
    return True


def stop_process(pid: int, timeout: float = 10.0) -> None:
    stop_processes([pid], timeout)


# The Dask cluster

DASK_WORKERS = 2


def start_dask(stack: Stack) -> None:
    """`dask scheduler` and DASK_WORKERS `dask worker`s (each under a nanny that restarts it if it
    dies), with the worker environment; returns once every worker has joined. They share this
    machine's cores, so each experiment's torch gets its share (OMP_NUM_THREADS)."""
    dask = str(Path(sys.executable).parent / "dask")
    log = stack.root / "dask-scheduler.log"
    scheduler = [dask, "scheduler", "--host", HOST, "--port", str(stack.dask_port), "--no-dashboard"]
    process = _start(scheduler, log)
    stack.pids["dask-scheduler"] = process.pid
    _wait_until(lambda: _listening(stack.dask_port), "the Dask scheduler", log, process)
    for n in range(1, DASK_WORKERS + 1):
        name = f"worker-{n}"
        folder = stack.root / f"dask-{name}"
        folder.mkdir()
        command = [dask, "worker", stack.scheduler_address, "--name", name, "--host", HOST, "--nthreads", "1"]
        command += ["--nworkers", "1", "--local-directory", str(folder), "--no-dashboard"]
        env = {**stack.worker_env(), "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // DASK_WORKERS))}
        env |= _absolute_mirror()
        stack.pids[f"dask-{name}"] = _start(command, stack.root / f"dask-{name}.log", env).pid
    from distributed import Client

    try:
        with Client(stack.scheduler_address, timeout="30s", set_as_default=False) as client:
            client.wait_for_workers(DASK_WORKERS, timeout=START_TIMEOUT_S)
    except (OSError, TimeoutError) as exc:
        raise TeamStackError(f"the Dask workers did not join ({exc}); see {stack.root}/dask-worker-*.log") from None


def _absolute_mirror() -> dict[str, str]:
    """A relative MNIST_MIRROR directory made absolute, as the stages resolve it: a worker runs each
    experiment in a scratch clone, where `../shared/mnist` would name nothing."""
    from vaebench.core.environment import mnist_mirror

    try:
        mirror = mnist_mirror()
    except StageError:  # not a directory here either: the worker's validate stage says so
        return {}
    return {"MNIST_MIRROR": str(mirror)} if isinstance(mirror, Path) else {}


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((HOST, port)) == 0


# The whole stack


def up(root: Path) -> Stack:
    if (root / "stack.json").exists():
        raise TeamStackError(f"a team stack is already in {root}: `vaebench team down` first")
    ports = {name: free_port() for name in ("pg_port", "s3_port", "mlflow_port", "dask_port")}
    stack = Stack(root=root.resolve(), **ports)
    try:
        start_postgres(stack)
        stack.save()
        start_s3(stack)
        stack.save()
        start_mlflow(stack)
        stack.save()
        start_dask(stack)
        stack.save()
    except (TeamStackError, subprocess.CalledProcessError) as exc:
        down(stack.root)
        if isinstance(exc, subprocess.CalledProcessError):
            stderr = (exc.stderr or b"").decode(errors="replace").strip()
            raise TeamStackError(f"{exc.cmd[0]} failed: {stderr}") from None
        raise
    return stack


def down(root: Path) -> None:
    """Stop every process of the stack and delete its data: the stack is for trying, not keeping."""
    try:
        stack = Stack.load(root)
    except TeamStackError:
        stack = Stack(root=root)
    stop_processes(list(stack.pids.values()))
    stop_postgres(stack)
    shutil.rmtree(root, ignore_errors=True)


def env_lines(stack: Stack) -> str:
    exports = "\n".join(f"export {k}={v}" for k, v in stack.worker_env().items())
    exports += f"\nexport DASK_SCHEDULER_ADDRESS={stack.scheduler_address}  # for `vaebench queue`"
    remote = "\n".join(" ".join(c) for c in stack.dvc_remote_commands())
    ui = f"# the UI: {stack.tracking_uri} (admin / {stack.admin_password})"
    return f"{exports}\n# in each clone, once:\n{remote}\n{ui}"
