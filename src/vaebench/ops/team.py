"""The team stack on loopback: what a team runs when it outgrows one machine, started in one command.

- PostgreSQL (Debian's `postgresql`): MLflow's runs, and the users of its basic-auth app;
- `mlflow server --app-name basic-auth` on it, proxying artifacts to its own disk, so the only way
  to an artifact is through MLflow's credentials;
- the DVC remote: `rclone serve webdav` (Debian's `rclone`) on a folder, with a user and password;
- a Dask cluster, the real `dask scheduler` and two `dask worker`s of one thread each (each in its
  own directory, with that environment), for `vaebench queue --dask`, over mutual TLS: only a holder
  of a certificate signed by the stack's own CA (`vaebench.ops.tls`) reaches it.

Every part keeps its data on disk under `.team/` (a restart of any part loses nothing) and asks for
credentials. `vaebench team up` starts what is down and keeps what is there; `team down` stops the
processes and keeps the data; only `team purge` deletes it. In production the same roles are a
managed PostgreSQL, S3 (MLflow's `--artifacts-destination s3://...`, DVC's `s3://` remote) and a
Dask deployment (dask-jobqueue, dask-kubernetes) with the same TLS files.

Secrets live in files only their owner reads (0600): `stack.json` (ports, pids, passwords),
`pgpass` (libpq's, so no password is on a command line), `basic_auth.ini`, the TLS keys, and
`dvc-config/config`, the DVC remote's credentials that workers (and this machine's clones) read
through DVC_GLOBAL_CONFIG_DIR. Everything binds to 127.0.0.1. PostgreSQL refuses to run as root, so
as root its commands run as the `postgres` user that Debian's package creates.
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
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vaebench.core.errors import StageError
from vaebench.ops.tls import Certificates, make_certificates, write_private

HOST = "127.0.0.1"
DVC_REMOTE = "team"  # the DVC remote's name in each clone and in the workers' DVC config
WORKER_USER = "worker"
START_TIMEOUT_S = 60
DATA = ("postgres", "artifacts", "dvc-remote", "tls", "dvc-config")  # what `purge` deletes, with the logs


class TeamStackError(StageError):
    """A part of the stack did not start; names it and its log."""


def _secret() -> str:
    """128 random bits in hex: a urlsafe token may begin with `-`, which every CLI reads as an option."""
    return secrets.token_hex(16)


@dataclass
class Stack:
    """Where the stack lives and how to reach it: written to .team/stack.json by `up`."""

    root: Path
    pg_port: int = 0
    dav_port: int = 0
    mlflow_port: int = 0
    dask_port: int = 0
    pg_password: str = field(default_factory=_secret)
    admin_password: str = field(default_factory=_secret)
    worker_password: str = field(default_factory=_secret)
    dav_password: str = field(default_factory=_secret)
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def tracking_uri(self) -> str:
        return f"http://{HOST}:{self.mlflow_port}"

    @property
    def scheduler_address(self) -> str:
        return f"tls://{HOST}:{self.dask_port}"

    @property
    def certificates(self) -> Certificates:
        return Certificates(self.root / "tls")

    @property
    def dvc_remote_url(self) -> str:
        return f"webdav://{HOST}:{self.dav_port}/vaebench"

    @property
    def dvc_config_dir(self) -> Path:
        """A DVC global config folder holding only the remote's credentials (DVC_GLOBAL_CONFIG_DIR)."""
        return self.root / "dvc-config"

    @property
    def pgpass(self) -> Path:
        return self.root / "pgpass"

    def database_uri(self, database: str) -> str:
        """Without the password, which libpq reads from `pgpass` (PGPASSFILE): a URI ends up on
        `mlflow server`'s command line, which every local user can read in `ps`."""
        return f"postgresql://mlflow@{HOST}:{self.pg_port}/{database}"

    def worker_env(self) -> dict[str, str]:
        """What a worker exports: the tracking server with its user, and where DVC finds the
        remote's credentials."""
        return {
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "MLFLOW_TRACKING_USERNAME": WORKER_USER,
            "MLFLOW_TRACKING_PASSWORD": self.worker_password,
            "DVC_GLOBAL_CONFIG_DIR": str(self.dvc_config_dir),
        }

    def client_env(self) -> dict[str, str]:
        """What a colleague exports to drain the queue onto the cluster: a worker's, the scheduler's
        address and where the client certificate is."""
        return {**self.worker_env(), "DASK_SCHEDULER_ADDRESS": self.scheduler_address, **self.certificates.client_env()}

    def dvc_remote_commands(self) -> list[list[str]]:
        """How a clone points its default DVC remote at the stack (the credentials are in
        DVC_GLOBAL_CONFIG_DIR, not on a command line)."""
        return [["dvc", "remote", "add", "--local", "--force", "-d", DVC_REMOTE, self.dvc_remote_url]]

    def save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_private(self.root / "stack.json", json.dumps({**asdict(self), "root": str(self.root)}, indent=2))

    @classmethod
    def load(cls, root: Path) -> Stack:
        try:
            data = json.loads((root / "stack.json").read_text())
        except (OSError, ValueError) as exc:
            raise TeamStackError(f"no team stack in {root} ({exc}); start one with `vaebench team up`") from None
        return cls(**{**data, "root": Path(data["root"])})


