"""`vaebench tune NAME --arch ARCH --trials N`: Optuna's ask-and-tell around DVC's experiment queue.

Keeps `parallel` trials in flight: asks Optuna for a trial, checks its params with the project's
schema, queues it as a DVC experiment (`trials.queue`), and as each experiment ends tells Optuna
its validation −ELBO (or that it failed) and queues the next. A random sampler's trials are i.i.d.
draws (what the expected-best curves need); TPE learns from every finished trial, counting the
ones in flight as pessimistic guesses (Optuna 5's constant liar). Stopped (Ctrl-C) and run again,
it resumes from the journal: finished trials are kept, queued ones are waited for, not queued again.
`retrain` then trains each architecture's best recipe with the comparison's seeds (`NAME-<arch>-best-<seed>`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vaebench.core import paths
from vaebench.core.errors import StageError
from vaebench.core.params import with_values
from vaebench.scaleout import drain
from vaebench.scaleout.commands import CommandFailed, only_one
from vaebench.scaleout.queue import queued_experiments
from vaebench.tuning import trials
from vaebench.tuning.space import check_params, load_space, readable_keys

DAY_S = 24 * 3600


@dataclass
class Options:
    name: str
    arch: str | None = None  # None: retrain the best recipes of every tuned architecture
    trials: int = 12
    sampler: str = "random"
    seed: int = 0  # the sampler's
    parallel: int = 0  # trials in flight; 0: one per Dask worker, or 1 in DVC's local queue
    fixed: dict[str, Any] = field(default_factory=dict)  # -S overrides every trial gets
    dask: str | None = None  # the scheduler's address; None: DVC's own queue here
    git_remote: str = "origin"
    repo: Path = Path(".")


def say(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')}  {text}", flush=True)


def runner(options: Options):
    from vaebench.tuning.runners import DaskQueue, LocalQueue

    if options.dask:
        return DaskQueue(drain.Options(options.dask, options.git_remote, repo=options.repo))
    return LocalQueue(options.repo, options.parallel or 1)


def raw_params(repo: Path) -> dict[str, Any]:
    from vaebench.core.params import load_params

    load_params(repo / paths.PARAMS)  # the whole file valid first, with the schema's own messages
    return yaml.safe_load((repo / paths.PARAMS).read_text())


def check_budget(raw: dict[str, Any], options: Options) -> None:
    """One line on what the trials still to run cost; refused where even the lower bound of
    `training.budget` (this machine at a speed it never reaches) passes a day. Before the study is
    created: a refused command leaves nothing behind."""
    from vaebench.core.environment import resolve_device
    from vaebench.core.params import parse_params
    from vaebench.training.budget import least_training_seconds

    params = parse_params(trials_values(raw, options, 0))
    asked, done = trials.finished_so_far(options.repo, options.name, options.arch)
    left = options.trials - asked
    least = left * least_training_seconds(params, options.arch, resolve_device(params.runtime.device))
    if least > DAY_S:
        raise StageError(
            f"--trials {options.trials}: {left} more trainings of {options.arch} would take this machine at least"
            f" {least / DAY_S:.1f} days; fewer trials, or a cluster (--dask)"
        )
    measured = f"; its {len(done)} finished trials took {sum(done) / len(done) / 60:.1f} min each" if done else ""
    say(f"{asked} of {options.trials} trials asked; {max(left, 0)} to go{measured}")


def trials_values(raw: dict[str, Any], options: Options, seed: int, sampled: dict | None = None) -> dict:
    values = {"compare.archs": [options.arch], "compare.seeds": [seed], **options.fixed, **(sampled or {})}
    return with_values(raw, values)


def shown(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())


class Tuner:
    """One architecture's study, its runner, and the trials in flight (experiment name -> trial)."""

    def __init__(self, options: Options, study, space: dict, raw: dict, run) -> None:
        self.options, self.study, self.space, self.raw, self.run = options, study, space, raw, run
        self.in_flight: dict[str, Any] = {}

    def launch(self) -> None:
        """Ask for a trial, check it, queue it; a trial the schema refuses is told FAIL, not queued."""
        import optuna

        options = self.options
        self.study.sampler = trials.make_sampler(options.sampler, options.seed, len(self.study.trials))
        trial = self.study.ask(self.space)
        seed, experiment = trial.number, trials.experiment_name(options.name, options.arch, trial.number)
        trial.set_user_attr("experiment", experiment)
        trial.set_user_attr("seed", seed)
        values = {**options.fixed, **trial.params}
        if problem := check_params(self.raw, values, options.arch):
            trial.set_user_attr("error", f"not queued: {problem}")
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            say(f"{experiment}  FAILED before queueing: {problem}")
            return
        arch_seed = {"compare.archs": [options.arch], "compare.seeds": [seed]}
        trials.queue(options.repo, experiment, {**arch_seed, **values}, [f"train@{paths.run_name(options.arch, seed)}"])
        self.in_flight[experiment] = trial
        self.run.submit([experiment])
        say(f"{experiment}  queued: {shown(trial.params)}")

    def refill(self) -> None:
        while len(self.in_flight) < self.parallel and len(self.study.trials) < self.options.trials:
            self.launch()

    @property
    def parallel(self) -> int:
        return self.options.parallel or self.run.parallel

    def settle(self, experiment: str, error: str | None) -> None:
        """Tell Optuna what became of the trial: its score from the experiment's commit, or FAIL."""
        import optuna

        trial, options = self.in_flight.pop(experiment), self.options
        seed = trial.user_attrs["seed"]
        if error is None:
            commit = trials.exp_commit(options.repo, experiment)
            figures = trials.score(options.repo, commit, options.arch, seed) if commit else None
            error = None if figures else f"no {paths.val_metrics(options.arch, seed)} in its experiment"
        tags = {"vaebench.tune.study": options.name, "vaebench.tune.trial": str(trial.number)}
        if error:
            trial.set_user_attr("error", error)
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            say(f"{experiment}  FAILED: {error}")
        else:
            trial.set_user_attr("train_seconds", figures["train_seconds"])
            self.study.tell(trial, figures[trials.OBJECTIVE])
            best = self.study.best_value
            say(f"{experiment}  validation −ELBO {figures[trials.OBJECTIVE]:.2f} nats (best so far {best:.2f})")
        if warning := trials.tag_training_run(
            experiment, options.arch, seed, {**tags, "vaebench.tune.arch": options.arch}
        ):
            say(warning)

    def resume(self) -> None:
        """Trials an earlier run left RUNNING: collected since (told now), still queued (waited
        for), failed or gone (told FAIL)."""
        import optuna

        for frozen in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            trial = optuna.trial.Trial(self.study, frozen._trial_id)  # Optuna's handle of a trial by its id
            experiment = frozen.user_attrs.get("experiment", "")
            self.in_flight[experiment] = trial
            state = self.run.state(experiment)
            if trials.exp_commit(self.options.repo, experiment) and state != "waiting":
                self.settle(experiment, None)
            elif state == "waiting":
                self.run.submit([experiment])
                say(f"{experiment}  queued by an earlier run; waiting for it")
            elif state == "failed":
                self.settle(experiment, self.run.error(experiment))
            else:
                self.settle(experiment, "its experiment is gone: neither queued nor in `dvc exp show` (removed?)")

    def tune(self) -> None:
        self.resume()
        self.refill()
        for experiment, error in self.run.results():
            self.settle(experiment, error)
            self.refill()


