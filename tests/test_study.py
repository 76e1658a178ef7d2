"""Which experiments a study may put on one chart, and the points it draws from them."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import yaml

from vaebench.core.params import with_values
from vaebench.experiments.study import Experiment, points, why_skipped

PARAMS = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
CODE = {"src/vaebench/training/fit.py": "aaa", "stages/train.py": "bbb"}
METRICS = {"seeds": 3, "mlp": {"kl": {"mean": 25.0, "ci95": 0.5}}, "cnn": {"kl": {"mean": 15.0, "ci95": None}}}


def experiment(name: str, code: dict | None = None, metrics: dict | None = METRICS, **changes: object) -> Experiment:
    params = with_values(PARAMS, {key.replace("__", "."): value for key, value in changes.items()})
    return Experiment(name, params, metrics, code or CODE)


def test_swept_values_and_seeds_may_differ() -> None:
    baseline = experiment("main")
    assert why_skipped(experiment("b", loss__kl_weight=2.0), baseline) is None
    assert why_skipped(experiment("z", model__mlp__latent=2, model__cnn__latent=2), baseline) is None
    assert why_skipped(experiment("s", compare__seeds=[5]), baseline) is None


def test_other_code_data_or_training_is_skipped_with_the_reason() -> None:
    baseline = experiment("main")
    assert why_skipped(experiment("c", code={**CODE, "src/vaebench/training/fit.py": "ccc"}), baseline) == (
        "other code than the baseline: src/vaebench/training/fit.py"
    )
    assert (
        why_skipped(experiment("d", data__subset=500), baseline) == "other params than the baseline: data.subset = 500"
    )
    assert "train.epochs = 3" in why_skipped(experiment("e", train__epochs=3), baseline)
    assert why_skipped(experiment("f", metrics=None), baseline).startswith("no metrics/compare.json")
    failed = experiment("g")
    failed.state = "failed"
    assert why_skipped(failed, baseline) == "the experiment is failed (see `dvc queue logs g`)"


def test_points_carry_the_swept_values_and_nan_for_a_missing_interval() -> None:
    table = points([experiment("b", loss__kl_weight=2.0)]).set_index("arch")
    assert (
        table.loc["mlp", "kl_weight"] == 2.0 and table.loc["mlp", "latent"] == 20 and table.loc["cnn", "latent"] == 10
    )
    assert table.loc["mlp", "kl_ci95"] == 0.5 and math.isnan(table.loc["cnn", "kl_ci95"])


def test_at_equal_latent_size_the_verdict_is_the_experiments_own_welch_test(tmp_path: Path) -> None:
    """An experiment's reports/compare.csv, read from its commit, gives the equal-latent rows; an
    experiment whose architectures have different latent sizes (the default) gives none."""
    import subprocess

    from vaebench.experiments.study import VERDICTS, equal_latent

    (tmp_path / "reports").mkdir()
    shutil.copy(Path(__file__).resolve().parents[1] / "reports" / "compare.csv", tmp_path / "reports")
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t.invalid"]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "exp"], check=True)
    rev = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    equal = experiment("latent-10", model__mlp__latent=10)
    equal.rev = rev
    default = experiment("main")
    default.rev = rev
    table = equal_latent([default, equal], tmp_path)
    assert list(table["metric"]) == list(VERDICTS) and set(table["experiment"]) == {"latent-10"}
    import pandas as pd

    report = pd.read_csv(tmp_path / "reports" / "compare.csv").set_index(["metric", "arch"])
    nll = table[table["metric"] == "nll_iwae"].iloc[0]
    assert nll["latent"] == 10 and nll["verdict"] == report.loc[("nll_iwae", "cnn - mlp"), "verdict"]
    assert nll["cnn − mlp [95 % CI]"] == report.loc[("nll_iwae", "cnn - mlp"), "display"]
    assert nll["mlp"] == report.loc[("nll_iwae", "mlp"), "display"]
    assert nll["p (Welch)"] in {"< 0.001", f"{report.loc[('nll_iwae', 'cnn - mlp'), 'p_value']:.3f}"}
