"""A wrong param fails before any work, naming the key, the value and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from vaebench.params import Params, ParamsError, flat_params, load_params, parse_params

REPO = Path(__file__).resolve().parents[1]


def test_repository_params_are_valid_and_complete() -> None:
    """params.yaml spells out every key, since DVC can only track keys that are in the file."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    params = load_params(REPO / "params.yaml")
    assert raw == params.model_dump(mode="json") | {"model": raw["model"]}
    assert set(raw) == set(Params.model_fields)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"train": {"epoch": 3}}, r"train\.epoch: unknown key; did you mean 'epochs'\?"),
        ({"trian": {}}, r"trian: unknown key; did you mean 'train'\?"),
        ({"model": {"cnn": {"latnet": 3}}}, r"model\.cnn\.latnet: unknown key; did you mean 'latent'\?"),
        ({"train": {"epochs": 0}}, r"train\.epochs = 0: .*greater than or equal to 1"),
        ({"train": {"epochs": "ten"}}, r"train\.epochs = 'ten': .*integer"),
        ({"train": {"lr": 0}}, r"train\.lr = 0: .*greater than 0"),
        ({"train": {"batch_size": 0}}, r"train\.batch_size = 0"),
        ({"train": {"device": "gpu"}}, r"train\.device = 'gpu': must be one of 'auto', 'cpu', 'cuda' or 'mps'"),
        ({"loss": {"recon": "l1"}}, r"loss\.recon = 'l1': must be one of 'bce' or 'mse'"),
        ({"loss": {"kl_weight": -1}}, r"loss\.kl_weight = -1"),
        ({"model": {"mlp": {"latent": 0}}}, r"model\.mlp\.latent = 0"),
        ({"model": {"cnn": {"channels": [16, 32]}}}, r"model\.cnn\.channels"),
        ({"model": {"cnn": {"channels": [16, 0, 8]}}}, r"model\.cnn\.channels = \[16, 0, 8\]: every channel"),
        ({"evaluate": {"iwae_k": 0}}, r"evaluate\.iwae_k = 0"),
        (
            {"data": {"binarize": True}, "loss": {"recon": "mse"}},
            r"  - data\.binarize = true: needs loss\.recon = 'bce'",
        ),
        ({"judge": {"epochs": 0}}, r"judge\.epochs = 0"),
        ({"data": {"val_size": 60000}}, r"data\.val_size = 60000: .*less than or equal to 59000"),
        (
            {"train": {"snapshot_epochs": [0, 5]}},
            r"train\.snapshot_epochs = \[0, 5\]: \[0\] outside the run; allowed: epochs 1\.\.20",
        ),
        (
            {"train": {"epochs": 3, "snapshot_epochs": [1, 5]}},
            r"train\.snapshot_epochs = \[1, 5\]: \[5\] outside the run",
        ),
    ],
)
def test_invalid_params_name_key_value_and_allowed(raw: dict, expected: str) -> None:
    with pytest.raises(ParamsError, match=expected):
        parse_params(raw)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ParamsError) as error:
        parse_params({"train": {"epochs": 0, "lr": -1}, "loss": {"recon": "l1"}})
    assert str(error.value).count("\n  - ") == 3


def test_snapshots_within_run_end_at_last_epoch() -> None:
    assert parse_params({"train": {"epochs": 7}}).train.snapshots() == [1, 3, 5, 7]
    assert parse_params({"train": {"epochs": 50}}).train.snapshots() == [1, 3, 5, 10, 20, 30, 40, 50]
    assert parse_params({"train": {"epochs": 4, "snapshot_epochs": [2]}}).train.snapshots() == [2, 4]


def test_flat_params_align_model_sections_across_architectures() -> None:
    params = parse_params({})
    mlp, cnn = flat_params(params, "mlp"), flat_params(params, "cnn")
    assert mlp["model.latent"] == 20 and cnn["model.latent"] == 10
    assert mlp["train.epochs"] == cnn["train.epochs"] and mlp["arch"] == "mlp"
    assert "model.mlp.latent" not in mlp
