"""The trials of a tuning study: Optuna's record of them and the DVC experiment each one is.

One record: Optuna's journal file (`.dvc/tmp/vaebench-tune/<NAME>.journal`, beside DVC's own queue
state, outside git and outside every queued workspace) holds each trial's params, state and score,
one Optuna study per architecture (`<NAME>-<arch>`). The score is told once, read from the trial's
experiment commit (metrics/val/, a git-tracked DVC metric), so the two cannot disagree; the report
is drawn from the journal. A trial is the DVC experiment `<NAME>-<arch>-<NNN>` queued with
`-S compare.archs=[arch] -S compare.seeds=[NNN] -S <its params>` and the target train@<arch>-<NNN>:
it trains, it never touches the test set.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from vaebench.core import paths
from vaebench.core.errors import StageError
from vaebench.experiments.commits import committed_text
from vaebench.scaleout.commands import run_quiet

JOURNALS = Path(".dvc/tmp/vaebench-tune")
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*(-[A-Za-z0-9_]+)*")  # a DVC experiment name and a git ref part
OBJECTIVE = "neg_elbo"  # of the kept model on the validation split, β = 1 (metrics/val/)
SAMPLERS = ("random", "tpe")


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise StageError(f"study name {name!r}: letters, digits, _ and single dashes, starting with a letter")
    return name


def journal(repo: Path, name: str) -> Path:
    return repo / JOURNALS / f"{name}.journal"


def storage(repo: Path, name: str):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = journal(repo, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def make_sampler(kind: str, seed: int, number: int):
    """The sampler that draws trial `number`, seeded by the study's seed and that number (numpy's
    SeedSequence: unrelated streams for neighbouring numbers). Each draw is then a function of the
    seed, the number and, for TPE, the finished trials: a study stopped and resumed draws what it
    would have drawn running through."""
    import numpy as np
    import optuna

    seed = int(np.random.SeedSequence([seed, number]).generate_state(1)[0])
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def finished_so_far(repo: Path, name: str, arch: str) -> tuple[int, list[float]]:
    """(trials asked, training seconds of the finished ones) of the study, without creating it."""
    import optuna

    if not journal(repo, name).exists():
        return 0, []
    try:
        study = optuna.load_study(study_name=f"{name}-{arch}", storage=storage(repo, name))
    except KeyError:  # no such study in the journal yet
        return 0, []
    return len(study.trials), [t.user_attrs["train_seconds"] for t in study.trials if "train_seconds" in t.user_attrs]


def open_study(repo: Path, name: str, arch: str, sampler: str, seed: int, fixed: dict[str, Any]):
    """The Optuna study `<name>-<arch>`, created on first use with its sampler and fixed overrides
    recorded; a later run with another sampler or other overrides is refused (its trials would
    not be i.i.d. draws of one search)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=f"{name}-{arch}", storage=storage(repo, name), direction="minimize", load_if_exists=True
    )
    recorded = study.user_attrs
    if not recorded:
        study.set_user_attr("sampler", sampler)
        study.set_user_attr("seed", seed)
        study.set_user_attr("fixed", fixed)
        study.set_user_attr("arch", arch)
    elif (recorded["sampler"], recorded["seed"], recorded["fixed"]) != (sampler, seed, fixed):
        raise StageError(
            f"study {name} of {arch} was started with --sampler {recorded['sampler']} --seed {recorded['seed']}"
            f" and -S {recorded['fixed'] or 'nothing'}: resume it with the same, or name a new study"
        )
    return study


def studies(repo: Path, name: str) -> dict[str, Any]:
    """{arch: Optuna study} of every architecture tuned under `name`."""
    import optuna

    if not journal(repo, name).exists():
        raise StageError(f"no study {name}: no {journal(repo, name)} (run `vaebench tune {name} --arch ARCH` first)")
    found = optuna.get_all_study_names(storage(repo, name))
    return {
        s.removeprefix(f"{name}-"): optuna.load_study(study_name=s, storage=storage(repo, name)) for s in sorted(found)
    }


def experiment_name(name: str, arch: str, number: int) -> str:
    return f"{name}-{arch}-{number:03d}"


def best_name(name: str, arch: str, seed: int) -> str:
    """The experiment that retrains the best recipe of `arch` with one of the comparison's seeds."""
    return f"{name}-{arch}-best-{seed}"


def overrides(values: dict[str, Any]) -> list[str]:
    """`-S key=value` arguments (the value as YAML in flow style, which DVC's override parser reads)."""
    args = []
    for key, value in values.items():
        text = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
        args += ["-S", f"{key}={text}"]
    return args


def queue(repo: Path, experiment: str, values: dict[str, Any], targets: list[str]) -> None:
    """`dvc exp run --queue -n experiment -S ... targets`: DVC stashes the workspace as it is."""
    run_quiet(["dvc", "exp", "run", "--queue", "--name", experiment, *overrides(values), *targets], repo)


def exp_commit(repo: Path, experiment: str) -> str | None:
    """The commit of the experiment of that name (under any baseline), or None."""
    listed = subprocess.run(
        ["git", "for-each-ref", "--format=%(objectname)", f"refs/exps/*/*/{experiment}"],
        cwd=repo,
        capture_output=True,
        text=True,
    ).stdout.split()
    return listed[-1] if listed else None


def committed_json(repo: Path, commit: str, path: Path) -> dict[str, Any] | None:
    text = committed_text(repo, commit, path)
    return json.loads(text) if text is not None else None


def score(repo: Path, commit: str, arch: str, seed: int) -> dict[str, Any] | None:
    """The trial's validation figures as its experiment commit holds them (metrics/val/)."""
    return committed_json(repo, commit, paths.val_metrics(arch, seed))


def tag_training_run(experiment: str, arch: str, seed: int, tags: dict[str, str]) -> str | None:
    """Tag the trial's training run in MLflow (found by DVC's experiment name, which the train stage
    records), so that the UI can chart the trials of one study; a warning, not a failure, if the
    store cannot be reached."""
    try:
        from mlflow.tracking import MlflowClient

        from vaebench.tracking.store import configure_client, tracking_uri

        configure_client()
        client = MlflowClient(tracking_uri=tracking_uri())
        stage = f"train@{paths.run_name(arch, seed)}"
        runs = client.search_runs(
            [e.experiment_id for e in client.search_experiments()],
            filter_string=f"tags.dvc_exp_name = '{experiment}' and tags.`vaebench.stage` = '{stage}'",
        )
        for run in runs:
            for key, value in tags.items():
                client.set_tag(run.info.run_id, key, value)
    except Exception as exc:  # the study goes on: its record is the journal
        return f"the MLflow runs of {experiment} were not tagged: {str(exc).splitlines()[0][:200]}"
    return None
