"""Stage report: reports/compare.md from the figures of evaluate and render, logged to both runs."""

from pathlib import Path

import mlflow

from vaebench.io import read_json, write_text
from vaebench.params import ARCHITECTURES, load_params
from vaebench.report import compare_markdown, figure_table
from vaebench.stage import run_stage
from vaebench.tracking import resumed_run, use_experiment


def main() -> None:
    params = load_params()
    use_experiment(params.mlflow.experiment)
    evaluation = read_json("metrics/eval.json")
    results = {arch: evaluation[arch] for arch in ARCHITECTURES}
    figures = sorted(p.name for p in Path("reports/figures").glob("*.png"))
    write_text("reports/compare.md", compare_markdown(results, evaluation["reference"], evaluation["iwae_k"], figures))
    table = figure_table(results)
    for arch in ARCHITECTURES:
        with resumed_run(read_json(f"models/{arch}/run.json")["run_id"]) as active:
            if active:
                mlflow.log_artifact("reports/compare.md")
                mlflow.log_table(table, artifact_file="compare.json")
    print("wrote reports/compare.md")


if __name__ == "__main__":
    run_stage(main)
