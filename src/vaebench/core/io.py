"""Atomic writes and readable read errors.

An interrupted stage leaves the previous output or none, never a truncated one: every output is
written beside its target and renamed over it at the end. DVC keeps the previous output in place
while a stage runs because every output in dvc.yaml is `persist: true`; this module does the rest.

Written by hand because the standard library has no atomic file or directory write and the one
package that had it (atomicwrites) is unmaintained; the recipe is the usual temp-then-rename, with
the writer's pid in the temporary's name so that the next run can remove what a killed one left.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

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
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success rename it over `target`.

    Works for a file or a whole directory: whatever the caller creates at the yielded path
    replaces `target` in one rename. On error the temporary is removed and `target` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in remove_stale_temporaries(target):
        print(f"removed {stale}, left by an earlier run that was killed")
    tmp_dir = tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent)
    tmp = Path(tmp_dir) / target.name
    try:
        yield tmp
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


def _out_pattern(template: str) -> re.Pattern[str]:
    """A dvc.yaml out (`models/vae/${item.arch}-${item.seed}`) as a regex for it and anything inside it."""
    parts = re.split(r"\$\{item\.(\w+)\}", template)
    regex = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[^/]+?)" for i, p in enumerate(parts))
    return re.compile(f"{regex}(?:/.*)?")


def producer(path: Path, dvc_yaml: Path = Path("dvc.yaml")) -> str:
    """The DVC stage that writes `path` (relative or absolute), read from dvc.yaml (a matrix stage as
    train@mlp-0), for the hint in an error message."""
    try:
        declared = yaml.safe_load(dvc_yaml.read_text())["stages"]
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError):
        return "<the stage that writes it>"
    outs = [
        (name, stage, _out_pattern(next(iter(out)) if isinstance(out, dict) else out))
        for name, stage in declared.items()
        for out in (o for key in ("outs", "metrics", "plots") for o in stage.get(key) or [])
    ]
    parts = Path(path).parts
    for start in range(len(parts)):  # the path as given, then without its leading folders
        tail = Path(*parts[start:]).as_posix()
        for name, stage, pattern in outs:
            if match := pattern.fullmatch(tail):
                keys = list(stage.get("matrix") or {})
                return f"{name}@{'-'.join(match[k] for k in keys)}" if keys else name
    return "<the stage that writes it>"


def unreadable(path: Path, reason: object) -> StageError:
    """One line naming a missing or corrupt input file and the two ways to get it back."""
    path = Path(path)
    what = "is missing" if isinstance(reason, FileNotFoundError) else f"is unreadable ({str(reason).splitlines()[0]})"
    return StageError(
        f"{path} {what}: restore it with `dvc checkout {path.parent if path.suffix else path}`"
        f" or rebuild it with `dvc repro -f {producer(path)}`"
    )


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise unreadable(path, exc) from None
