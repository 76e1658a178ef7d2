"""The comparison table: mean ± interval per architecture, a winner only where Welch's test says so."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from vaebench.comparison.aggregate import aggregate, metrics
from vaebench.comparison.report import compare_markdown, difference_interval, displayed, interval, metric_table

NLL = {"mlp": [100.1, 100.3, 100.2], "cnn": [106.7, 106.9, 106.8]}
FID = {"mlp": [250, 200, 300], "cnn": [210, 290, 240]}
CLEAR = {arch: {s: {"nll_iwae": NLL[arch][s], "fid": FID[arch][s]} for s in range(3)} for arch in NLL}


def test_winner_in_bold_only_where_the_test_rejects() -> None:
    rows = metric_table(aggregate(CLEAR), ["mlp", "cnn"]).set_index("metric")
    assert rows.loc["nll_iwae", "mlp"].startswith("**100.20 ± 0.25**") and rows.loc["nll_iwae", "verdict"] == "mlp"
    assert not rows.loc["nll_iwae", "cnn"].startswith("**")
    assert rows.loc["fid", "verdict"] == "no clear difference"  # 250 vs 246.7 with this spread
    assert "**" not in rows.loc["fid", "mlp"] + rows.loc["fid", "cnn"]


def test_a_half_width_has_two_significant_digits_and_the_mean_its_decimal_place() -> None:
    assert interval(104.2012, 0.1756) == "104.20 ± 0.18"
    assert interval(0.009118, 0.0001217) == "0.00912 ± 0.00012"
    assert interval(51.59, 13.75) == "52 ± 14"
    assert interval(652824.0, 1349.0) == "652,800 ± 1,300"
    assert interval(2.0, 0.0999) == "2.00 ± 0.10"  # 0.0999 rounds up to 0.10: two places, not three
    assert interval(25.0, float("nan")) == "25" and interval(20.0, 0.0) == "20"
    assert difference_interval(7.081, 5.548, 8.614) == "7.1 [5.5, 8.6]"


def test_the_csv_shows_each_row_as_the_report_does() -> None:
    table = aggregate(CLEAR)
    shown = displayed(table)
    nll = table["metric"] == "nll_iwae"
    assert shown[nll & (table["arch"] == "mlp")].item() == "100.20 ± 0.25"
    assert shown[nll & (table["arch"] == "cnn - mlp")].item().startswith("6.60 [")


def test_one_seed_gives_no_verdict_and_says_so() -> None:
    one = {arch: {0: by_seed[0]} for arch, by_seed in CLEAR.items()}
    table = aggregate(one)
    rows = metric_table(table, ["mlp", "cnn"]).set_index("metric")
    assert rows.loc["nll_iwae", "mlp"] == "100.1" and rows.loc["nll_iwae", "verdict"] == "one seed: no verdict possible"
    page = compare_markdown(table, {"mlp": 1, "cnn": 1}, {}, iwae_k=50, figures=[])
    assert "With one seed there is no interval and no test, so every verdict reads *one seed: no verdict" in page
    assert "**" not in page


def test_metrics_hold_mean_interval_and_verdicts() -> None:
    out = metrics(aggregate(CLEAR), n_seeds=3, judge_accuracy=0.991)
    assert list(out)[:3] == ["seeds", "judge_accuracy", "verdicts"]  # what `dvc exp show` lists first
    assert out["seeds"] == 3 and out["mlp"]["nll_iwae"]["mean"] == 100.2
    assert out["verdicts"]["mlp_vs_cnn"] == {"nll_iwae": "mlp", "fid": "no clear difference"}


def test_three_architectures_get_a_table_per_pair() -> None:
    three = CLEAR | {"tiny": {s: {"nll_iwae": 120.0 + s, "fid": 400} for s in range(3)}}
    page = compare_markdown(aggregate(three), {"mlp": 3, "cnn": 3, "tiny": 3}, {}, iwae_k=5, figures=[])
    assert "## tiny − mlp" in page and "## tiny − cnn" in page and "## cnn − mlp" in page


def test_report_lists_reference_figures_and_images() -> None:
    page = compare_markdown(
        aggregate(CLEAR), {"mlp": 3, "cnn": 3}, {"fid_test_halves": 1.85}, iwae_k=50,
        figures=["loss_curves.png", "mlp_samples.png", "cnn_samples.png"],
    )  # fmt: skip
    assert "k = 50" in page and "| fid_test_halves" in page and "mlp: 3, cnn: 3" in page
    assert "![loss curves](figures/loss_curves.png)" in page
    assert "| samples | ![mlp samples](figures/mlp_samples.png) | ![cnn samples](figures/cnn_samples.png) |" in page


def test_the_report_stage_starts_without_torch() -> None:
    """The report stage reads JSON and logs to MLflow: importing it must not import torch (1.2-1.4 s
    of start-up here), which `vaebench.tracking.runs` loads only where it logs a model."""
    repo = Path(__file__).resolve().parents[1]
    code = "import runpy, sys; sys.path.insert(0, 'stages'); runpy.run_path('stages/report.py')\n"
    code += "print(sorted(m for m in ('torch', 'torchvision') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stderr


def test_a_metric_the_comparison_does_not_know_stops_it() -> None:
    """Evaluation wrote `new_metric`, METRICS has no meaning or direction for it: said, not dropped."""
    import pytest

    from vaebench.core.errors import StageError

    unknown = {
        arch: {s: {**values, "new_metric": 1.0} for s, values in by_seed.items()} for arch, by_seed in CLEAR.items()
    }
    with pytest.raises(StageError, match=r"metrics not registered .*METRICS: new_metric \(cnn-0\)"):
        aggregate(unknown)