def _private_folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


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


def _asks_for_credentials(url: str) -> bool:
    """The server answers, and with 401 to a request without credentials."""
    try:
        urllib.request.urlopen(url, timeout=2).close()
    except urllib.error.HTTPError as exc:
        return exc.code == 401
    except OSError:
        return False
    return False


def _start(command: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, start_new_session=True
        )


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.killpg(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


# PostgreSQL


def postgres_bin() -> Path:
    """The newest installed PostgreSQL's binaries (Debian keeps them off PATH)."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if not versions:
        raise TeamStackError("PostgreSQL is not installed: `apt-get install -y postgresql` (Debian's package)")
    return versions[-1].parent


def _as_postgres_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _pg_ctl(stack: Stack, *args: str) -> subprocess.CompletedProcess:
    command = [str(postgres_bin() / "pg_ctl"), "-D", str(stack.root / "postgres"), *args]
    return subprocess.run(_as_postgres_user(command), capture_output=True)


def start_postgres(stack: Stack) -> None:
    """A new cluster with MLflow's two databases on first start; afterwards the same one, started."""
    data, log, bin_dir = stack.root / "postgres", stack.root / "postgres.log", postgres_bin()
    fresh = not data.exists()
    if fresh:
        _init_postgres(stack, data)
    if _pg_ctl(stack, "status").returncode != 0:
        options = f"-h {HOST} -p {stack.pg_port} -k {data}"  # the unix socket in the data folder, not /var/run
        pg_ctl = [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "start"]
        subprocess.run(_as_postgres_user(pg_ctl), check=True, capture_output=True)
    if fresh:
        env = {**os.environ, "PGPASSFILE": str(stack.pgpass)}
        for database in ("mlflow", "mlflow_auth"):
            createdb = [str(bin_dir / "createdb"), "-h", HOST, "-p", str(stack.pg_port), "-U", "mlflow", database]
            subprocess.run(createdb, check=True, capture_output=True, env=env)


def _init_postgres(stack: Stack, data: Path) -> None:
    pwfile = stack.root / "pgpass.tmp"
    data.mkdir(parents=True)
    write_private(pwfile, stack.pg_password + "\n")
    write_private(stack.pgpass, f"{HOST}:{stack.pg_port}:*:mlflow:{stack.pg_password}\n")
    if os.geteuid() == 0:
        shutil.chown(data, "postgres")
        shutil.chown(pwfile, "postgres")
        shutil.chown(stack.root, "postgres")  # the server writes its log here
    initdb = [str(postgres_bin() / "initdb"), "-D", str(data), "-U", "mlflow", f"--pwfile={pwfile}"]
    try:
        subprocess.run(_as_postgres_user([*initdb, "-A", "scram-sha-256"]), check=True, capture_output=True)
    finally:
        pwfile.unlink()


def stop_postgres(stack: Stack) -> None:
    if (stack.root / "postgres" / "postmaster.pid").exists():
        _pg_ctl(stack, "-m", "fast", "-w", "stop")


# The DVC remote: WebDAV on a folder (rclone)


def start_webdav(stack: Stack) -> None:
    """`rclone serve webdav` on `dvc-remote/`, its user and password from the environment (rclone
    reads every flag as RCLONE_<FLAG>), not the command line; and the DVC config that holds them."""
    rclone = shutil.which("rclone")
    if rclone is None:
        raise TeamStackError("rclone is not installed: `apt-get install -y rclone` (Debian's package)")
    (_private_folder(stack.root / "dvc-remote") / "vaebench").mkdir(exist_ok=True)
    config = _private_folder(stack.dvc_config_dir) / "config"
    write_private(
        config, f"['remote \"{DVC_REMOTE}\"']\n    user = {WORKER_USER}\n    password = {stack.dav_password}\n"
    )
    log = stack.root / "dvc-remote.log"
    command = [rclone, "serve", "webdav", str(stack.root / "dvc-remote"), "--addr", f"{HOST}:{stack.dav_port}"]
    env = {"RCLONE_USER": WORKER_USER, "RCLONE_PASS": stack.dav_password, "RCLONE_CONFIG": os.devnull}
    process = _start(command, log, env)
    stack.pids["dvc-remote"] = process.pid
    _wait_until(lambda: _asks_for_credentials(f"http://{HOST}:{stack.dav_port}/"), "the DVC remote", log, process)


# The MLflow server


def start_mlflow(stack: Stack) -> None:
    """`mlflow server` with basic-auth on PostgreSQL, artifacts proxied to `artifacts/`."""
    config = stack.root / "basic_auth.ini"
    write_private(
        config,
        "[mlflow]\ndefault_permission = EDIT\n"
        f"database_uri = {stack.database_uri('mlflow_auth')}\n"
        f"admin_username = admin\nadmin_password = {stack.admin_password}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # MLflow's own credential cache: without it every request (each epoch's metrics, each
        # artifact) pays a scrypt check, by design tens of milliseconds of the server's CPU. Only
        # successful checks are kept, and a changed password reaches every server process within
        # the minute.
        "auth_cache_ttl_seconds = 60\n",
    )
    _private_folder(stack.root / "artifacts")
    env = {
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "PGPASSFILE": str(stack.pgpass),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": _secret(),
        # MLflow 3's GenAI job runner (eight huey consumer processes), which nothing here uses
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    log = stack.root / "mlflow.log"
    command = ["mlflow", "server", "--app-name", "basic-auth", "--host", HOST, "--port", str(stack.mlflow_port)]
    command += ["--backend-store-uri", stack.database_uri("mlflow")]
    command += ["--artifacts-destination", str(stack.root / "artifacts"), "--workers", "2"]
    process = _start(command, log, env)
    stack.pids["mlflow"] = process.pid
    _wait_until(lambda: http_ok(f"{stack.tracking_uri}/health"), "the MLflow server", log, process, timeout=120)
    create_worker_user(stack)


def create_worker_user(stack: Stack) -> None:
    """The user workers log as (once: it lives in PostGreSQL); `default_permission = EDIT` lets
    every user write to every experiment."""
    from mlflow.exceptions import MlflowException
    from mlflow.server.auth.client import AuthServiceClient

    admin = {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": stack.admin_password}
    saved = {name: os.environ.get(name) for name in admin}  # the caller's own, if any
    os.environ |= admin
    try:
        AuthServiceClient(stack.tracking_uri).create_user(WORKER_USER, stack.worker_password)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


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
    dies), with the worker environment; returns once every worker has joined. Starts only what is
    down: workers exit when their scheduler goes, and come back with it. The scheduler hands a worker
    thread one task at a time (worker-saturation 1.0; Dask's default 1.1 queues a second experiment,
    an hour-long task, behind a busy thread while another worker idles). They share this machine's
    cores, so each experiment's torch gets its share (OMP_NUM_THREADS)."""
    dask = str(Path(sys.executable).parent / "dask")
    tls = make_certificates(stack.certificates.folder).cli_args()
    if not _listening(stack.dask_port):
        log = stack.root / "dask-scheduler.log"
        scheduler = [dask, "scheduler", "--protocol", "tls", "--host", HOST, "--port", str(stack.dask_port), *tls]
        process = _start([*scheduler, "--no-dashboard"], log, {"DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION": "1.0"})
        stack.pids["dask-scheduler"] = process.pid
        _wait_until(lambda: _listening(stack.dask_port), "the Dask scheduler", log, process)
    for n in range(1, DASK_WORKERS + 1):
        name = f"worker-{n}"
        if _alive(stack.pids.get(f"dask-{name}")):
            continue
        folder = stack.root / f"dask-{name}"
        folder.mkdir(exist_ok=True)
        command = [dask, "worker", stack.scheduler_address, "--name", name, "--host", HOST, "--nthreads", "1"]
        command += ["--nworkers", "1", "--local-directory", str(folder), "--no-dashboard", *tls]
        env = {**stack.worker_env(), "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // DASK_WORKERS))}
        env |= _absolute_mirror()
        stack.pids[f"dask-{name}"] = _start(command, stack.root / f"dask-{name}.log", env).pid
    from distributed import Client

    try:
        security = stack.certificates.security()
        with Client(stack.scheduler_address, timeout="30s", security=security, set_as_default=False) as client:
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
    """Start the stack in `root`, or what of it is down: the same ports, passwords and data."""
    if (root / "stack.json").exists():
        stack = Stack.load(root)
    else:
        ports = {name: free_port() for name in ("pg_port", "dav_port", "mlflow_port", "dask_port")}
        stack = Stack(root=_private_folder(root).resolve(), **ports)
    parts = (
        ("postgres", start_postgres, lambda: _pg_running(stack)),
        ("dvc-remote", start_webdav, lambda: _listening(stack.dav_port)),
        ("mlflow", start_mlflow, lambda: _listening(stack.mlflow_port)),
        ("dask", start_dask, lambda: False),  # start_dask checks each process itself
    )
    try:
        for _, start, running in parts:
            if not running():
                start(stack)
                stack.save()
    except (TeamStackError, subprocess.CalledProcessError) as exc:
        stack.save()
        if isinstance(exc, subprocess.CalledProcessError):
            stderr = (exc.stderr or b"").decode(errors="replace").strip()
            raise TeamStackError(f"{exc.cmd[0]} failed: {stderr}") from None
        raise
    return stack


def _pg_running(stack: Stack) -> bool:
    return (stack.root / "postgres").exists() and _pg_ctl(stack, "status").returncode == 0


def status(root: Path) -> list[tuple[str, str, bool, Path]]:
    """Each part of the stack as (part, address, up, log), for `vaebench team status`: when a stage
    reports MLflow's 500s, this says whether it is the tracking server or its database that is down."""
    stack = Stack.load(root)
    log = stack.root
    parts = [
        ("PostgreSQL (MLflow's runs and users)", f"{HOST}:{stack.pg_port}", _pg_running(stack), log / "postgres.log"),
        ("DVC remote (rclone serve webdav)", stack.dvc_remote_url, _listening(stack.dav_port), log / "dvc-remote.log"),
        ("MLflow tracking server", stack.tracking_uri, _listening(stack.mlflow_port), log / "mlflow.log"),
        ("Dask scheduler", stack.scheduler_address, _listening(stack.dask_port), log / "dask-scheduler.log"),
    ]
    for n in range(1, DASK_WORKERS + 1):
        pid = stack.pids.get(f"dask-worker-{n}")
        parts.append((f"Dask worker-{n}", f"pid {pid}", _alive(pid), log / f"dask-worker-{n}.log"))
    return parts


def down(root: Path) -> None:
    """Stop every process of the stack; its data stays for the next `up`."""
    try:
        stack = Stack.load(root)
    except TeamStackError:
        return
    stop_processes([pid for pid in stack.pids.values() if _alive(pid)])
    stop_postgres(stack)


def purge(root: Path) -> list[str]:
    """Stop the stack and delete its folder: every run, artifact, DVC object, password and key.
    Returns what was deleted, for the user to read."""
    down(root)
    if not root.exists():
        return []
    deleted = [f"{root / name}/" for name in DATA if (root / name).exists()]
    shutil.rmtree(root)
    return [*deleted, f"{root}/ (logs, stack.json with its passwords)"]


def next_steps(stack: Stack) -> str:
    """What `team up` prints: the commands, never a password (terminals and CI logs keep output)."""
    exports = "eval \"$(vaebench team env | grep '^export')\"   # the exports, the MLflow user's password among them"
    ui = f"# the UI: {stack.tracking_uri} (user admin; `vaebench team env` prints its password)"
    return f"{exports}\n{_remote_lines(stack)}\n{ui}"


def env_lines(stack: Stack) -> str:
    """What `team env` prints for `eval`: the exports with their secrets, and the UI's login."""
    exports = "\n".join(f"export {k}={v}" for k, v in stack.client_env().items())
    return f"{exports}\n{_remote_lines(stack)}\n# the UI: {stack.tracking_uri} (admin / {stack.admin_password})"


def _remote_lines(stack: Stack) -> str:
    return "# in each clone, once:\n" + "\n".join(" ".join(c) for c in stack.dvc_remote_commands())
