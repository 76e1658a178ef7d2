"""Every path the pipeline reads or writes, named once (dvc.yaml spells the same paths for DVC)."""

from __future__ import annotations

from pathlib import Path

PARAMS = Path("params.yaml")
VALIDATED = Path("data/validated.json")  # the validate stage's stamp; every stage depends on it
RAW = Path("data/raw")
PROCESSED = Path("data/processed")
JUDGE = Path("models/judge")
VAES = Path("models/vae")
TRAIN_CURVES = Path("metrics/train")
EVAL = Path("metrics/eval")
JUDGE_METRICS = Path("metrics/judge.json")
DATA_SUMMARY = Path("reports/data.json")
COMPARE_METRICS = Path("metrics/compare.json")
COMPARE_CSV = Path("reports/compare.csv")
COMPARE_MD = Path("reports/compare.md")
FIGURES = Path("reports/figures")
STUDY = Path("reports/study")


def run_name(arch: str, seed: int) -> str:
    """`<arch>-<seed>`: the DVC stage suffix (train@mlp-0), the MLflow run name and the file stem."""
    return f"{arch}-{seed}"


def model_dir(arch: str, seed: int) -> Path:
    return VAES / run_name(arch, seed)


def train_curve(arch: str, seed: int) -> Path:
    return TRAIN_CURVES / f"{run_name(arch, seed)}.csv"


def eval_figures(arch: str, seed: int) -> Path:
    return EVAL / f"{run_name(arch, seed)}.json"
