"""A wrong param fails before any work, naming the key, the value and what is allowed."""

from __future__ import annotations

import copy
import time
from pathlib import Path

import pytest
import yaml

from vaebench.core.params import Params, ParamsError, flat_params, flatten, load_params, parse_params, with_values
from vaebench.models import check_model_params, config_class

REPO = Path(__file__).resolve().parents[1]
DEFAULTS = yaml.safe_load((REPO / "params.yaml").read_text())


def checked(raw: object) -> Params:
    """What the validate stage accepts: the schema, then the model sections against their files."""
    return check_model_params(parse_params(raw))


def with_(overrides: dict) -> dict:
    """The repository's params.yaml with some keys replaced (dotted keys inside a section)."""
    raw = copy.deepcopy(DEFAULTS)
    for section, values in overrides.items():
        for key, value in values.items():
            node = raw[section]
            *parents, leaf = key.split(".")
            for parent in parents:
                node = node[parent]
            node[leaf] = value
    return raw


def test_repository_params_are_valid_and_complete() -> None:
    """params.yaml spells out every key, since DVC can only track keys that are in the file."""
    params = load_params(REPO / "params.yaml")
    assert params.model_dump(mode="json") == DEFAULTS
    assert set(DEFAULTS) == set(Params.model_fields)
    for arch in params.model:  # every section, compared by default or not, is the model file's default
        assert DEFAULTS["model"][arch] == config_class(arch).model_validate(params.model[arch]).model_dump(mode="json")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"train": {"epoch": 3}}, r"train\.epoch: unknown key; did you mean 'epochs'\?"),
        ({"model": {"cnn.latnet": 3}}, r"model\.cnn\.latnet: unknown key; did you mean 'latent'\?"),
        ({"train": {"epochs": 0}}, r"train\.epochs = 0: .*greater than or equal to 1"),
        ({"train": {"epochs": "ten"}}, r"train\.epochs = 'ten': .*integer"),
        ({"train": {"epochs": True}}, r"train\.epochs = True: .*integer"),
        ({"train": {"epochs": "20"}}, r"train\.epochs = '20': .*integer"),
        ({"train": {"epochs": 20.0}}, r"train\.epochs = 20\.0: .*integer"),
        ({"train": {"epochs": 20.5}}, r"train\.epochs = 20\.5: .*integer"),
        ({"train": {"lr": 0}}, r"train\.lr = 0: .*greater than 0"),
        ({"train": {"lr": float("inf")}}, r"train\.lr = inf: .*finite"),
        ({"loss": {"kl_weight": float("inf")}}, r"loss\.kl_weight = inf: .*finite"),
        ({"train": {"batch_size": 0}}, r"train\.batch_size = 0"),
        ({"runtime": {"device": "gpu"}}, r"runtime\.device = 'gpu': must be one of 'auto', 'cpu', 'cuda' or 'mps'"),
        ({"loss": {"recon": "l1"}}, r"loss\.recon = 'l1': must be one of 'bce' or 'mse'"),
        ({"loss": {"kl_weight": -1}}, r"loss\.kl_weight = -1"),
        ({"model": {"mlp.latent": 0}}, r"model\.mlp\.latent = 0"),
        ({"model": {"cnn.channels": [16, 32]}}, r"model\.cnn\.channels = \[16, 32\]: three channel counts are needed"),
        ({"model": {"cnn.channels": [16, 0, 8]}}, r"model\.cnn\.channels = \[16, 0, 8\]: every channel"),
        ({"evaluate": {"iwae_k": 0}}, r"evaluate\.iwae_k = 0"),
        ({"evaluate": {"iwae_k": 10**6}}, r"evaluate\.iwae_k = 1000000: .*less than or equal to 100000"),
        ({"evaluate": {"test_subset": 20_000}}, r"evaluate\.test_subset = 20000: .*less than or equal to 10000"),
        ({"data": {"subset": 55_000}}, r"data\.subset = 55000: only 50000 training images remain"),
        ({"data": {"binarize": True}, "loss": {"recon": "mse"}}, r"  - data\.binarize = true: needs loss\.recon"),
        ({"judge": {"epochs": 0}}, r"judge\.epochs = 0"),
        ({"mlflow": {"experiment": " "}}, r"mlflow\.experiment = ' '"),
        ({"mlflow": {"experiment": ""}}, r"mlflow\.experiment = ''"),
        ({"compare": {"seeds": [10**12]}}, r"compare\.seeds\.0 = 1000000000000: .*less than or equal to 4294967295"),
        ({"compare": {"archs": ["mlp", "resnet"]}}, r"compare\.archs: 'resnet' has no model file; allowed: burda,"),
        ({"compare": {"seeds": [0, 0]}}, r"compare\.seeds = \[0, 0\]: each value once"),
        ({"compare": {"seeds": []}}, r"compare\.seeds = \[\]: .*at least 1"),
        ({"train": {"schedule": "step"}}, r"train\.schedule = 'step': must be one of 'constant', 'burda' or 'cosine'"),
        ({"model": {"burda.hidden": [200, 0]}}, r"model\.burda\.hidden\.1 = 0: .*greater than or equal to 1"),
        ({"train": {"snapshot_epochs": [0, 5]}}, r"train\.snapshot_epochs = \[0, 5\]: \[0\] outside the run"),
    ],
)
def test_invalid_params_name_key_value_and_allowed(overrides: dict, expected: str) -> None:
    with pytest.raises(ParamsError, match=expected):
        checked(with_(overrides))


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ParamsError) as error:
        checked(with_({"train": {"epochs": 0, "lr": -1}, "loss": {"recon": "l1"}}))
    assert str(error.value).count("\n  - ") == 3


