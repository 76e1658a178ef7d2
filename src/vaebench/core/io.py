"""Atomic writes and readable read errors.

An interrupted stage leaves the previous output or none, never a truncated one: every output is
written beside its target and renamed over it at the end. DVC keeps the previous output in place
while a stage runs because every output in dvc.yaml is `persist: true`; this module does the rest.

Written by hand because the standard library has no atomic file or directory write and the one
package that had it (atomicwrites) is unmaintained; the recipe is the usual temp-then-rename, with
the writer's pid in the temporary's name so that the next run can remove what a killed one left.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vaebench.core import stop
from vaebench.core.errors import StageError


def process_alive(pid: int) -> bool:
    """Whether a process of this machine still runs (signal 0 checks without signalling)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


DISK_FULL = ("No space left on device", "unexpected pos", "file write failed")  # the OS's, torch.save's


def disk_full(exc: BaseException) -> bool:
    """ENOSPC as the OS or torch.save's zip writer report it, writing a file."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    return any(text in str(exc) for text in DISK_FULL)


def remove_stale_temporaries(target: Path) -> list[Path]:
    """Remove the temporaries of `target` whose writer is dead (SIGKILL, power loss); returns them."""
    removed = []
    for tmp in target.parent.glob(f".{target.name}.*.tmp"):
        pid = tmp.name.removeprefix(f".{target.name}.").split(".", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    return removed


@contextmanager
def _saying_where(target: Path) -> Iterator[None]:
    """A full disk while writing `target` becomes one line naming it (torch.save only says "unexpected pos")."""
    try:
        yield
    except Exception as exc:
        if not disk_full(exc):
            raise
        free = shutil.disk_usage(target.parent).free if target.parent.exists() else 0
        raise StageError(
            f"the disk is full: writing {target} failed ({free:,} bytes free on its file system); free space,"
            " then rerun"
        ) from None


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success rename it over `target`.

    Works for a file or a whole directory: whatever the caller creates at the yielded path
    replaces `target` in one rename. On error the temporary is removed and `target` is untouched.
    """
    target = Path(target)
    with _saying_where(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        for stale in remove_stale_temporaries(target):
            print(f"removed {stale}, left by an earlier run that was killed")
        tmp_dir = tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent)
    tmp = Path(tmp_dir) / target.name
    try:
        with _saying_where(target):
            yield tmp
            stop.check()  # a stage asked to stop, or whose dvc died, replaces nothing (dvc.lock would not know)
            if target.is_dir() and not target.is_symlink():
                old = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent))
                os.replace(target, old / target.name)  # two renames: the directory is never half-deleted
            os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        if target.is_dir():
            for leftover in target.parent.glob(f".{target.name}.{os.getpid()}.*.tmp"):
                shutil.rmtree(leftover, ignore_errors=True)


def write_text(target: str | Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def write_json(target: str | Path, data: Any, sort_keys: bool = True) -> None:
    write_text(target, json.dumps(data, indent=2, sort_keys=sort_keys) + "\n")


@dataclass(frozen=True)
class Producer:
    """The stage that writes a path, the output it is in, and whether DVC caches that output."""

    stage: str
    out: str
    cached: bool

    def restore_hint(self) -> str:
        """Commands that work as given: a cached output comes back from DVC's cache (--force: the
        broken copy counts as a modification), a `cache: false` one from git."""
        restore = f"dvc checkout --force {self.out}" if self.cached else f"git checkout -- {self.out}"
        return f"restore it with `{restore}` or rebuild it with `dvc repro -f {self.stage}`"


def producer(path: str | Path) -> Producer | None:
    """The DVC output holding `path` and the stage that writes it (a matrix stage as train@mlp-0), as
    DVC's own index says, for the hint in an error message; None outside a DVC repository or an output."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo() as repo:
            out, *_ = repo.find_outs_by_path(str(Path(path).absolute()), strict=False)
    except (DvcException, OSError):
        return None
    return Producer(out.stage.addressing, str(out.def_path), out.use_cache)


def unreadable(path: Path, reason: object) -> StageError:
    """One line naming a missing or corrupt input file and the two ways to get it back."""
    path = Path(path)
    what = "is missing" if isinstance(reason, FileNotFoundError) else f"is unreadable ({str(reason).splitlines()[0]})"
    source = producer(path)
    hint = source.restore_hint() if source else "restore it from where it came from"
    return StageError(f"{path} {what}: {hint}")


def load_tensors(path: str | Path, device: Any = "cpu") -> Any:
    """torch.load of plain tensor data only (`weights_only`): a file that holds other pickled
    objects is refused unread, never retried without the safeguard."""
    import pickle

    import torch

    path = Path(path)
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError:
        source = producer(path)
        hint = source.restore_hint() if source else "use a copy you trust"
        raise StageError(
            f"{path} is not plain tensor data (it holds pickled objects, which can run code): it was not loaded; {hint}"
        ) from None
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        raise unreadable(path, exc) from None


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise unreadable(path, exc) from None
