"""Where a study's experiments run: DVC's own queue on this machine, or a Dask cluster through
`vaebench queue`'s drain. Both take experiments (by name) while they run and yield (name, error
or None) as each ends, so a sequential sampler learns from every finished trial while the rest run.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, suppress
from pathlib import Path

from vaebench.scaleout.commands import CommandFailed, run_quiet, tool_path
from vaebench.scaleout.drain import Drain, Options, only_drain

POLL_S = 5.0
ERROR_LINE = re.compile(r"^(error: |ERROR: )(.*)$", re.MULTILINE)


class LocalQueue:
    """DVC's queue here: `dvc queue start -j JOBS`. Its workers exit once the queue is empty and are
    started again as entries come; the entries run in DVC's temporary copies of the repository."""

    def __init__(self, repo: Path, jobs: int) -> None:
        self.repo, self.jobs = repo, jobs
        self.waiting: set[str] = set()

    def __enter__(self) -> LocalQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.waiting and exc[0] is not None:
            print(
                f"DVC's queue goes on running {', '.join(sorted(self.waiting))} (`dvc queue kill NAME` stops one);"
                " run the same command again to collect them and go on",
                flush=True,
            )

    @property
    def parallel(self) -> int:
        return self.jobs

    def status(self) -> dict[str, str]:
        """{experiment name: Queued | Running | Success | Failed} of DVC's queue."""
        from dvc.repo import Repo

        with Repo(str(self.repo)) as dvc:
            return {e["name"]: e["status"] for e in dvc.experiments.celery_queue.status() if e["name"]}

    def start(self) -> None:
        """`dvc queue start` (it starts only the workers that are not running). Its output goes to
        no pipe: the worker it spawns would hold the pipe open, and the call would last as long."""
        command = ["dvc", "queue", "start", "--jobs", str(self.jobs)]
        result = subprocess.run(command, cwd=self.repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env={**os.environ, **tool_path()})  # fmt: skip
        if result.returncode != 0:
            raise CommandFailed("dvc queue start", f"exit status {result.returncode}; run it to see why")

    def submit(self, names: list[str]) -> None:
        self.waiting |= set(names)
        self.start()

    def error(self, name: str) -> str:
        """The most telling line of a failed entry's log: the stage's own `error:`, else DVC's."""
        try:
            log = run_quiet(["dvc", "queue", "logs", name], self.repo)
        except CommandFailed as exc:
            return f"failed (its log cannot be read: {exc})"
        found = ERROR_LINE.findall(log)
        stage = [text for prefix, text in found if prefix == "error: "]
        return (stage or [text for _, text in found] or ["failed (see `dvc queue logs " + name + "`)"])[0]

    def state(self, name: str) -> str:
        """waiting, success, failed or gone: what became of a trial queued by an earlier run."""
        return {"Queued": "waiting", "Running": "waiting", "Success": "success", "Failed": "failed"}.get(
            self.status().get(name, ""), "gone"
        )

    def results(self) -> Iterator[tuple[str, str | None]]:
        while self.waiting:
            statuses = self.status()
            ended = sorted(n for n in self.waiting if statuses.get(n) in {"Success", "Failed", None})
            if not ended:
                if "Running" not in statuses.values():  # a worker that was exiting as an entry came
                    self.start()
                time.sleep(POLL_S)
                continue
            for name in ended:
                self.waiting.discard(name)
                state = statuses.get(name)
                if state == "Success":
                    yield name, None
                elif state == "Failed":
                    yield name, self.error(name)
                else:
                    yield name, "its queue entry is gone (`dvc queue remove`d?)"


class DaskQueue:
    """`vaebench queue`'s drain, kept open: each experiment is sent as it is queued, collected as it
    ends. A failed trial's entry is removed from the queue (its log stays in .dvc/tmp/vaebench-queue/):
    the study has told Optuna, and a later `vaebench queue` must not run it again."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.names: dict[str, str] = {}  # stash -> name

    def __enter__(self) -> DaskQueue:
        with ExitStack() as stack:
            stack.enter_context(only_drain(self.options.repo))
            self.drain = stack.enter_context(Drain(self.options))
            self.stack = stack.pop_all()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.__exit__(*exc)

    @property
    def parallel(self) -> int:
        return self.drain.workers

    def queued(self) -> dict[str, str]:
        """{name: stash} of the queue now."""
        return {e.name: e.stash for e in self.drain.refresh()}

    def state(self, name: str) -> str:
        return "waiting" if name in self.queued() else "gone"

    def submit(self, names: list[str]) -> None:
        queued = self.queued()
        entries = [e for e in self.drain.queued if e.name in names]
        self.names |= {queued[n]: n for n in names if n in queued}
        self.drain.submit(entries, announce=False)

    def results(self) -> Iterator[tuple[str, str | None]]:
        for stash, error in self.drain.results():
            if error:
                with suppress(CommandFailed):  # else it stays queued: a later `vaebench queue` would say so
                    run_quiet(["dvc", "queue", "remove", stash], self.options.repo, retry_locked_s=300)
            yield self.names.get(stash, stash[:7]), error
