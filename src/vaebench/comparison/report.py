"""reports/compare.md: every metric of every architecture as mean ± 95 % interval over its seeds,
each pair tested (Welch), a winner in bold only where the test says so; then the images.
Written with pandas (to_markdown), read on GitHub.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from vaebench.comparison.aggregate import METRICS, pairs
from vaebench.comparison.stats import ALPHA, NO_DIFFERENCE, ONE_SEED
from vaebench.core.paths import ARCH_FIGURES, LOSS_CURVES, arch_figure

REFERENCE: dict[str, str] = {
    "test_accuracy": "judge accuracy on the test set",
    "fid_test_halves": "Fréchet distance, test set half vs half (≈ 0: the floor)",
    "fid_test_vs_noise": "Fréchet distance, test set vs uniform noise (the ceiling)",
    "test_inception_score": "Inception Score of the test set itself",
    "test_digits_present": "digits with ≥ 1% of the test set",
    "test_class_entropy": "entropy of the test set's digit histogram",
}


def _format(value: float) -> str:
    """A value without an interval: four significant digits, integers of 100 and more in full."""
    if math.isnan(value):
        return "–"
    return f"{int(value):,}" if float(value).is_integer() and abs(value) >= 100 else f"{value:.4g}"


def decimals(half_width: float) -> int:
    """Decimal places that show `half_width` to two significant digits (negative: tens, hundreds...)."""
    two_digits = float(f"{abs(half_width):.2g}")  # 0.0999 -> 0.1: one place fewer than the raw value asks
    return 1 - math.floor(math.log10(two_digits))


def _fixed(value: float, places: int) -> str:
    rounded = round(value, places)
    return f"{int(rounded):,}" if places <= 0 else f"{rounded:,.{places}f}"


def interval(mean: float, half_width: float) -> str:
    """`mean ± half_width`, the half-width to two significant digits and the mean to its decimal
    place (104.20 ± 0.18, 0.00912 ± 0.00012, 52 ± 14); no half-width: the mean alone."""
    if math.isnan(half_width) or half_width == 0:
        return _format(mean)
    places = decimals(half_width)
    return f"{_fixed(mean, places)} ± {_fixed(half_width, places)}"


def difference_interval(diff: float, low: float, high: float) -> str:
    """`diff [low, high]`, rounded as `interval` rounds a mean by the interval's half-width."""
    if math.isnan(low) or high == low:
        return _format(diff)
    places = decimals((high - low) / 2)
    return f"{_fixed(diff, places)} [{_fixed(low, places)}, {_fixed(high, places)}]"


def _cell(row: pd.Series) -> str:
    if row["n"] < 2 or math.isnan(row["ci_low"]) or row["std"] == 0:
        return _format(row["mean"])
    return interval(row["mean"], (row["ci_high"] - row["ci_low"]) / 2)


def _difference(row: pd.Series) -> str:
    return difference_interval(row["diff"], row["ci_low"], row["ci_high"])


def displayed(table: pd.DataFrame) -> pd.Series:
    """The long table's rows as the report prints them: `mean ± half-width` or `diff [low, high]`."""
    return pd.Series(
        [_cell(row) if not pd.isna(row.get("n")) else _difference(row) for _, row in table.iterrows()],
        index=table.index,
        name="display",
    )


def metric_table(table: pd.DataFrame, archs: list[str]) -> pd.DataFrame:
    """One row per figure: each architecture's mean ± half-width, and for two architectures the
    difference, its interval, p and the verdict; the winner's value in bold."""
    rows = []
    for name, (meaning, _) in METRICS.items():
        of_metric = table[table["metric"] == name]
        summaries = {r["arch"]: r for _, r in of_metric[of_metric["arch"].isin(archs)].iterrows()}
        if set(summaries) != set(archs):
            continue
        diffs = {r["arch"]: r for _, r in of_metric[~of_metric["arch"].isin(archs)].iterrows()}
        winners = {d["verdict"] for d in diffs.values() if d["verdict"] in archs}
        cells = {a: f"**{_cell(s)}**" if a in winners and len(archs) == 2 else _cell(s) for a, s in summaries.items()}
        row = {"metric": name, "what it is": meaning, **cells}
        if len(archs) == 2:
            (d,) = diffs.values() or [None]
            difference, p = (_difference(d), shown_p(d["p_value"])) if d is not None else ("–", "–")
            row |= {f"{archs[1]} − {archs[0]} [95 % CI]": difference, "p (Welch)": p}
            row["verdict"] = d["verdict"] if d is not None and d["verdict"] else "–"
        rows.append(row)
    return pd.DataFrame(rows)