def tune(options: Options) -> None:
    """Run the study to `options.trials` trials, then write its report."""
    from vaebench.tuning.report import write_report

    trials.check_name(options.name)
    lock = options.repo / trials.JOURNALS / f"{options.name}.lock"
    refusal = f"study {options.name} is already being tuned by {{holder}}; nothing queued"
    with only_one(lock, f"`vaebench tune {options.name}`", refusal):
        raw = raw_params(options.repo)
        space = load_space(raw, readable_keys(options.repo, options.arch), options.arch, options.fixed)
        check_budget(raw, options)
        study = trials.open_study(
            options.repo, options.name, options.arch, options.sampler, options.seed, options.fixed
        )
        with runner(options) as run:
            Tuner(options, study, space, raw, run).tune()
        write_report(options.name, options.repo)


def retrain(options: Options) -> None:
    """Each tuned architecture's best recipe trained with each of params.yaml's compare.seeds
    (`NAME-<arch>-best-<seed>`): the whole pipeline, test set included; then the report with the
    verdicts between them."""
    from vaebench.tuning.report import write_report

    trials.check_name(options.name)
    lock = options.repo / trials.JOURNALS / f"{options.name}.lock"
    refusal = f"study {options.name} is already being tuned by {{holder}}; nothing queued"
    with only_one(lock, f"`vaebench tune {options.name} --retrain`", refusal):
        names = queue_best(options)
        if names:
            with runner(options) as run:
                run.submit(names)
                failed = {name: error for name, error in run.results() if error}
            for name, error in failed.items():
                say(f"{name}  FAILED: {error}")
            if failed:
                raise StageError(f"{len(failed)} of the best recipes failed to retrain; the report is not rewritten")
        write_report(options.name, options.repo)


def queue_best(options: Options) -> list[str]:
    """Queue `NAME-<arch>-best-<seed>` for each architecture with a finished trial and each of
    params.yaml's compare.seeds not retrained yet: one experiment per seed, so that the workers
    share them (one experiment of three CNN trainings would keep one worker busy, the other idle)."""
    names, waiting = [], {e.name for e in queued_experiments(options.repo)}  # an interrupted --retrain's
    seeds = raw_params(options.repo)["compare"]["seeds"]
    for arch, study in trials.studies(options.repo, options.name).items():
        if not [t for t in study.trials if t.value is not None]:
            say(f"{arch}: no finished trial to retrain")
            continue
        for seed in seeds:
            experiment = trials.best_name(options.name, arch, seed)
            if trials.exp_commit(options.repo, experiment):
                say(f"{experiment}  retrained already")
                continue
            if experiment in waiting:
                say(f"{experiment}  queued by an earlier run; waiting for it")
                names.append(experiment)
                continue
            values = {"compare.archs": [arch], "compare.seeds": [seed], **study.user_attrs["fixed"]}
            try:
                trials.queue(options.repo, experiment, {**values, **study.best_trial.params}, [])
            except CommandFailed as exc:
                raise StageError(f"{experiment} could not be queued: {exc}") from None
            say(f"{experiment}  queued: trial {study.best_trial.number}'s recipe, seed {seed}")
            names.append(experiment)
    return names
