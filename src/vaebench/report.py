"""reports/compare.md: every figure of both architectures in one table, the better value in bold,
then the reference figures and the images. Written with pandas (to_markdown), read on GitHub.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

# figure -> (what it is, which way is better: "lower", "higher" or None)
FIGURES: dict[str, tuple[str, str | None]] = {
    "neg_elbo": ("−ELBO per image, sampled z (nats)", "lower"),
    "nll_iwae": ("NLL estimate, IWAE bound with k samples (nats)", "lower"),
    "elbo_iwae_gap": ("−ELBO minus IWAE NLL: looseness of the ELBO (nats)", "lower"),
    "recon": ("reconstruction part of −ELBO (nats)", "lower"),
    "kl": ("KL part of −ELBO (nats)", None),
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
REFERENCE: dict[str, str] = {
    "judge_test_accuracy": "judge accuracy on the test set",
    "fid_test_halves": "Fréchet distance, test set half vs half (≈ 0: the floor)",
    "fid_test_vs_noise": "Fréchet distance, test set vs uniform noise (the ceiling)",
    "test_inception_score": "Inception Score of the test set itself",
    "test_digits_present": "digits with ≥ 1% of the test set",
    "test_class_entropy": "entropy of the test set's digit histogram",
}
PER_ARCH_FIGURES = ("reconstructions", "samples", "progress", "latent_map", "interpolations", "manifold")


def _format(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:.4g}"


def figure_table(results: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per figure, one column per architecture, the better value in bold."""
    archs = list(results)
    rows = []
    for name, (meaning, better) in FIGURES.items():
        values = {arch: results[arch].get(name) for arch in archs}
        if any(v is None for v in values.values()):
            continue
        shown = {arch: _format(v) for arch, v in values.items()}
        best = (min if better == "lower" else max)(values.values()) if better else None
        tie = len(set(shown.values())) == 1  # equal as printed: bolding one would claim a difference unseen
        cells = {arch: f"**{shown[arch]}**" if v == best and not tie else shown[arch] for arch, v in values.items()}
        rows.append({"figure": name, "what it is": meaning, **cells})
    return pd.DataFrame(rows)


def compare_markdown(
    results: dict[str, dict[str, Any]], reference: dict[str, float], iwae_k: int, figures: list[str]
) -> str:
    """The whole report; `figures` are file names under reports/figures/."""
    archs = list(results)
    lines = [
        "# MLP VAE vs CNN VAE on MNIST",
        "",
        f"Test set figures (IWAE with k = {iwae_k}); the better value is in bold. Written by `dvc repro`",
        "(stages evaluate, render, report): edit nothing here by hand.",
        "",
        figure_table(results).to_markdown(index=False, disable_numparse=True),
        "",
        "## Reference figures (real data, same judge)",
        "",
        pd.DataFrame(
            [
                {"figure": k, "what it is": REFERENCE[k], "value": _format(v)}
                for k, v in reference.items()
                if k in REFERENCE
            ]
        ).to_markdown(index=False, disable_numparse=True),
        "",
        "## Figures",
        "",
    ]
    if "loss_curves.png" in figures:
        lines += ["![loss curves](figures/loss_curves.png)", ""]
    lines += ["| " + " | ".join(["figure", *archs]) + " |", "|" + " --- |" * (len(archs) + 1)]
    for kind in PER_ARCH_FIGURES:
        cells = [
            f"![{arch} {kind}](figures/{arch}_{kind}.png)" if f"{arch}_{kind}.png" in figures else "" for arch in archs
        ]
        if any(cells):
            lines.append("| " + " | ".join([kind.replace("_", " "), *cells]) + " |")
    return "\n".join(lines) + "\n"
