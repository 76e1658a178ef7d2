"""Atomic writes: the target is replaced whole, or left exactly as it was."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from vaebench.core.errors import StageError
from vaebench.core.io import atomic_path, read_json, write_json, write_text


def test_failed_write_leaves_previous_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text('{"v": 2, "trunc')
        raise RuntimeError("interrupted mid-write")
    assert read_json(target) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_directory_is_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "models"
    target.mkdir()
    (target / "old.pt").write_text("old")
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "new.pt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.pt"]
    assert [p.name for p in tmp_path.iterdir()] == ["models"]


def test_a_killed_writers_temporary_is_removed_by_the_next_write(tmp_path: Path) -> None:
    """SIGKILL skips every cleanup: the next atomic write of the same target removes what is left."""
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".model.{dead.pid}.abc123.tmp"
    (stale / "model").mkdir(parents=True)
    mine = tmp_path / f".model.{os.getpid()}.live.tmp"  # a writer still alive is left alone
    mine.mkdir()
    write_text(tmp_path / "model", "new")
    assert not stale.exists() and mine.exists()
    assert (tmp_path / "model").read_text() == "new"


def test_a_missing_or_corrupt_input_names_the_file_and_the_fix(dvc_project: Path) -> None:
    tmp_path = dvc_project
    run_json = tmp_path / "models" / "vae" / "mlp-0" / "run.json"  # inside a train stage's output
    run_json.parent.mkdir(parents=True)
    run_json.write_text("{truncated")
    fix = "restore it with `dvc checkout --force models/vae/mlp-0` or rebuild it with `dvc repro -f train@mlp-0`"
    with pytest.raises(StageError, match=rf"run\.json is unreadable \(.*\): {re.escape(fix)}$"):
        read_json(run_json)
    curve = tmp_path / "metrics" / "eval" / "cnn-2.json"  # cache: false, so git has it, not DVC's cache
    with pytest.raises(StageError, match=re.escape("`git checkout -- metrics/eval/cnn-2.json` or rebuild it with")):
        read_json(curve)
    with pytest.raises(StageError, match=r"missing\.json is missing"):
        read_json(tmp_path / "missing.json")


def test_outputs_of_dropped_seeds_are_found_and_nothing_else(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vaebench.core import paths

    monkeypatch.chdir(tmp_path)
    for name in ("mlp-0", "mlp-2", "cnn-2"):
        (paths.VAES / name).mkdir(parents=True)
    for folder, suffix in ((paths.TRAIN_CURVES, ".csv"), (paths.VAL, ".json"), (paths.EVAL, ".json")):
        folder.mkdir(parents=True)
        for name in ("mlp-0", "mlp-2", "notes-x", "other-3"):
            (folder / f"{name}{suffix}").write_text("")
    stale = paths.stale_run_outputs(["mlp"], [0, 1], known_archs=["mlp", "cnn"])
    assert [str(p) for p in stale] == [
        "models/vae/cnn-2", "models/vae/mlp-2", "metrics/train/mlp-2.csv", "metrics/val/mlp-2.json",
        "metrics/eval/mlp-2.json",
    ]  # fmt: skip
