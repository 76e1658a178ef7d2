"""The comparison table marks the better value, and only a difference that shows."""

from __future__ import annotations

from vaebench.report import compare_markdown, figure_table


def test_better_value_is_bold_in_the_right_direction() -> None:
    table = figure_table({"mlp": {"nll_iwae": 100.2, "fid": 250.0}, "cnn": {"nll_iwae": 106.8, "fid": 209.5}})
    rows = table.set_index("figure")
    assert rows.loc["nll_iwae", "mlp"] == "**100.2**" and rows.loc["nll_iwae", "cnn"] == "106.8"  # lower is better
    assert rows.loc["fid", "cnn"] == "**209.5**" and rows.loc["fid", "mlp"] == "250"


def test_values_equal_as_printed_are_not_marked() -> None:
    rows = figure_table({"mlp": {"sample_class_entropy": 2.25213}, "cnn": {"sample_class_entropy": 2.25249}})
    assert list(rows.iloc[0][["mlp", "cnn"]]) == ["2.252", "2.252"]


def test_report_lists_reference_figures_and_images() -> None:
    page = compare_markdown(
        {"mlp": {"neg_elbo": 104.2}, "cnn": {"neg_elbo": 110.3}},
        {"fid_test_halves": 1.85},
        iwae_k=50,
        figures=["loss_curves.png", "mlp_samples.png", "cnn_samples.png"],
    )
    assert "k = 50" in page and "| fid_test_halves" in page
    assert "![loss curves](figures/loss_curves.png)" in page
    assert "| samples | ![mlp samples](figures/mlp_samples.png) | ![cnn samples](figures/cnn_samples.png) |" in page
