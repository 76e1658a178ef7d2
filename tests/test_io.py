"""Atomic writes: the target is replaced whole, or left exactly as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from vaebench.io import atomic_path, read_json, write_json


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
