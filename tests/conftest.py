"""Shared fixtures: the MNIST mirror from the environment, tiny MNIST files in the real format, the
team stack, and under pytest-xdist each worker's share of the CPU threads."""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

if workers := int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0")):
    # Workers share the cores: each takes its part, here and in every process its tests start
    # (torch reads OMP_NUM_THREADS), so two trainings side by side do not fight over threads.
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Under `--dist loadgroup` every `xdist_group` test must carry its group in its node id, or
    xdist spreads the group over the workers and each builds the session's project again."""
    if getattr(session.config.option, "loadgroup", False):
        ungrouped = [i.nodeid for i in session.items if i.get_closest_marker("xdist_group") and "@" not in i.nodeid]
        if ungrouped:
            raise pytest.UsageError(f"pytest-xdist did not group {ungrouped[0]} (pytest 9.2 breaks loadgroup)")


@pytest.fixture
def dvc_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working directory in a DVC repository with this project's dvc.yaml (no git, no outputs):
    where DVC's own index names the stage that writes a path, as in error messages' hints."""
    from e2e import REPO

    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".dvc" / "config").write_text("[core]\n    no_scm = true\n")
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy2(REPO / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def mnist_mirror() -> Path:
    """The directory named by MNIST_MIRROR (CI sets it to ../shared/mnist)."""
    mirror = os.environ.get("MNIST_MIRROR")
    if not mirror or not Path(mirror).is_dir():
        pytest.skip("MNIST_MIRROR is not set to a directory holding the four MNIST .gz files")
    return Path(mirror).resolve()


def write_idx(path: Path, data: torch.Tensor) -> None:
    """An IDX file (the format of the MNIST files): magic, dims, then the uint8 values."""
    header = struct.pack(">HBB", 0, 0x08, data.dim()) + struct.pack(f">{data.dim()}I", *data.shape)
    path.write_bytes(header + data.numpy().tobytes())


@pytest.fixture
def tiny_mnist_root(tmp_path: Path) -> Path:
    """torchvision's extracted MNIST layout with 300 training and 50 test images of random pixels."""
    raw = tmp_path / "raw" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    generator = torch.Generator().manual_seed(0)
    for prefix, n in (("train", 300), ("t10k", 50)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", torch.randint(0, 256, (n, 28, 28), generator=generator).byte())
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", (torch.arange(n) % 10).byte())
    return tmp_path / "raw"


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory, mnist_mirror: Path) -> Path:
    """One copy of this project in a fresh git repository, shared by the end-to-end modules."""
    from e2e import make_project

    return make_project(tmp_path_factory.mktemp("vaebench"), mnist_mirror)


@pytest.fixture(scope="session")
def first_repro(project: Path) -> str:
    from e2e import run

    return run(project, "dvc", "repro")


@pytest.fixture(scope="session")
def stack() -> Iterator:
    """The team stack (`vaebench.ops.team.up`): PostgreSQL, MLflow, a DVC remote and a Dask cluster, for the
    team and scale-out tests (one xdist group, so one worker builds it once)."""
    team = pytest.importorskip("vaebench.ops.team")
    pytest.importorskip("dvc_webdav", reason="dvc-webdav is not installed (pip install -e '.[team]')")
    try:
        team.postgres_bin()
    except team.TeamStackError as exc:
        pytest.skip(str(exc))
    # PostgreSQL runs as the `postgres` user, which cannot enter pytest's private tmp folder.
    root = Path(tempfile.mkdtemp(prefix="vaebench-team-"))
    root.chmod(0o755)
    stack = team.up(root / "stack")
    yield stack
    team.purge(stack.root)
    shutil.rmtree(root, ignore_errors=True)


TEAM_PARAMS = {"compare": {"archs": ["mlp"], "seeds": [0]}}


@pytest.fixture(scope="session")
def origin(stack, tmp_path_factory: pytest.TempPathFactory, mnist_mirror: Path) -> Path:
    """A bare git remote holding the tiny project (one architecture, one seed) after one `dvc
    repro` against the team stack, whose outputs are in its DVC remote."""
    from e2e import commit, make_project, run, set_params

    base = make_project(tmp_path_factory.mktemp("base"), mnist_mirror)
    set_params(base, TEAM_PARAMS)
    for command in stack.dvc_remote_commands():
        run(base, *command)
    run(base, "dvc", "repro", **stack.worker_env())
    run(base, "dvc", "push", **stack.worker_env())
    commit(base, "baseline")
    bare = tmp_path_factory.mktemp("origin") / "vaebench.git"
    run(base, "git", "init", "-q", "--bare", "-b", "main", str(bare))
    run(base, "git", "push", "-q", str(bare), "main")
    return bare
