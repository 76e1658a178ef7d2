"""A third architecture costs one model file and one params section: nothing else is edited.

The file is written by this test into a folder added to the models package's search path, as a
plugin would be; the registry, the params schema, training, saving and loading all find it.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch
import yaml
from test_training import recipe

import vaebench.models
from vaebench.core.params import Params, ParamsError, parse_params
from vaebench.models import architectures, build_model, check_model_params, load_model, save_model
from vaebench.training.fit import fit


def checked(raw: object) -> Params:
    """What the validate stage accepts: the schema, then the model sections against their files."""
    return check_model_params(parse_params(raw))


REPO = Path(__file__).resolve().parents[1]
TINY_MODEL = '''
"""A tiny linear VAE, defined only by the test."""
import torch
from pydantic import Field
from torch import nn

from vaebench.models.base import VAE, ModelConfig


class TinyConfig(ModelConfig):
    latent: int = Field(2, ge=1)


class TinyVAE(VAE):
    Config = TinyConfig

    def __init__(self, config: TinyConfig | None = None) -> None:
        config = config or TinyConfig()
        super().__init__(config)
        self.enc = nn.Sequential(nn.Flatten(), nn.Linear(784, 2 * config.latent))
        self.dec = nn.Linear(config.latent, 784)

    def encoder_net(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.enc(x).chunk(2, dim=1)

    def decoder_net(self, z: torch.Tensor) -> torch.Tensor:
        return self.dec(z)
'''


@pytest.fixture
def tiny_arch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "tiny.py").write_text(TINY_MODEL)  # the one model file
    monkeypatch.setattr(vaebench.models, "__path__", [*vaebench.models.__path__, str(folder)])
    yield "tiny"
    sys.modules.pop("vaebench.models.tiny", None)


def test_a_third_architecture_is_one_file_and_one_section(
    tiny_arch: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = copy.deepcopy(yaml.safe_load((REPO / "params.yaml").read_text()))
    raw["compare"]["archs"] = ["mlp", "cnn", tiny_arch]
    with pytest.raises(ParamsError, match=r"model\.tiny: missing"):
        checked(raw)
    raw["model"]["tiny"] = {"latent": 3}  # the one params section
    params = checked(raw)
    assert tiny_arch in architectures()

    model = build_model(tiny_arch, params.model[tiny_arch])
    # one epoch on noise learns less than the constant model (training/fit.check_learnt): not what is tested
    monkeypatch.setattr("vaebench.training.fit.constant_model_loss", lambda images, kind: float("inf"))
    history = fit(model, torch.rand(64, 1, 28, 28), torch.rand(16, 1, 28, 28), recipe(epochs=1, batch_size=16))
    assert len(history) == 1
    save_model(model, tmp_path / "tiny-0")
    loaded = load_model(tmp_path / "tiny-0")
    assert loaded.arch == tiny_arch and loaded.latent == 3
    assert torch.equal(
        loaded.encode_means(torch.ones(2, 1, 28, 28)), model.eval().encode_means(torch.ones(2, 1, 28, 28))
    )


def test_a_bad_value_in_its_section_is_named(tiny_arch: str) -> None:
    raw = copy.deepcopy(yaml.safe_load((REPO / "params.yaml").read_text()))
    raw["model"]["tiny"] = {"latent": 0}
    with pytest.raises(ParamsError, match=r"model\.tiny\.latent = 0"):
        checked(raw)