def test_missing_section_and_empty_file(tmp_path: Path) -> None:
    raw = with_({})
    del raw["runtime"]
    with pytest.raises(ParamsError, match=r"runtime: missing"):
        checked(raw)
    (tmp_path / "params.yaml").write_text("")
    with pytest.raises(ParamsError, match=r"empty or not a mapping"):
        load_params(tmp_path / "params.yaml")


def test_a_key_given_twice_is_an_error(tmp_path: Path) -> None:
    text = (REPO / "params.yaml").read_text().replace("  epochs: 20\n", "  epochs: 20\n  epochs: 30\n")
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(ParamsError, match=r"key 'epochs' is given twice \(line \d+\)"):
        load_params(tmp_path / "params.yaml")


def test_an_error_outside_the_models_comes_before_torch_loads(tmp_path: Path) -> None:
    """The validate stage answers a typo within a second: torch is imported only for model sections."""
    import subprocess
    import sys

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(with_({"train": {"epochs": 20.5}})))
    code = "import sys; from vaebench.core.params import load_params\n"
    code += "try: load_params(sys.argv[1])\nexcept Exception: pass\n"
    code += "print('torch' in sys.modules)"
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "params.yaml")], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr
    assert time.perf_counter() - start < 10  # loose: the figure itself is measured by the benchmark


def test_snapshots_within_run_end_at_last_epoch() -> None:
    assert checked(with_({"train": {"epochs": 7}})).train.snapshots() == [1, 3, 5, 7]
    assert checked(with_({"train": {"epochs": 50}})).train.snapshots() == [1, 3, 5, 10, 20, 30, 40, 50]
    assert checked(with_({"train": {"epochs": 4, "snapshot_epochs": [2]}})).train.snapshots() == [2, 4]


def test_flat_params_align_model_sections_across_architectures() -> None:
    params = checked(with_({}))
    mlp, cnn = flat_params(params, "mlp", 0), flat_params(params, "cnn", 1)
    assert mlp["model.latent"] == 20 and cnn["model.latent"] == 10 and cnn["seed"] == 1
    assert mlp["train.epochs"] == cnn["train.epochs"] and mlp["arch"] == "mlp"
    assert "model.mlp.latent" not in mlp and "compare.seeds" not in mlp


def test_dotted_keys_name_params_as_dvc_sets_them_and_setting_one_copies() -> None:
    raw = {"train": {"lr": 0.001, "schedule": "constant"}, "model": {"mlp": {"latent": 20}}, "compare": {"seeds": [0]}}
    assert flatten(raw) == {
        "train.lr": 0.001,
        "train.schedule": "constant",
        "model.mlp.latent": 20,
        "compare.seeds": [0],
    }
    changed = with_values(raw, {"train.lr": 0.003, "model.mlp.latent": 2, "compare.seeds": [4]})
    assert flatten(changed) == {
        "train.lr": 0.003,
        "train.schedule": "constant",
        "model.mlp.latent": 2,
        "compare.seeds": [4],
    }
    assert raw["train"]["lr"] == 0.001 and raw["model"]["mlp"]["latent"] == 20  # the original is untouched


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"model": {"mlp.hidden": 10**9}}, r"model\.mlp: 1,630,000,000,824 parameters need at least [\d,]+ [GP]iB"),
        ({"train": {"epochs": 10**12}}, r"train\.epochs = 1000000000000: training mlp .* at least [\d,]+ years"),
    ],
)
def test_a_model_or_run_beyond_any_machine_is_refused_with_its_estimate(overrides: dict, expected: str) -> None:
    import torch

    from vaebench.core.errors import StageError
    from vaebench.training.budget import check_budget

    with pytest.raises(StageError, match=expected):
        check_budget(checked(with_(overrides)), torch.device("cpu"), memory=24 << 30)


def test_an_absent_device_is_named_with_the_allowed_ones() -> None:
    import torch

    from vaebench.core.environment import DeviceError, resolve_device

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(DeviceError, match=r"runtime\.device = 'cuda' but no CUDA device is available; allowed: "):
        resolve_device("cuda")
