"""Download through torchvision with a mirror, clear errors for bad mirrors, and the split."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from torchvision.datasets import MNIST

from vaebench.core.environment import DownloadError
from vaebench.core.environment import mnist_mirror as mirror_from_env
from vaebench.data.mnist import data_summary, download, split
from vaebench.data.splits import load_split, save_splits


def test_mirror_defaults_to_torchvision(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MNIST_MIRROR", raising=False)
    assert mirror_from_env() is None


def test_mirror_url_and_missing_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MNIST_MIRROR", "https://example.org/mnist")
    assert mirror_from_env() == "https://example.org/mnist/"
    monkeypatch.setenv("MNIST_MIRROR", str(tmp_path / "nowhere"))
    with pytest.raises(DownloadError, match="neither an http"):
        mirror_from_env()


def test_relative_mirror_is_relative_to_dvc_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "mirror").mkdir()
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.setenv("MNIST_MIRROR", "mirror")
    assert mirror_from_env() == tmp_path / "mirror"


def test_corrupt_file_fails_with_its_name_and_leaves_nothing(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for filename, _ in MNIST.resources:
        (mirror / filename).write_bytes(b"not the real file")
    target = tmp_path / "data" / "raw"
    with pytest.raises(DownloadError, match=r"train-images-idx3-ubyte\.gz .*corrupt.*f68b3c2dcbeaaa9fbdd348bbdeb94873"):
        download(target, mirror)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # no temporary left behind either


def test_missing_file_fails_with_its_name(tmp_path: Path) -> None:
    (tmp_path / "mirror").mkdir()
    with pytest.raises(DownloadError, match=r"train-images-idx3-ubyte\.gz is missing from the mirror"):
        download(tmp_path / "raw", tmp_path / "mirror")


def test_unreachable_url_names_file_and_mirror(tmp_path: Path) -> None:
    url = "http://127.0.0.1:9/mnist/"  # the discard port: nothing listens, the connection is refused
    with pytest.raises(DownloadError, match=r"mirrors tried: http://127\.0\.0\.1:9/mnist/[\s\S]*train-images"):
        download(tmp_path / "raw", url)
    assert not (tmp_path / "raw").exists()


def test_real_mirror_downloads_and_verifies(mnist_mirror: Path, tmp_path: Path) -> None:
    download(tmp_path / "raw", mnist_mirror)
    assert len(MNIST(tmp_path / "raw", train=True)) == 60_000
    assert len(MNIST(tmp_path / "raw", train=False)) == 10_000


def test_one_corrupt_file_among_real_ones(mnist_mirror: Path, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    shutil.copytree(mnist_mirror, mirror)
    (mirror / "t10k-labels-idx1-ubyte.gz").write_bytes(b"truncated")
    with pytest.raises(DownloadError, match=r"t10k-labels-idx1-ubyte\.gz .*corrupt"):
        download(tmp_path / "raw", mirror)
    assert not (tmp_path / "raw").exists()


def test_split_is_seeded_in_range_and_keeps_test(tiny_mnist_root: Path, tmp_path: Path) -> None:
    a = split(tiny_mnist_root, val_size=100, subset=0, seed=1)
    b = split(tiny_mnist_root, val_size=100, subset=0, seed=1)
    c = split(tiny_mnist_root, val_size=100, subset=0, seed=2)
    assert {name: len(labels) for name, (_, labels) in a.items()} == {"train": 200, "val": 100, "test": 50}
    assert torch.equal(a["val"][0], b["val"][0]) and not torch.equal(a["val"][0], c["val"][0])
    images = a["train"][0]
    assert images.dtype == torch.float32 and images.shape[1:] == (1, 28, 28)
    assert images.min() >= 0.0 and images.max() <= 1.0
    save_splits(a, tmp_path / "processed")
    test_images, test_labels = load_split(tmp_path / "processed", "test")
    assert torch.equal(test_images, a["test"][0]) and torch.equal(test_labels, torch.arange(50) % 10)


def test_subset_and_summary(tiny_mnist_root: Path) -> None:
    splits = split(tiny_mnist_root, val_size=100, subset=30, seed=0)
    summary = data_summary(splits)
    assert summary["counts"]["train"]["total"] == 30
    assert sum(summary["counts"]["test"][str(c)] for c in range(10)) == 50
    assert summary["train_pixel_mean"] == pytest.approx(splits["train"][0].mean().item(), abs=1e-6)


def test_a_truncated_split_names_the_file(dvc_project: Path) -> None:
    import torch

    from vaebench.core.errors import StageError
    from vaebench.data.splits import load_split

    folder = dvc_project / "data" / "processed"
    folder.mkdir(parents=True)
    torch.save({"images": torch.zeros(10, 1, 28, 28), "labels": torch.zeros(10)}, folder / "test.pt")
    (folder / "test.pt").write_bytes((folder / "test.pt").read_bytes()[:500])
    with pytest.raises(StageError, match=r"test\.pt is unreadable .*`dvc repro -f normalize`"):
        load_split(folder, "test")
