"""`vaebench study`: the DVC experiments of a sweep (β, latent size) gathered into one report.

Each experiment contributes, per architecture, its aggregate over seeds (metrics/compare.json):
mean and 95 % half-width of rate (KL), distortion (reconstruction), −ELBO, IWAE bound and Fréchet
distance. Only experiments whose code and fixed params equal the baseline's are comparable; the
rest are listed with the reason they were skipped. Read from `dvc exp show --json`, DVC's own view.
Where an experiment gives both architectures one latent size, its own report's Welch test between
them (reports/compare.csv in its commit) is the study's verdict at that size.
"""

from __future__ import annotations

import io
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from vaebench.core import paths
from vaebench.core.errors import StageError
from vaebench.core.io import atomic_path, write_text
from vaebench.core.params import flatten
from vaebench.experiments.commits import committed_text

SWEPT = {"loss.kl_weight", "compare.seeds"}  # plus model.<arch>.latent: what a study may vary
METRICS = ("kl", "recon", "neg_elbo", "nll_iwae", "fid")
VERDICTS = ("neg_elbo", "nll_iwae", "recon", "fid")  # the ones with a better direction, at equal latent size
CODE = ("src/", "stages/")


@dataclass
class Experiment:
    name: str
    params: dict[str, Any]
    metrics: dict[str, Any] | None
    code: dict[str, str]
    state: str = "success"  # DVC's executor state: queued, running, failed, success
    rev: str = ""  # its git commit


def _experiment(name: str, data: dict[str, Any], state: str | None = None, rev: str = "") -> Experiment:
    params = (data.get("params") or {}).get("params.yaml", {}).get("data", {})
    metrics = (data.get("metrics") or {}).get("metrics/compare.json", {}).get("data")
    code = {path: dep.get("hash") for path, dep in (data.get("deps") or {}).items() if path.startswith(CODE)}
    return Experiment(name, params, metrics, code, state or "success", rev)


def read_experiments(repo: Path = Path("."), rev: str | None = None) -> tuple[Experiment, list[Experiment]]:
    """The baseline (HEAD, or the commit `rev` the experiments were queued on) and its experiments,
    from `dvc exp show --json`: DVC lists an experiment under the commit it was based on only."""
    command = ["dvc", "exp", "show", "--json", *(["--rev", rev] if rev else [])]
    result = subprocess.run(command, cwd=repo, capture_output=True, text=True)
    if result.returncode != 0:
        raise StageError(f"`dvc exp show --json` failed: {result.stderr.strip().splitlines()[-1:]}")
    (baseline,) = [b for b in json.loads(result.stdout) if b["rev"] != "workspace"][:1] or [None]
    if baseline is None:
        raise StageError("no git commit with experiments: commit, then `dvc exp run --queue -S ...`")
    experiments = []
    for e in baseline["experiments"] or []:
        rev = e["revs"][0]["rev"]
        state = (e.get("executor") or {}).get("state")
        experiments.append(_experiment(e["name"] or rev[:7], e["revs"][0].get("data") or {}, state, rev))
    name = baseline.get("name") or baseline["rev"][:7]
    return _experiment(name, baseline["data"], rev=baseline["rev"]), experiments


def _fixed(params: dict[str, Any]) -> dict[str, Any]:
    flat = flatten(params)
    return {k: v for k, v in flat.items() if k not in SWEPT and not (k.startswith("model.") and k.endswith(".latent"))}


def why_skipped(experiment: Experiment, baseline: Experiment) -> str | None:
    if experiment.state != "success":
        return f"the experiment is {experiment.state} (see `dvc queue logs {experiment.name}`)"
    if not experiment.metrics:
        return "no metrics/compare.json (failed, queued or running)"
    changed_code = sorted(p for p, h in experiment.code.items() if baseline.code.get(p) != h)
    if changed_code:
        return f"other code than the baseline: {', '.join(changed_code[:3])}"
    fixed, reference = _fixed(experiment.params), _fixed(baseline.params)
    differing = sorted(k for k in fixed.keys() | reference.keys() if fixed.get(k) != reference.get(k))
    if differing:
        return "other params than the baseline: " + ", ".join(f"{k} = {fixed.get(k)!r}" for k in differing[:4])
    return None


