"""`vaebench generate` rejects what it cannot draw, before loading anything."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vaebench.cli import main
from vaebench.models import build_model, save_model


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    save_model(build_model("mlp", hidden=16, latent=2), tmp_path / "mlp-0")
    return tmp_path / "mlp-0"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--std", "nan"], "'nan' is not a finite number"),
        (["--mean", "inf"], "'inf' is not a finite number"),
        (["--n", "100000"], "--n must be 1 to 10000"),
        (["--out", "x.txt"], "the extension must name an image format"),
        (["--out", "no/such/folder/x.png"], "the folder no/such/folder does not exist"),
    ],
)
def test_generate_rejects_bad_input(model_dir: Path, args: list[str], message: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["generate", "--model", str(model_dir), *args])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_generate_writes_an_image(model_dir: Path, tmp_path: Path) -> None:
    main(["generate", "--model", str(model_dir), "--n", "9", "--out", str(tmp_path / "s.png")])
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
