"""Stage report: the fan-in. Every (architecture, seed)'s metrics summarised and tested ->
metrics/compare.json (what `dvc exp show` compares), reports/compare.csv and reports/compare.md,
and one MLflow run `comparison` that holds them with the figures."""

import _venv  # noqa: F401  # isort: skip  (first: one line if vaebench is not installed)

from vaebench.comparison.aggregate import aggregate, metrics, per_seed_table
from vaebench.comparison.report import compare_markdown, displayed, metric_table
from vaebench.core import paths
from vaebench.core.io import atomic_path, read_json, write_json, write_text
from vaebench.core.params import load_params
from vaebench.core.stage import run_stage
from vaebench.tracking.runs import log_comparison, use_experiment


def main() -> None:
    params = load_params()
    archs, seeds = params.compare.archs, params.compare.seeds
    per_seed = {arch: {seed: read_json(paths.eval_metrics(arch, seed)) for seed in seeds} for arch in archs}
    table = aggregate(per_seed)
    reference = read_json(paths.JUDGE_METRICS)
    images = sorted(p.name for p in paths.FIGURES.glob("*.png"))
    n_seeds = {arch: len(seeds) for arch in archs}

    write_json(paths.COMPARE_METRICS, metrics(table, len(seeds), reference["test_accuracy"]), sort_keys=False)
    with atomic_path(paths.COMPARE_CSV) as tmp:
        table.assign(display=displayed(table)).to_csv(tmp, index=False, float_format="%.6g")
    write_text(paths.COMPARE_MD, compare_markdown(table, n_seeds, reference, params.evaluate.iwae_k, images))

    use_experiment(params.mlflow.experiment)
    run_ids = {
        paths.run_name(arch, seed): read_json(paths.model_dir(arch, seed) / "run.json")["run_id"]
        for arch in archs
        for seed in seeds
    }
    log_comparison(
        per_seed=per_seed_table(per_seed),
        summary=metric_table(table, archs),
        files=[paths.COMPARE_MD, paths.COMPARE_CSV, paths.COMPARE_METRICS, *sorted(paths.FIGURES.glob("*.png"))],
        run_ids=run_ids,
    )
    print(f"wrote {paths.COMPARE_MD}: {len(archs)} architectures x {len(seeds)} seeds")
    print(table[table["metric"] == "nll_iwae"].to_string(index=False))


if __name__ == "__main__":
    run_stage(main)
