"""The study's charts (matplotlib): the rate–distortion plane and each figure against a swept value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure  # matplotlib's object API: no pyplot, no backend to choose headless


def distinct_points(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (architecture, β, latent size). An experiment that leaves an architecture as the
    baseline had it repeats the baseline's point (the same cached models, or fewer seeds of the same
    setting): keep the row with the most seeds."""
    return table.sort_values("n_seeds", kind="stable").drop_duplicates(["arch", "kl_weight", "latent"], keep="last")


def save_rate_distortion(table: pd.DataFrame, path: Path) -> None:
    """Rate (KL) against distortion (reconstruction), one point per (architecture, β, latent) with
    its seed interval, and dotted lines of equal −ELBO (rate + distortion = constant)."""
    table = distinct_points(table)
    fig = Figure(figsize=(6.5, 5))
    ax = fig.subplots()
    for arch, rows in table.groupby("arch"):
        rows = rows.sort_values(["latent", "kl_weight"])
        ax.errorbar(rows["kl"], rows["recon"], xerr=rows["kl_ci95"], yerr=rows["recon_ci95"], fmt="o", capsize=3,
                    label=arch)  # fmt: skip
        for r in rows.itertuples():
            ax.annotate(
                f"β={r.kl_weight:g}, d={r.latent}",
                (r.kl, r.recon),
                fontsize=7,
                xytext=(4, 4),
                textcoords="offset points",
            )
    low, high = (table["kl"] + table["recon"]).min(), (table["kl"] + table["recon"]).max()
    xs = np.linspace(0, table["kl"].max() * 1.15, 50)
    for level in np.linspace(low, high, 4) if high > low else [low]:
        ax.plot(xs, level - xs, ":", color="grey", linewidth=0.8)
        ax.annotate(f"−ELBO {level:.0f}", (xs[-1], level - xs[-1]), fontsize=7, color="grey")
    ax.set_ylim(table["recon"].min() * 0.9, table["recon"].max() * 1.1)
    ax.set_xlabel("rate: KL (nats)")
    ax.set_ylabel("distortion: reconstruction (nats)")
    ax.set_title("Rate–distortion, mean over seeds ± 95 % interval")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def save_sweep(table: pd.DataFrame, swept: str, fixed: str, baseline: Any, path: Path) -> bool:
    """−ELBO, IWAE bound and Fréchet distance against `swept`, per architecture, at the baseline's
    value of `fixed`; False when no architecture has two points for it."""
    selected = []
    for arch, rows in table.groupby("arch"):
        at = baseline.params["loss"]["kl_weight"] if fixed == "kl_weight" else baseline.params["model"][arch]["latent"]
        rows = distinct_points(rows[rows[fixed] == at]).sort_values(swept)
        if rows[swept].nunique() >= 2:
            selected.append((arch, rows))
    if not selected:
        return False
    fig = Figure(figsize=(12, 3.6))
    axes = fig.subplots(1, 3)
    for ax, figure, label in zip(
        axes, ("neg_elbo", "nll_iwae", "fid"), ("−ELBO (nats)", "IWAE bound (nats)", "Fréchet distance"), strict=True
    ):
        for arch, rows in selected:
            ax.errorbar(rows[swept], rows[figure], yerr=rows[f"{figure}_ci95"], marker="o", capsize=3, label=arch)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("β (kl_weight)" if swept == "kl_weight" else "latent size")
        ax.set_title(label)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return True
