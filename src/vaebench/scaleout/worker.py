"""One queued experiment on a Dask worker: the function `vaebench queue` submits.

In a scratch folder of the worker (Dask deletes a dead worker's): clone the git remote, fetch the
stash commit, `git checkout --detach <stash>` then `git reset <baseline>` (the queued workspace,
HEAD on its baseline), `dvc pull` the baseline's outputs so only what the experiment changed runs,
`dvc exp run -n NAME [the stages it was queued with]`, `dvc exp push --force`, then check the pushed
ref on the remote (DVC's exit code says 0 when nothing was pushed) and mark the entry done under refs/vaebench/done/.

An attempt first looks for that marker: when Dask restarts a task whose worker died after pushing,
the experiment is not run twice. Failures come back as an Outcome with the attempt's log, not as
an exception, so Dask does not retry an experiment that fails for a reason of its own. Each attempt
has an id, VAEBENCH_ATTEMPT in its stages' environment and so a tag of their MLflow runs: the client
marks FAILED the finished runs of attempts that did not land.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from vaebench.scaleout.commands import CommandFailed, Stopped, redact, run_logged, run_quiet
from vaebench.scaleout.queue import DONE_REFS, QUEUED_REFS, Task, remote_commands

TOPIC = "vaebench-queue"  # the Dask event topic of the progress display
LOG_TAIL = 200_000  # characters of an attempt's log sent back to the client


@dataclass
class Outcome:
    stash: str
    worker: str
    commit: str | None = None  # the experiment's commit, pushed to the git remote
    error: str | None = None
    log: str = ""
    seconds: dict[str, float] = field(default_factory=dict)  # per step: clone, pull, run, push
    stages: list[str] = field(default_factory=list)  # the stages `dvc exp run` ran
    earlier: bool = False  # an earlier attempt had already pushed it
    attempt: str = ""  # this attempt, the `vaebench_attempt` tag of the MLflow runs its stages log


def remote_sha(remote: str, ref: str, cwd: Path | None = None) -> str | None:
    listed = run_quiet(["git", "ls-remote", remote, ref], cwd or Path.cwd()).split()
    return listed[0] if listed else None


def worker_problems() -> list[str]:
    """What keeps this worker from running experiments (run on every worker before anything is sent)."""
    import shutil

    from vaebench.scaleout.commands import tool_path

    problems = []
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri.startswith(("http://", "https://")):
        problems.append(
            f"MLFLOW_TRACKING_URI is {uri!r}, not a tracking server: runs logged into the worker's scratch clone"
            " would be lost with it (export the team stack's, `vaebench team env`)"
        )
    for tool in ("git", "dvc"):
        if not shutil.which(tool, path=tool_path()["PATH"]):
            problems.append(f"no `{tool}` on the worker's PATH")
    return problems


def worker_label(worker) -> str:
    """The worker's --name where it has one, else its address."""
    return str(worker.name) if isinstance(worker.name, str) and worker.name != worker.address else worker.address


class _Attempt:
    """The steps of one attempt, timed, logged to one file, stopped when the task is cancelled."""

    def __init__(self, task: Task, root: Path) -> None:
        from distributed import get_worker

        self.task, self.root, self.log = task, root / "repo", root / "attempt.log"
        self.worker = get_worker()
        self.key = self.worker.get_current_task()
        self.outcome = Outcome(task.experiment.stash, worker_label(self.worker))
        self.outcome.attempt = f"{self.outcome.worker}:{uuid.uuid4().hex[:12]}"  # Dask reuses the task's key

    def cancelled(self) -> bool:
        """The client went away or cancelled: the scheduler has released this task on this worker."""
        state = self.worker.state.tasks.get(self.key)
        return state is None or state.state in {"cancelled", "released", "forgotten"}

    def report(self, state: str, **details: object) -> None:
        message = {"stash": self.task.experiment.stash, "state": state, "on": self.outcome.worker}
        message |= {"attempt": self.outcome.attempt, **details}
        self.worker.log_event(TOPIC, message)

    def step(self, name: str, *commands: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
        start, output = time.monotonic(), ""
        for command in commands:
            output += run_logged(name, command, cwd or self.root, self.log, self.cancelled, env)
        self.outcome.seconds[name] = self.outcome.seconds.get(name, 0.0) + time.monotonic() - start
        return output

    def run(self) -> None:
        task, e = self.task, self.task.experiment
        self.step(
            "clone", ["git", "clone", "--quiet", "--no-checkout", task.git_remote, str(self.root)], cwd=self.log.parent
        )
        name, email = task.identity
        self.step(
            "clone",
            ["git", "fetch", "--quiet", "origin", f"{QUEUED_REFS}/{e.stash}"],
            ["git", "checkout", "--quiet", "--detach", e.stash],
            ["git", "reset", "--quiet", e.baseline],
            ["git", "config", "user.name", name],
            ["git", "config", "user.email", email],
        )
        self.step("pull", *remote_commands(task.dvc_remote), ["dvc", "pull", "--allow-missing", "--quiet"])
        self.report("running")
        command = ["dvc", "exp", "run", "--name", e.name, *task.targets]
        output = self.step("run", command, env={"VAEBENCH_ATTEMPT": self.outcome.attempt})
        self.outcome.stages = [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")]
        commit = run_quiet(["git", "rev-parse", e.exp_ref], self.root).strip()
        self.report("pushing")
        self.step("push", ["dvc", "exp", "push", "--force", "origin", e.name])
        if remote_sha("origin", e.exp_ref, self.root) != commit:
            raise CommandFailed(
                "push", f"the git remote does not hold {e.exp_ref} at {commit[:7]} after `dvc exp push`"
            )
        self.step("push", ["git", "push", "--quiet", "origin", f"{commit}:{DONE_REFS}/{e.stash}"])
        self.outcome.commit = commit


def run_queued(task: Task) -> Outcome:
    """Run one queued experiment here and push it; never raises for the experiment's own failures."""
    from distributed import get_worker

    worker = get_worker()
    earlier = remote_sha(task.git_remote, f"{DONE_REFS}/{task.experiment.stash}")
    if earlier:
        return Outcome(task.experiment.stash, worker_label(worker), commit=earlier, earlier=True)
    with tempfile.TemporaryDirectory(prefix=f"exp-{task.experiment.stash[:7]}-", dir=worker.local_directory) as tmp:
        attempt = _Attempt(task, Path(tmp))
        attempt.report("started")
        try:
            attempt.run()
        except (CommandFailed, Stopped) as exc:
            attempt.outcome.error = str(exc) if isinstance(exc, CommandFailed) else f"stopped during {exc}"
        if attempt.log.exists():
            attempt.outcome.log = redact(attempt.log.read_text(errors="replace")[-LOG_TAIL:])
        return attempt.outcome