def _number(value: Any) -> float:
    return float("nan") if value is None else float(value)


def points(experiments: list[Experiment]) -> pd.DataFrame:
    """One row per (experiment, architecture): the swept values and each figure's mean and ± ."""
    rows = []
    for e in experiments:
        for arch in e.params["compare"]["archs"]:
            figures = e.metrics.get(arch, {})
            row = {
                "experiment": e.name,
                "arch": arch,
                "kl_weight": e.params["loss"]["kl_weight"],
                "latent": e.params["model"][arch]["latent"],
                "n_seeds": len(e.params["compare"]["seeds"]),
            }
            for name in METRICS:  # one seed has no interval: NaN, which matplotlib skips
                summary = figures.get(name) or {}
                row[name] = _number(summary.get("mean"))
                row[f"{name}_ci95"] = _number(summary.get("ci95"))
            rows.append(row)
    return pd.DataFrame(rows)


def shown(table: pd.DataFrame) -> pd.DataFrame:
    """The points as study.md prints them: each metric as `mean ± half-width`, rounded as compare.md is."""
    from vaebench.comparison.report import interval

    rows = table.sort_values(["arch", "latent", "kl_weight"])
    cells = {name: [interval(r[name], r[f"{name}_ci95"]) for _, r in rows.iterrows()] for name in METRICS}
    swept = {"experiment": rows["experiment"], "arch": rows["arch"], "kl_weight": [f"{b:g}" for b in rows["kl_weight"]]}
    return pd.DataFrame({**swept, "latent": rows["latent"], "n_seeds": rows["n_seeds"], **cells}).reset_index(drop=True)


def _report_table(repo: Path, rev: str) -> pd.DataFrame:
    """An experiment's reports/compare.csv as its commit holds it (a git-tracked output)."""
    text = committed_text(repo, rev, paths.COMPARE_CSV)
    if text is None:
        raise StageError(f"no {paths.COMPARE_CSV} in commit {rev[:7]}: was its report stage run?")
    return pd.read_csv(io.StringIO(text))


def equal_latent(experiments: list[Experiment], repo: Path) -> pd.DataFrame:
    """For each experiment whose two architectures share one latent size: each one's interval, the
    difference b − a and Welch's verdict, as that experiment's own report computed them."""
    from vaebench.comparison.report import shown_p

    rows = []
    for e in experiments:
        archs = e.params["compare"]["archs"]
        latents = {e.params["model"][arch]["latent"] for arch in archs}
        if len(archs) != 2 or len(latents) != 1:
            continue
        (a, b), (latent,) = archs, latents
        table = _report_table(repo, e.rev).set_index(["metric", "arch"])
        for name in VERDICTS:
            difference = table.loc[(name, f"{b} - {a}")]
            verdict = difference["verdict"]
            rows.append(
                {
                    "latent": latent,
                    "kl_weight": f"{e.params['loss']['kl_weight']:g}",
                    "experiment": e.name,
                    "metric": name,
                    a: table.loc[(name, a), "display"],
                    b: table.loc[(name, b), "display"],
                    f"{b} − {a} [95 % CI]": difference["display"],
                    "p (Welch)": shown_p(difference["p_value"]),
                    "verdict": verdict if isinstance(verdict, str) and verdict else "–",
                }
            )
    return pd.DataFrame(rows).sort_values(["kl_weight", "latent"], kind="stable") if rows else pd.DataFrame(rows)


