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


def test_generate_from_a_broken_model_folder_is_one_line(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["generate", "--model", str(tmp_path / "nothing-here"), "--out", str(tmp_path / "s.png")])
    err = capsys.readouterr().err
    assert exit_.value.code != 0 and "Traceback" not in err
    assert "nothing-here/config.json is missing" in str(exit_.value.code) + err


def test_ui_on_a_busy_port_says_so_and_starts_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import socket

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(SystemExit) as exit_:
            main(["ui", "--port", str(port)])
    assert exit_.value.code == 1 and f"127.0.0.1:{port} is in use" in capsys.readouterr().err


def test_ui_with_a_tracking_server_points_at_it(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens: the front page is printed
    main(["ui"])
    out = capsys.readouterr().out
    assert "MLFLOW_TRACKING_URI is the server http://127.0.0.1:9; its UI: http://127.0.0.1:9" in out
