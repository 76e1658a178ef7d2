"""A tuning study's report, `reports/tune/<NAME>/`, drawn from its journal and its experiments:

- trials.csv: every trial of every architecture, its params, score, state, time and first error;
- expected_best.png: each architecture's expected best validation −ELBO against the number of
  random-search trials and against the CPU hours they cost, with Dodge et al.'s ± one standard
  deviation band (`tuning.expected`);
- <arch>_history.png, <arch>_importances.png: Optuna's own plots;
- retrained.csv and the verdicts: each best recipe retrained with the comparison's seeds
  (`NAME-<arch>-best-<seed>`) and evaluated on the test set, compared by the report stage's own code;
- tune.md, which shows them all; logged as the MLflow run `tune <NAME>`.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from matplotlib.figure import Figure

from vaebench.core import paths
from vaebench.core.io import atomic_path, write_text
from vaebench.tuning import trials
from vaebench.tuning.expected import expected_best


def trials_table(repo: Path, arch: str, study) -> pd.DataFrame:
    rows = []
    for t in study.trials:
        experiment = t.user_attrs.get("experiment", "")
        wall = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else None
        rows.append(
            {
                "arch": arch,
                "trial": t.number,
                "experiment": experiment,
                "state": t.state.name,
                trials.OBJECTIVE: t.value,
                **{f"param {k}": v for k, v in t.params.items()},
                "seed": t.user_attrs.get("seed"),
                "train_seconds": t.user_attrs.get("train_seconds"),
                "wall_seconds": wall,
                "experiment_kept": bool(trials.exp_commit(repo, experiment)) if experiment else False,
                "error": t.user_attrs.get("error", ""),
            }
        )
    return pd.DataFrame(rows)


def curves(table: pd.DataFrame, samplers: dict[str, str]) -> pd.DataFrame:
    """Expected best −ELBO per architecture against n trials and CPU hours (n × mean training time).
    Failed trials count as draws of the budget that found nothing: the curve is over finished ones."""
    out = []
    for arch, rows in table[table["state"] == "COMPLETE"].groupby("arch"):
        if samplers.get(arch) != "random":
            continue
        scores = rows[trials.OBJECTIVE]
        curve = expected_best(list(scores))
        curve["cpu_hours"] = curve["n"] * rows["train_seconds"].mean() / 3600
        # the band as Dodge et al. draw it: ± one standard deviation, within the scores seen
        curve["band_low"] = (curve["expected"] - curve["std"]).clip(lower=scores.min())
        curve["band_high"] = (curve["expected"] + curve["std"]).clip(upper=scores.max())
        out.append(curve.assign(arch=arch))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def save_curves(curve: pd.DataFrame, path: Path) -> None:
    fig = Figure(figsize=(11, 4.2))
    axes = fig.subplots(1, 2, sharey=True)
    for arch, rows in curve.groupby("arch"):
        for ax, x in zip(axes, ("n", "cpu_hours"), strict=True):
            (line,) = ax.plot(rows[x], rows["expected"], marker="o", markersize=3, label=arch)
            ax.fill_between(rows[x], rows["band_low"], rows["band_high"], color=line.get_color(), alpha=0.2)
    axes[0].set_xlabel("random-search trials n")
    axes[1].set_xlabel("CPU hours of training (n × the mean trial)")
    axes[0].set_ylabel("expected best validation −ELBO (nats)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Expected best of n trials (Dodge et al. 2019), ± one standard deviation within the scores seen")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def save_optuna_plots(study, arch: str, folder: Path) -> list[str]:
    """Optuna's optimisation history and (with 3+ finished trials) parameter importances."""
    import optuna.visualization.matplotlib as plots
    from matplotlib import pyplot

    saved = []
    finished = [t for t in study.trials if t.value is not None]
    wanted = [("history", plots.plot_optimization_history)]
    if len(finished) >= 3 and len(finished[0].params) > 1:
        wanted.append(("importances", plots.plot_param_importances))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        for kind, plot in wanted:
            if not finished:
                continue
            ax = plot(study)
            ax.figure.set_size_inches(7, 4)
            ax.figure.tight_layout()
            ax.figure.savefig(folder / f"{arch}_{kind}.png", dpi=100)
            pyplot.close(ax.figure)
            saved.append(f"{arch}_{kind}.png")
    return saved