def equal_latent_markdown(equal: pd.DataFrame) -> list[str]:
    if equal.empty:
        return []
    return [
        "## At equal latent size",
        "",
        "Each experiment that gives both architectures one latent size, as its own report compared them:",
        "mean ± 95 % half-width over its seeds, the difference with Welch's 95 % interval and p-value, and",
        "a winner only where the test rejects equal means (α = 0.05, no correction for the several metrics).",
        "",
        equal.to_markdown(index=False, disable_numparse=True),
        "",
    ]


def study_markdown(
    table: pd.DataFrame, equal: pd.DataFrame, used: list[str], skipped: dict[str, str], figures: list[str]
) -> str:
    lines = [
        "# Study: rate, distortion and likelihood across β and latent size",
        "",
        "Written by `vaebench study` from `dvc exp show`; each point is an architecture's mean over its seeds",
        "(± half-width of the 95 % interval, metrics/compare.json). Rate is the KL term, distortion the",
        "reconstruction term, both in nats per test image; −ELBO = rate + distortion.",
        "",
        *[f"![{f}]({f})" for f in figures],
        "",
        shown(table).to_markdown(index=False, disable_numparse=True),
        "",
        *equal_latent_markdown(equal),
        f"Experiments used ({len(used)}): {', '.join(used)}.",
        "",
    ]
    if skipped:
        lines += ["Skipped:", "", *[f"- {name}: {reason}" for name, reason in skipped.items()], ""]
    return "\n".join(lines)


def refuse_to_shrink(out: Path, used: list[str]) -> None:
    """A study already in `out` with more experiments than this one is not replaced (without --force)."""
    try:
        before = list(dict.fromkeys(pd.read_csv(out / "points.csv")["experiment"].astype(str)))
    except (OSError, ValueError, KeyError):
        return
    if len(used) < len(before):
        missing = [name for name in before if name not in used]
        raise StageError(
            f"{out}/ holds a study of {len(before)} experiments and this one has {len(used)} ({', '.join(used)});"
            f" not replaced (missing: {', '.join(missing)}). Run or queue the sweep first, write elsewhere with"
            " --out, or replace it with --force"
        )


def run_study(
    out: Path, repo: Path = Path("."), log_to_mlflow: bool = True, rev: str | None = None, force: bool = False
) -> pd.DataFrame:
    from vaebench.experiments.study_figures import save_rate_distortion, save_sweep

    baseline, experiments = read_experiments(repo, rev)
    candidates = [baseline, *experiments]
    skipped = {e.name: reason for e in candidates if (reason := why_skipped(e, baseline))}
    used = [e for e in candidates if e.name not in skipped]
    if not used:
        raise StageError("no experiment to study: " + "; ".join(f"{n}: {r}" for n, r in skipped.items()))
    if not force:
        refuse_to_shrink(out, [e.name for e in used])
    table, equal = points(used), equal_latent(used, repo)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        save_rate_distortion(table, tmp / "rate_distortion.png")
        figures = ["rate_distortion.png"]
        for swept, fixed in (("kl_weight", "latent"), ("latent", "kl_weight")):
            if save_sweep(table, swept, fixed, baseline, tmp / f"vs_{swept}.png"):
                figures.append(f"vs_{swept}.png")
        table.to_csv(tmp / "points.csv", index=False, float_format="%.6g")
        if not equal.empty:
            equal.to_csv(tmp / "equal_latent.csv", index=False)
        write_text(tmp / "study.md", study_markdown(table, equal, [e.name for e in used], skipped, figures))
    print(f"study of {len(used)} experiments written to {out}/study.md; skipped {len(skipped)}")
    for name, reason in skipped.items():
        print(f"  skipped {name}: {reason}")
    if log_to_mlflow:
        _log(out, baseline)
    return table


def _log(out: Path, baseline: Experiment) -> None:
    import mlflow

    from vaebench.tracking.runs import provenance_tags, tracked_run, use_experiment

    use_experiment(baseline.params["mlflow"]["experiment"])
    with tracked_run(run_name="study", tags=provenance_tags("study", role="study")):
        mlflow.log_artifacts(str(out), artifact_path="study")
