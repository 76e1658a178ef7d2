"""The team stack's bookkeeping, without starting it (tests/test_team_e2e.py starts it)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from vaebench.ops.team import Stack, TeamStackError, env_lines


def test_stack_state_round_trips_and_is_private(tmp_path: Path) -> None:
    stack = Stack(root=tmp_path / ".team", pg_port=5432, s3_port=5001, mlflow_port=5002, pids={"s3": 12})
    stack.save()
    assert stat.S_IMODE((stack.root / "stack.json").stat().st_mode) == 0o600  # it holds passwords
    assert Stack.load(stack.root) == stack


def test_no_stack_says_how_to_start_one(tmp_path: Path) -> None:
    with pytest.raises(TeamStackError, match="vaebench team up"):
        Stack.load(tmp_path)


def test_a_worker_gets_two_uris_and_two_credentials(tmp_path: Path) -> None:
    stack = Stack(root=tmp_path, pg_port=1, s3_port=2, mlflow_port=3)
    lines = env_lines(stack)
    assert "export MLFLOW_TRACKING_URI=http://127.0.0.1:3" in lines
    assert f"export MLFLOW_TRACKING_PASSWORD={stack.worker_password}" in lines
    assert f"export AWS_SECRET_ACCESS_KEY={stack.s3_secret}" in lines
    assert "endpointurl http://127.0.0.1:2" in lines and stack.pg_password not in lines  # the database stays private


def test_the_workers_get_a_relative_mnist_mirror_as_an_absolute_path(tmp_path, monkeypatch) -> None:
    """CI's `MNIST_MIRROR=../shared/mnist` names nothing from a worker's scratch clone."""
    from vaebench.ops.team import _absolute_mirror

    (tmp_path / "shared" / "mnist").mkdir(parents=True)
    (tmp_path / "repo").mkdir()
    monkeypatch.chdir(tmp_path / "repo")
    monkeypatch.setenv("MNIST_MIRROR", "../shared/mnist")
    assert _absolute_mirror() == {"MNIST_MIRROR": str(tmp_path / "shared" / "mnist")}
    monkeypatch.setenv("MNIST_MIRROR", "https://example.invalid/mnist/")
    assert _absolute_mirror() == {}
