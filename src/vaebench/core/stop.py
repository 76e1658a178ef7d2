"""Stopping a stage is an event: a signal (Ctrl-C, SIGTERM) or the death of the `dvc` that runs the
stage only sets a flag, and the stage stops where it checks it (`check`): the training loop at its
sync points, an atomic write before its rename, an MLflow run before it closes. Nothing is cut off in
the middle of a write, so outputs stay as they were and a run ends KILLED (a user's stop) or FAILED
with a note (its `dvc` died), never RUNNING.

DVC does not pass its own death on: killing `dvc` alone leaves the stage running, and a stage that
went on would rename its outputs into place after DVC is gone, leaving dvc.lock stale. At start the
stage notes the nearest `dvc` process above it (`watch_dvc`, from /proc on Linux; elsewhere nothing),
and `check` asks whether that process still lives.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vaebench.core.errors import Terminated

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_signal: int | None = None  # the first stop signal received inside `deferred`
_dvc: tuple[int, str] | None = None  # (pid, start time) of the dvc process this stage belongs to


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat's fields after the command name (state, ppid, ...), or None if the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def _is_dvc(pid: int) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return False
    return any(Path(a).name == "dvc" for a in argv[:2]) or argv[1:3] == ["-m", "dvc"]


def dvc_ancestor() -> tuple[int, str] | None:
    """(pid, start time) of the nearest `dvc` process above this one; None when none is found."""
    pid = os.getppid()
    while pid > 1:
        fields = _stat(pid)
        if fields is None:
            return None
        if _is_dvc(pid):
            return pid, fields[19]  # field 22 of stat: the start time, which a reused pid does not share
        pid = int(fields[1])
    return None


def watch_dvc() -> None:
    """Note the dvc process above this stage, if DVC runs it (DVC sets DVC_STAGE for its stages)."""
    global _dvc
    if _dvc is None and os.environ.get("DVC_STAGE"):
        _dvc = dvc_ancestor()


def orphaned() -> bool:
    """Whether the dvc process that ran this stage has died (its pid gone, reused or a zombie)."""
    if _dvc is None:
        return False
    fields = _stat(_dvc[0])
    return fields is None or fields[19] != _dvc[1] or fields[0] == "Z"


def orphaned_alone() -> bool:
    """Whether the stage stops because its dvc died and no one sent a stop signal (a process group's
    SIGTERM, `kill -- -PGID` or Dask cancelling an experiment, kills dvc too: that is a user's stop)."""
    return _signal is None and orphaned()


def _request(signum: int, frame: object) -> None:
    global _signal
    if _signal is None:
        _signal = signum


@contextmanager
def deferred() -> Iterator[None]:
    """Inside the block, SIGTERM and SIGINT only request a stop, which `check` turns into an exception."""
    previous = {each: signal.signal(each, _request) for each in STOP_SIGNALS}
    try:
        yield
    finally:
        for each, handler in previous.items():
            signal.signal(each, handler)


def check() -> None:
    """Raise KeyboardInterrupt (Ctrl-C) or Terminated (SIGTERM, or the stage's dvc died) if the stage must stop."""
    if _signal == signal.SIGINT:
        raise KeyboardInterrupt
    if _signal is not None:
        raise Terminated(f"received signal {_signal}")
    if orphaned():
        raise Terminated(f"the dvc process {_dvc[0]} that ran this stage is gone")
