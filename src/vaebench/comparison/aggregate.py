"""The comparison across seeds: every metric summarised per architecture, every pair of
architectures tested, as one long table (reports/compare.csv) and DVC's metrics (metrics/compare.json).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import pandas as pd

from vaebench.comparison.stats import Better, compare, summarize
from vaebench.core.errors import StageError

# metric -> (what it is, which way is better: "lower", "higher" or None)
METRICS: dict[str, tuple[str, Better]] = {
    "neg_elbo": ("−ELBO per image, sampled z (nats)", "lower"),
    "nll_iwae": ("NLL estimate, IWAE bound with k samples (nats)", "lower"),
    "elbo_iwae_gap": ("−ELBO minus IWAE NLL: looseness of the ELBO (nats)", "lower"),
    "recon": ("reconstruction part of −ELBO: distortion (nats)", "lower"),
    "kl": ("KL part of −ELBO: rate (nats)", None),
    "mse_per_pixel": ("reconstruction MSE per pixel, z = μ", "lower"),
    "recon_judge_accuracy": ("judge accuracy on reconstructions", "higher"),
    "fid": ("Fréchet distance, judge features, prior samples vs test", "lower"),
    "sample_inception_score": ("judge Inception Score of prior samples (1 to 10)", "higher"),
    "sample_digits_present": ("digits with ≥ 1% of prior samples (of 10)", "higher"),
    "sample_class_entropy": ("entropy of the samples' digit histogram (ln 10 = 2.303)", "higher"),
    "linear_probe_accuracy": ("linear probe accuracy on latent means", "higher"),
    "active_units": ("active latent units (Var μ > 0.01)", None),
    "latent": ("latent size", None),
    "n_params": ("parameters", None),
    "train_seconds": ("training time (s)", "lower"),
}
CONSTANT = {"latent", "n_params"}  # properties of the architecture, the same for every seed
SETTINGS = {"iwae_k", "test_images", "binarized"}  # how the metrics were measured: recorded, not compared
PerSeed = dict[str, dict[int, dict[str, float]]]  # arch -> seed -> metric -> value (metrics/eval/*.json)


def pairs(archs: list[str]) -> list[tuple[str, str]]:
    return list(itertools.combinations(archs, 2))


def per_seed_table(per_seed: PerSeed) -> pd.DataFrame:
    """One row per (architecture, seed), one column per metric."""
    rows = [
        {"arch": arch, "seed": seed, **values} for arch, by_seed in per_seed.items() for seed, values in by_seed.items()
    ]
    return pd.DataFrame(rows)


def check_registered(per_seed: PerSeed) -> None:
    """A metric that evaluation writes but METRICS does not describe would vanish from compare.*: refuse."""
    unknown = {
        f"{name} ({arch}-{seed})"
        for arch, by_seed in per_seed.items()
        for seed, values in by_seed.items()
        for name in values
        if name not in METRICS and name not in SETTINGS
    }
    if unknown:
        raise StageError(
            f"metrics not registered in vaebench.comparison.aggregate.METRICS: {', '.join(sorted(unknown))};"
            " add each with what it is and which way is better (or to SETTINGS if it is not a result)"
        )


def aggregate(per_seed: PerSeed) -> pd.DataFrame:
    """Long table: a row per (metric, arch) summary and per (metric, pair) difference."""
    check_registered(per_seed)
    rows: list[dict[str, Any]] = []
    for name, (_, better) in METRICS.items():
        values = {arch: [f[name] for f in by_seed.values() if name in f] for arch, by_seed in per_seed.items()}
        if not all(values.values()):
            continue
        for arch, series in values.items():
            rows.append({"metric": name, "arch": arch, **summarize(series).as_dict()})
        if name in CONSTANT:
            continue
        for a, b in pairs(list(per_seed)):
            result = compare(values[a], values[b], (a, b), better)
            rows.append({"metric": name, "arch": f"{b} - {a}", **result.as_dict()})
    return pd.DataFrame(rows)


def _rounded(value: float) -> float | None:
    return None if math.isnan(value) else float(f"{value:.6g}")


def metrics(table: pd.DataFrame, n_seeds: int, judge_accuracy: float | None = None) -> dict[str, Any]:
    """What DVC compares across experiments, in the order `dvc exp show` lists it: the seeds, the
    judge's accuracy, the verdicts per pair, then per architecture each figure's mean and the 95 %
    interval's half-width. Spread and n are in reports/compare.csv; write it unsorted."""
    out: dict[str, Any] = {"seeds": n_seeds}
    if judge_accuracy is not None:
        out["judge_accuracy"] = judge_accuracy
    differences = table[table["verdict"].notna()] if "verdict" in table else table.iloc[0:0]
    for row in differences.itertuples():
        if row.verdict:
            b, a = row.arch.split(" - ")
            out.setdefault("verdicts", {}).setdefault(f"{a}_vs_{b}", {})[row.metric] = row.verdict
    summaries = table[table["n"].notna()] if "n" in table else table.iloc[0:0]
    for row in summaries.itertuples():
        half = (row.ci_high - row.ci_low) / 2
        out.setdefault(row.arch, {})[row.metric] = {"mean": _rounded(row.mean), "ci95": _rounded(half)}
    return out
