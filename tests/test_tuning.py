"""`vaebench tune`'s pieces without a pipeline: the expected-best estimator against brute force,
and the search space's checks, each naming the key."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import yaml

from vaebench.tuning.expected import expected_best
from vaebench.tuning.space import SpaceError, load_space, parse_overrides, readable_keys

READABLE = {"data.binarize", "data.standardize_input", "loss", "train", "runtime", "mlflow"}


@pytest.mark.parametrize("scores", [[3.0, 1.0, 2.0], [5.0, 5.0, 1.0, 4.0], [2.5, 0.5, 9.0, 1.5, 7.0]])
def test_expected_best_equals_brute_force_enumeration(scores: list[float]) -> None:
    """Every ordered draw of n trials with replacement, equally likely: the mean of its minimum
    (a loss) and of its maximum (a score), and the spread of the minimum."""
    curve_low, curve_high = expected_best(scores), expected_best(scores, lower_is_better=False)
    for n in range(1, len(scores) + 1):
        draws = list(itertools.product(scores, repeat=n))
        minima = np.array([min(d) for d in draws])
        assert curve_low.loc[n - 1, "expected"] == pytest.approx(minima.mean())
        assert curve_low.loc[n - 1, "std"] == pytest.approx(minima.std(), abs=1e-9)
        assert curve_high.loc[n - 1, "expected"] == pytest.approx(np.mean([max(d) for d in draws]))
    assert curve_low.loc[0, "expected"] == pytest.approx(np.mean(scores))
    assert list(curve_low["n"]) == list(range(1, len(scores) + 1))


def raw_params() -> dict:
    return yaml.safe_load(Path("params.yaml").read_text())


def space(section: dict, fixed: dict | None = None) -> dict:
    return load_space({**raw_params(), "tune": section}, READABLE | {"model.mlp"}, "mlp", fixed or {})


def test_the_repositorys_space_loads() -> None:
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    loaded = load_space(raw_params(), readable_keys(Path("."), "cnn"), "cnn", {"model.cnn.latent": 20})
    assert loaded["train.lr"] == FloatDistribution(3e-4, 1e-2, log=True)
    assert isinstance(loaded["train.batch_size"], CategoricalDistribution)


@pytest.mark.parametrize(
    ("section", "fixed", "message"),
    [
        ({"train.lrr": [0.1]}, {}, r"tune\.train\.lrr: no such param in params\.yaml; did you mean train\.lr\?"),
        ({"evaluate.iwae_k": [5, 50]}, {}, r"tune\.evaluate\.iwae_k: no train stage of mlp reads it"),
        ({"compare.seeds": [[0]]}, {}, r"tune\.compare\.seeds: set by `vaebench tune` itself"),
        (
            {"train.lr": {"low": 0.01, "high": 0.001}},
            {},
            r"tune\.train\.lr: the range 0\.01 to 0\.001 is empty or inverted",
        ),
        ({"train.lr": {"low": 0.0, "high": 0.1, "log": True}}, {}, r"tune\.train\.lr: a log range must stay above 0"),
        (
            {"train.lr": {"low": -1.0, "high": 0.1}},
            {},
            r"tune\.train\.lr: -1\.0 is not a valid value: train\.lr = -1\.0",
        ),
        ({"train.schedule": ["constant", "linear"]}, {}, r"tune\.train\.schedule: 'linear' is not a valid value"),
        ({"train.batch_size": []}, {}, r"tune\.train\.batch_size: an empty list"),
        ({"model.mlp.latent": [0, 20]}, {}, r"tune\.model\.mlp\.latent: 0 is not a valid value"),
        ({"train.lr": [0.1]}, {"train.epochs": 0}, r"-S train\.epochs=0: train\.epochs = 0"),
        ({"train.lr": [0.1]}, {"train.lr": 0.1}, r"tune\.train\.lr: both searched and fixed"),
        ({}, {}, r"params\.yaml has no tune: section"),
    ],
)
def test_a_wrong_space_is_one_line_naming_the_key(section: dict, fixed: dict, message: str) -> None:
    with pytest.raises(SpaceError, match=message):
        space(section, fixed)


def test_overrides_are_yaml_values() -> None:
    assert parse_overrides(["model.cnn.latent=20", "train.schedule=cosine"]) == {
        "model.cnn.latent": 20,
        "train.schedule": "cosine",
    }
    with pytest.raises(SpaceError, match="expected KEY=VALUE"):
        parse_overrides(["latent"])


def test_the_report_curves_are_per_random_study_with_a_band_within_the_scores() -> None:
    import pandas as pd

    from vaebench.tuning.report import curves

    table = pd.DataFrame(
        {
            "arch": ["mlp"] * 3 + ["cnn"] * 2 + ["tpe"] * 2,
            "state": ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE", "COMPLETE", "COMPLETE", "COMPLETE"],
            "neg_elbo": [104.0, 106.0, None, 110.0, 108.0, 1.0, 2.0],
            "train_seconds": [3600.0, 1800.0, None, 7200.0, 7200.0, 1.0, 1.0],
        }
    )
    curve = curves(table, {"mlp": "random", "cnn": "random", "tpe": "tpe"})  # TPE's trials are not i.i.d.
    mlp = curve[curve["arch"] == "mlp"].reset_index()
    assert list(mlp["expected"]) == pytest.approx([105.0, 104.5])  # n = 2: the best of two draws of (104, 106)
    assert list(mlp["cpu_hours"]) == pytest.approx([0.75, 1.5])  # the mean finished trial, 45 min
    assert (curve["band_low"] >= 104.0).all() and set(curve["arch"]) == {"mlp", "cnn"}
    assert (curve[curve["arch"] == "cnn"]["band_high"] <= 110.0).all()
