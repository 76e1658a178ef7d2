"""The queued experiments of a repository and what a worker needs to run one elsewhere.

Listed with DVC's queue API (`celery_queue.iter_queued()`, what `dvc queue status` reads): every
entry of every baseline, each a stash commit whose tree is the workspace as queued. Names are not
unique, so everything is keyed by stash rev. On the git remote each entry lives under
`refs/vaebench/queued/<stash rev>` while it waits and `refs/vaebench/done/<stash rev>` (pointing at
the experiment's commit) once a worker has pushed its experiment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vaebench.scaleout.commands import CREDENTIAL

QUEUED_REFS = "refs/vaebench/queued"
DONE_REFS = "refs/vaebench/done"


@dataclass(frozen=True)
class QueuedExperiment:
    stash: str
    baseline: str
    name: str

    @property
    def label(self) -> str:
        return f"{self.name} ({self.stash[:7]})"

    @property
    def exp_ref(self) -> str:
        """DVC's ref of the experiment once it has run: refs/exps/<baseline split 2/38>/<name>."""
        from dvc.repo.experiments.refs import ExpRefInfo

        return str(ExpRefInfo(self.baseline, self.name))


@dataclass(frozen=True)
class Task:
    """One queued experiment and where a worker finds, runs and sends it."""

    experiment: QueuedExperiment
    git_remote: str  # the URL the workers clone
    dvc_remote: dict[str, str] = field(default_factory=dict)  # the default DVC remote: name, url, options
    identity: tuple[str, str] = ("vaebench", "vaebench@localhost")  # the experiment commit's author
    targets: tuple[str, ...] = ()  # the stages `dvc exp run --queue` named, if any (a tuning trial: train only)


def queued_targets(repo: Path, stash: str) -> tuple[str, ...]:
    """The stages an entry was queued with (`dvc exp run --queue train@mlp-3`): DVC keeps its run
    arguments in the stash commit's .dvc/tmp/repro.dat, which its own queue worker unpickles too."""
    import pickle
    import subprocess

    shown = subprocess.run(["git", "show", f"{stash}:.dvc/tmp/repro.dat"], cwd=repo, capture_output=True)
    if shown.returncode != 0:
        return ()
    targets = pickle.loads(shown.stdout).get("kwargs", {}).get("targets")  # DVC's own file, from this repository
    return (targets,) if isinstance(targets, str) else tuple(targets or ())


def queued_experiments(repo: Path) -> list[QueuedExperiment]:
    """Every queued entry, oldest first, of every baseline (DVC's own list, not only HEAD's)."""
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc:
        entries = list(dvc.experiments.celery_queue.iter_queued())
    return [QueuedExperiment(e.stash_rev, e.baseline_rev, e.name or e.stash_rev[:7]) for e in entries]


def dvc_queue_workers(repo: Path) -> int:
    """How many of DVC's own queue workers (`dvc queue start`) are alive in this repository, busy or
    idle: what `dvc queue status` counts. Beside a drain, each would run the same entries again."""
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc:
        return len(dvc.experiments.celery_queue.worker_status())


def default_dvc_remote(repo: Path) -> tuple[dict[str, str], list[str]]:
    """The default DVC remote as the repository's own config files set it (.dvc/config, then
    config.local, where the team stack puts it), less its credentials; and the names of those.
    A worker uses its own (its environment, its own DVC config): one sent in a task would reach the
    scheduler, the worker's command line and its log."""
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc:
        levels = [dvc.config.load_one(level) for level in ("repo", "local")]
    name = next((c["core"]["remote"] for c in reversed(levels) if c["core"].get("remote")), None)
    if not name:
        return {}, []
    settings = {k: v for c in levels for k, v in c["remote"].get(name, {}).items()}
    if "url" not in settings:
        return {}, []
    withheld = sorted(k for k in settings if CREDENTIAL.search(k))
    return {"name": name, **{k: v for k, v in settings.items() if k not in withheld}}, withheld


def remote_commands(remote: dict[str, str]) -> list[list[str]]:
    """`dvc remote` commands that make `remote` a clone's default (in its .dvc/config.local)."""
    if not remote:
        return []
    name, url = remote["name"], remote["url"]
    commands = [["dvc", "remote", "add", "--local", "--force", "-d", name, url]]
    options = {k: v for k, v in remote.items() if k not in {"name", "url"}}
    return commands + [["dvc", "remote", "modify", "--local", name, k, v] for k, v in options.items()]
