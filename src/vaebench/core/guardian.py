"""A stage outlives no `dvc`: when the `dvc repro` (or `dvc exp run`) that started this stage dies,
the stage stops before it replaces any output, and its MLflow run ends KILLED.

DVC does not pass its own death on: killing `dvc` leaves the stage running, and without this
guard it would rename its outputs into place after DVC is gone, leaving dvc.lock stale. The guard
finds the nearest `dvc` process above this one in /proc (Linux; elsewhere it does nothing), then
a daemon thread checks it every half second and sends this process SIGTERM when it is gone;
`core.io.atomic_path` also checks it just before its renames.

It also says how a stage stops on a signal (`stoppable`): the first SIGTERM or Ctrl-C raises, so
that MLflow runs close and outputs stay as they were; later ones are ignored. A process group's
SIGTERM (`kill -- -PGID`, Dask cancelling an experiment) kills `dvc` too, and this guard then sends
a second SIGTERM, which must not cut the run's ending short. A signal that lands inside a store
write waits for the write (`uninterrupted`): an exception raised inside SQLAlchemy's write can
leave SQLite locked for this process, and the run RUNNING.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vaebench.core.errors import Terminated

POLL_S = 0.5
_watched: tuple[int, str] | None = None  # (pid, start time) of the dvc process this stage belongs to
_orphaned = False  # set when this guard, not a user, stopped the stage
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_held: list[int] | None = None  # inside `uninterrupted`: the stop signals that came meanwhile


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


def _stop(signum: int, frame: object) -> None:
    if _held is not None:
        _held.append(signum)
        return
    for each in STOP_SIGNALS:  # stopping now: later signals must not interrupt the stop
        signal.signal(each, signal.SIG_IGN)
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated(f"received signal {signum}")


@contextmanager
def stoppable() -> Iterator[None]:
    """SIGTERM raises Terminated and SIGINT KeyboardInterrupt in the block, the first one only.
    The previous handlers come back after it unless it was stopped (then the process is ending)."""
    previous = {each: signal.signal(each, _stop) for each in STOP_SIGNALS}
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is _stop:
            for each, handler in previous.items():
                signal.signal(each, handler)


@contextmanager
def uninterrupted() -> Iterator[None]:
    """A stop signal that comes during the block takes effect when it ends (not during an error)."""
    global _held
    if _held is not None or signal.getsignal(signal.SIGTERM) is not _stop:
        yield  # nested, or outside `stoppable`
        return
    _held = []
    try:
        yield
    finally:
        held, _held = _held, None
    if held and sys.exc_info()[0] is None:
        _stop(held[0], None)