def retrained(repo: Path, name: str, archs: list[str]) -> pd.DataFrame | None:
    """The comparison of the retrained best recipes (the report stage's aggregate: means, intervals,
    Welch's verdicts) over params.yaml's compare.seeds; None until every seed of two architectures is in."""
    from vaebench.comparison.aggregate import aggregate

    seeds = yaml.safe_load((repo / paths.PARAMS).read_text())["compare"]["seeds"]
    per_seed = {}
    for arch in archs:
        commits = {seed: trials.exp_commit(repo, trials.best_name(name, arch, seed)) for seed in seeds}
        found = {s: trials.committed_json(repo, c, paths.eval_metrics(arch, s)) for s, c in commits.items() if c}
        if len(found) == len(seeds) and all(found.values()):
            per_seed[arch] = found
    return aggregate(per_seed) if len(per_seed) >= 2 else None


def best_recipes(studies: dict[str, Any], defaults: dict[str, Any]) -> pd.DataFrame:
    """Each architecture's best trial against params.yaml's values of the same keys."""
    rows = []
    for arch, study in studies.items():
        finished = [t for t in study.trials if t.value is not None]
        if not finished:
            continue
        best = study.best_trial
        for key, value in best.params.items():
            node = defaults
            for part in key.split("."):
                node = node[part]
            shown = float(f"{value:.4g}") if isinstance(value, float) else value
            rows.append({"arch": arch, "param": key, "default": node, "best": shown, "best trial": best.number})
    return pd.DataFrame(rows)


def _markdown(name: str, table: pd.DataFrame, samplers: dict, recipes: pd.DataFrame, verdicts, figures) -> str:
    from vaebench.comparison.report import metric_table

    counts = ", ".join(
        f"{arch}: {len(rows)} trials ({(rows['state'] == 'COMPLETE').sum()} finished, {samplers[arch]} sampler)"
        for arch, rows in table.groupby("arch")
    )
    lines = [
        f"# Tuning study `{name}`",
        "",
        f"Written by `vaebench tune` from its Optuna journal and DVC experiments. {counts}.",
        "Each trial is one DVC experiment that trains one architecture with its own seed; its score is",
        "the kept model's validation −ELBO (β = 1, nats per image, metrics/val/): never a test figure.",
        "",
        *[f"![{f}]({f})" for f in figures],
        "",
    ]
    if not recipes.empty:
        lines += ["## Best recipes against params.yaml", "", recipes.to_markdown(index=False), ""]
    if verdicts is not None:
        archs = sorted(verdicts[verdicts["n"].notna()]["arch"].unique())
        lines += [
            "## The best recipes retrained with the comparison's seeds, on the test set",
            "",
            "The report stage's statistics: mean ± 95 % half-width over seeds, Welch's test between the",
            "two, a winner only where it rejects equal means (α = 0.05).",
            "",
            metric_table(verdicts, archs).to_markdown(index=False, disable_numparse=True),
            "",
        ]
    shown = table.drop(columns=["error"]).round(4)
    lines += ["## Trials", "", shown.to_markdown(index=False), ""]
    failed = table[table["error"] != ""]
    if not failed.empty:
        lines += ["Failed trials:", "", *[f"- {r.experiment}: {r.error}" for r in failed.itertuples()], ""]
    return "\n".join(lines)


def write_report(name: str, repo: Path = Path("."), log_to_mlflow: bool = True) -> Path:
    found = trials.studies(repo, name)
    samplers = {arch: s.user_attrs.get("sampler", "") for arch, s in found.items()}
    table = pd.concat([trials_table(repo, arch, s) for arch, s in found.items()], ignore_index=True)
    defaults = yaml.safe_load((repo / paths.PARAMS).read_text())
    recipes = best_recipes(found, defaults)
    verdicts = retrained(repo, name, list(found))
    out = repo / paths.TUNE / name
    with atomic_path(out) as tmp:
        tmp.mkdir()
        table.to_csv(tmp / "trials.csv", index=False, float_format="%.6g")
        figures = []
        curve = curves(table, samplers)
        if not curve.empty:
            curve.to_csv(tmp / "expected_best.csv", index=False, float_format="%.6g")
            save_curves(curve, tmp / "expected_best.png")
            figures.append("expected_best.png")
        for arch, study in found.items():
            figures += save_optuna_plots(study, arch, tmp)
        if verdicts is not None:
            verdicts.to_csv(tmp / "retrained.csv", index=False, float_format="%.6g")
        write_text(tmp / "tune.md", _markdown(name, table, samplers, recipes, verdicts, figures))
    print(f"wrote {out}/tune.md: {len(table)} trials of {', '.join(found)}")
    if log_to_mlflow:
        _log(out, name, defaults["mlflow"]["experiment"])
    return out


def _log(out: Path, name: str, experiment: str) -> None:
    import mlflow

    from vaebench.tracking.runs import provenance_tags, tracked_run, use_experiment

    use_experiment(experiment)
    with tracked_run(run_name=f"tune {name}", tags=provenance_tags("tune", role="tune", study=name)):
        mlflow.log_artifacts(str(out), artifact_path="tune")
