"""git and DVC as subprocesses, for both sides of the drain: output to a log, a failure as one line.

A worker's long commands die with the worker (Linux's PR_SET_PDEATHSIG): Dask restarts a killed
worker's tasks elsewhere, and the dead attempt's `dvc exp run` must not run on beside the new one.
Its stages then notice their `dvc` is gone (core.stop) and end their MLflow runs FAILED.
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from vaebench.core.errors import StageError

PR_SET_PDEATHSIG = 1
POLL_S = 1.0
LOCKED = "Unable to acquire lock"
# Names of settings and environment variables that hold a credential (DVC's remote options such
# as secret_access_key, password, keyfile, sas_token; MLFLOW_TRACKING_PASSWORD, AWS_SECRET_ACCESS_KEY).
CREDENTIAL = re.compile(r"secret|password|passphrase|token|credential|key|sas|auth", re.IGNORECASE)
REDACTED = "[redacted]"


def redact(text: str, environ: dict[str, str] | None = None) -> str:
    """`text` with the value of every credential in the environment replaced: a log leaves the
    machine it was written on (a worker's comes back to the client's .dvc/tmp)."""
    environ = os.environ if environ is None else environ
    secrets = sorted((v for k, v in environ.items() if CREDENTIAL.search(k) and len(v) >= 6), key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


class CommandFailed(StageError):
    """A command exited non-zero; the message is its most telling line."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"{step}: {message}")
        self.step = step


class Stopped(Exception):
    """The command was stopped because its task was cancelled (the client went away)."""


def tool_path() -> dict[str, str]:
    """This python's bin folder first on PATH: `dvc` and the stages' `python` are this environment's."""
    return {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def telling_line(output: str) -> str:
    """The line that says what went wrong: a push the git remote refused, with its reason (a
    hook's `remote:` lines); a stage's `error:` line; DVC's last ERROR; git's first `fatal:` (its
    later lines are advice); else the last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    rejected = [line for line in lines if line.startswith(("! [remote rejected]", "! [rejected]"))]
    if rejected:
        reason = " ".join(line.removeprefix("remote:").strip() for line in lines if line.startswith("remote:"))
        return f"the git remote refused the push: {reason or rejected[0]}"
    stage_errors = [n for n, line in enumerate(lines) if line.startswith("error:")]
    if stage_errors:  # a stage's one line, or its heading and first item ("params.yaml is invalid:")
        n = stage_errors[0]
        return " ".join(lines[n : n + 2]) if lines[n].endswith(":") and n + 1 < len(lines) else lines[n]
    dvc_errors = [line for line in lines if line.startswith("ERROR:")]
    fatal = [line for line in lines if line.startswith("fatal:")][:1]
    return (dvc_errors or fatal or lines or ["no output"])[-1]


def run_logged(
    step: str,
    command: list[str],
    cwd: Path,
    log: Path,
    should_stop: Callable[[], bool] = lambda: False,
    env: dict[str, str] | None = None,
) -> str:
    """Run `command` (with `env` added to the environment) with its output appended to `log`; its
    output, or CommandFailed naming `step`.

    Polls `should_stop` while it runs; when it turns true, the command's process group gets SIGTERM
    (stages end their MLflow runs KILLED) and Stopped is raised.
    """
    start = log.stat().st_size if log.exists() else 0
    with log.open("a") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        process = subprocess.Popen(
            command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **tool_path(), **(env or {})},
            start_new_session=True, preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )  # fmt: skip
        while not _ended(process):
            if should_stop():
                os.killpg(process.pid, signal.SIGTERM)
                process.wait()
                raise Stopped(step)
    with log.open() as written:
        written.seek(start)
        output = written.read()
    if process.returncode != 0:
        raise CommandFailed(step, telling_line(output))
    return output


def _ended(process: subprocess.Popen) -> bool:
    """Whether `process` ends within POLL_S: returns as soon as it does, so a step's time is its own."""
    try:
        process.wait(timeout=POLL_S)
    except subprocess.TimeoutExpired:
        return False
    return True


def run_quiet(command: list[str], cwd: Path, retry_locked_s: float = 0) -> str:
    """Run a short command; its stdout, or CommandFailed. Retries while another DVC command holds
    the repository's lock, for up to `retry_locked_s` seconds."""
    deadline = time.monotonic() + retry_locked_s
    while True:
        result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env={**os.environ, **tool_path()})
        if result.returncode == 0:
            return result.stdout
        if LOCKED in result.stderr + result.stdout and time.monotonic() < deadline:
            time.sleep(2)
            continue
        raise CommandFailed(" ".join(command[:3]), telling_line(result.stderr + result.stdout))


@contextmanager
def only_one(lock: Path, who: str, refusal: str) -> Iterator[None]:
    """Run the block only if no other process holds `lock`; else StageError(`refusal`, with {holder}
    naming who holds it). The lock is the kernel's (flock), so it goes with its process however that
    ends; a file beside it names the holder."""
    from filelock import FileLock, Timeout

    lock.parent.mkdir(parents=True, exist_ok=True)
    owner, held = lock.with_suffix(".owner"), FileLock(lock, timeout=0)
    try:
        held.acquire()
    except Timeout:
        holder = owner.read_text().strip() if owner.exists() else "another process"
        raise StageError(refusal.format(holder=holder)) from None
    try:
        owner.write_text(f"{who} (pid {os.getpid()}, since {time.strftime('%H:%M:%S')})\n")
        yield
    finally:
        owner.unlink(missing_ok=True)
        held.release()
