"""A stage outlives no `dvc`: when the `dvc repro` (or `dvc exp run`) that started this stage dies,
the stage stops before it replaces any output, and its MLflow run ends KILLED.

DVC does not pass its own death on: killing `dvc` leaves the stage running, and without this
guard it would rename its outputs into place after DVC is gone, leaving dvc.lock stale. The guard
finds the nearest `dvc` process above this one in /proc (Linux; elsewhere it does nothing), then
a daemon thread checks it every half second and sends this process SIGTERM when it is gone;
`core.io.atomic_path` also checks it just before its renames.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from vaebench.core.errors import Terminated

POLL_S = 0.5
_watched: tuple[int, str] | None = None  # (pid, start time) of the dvc process this stage belongs to
_orphaned = False  # set when this guard, not a user, stopped the stage


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat's fields after the command name (ppid first), or None if the process is gone."""
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


def dvc_is_gone() -> bool:
    if _watched is None:
        return False
    fields = _stat(_watched[0])
    return fields is None or fields[19] != _watched[1] or fields[0] == "Z"


def check_dvc_alive() -> None:
    """Raise Terminated if the dvc process this stage belongs to has died (before replacing outputs)."""
    if dvc_is_gone():
        raise Terminated(f"the dvc process {_watched[0]} that ran this stage is gone")


def _watch() -> None:
    global _orphaned
    while not dvc_is_gone():
        time.sleep(POLL_S)
    _orphaned = True
    os.kill(os.getpid(), signal.SIGTERM)


def orphaned() -> bool:
    """Whether the guard stopped this stage because its dvc had died (not a signal from a user)."""
    return _orphaned


def guard_against_orphaning() -> None:
    """Start watching the dvc process above this one, if there is one (DVC sets DVC_STAGE for stages)."""
    global _watched
    if _watched is not None or not os.environ.get("DVC_STAGE"):
        return
    _watched = dvc_ancestor()
    if _watched is not None:
        threading.Thread(target=_watch, name="dvc-guardian", daemon=True).start()