def shown_p(p: float) -> str:
    """A p-value as the reports show it: three decimals, "< 0.001" below that, "–" for none."""
    return "–" if math.isnan(p) else ("< 0.001" if p < 0.001 else f"{p:.3f}")


def pair_table(table: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """With three or more architectures: one table per pair, the difference b − a per figure."""
    rows = table[table["arch"] == f"{b} - {a}"]
    return pd.DataFrame(
        {
            "metric": rows["metric"],
            f"{b} − {a} [95 % CI]": [_difference(r) for _, r in rows.iterrows()],
            "p (Welch)": [shown_p(p) for p in rows["p_value"]],
            "verdict": [v or "–" for v in rows["verdict"]],
        }
    )


def _intro(archs: list[str], n_seeds: dict[str, int], iwae_k: int) -> list[str]:
    seeds = ", ".join(f"{a}: {n}" for a, n in n_seeds.items())
    if min(n_seeds.values()) < 2:
        verdicts = f"With one seed there is no interval and no test, so every verdict reads *{ONE_SEED}*."
    else:
        verdicts = (
            f"Each cell is the mean over seeds ± the half-width of its 95 % interval (Student's t). Between"
            f" architectures, Welch's t-test at α = {ALPHA}: a value is in **bold** and named in the verdict"
            f" only where the test rejects equal means; otherwise the verdict is *{NO_DIFFERENCE}*."
            f" The {sum(1 for _, better in METRICS.values() if better)} metrics with a better direction get a"
            f" verdict, each tested on its own (no correction for multiple comparisons): read a p-value near"
            f" {ALPHA} as a hint, not a result."
        )
    return [
        f"# {' vs '.join(a.upper() for a in archs)} VAE on MNIST",
        "",
        f"Test set metrics (IWAE with k = {iwae_k}); seeds per architecture: {seeds}. {verdicts}",
        "Written by `dvc repro` (stages evaluate@…, render, report): edit nothing here by hand.",
        "",
    ]


def compare_markdown(
    table: pd.DataFrame, n_seeds: dict[str, int], reference: dict[str, Any], iwae_k: int, figures: list[str]
) -> str:
    """The whole report; `figures` are file names under reports/figures/."""
    archs = list(n_seeds)
    lines = [
        *_intro(archs, n_seeds, iwae_k),
        metric_table(table, archs).to_markdown(index=False, disable_numparse=True),
        "",
    ]
    if len(archs) > 2:
        for a, b in pairs(archs):
            lines += [f"## {b} − {a}", "", pair_table(table, a, b).to_markdown(index=False, disable_numparse=True), ""]
    reference_rows = [
        {"metric": k, "what it is": REFERENCE[k], "value": _format(v)} for k, v in reference.items() if k in REFERENCE
    ]
    lines += [
        "## Reference metrics (real data, same judge)",
        "",
        pd.DataFrame(reference_rows).to_markdown(index=False, disable_numparse=True),
        "",
        "## Figures",
        "",
        "Images are of each architecture's first seed; the loss curves show every seed.",
        "",
    ]
    if LOSS_CURVES.name in figures:
        lines += [f"![loss curves](figures/{LOSS_CURVES.name})", ""]
    lines += ["| " + " | ".join(["figure", *archs]) + " |", "|" + " --- |" * (len(archs) + 1)]
    for kind in ARCH_FIGURES:
        cells = [
            f"![{arch} {kind}](figures/{name})" if (name := arch_figure(arch, kind).name) in figures else ""
            for arch in archs
        ]
        if any(cells):
            lines.append("| " + " | ".join([kind.replace("_", " "), *cells]) + " |")
    return "\n".join(lines) + "\n"
