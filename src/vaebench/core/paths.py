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
VAL = Path("metrics/val")  # the kept model's validation figures, what `vaebench tune` optimises
EVAL = Path("metrics/eval")
JUDGE_METRICS = Path("metrics/judge.json")
DATA_SUMMARY = Path("reports/data.json")
COMPARE_METRICS = Path("metrics/compare.json")
COMPARE_CSV = Path("reports/compare.csv")
COMPARE_MD = Path("reports/compare.md")
FIGURES = Path("reports/figures")
LOSS_CURVES = FIGURES / "loss_curves.png"
ARCH_FIGURES = ("reconstructions", "samples", "progress", "latent_map", "interpolations", "manifold")
STUDY = Path("reports/study")
TUNE = Path("reports/tune")  # one folder per tuning study


def run_name(arch: str, seed: int) -> str:
    """`<arch>-<seed>`: the DVC stage suffix (train@mlp-0), the MLflow run name and the file stem."""
    return f"{arch}-{seed}"


def model_dir(arch: str, seed: int) -> Path:
    return VAES / run_name(arch, seed)


def train_curve(arch: str, seed: int) -> Path:
    return TRAIN_CURVES / f"{run_name(arch, seed)}.csv"


def val_metrics(arch: str, seed: int) -> Path:
    return VAL / f"{run_name(arch, seed)}.json"


def eval_metrics(arch: str, seed: int) -> Path:
    return EVAL / f"{run_name(arch, seed)}.json"


def arch_figure(arch: str, kind: str, folder: Path = FIGURES) -> Path:
    """One of ARCH_FIGURES for one architecture: what render draws and report links."""
    assert kind in ARCH_FIGURES, kind
    return folder / f"{arch}_{kind}.png"


def stale_run_outputs(archs: list[str], seeds: list[int], known_archs: list[str]) -> list[Path]:
    """Outputs of train@/evaluate@ stages that compare.archs x compare.seeds no longer has
    (models/vae/mlp-2, metrics/train/mlp-2.csv, metrics/val/mlp-2.json, metrics/eval/mlp-2.json after
    seeds shrink): the
    render and report stages read these folders whole, so the files must go."""
    current = {run_name(arch, seed) for arch in archs for seed in seeds}
    stale = []
    for folder in (VAES, TRAIN_CURVES, VAL, EVAL):
        for path in sorted(folder.glob("*-*")) if folder.is_dir() else []:
            arch, _, seed = (path.name if path.is_dir() else path.stem).rpartition("-")
            if arch in known_archs and seed.isdigit() and run_name(arch, int(seed)) not in current:
                stale.append(path)
    return stale
