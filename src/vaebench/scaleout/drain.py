"""`vaebench queue --dask ADDRESS`: every queued experiment run on a Dask cluster's workers and
collected back into this repository as an ordinary experiment.

The client's side, in order: connect (an unreachable scheduler is one line, nothing touched);
ask every worker what it lacks; plan each entry (run it, only collect it if an earlier drain's
worker already pushed it, or refuse it with a reason); push the stash commits to the git remote;
submit one task per entry; then, as each ends, `dvc exp pull` it (DVC calls one at a time, retried
while another DVC command holds the lock), check the ref against the worker's commit and
`dvc queue remove` the entry. A failed experiment keeps its entry and its log, in .dvc/tmp/; the
MLflow runs of its attempts (and of a landed one's earlier attempts) that had finished end FAILED.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from vaebench.core.errors import StageError, first_line
from vaebench.scaleout.commands import CommandFailed, only_one, redact, run_quiet
from vaebench.scaleout.queue import (
    DONE_REFS,
    QUEUED_REFS,
    QueuedExperiment,
    Task,
    default_dvc_remote,
    dvc_queue_workers,
    queued_experiments,
    queued_targets,
)
from vaebench.scaleout.worker import TOPIC, Outcome, run_queued, worker_problems

CONNECT_TIMEOUT_S = 10
LOCK_RETRY_S = 300
LOGS = Path(".dvc/tmp/vaebench-queue")


@dataclass
class Options:
    address: str
    git_remote: str = "origin"
    resources: dict[str, float] = field(default_factory=dict)  # each experiment's, e.g. {"GPU": 1}
    repo: Path = Path(".")


@dataclass
class Plan:
    run: list[QueuedExperiment] = field(default_factory=list)
    collect: dict[str, str] = field(default_factory=dict)  # stash -> commit an earlier drain pushed
    refused: dict[str, str] = field(default_factory=dict)  # stash -> why


def say(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')}  {text}", flush=True)


def connect(address: str):
    """A client of the scheduler at `address`, with Dask's configured security (the team's client
    certificate where `vaebench team env` was exported). The address is tried first with one bare
    connection: a `Client` that fails to start leaves a finaliser that prints a traceback and
    waits for its own timeout on the way out."""
    import asyncio

    from distributed import Client, Security
    from distributed.comm import connect as open_comm

    security = Security()

    async def probe() -> None:
        comm = await open_comm(address, timeout=CONNECT_TIMEOUT_S, **security.get_connection_args("client"))
        await comm.close()

    try:
        asyncio.run(probe())
    except TypeError:  # tls:// and no certificate in Dask's config: distributed has no SSL context to use
        raise StageError(
            f"{address} takes TLS clients only and no client certificate is configured: export the"
            " DASK_DISTRIBUTED__COMM__TLS__* lines that `vaebench team env` prints; nothing was dequeued"
        ) from None
    except (OSError, TimeoutError, ValueError) as exc:
        raise StageError(f"no Dask scheduler answers at {address}: {first_line(exc)}; nothing was dequeued") from None
    # The client's own log would print a traceback per failed reconnection when the scheduler goes
    # away; the drain says that in one line (`Drain._settle`).
    logging.getLogger("distributed.client").setLevel(logging.CRITICAL)
    return Client(address, security=security, timeout=f"{CONNECT_TIMEOUT_S}s", set_as_default=False)


def check_resources(client, wanted: dict[str, float]) -> None:
    """Refuse, before anything is sent, resources no worker offers: Dask would wait for such a
    worker forever, in silence."""
    if not wanted:
        return
    offered = [w.get("resources") or {} for w in client.scheduler_info()["workers"].values()]
    if any(all(o.get(k, 0) >= v for k, v in wanted.items()) for o in offered):
        return
    have = sorted({f"{k}={v:g}" for o in offered for k, v in o.items()}) or ["no resources"]
    raise StageError(
        f"no worker offers {', '.join(f'{k}={v:g}' for k, v in wanted.items())} (they offer {', '.join(have)};"
        ' a worker declares its own with `dask worker --resources "GPU=1"`); nothing was dequeued'
    )


def preflight(client, options: Options, dvc_remote: dict[str, str]) -> tuple[int, list[QueuedExperiment]]:
    """What is checked before anything is dequeued or sent: the workers, the queue, the DVC
    remote's copy of this commit's outputs, the resources asked for. (workers, queued entries)"""
    workers = check_workers(client)
    experiments = queued_experiments(options.repo)
    if experiments:
        missing = missing_from_remote(options.repo) if dvc_remote else []
        if missing:
            shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
            say(
                f"the DVC remote lacks this commit's {shown}: the workers rerun the stages that make them"
                " (`dvc push` first to reuse them)"
            )
        check_resources(client, options.resources)
    return workers, experiments


def missing_from_remote(repo: Path) -> list[str]:
    """The outputs of this commit that the default DVC remote does not hold (`dvc status --cloud`):
    a worker pulls what is there, so the stages of the rest run again on every worker."""
    try:
        listed = json.loads(run_quiet(["dvc", "status", "--cloud", "--json"], repo) or "{}")
    except CommandFailed as exc:
        raise StageError(f"the DVC remote cannot be read from here ({exc}); nor could the workers") from None
    return sorted(path for path, state in listed.items() if state in {"new", "missing"})


def check_git_remote(remote: str, repo: Path) -> None:
    """The workers clone the repository from the git remote and push their experiments to it."""
    result = subprocess.run(["git", "remote", "get-url", remote], cwd=repo, capture_output=True, text=True)
    if result.returncode != 0:
        known = subprocess.run(["git", "remote"], cwd=repo, capture_output=True, text=True).stdout.split()
        listed = f" (it has {', '.join(known)})" if known else ""
        raise StageError(
            f"no git remote {remote!r} in this clone{listed}: the workers clone the repository from a git"
            f" remote they can reach and push to; `git remote add {remote} URL`, or --git-remote NAME"
        )


def check_workers(client) -> int:
    """The number of workers; StageError naming each worker's problem before anything is sent."""
    try:
        found = client.run(worker_problems)
    except Exception as exc:  # the worker cannot unpickle the function: no vaebench in its python
        raise StageError(
            f"a worker cannot run vaebench's tasks ({first_line(exc)}): install the project there"
        ) from None
    problems = [f"{worker}: {p}" for worker, listed in sorted(found.items()) for p in listed]
    if problems:
        raise StageError("the workers cannot run experiments yet: " + "; ".join(problems))
    return len(found)


def remote_refs(remote: str, repo: Path, namespace: str) -> dict[str, str]:
    """{stash rev: sha} of the refs under `namespace` on the git remote."""
    listed = run_quiet(["git", "ls-remote", remote, f"{namespace}/*"], repo).split()
    return {ref.rsplit("/", 1)[1]: sha for sha, ref in zip(listed[::2], listed[1::2], strict=True)}


def local_ref(repo: Path, ref: str) -> str | None:
    result = subprocess.run(["git", "rev-parse", "--verify", "--quiet", ref], cwd=repo, capture_output=True, text=True)
    return result.stdout.strip() or None


def make_plan(experiments: list[QueuedExperiment], done: dict[str, str], repo: Path) -> Plan:
    plan, seen = Plan(), Counter()
    for e in experiments:
        seen[(e.baseline, e.name)] += 1
        existing = local_ref(repo, e.exp_ref)
        if e.stash in done:
            plan.collect[e.stash] = done[e.stash]
        elif seen[(e.baseline, e.name)] > 1:
            plan.refused[e.stash] = f"the name {e.name} is queued more than once on {e.baseline[:7]}"
        elif existing:
            plan.refused[e.stash] = (
                f"an experiment {e.name} already exists on {e.baseline[:7]} (`dvc exp remove {e.name}`)"
            )
        else:
            plan.run.append(e)
    return plan


def publish(experiments: list[QueuedExperiment], remote: str, repo: Path) -> None:
    """The stash commits (and so their baselines) onto the git remote, under refs/vaebench/queued/."""
    if experiments:
        refspecs = [f"{e.stash}:{QUEUED_REFS}/{e.stash}" for e in experiments]
        run_quiet(["git", "push", "--quiet", "--force", remote, *refspecs], repo)


def remote_url(remote: str, repo: Path) -> str:
    """The git remote's URL as a worker must see it: a local path made absolute."""
    url = run_quiet(["git", "remote", "get-url", remote], repo).strip()
    return url if ":" in url else str((repo / url).resolve())


def identity(repo: Path) -> tuple[str, str]:
    def get(key: str, default: str) -> str:
        result = subprocess.run(["git", "config", key], cwd=repo, capture_output=True, text=True)
        return result.stdout.strip() or default

    return get("user.name", "vaebench"), get("user.email", "vaebench@localhost")


class Collector:
    """Brings each finished experiment into the repository, one DVC command at a time."""

    def __init__(self, options: Options, experiments: dict[str, QueuedExperiment]) -> None:
        self.options, self.experiments = options, experiments
        self.failed: dict[str, str] = {}
        self.collected: list[str] = []

    def collect(self, stash: str, commit: str) -> float:
        """`dvc exp pull` the experiment, check its ref, remove its queue entry; the seconds it took."""
        e, repo, remote = self.experiments[stash], self.options.repo, self.options.git_remote
        start = time.monotonic()
        if local_ref(repo, e.exp_ref) != commit:
            run_quiet(["dvc", "exp", "pull", "--force", remote, e.name], repo, retry_locked_s=LOCK_RETRY_S)
        if local_ref(repo, e.exp_ref) != commit:
            raise CommandFailed(
                "dvc exp pull", f"{e.exp_ref} is not at the worker's commit {commit[:7]} after the pull"
            )
        run_quiet(["dvc", "queue", "remove", stash], repo, retry_locked_s=LOCK_RETRY_S)
        refs = [f":{QUEUED_REFS}/{stash}", f":{DONE_REFS}/{stash}"]
        run_quiet(["git", "push", "--quiet", remote, *refs], repo)
        self.collected.append(stash)
        return time.monotonic() - start

    def fail(self, stash: str, error: str, log: str = "") -> str:
        e = self.experiments[stash]
        where = ""
        if log:
            path = self.options.repo / LOGS / f"{e.name}-{stash[:7]}.log"
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w") as file:
                file.write(redact(log))
            where = f"; log: {path}"
        self.failed[stash] = error
        say(f"{e.label}  FAILED: {error}{where}")
        return error


def describe(outcome: Outcome, collect_s: float) -> str:
    s = outcome.seconds
    overhead = s.get("clone", 0) + s.get("pull", 0) + s.get("push", 0) + collect_s
    ran = f"ran {len(outcome.stages)} stages" + (f" ({', '.join(outcome.stages)})" if outcome.stages else "")
    steps = ", ".join(f"{k} {v:.1f}" for k, v in [*s.items(), ("collect", collect_s)] if k != "run")
    return f"done on {outcome.worker}: experiment {s.get('run', 0):.0f} s, overhead {overhead:.1f} s ({steps}); {ran}"


class Drain:
    """A drain that takes entries while it runs. `vaebench queue` submits the whole queue once and
    waits for it; `vaebench tune` submits a few trials, and one more as each comes back. Opened
    (the checks, the connection) as a context; `results()` yields (stash, error or None) as each
    entry is collected or fails, including entries that an earlier drain had already run."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.futures: dict = {}  # Dask future -> stash
        self.ready: list[tuple[str, str | None]] = []  # settled without running: refused, or collected
        self.attempts: dict[str, set[str]] = {}  # stash -> the attempts the workers said they started
        self.landed: set[str] = set()  # attempts whose experiment landed: their runs are the experiment's
        self.dvc_worker_seen = False  # `dvc queue start` during the drain
        self.session = f"{time.time_ns():x}"

    def __enter__(self) -> Drain:
        options = self.options
        check_git_remote(options.git_remote, options.repo)
        if dvc_queue_workers(options.repo):
            raise StageError(
                "DVC's own queue worker runs in this repository (`dvc queue start`; `dvc queue status` counts it)"
                " and would run the entries a second time, beside the cluster: `dvc queue stop`, then run this"
                " again; nothing was dequeued"
            )
        self.client = connect(options.address)
        try:
            self.dvc_remote, self.withheld = default_dvc_remote(options.repo)
            self.workers, self.queued = preflight(self.client, options, self.dvc_remote)
            self.collector = Collector(options, {e.stash: e for e in self.queued})
            self.url, self.author = remote_url(options.git_remote, options.repo), identity(options.repo)
            self.client.subscribe_topic(TOPIC, self._progress)
            from distributed import as_completed

            self.completed = as_completed([], loop=self.client.loop)
        except BaseException:
            self.client.close()
            raise
        if self.withheld:
            say(f"DVC remote {self.dvc_remote['name']}: the workers use their own credentials;"
                f" not sent: {', '.join(self.withheld)}")  # fmt: skip
        return self

    def __exit__(self, *exc: object) -> None:
        try:  # Ctrl-C or an error here: what still runs is cancelled, not left to the client's departure
            unfinished = [f for f in self.futures if not f.done()]
            if unfinished:
                self.client.cancel(unfinished, force=True)
            for stash in set(self.attempts) - set(self.collector.collected):
                self._not_landed(stash, "did not land: the drain stopped before it was collected")
        finally:
            self.client.close()

    def _failed(self, stash: str, error: str, log: str = "") -> str:
        self.collector.fail(stash, error, log)
        self._not_landed(stash, f"did not land: {error}")
        return error

    def _not_landed(self, stash: str, why: str, landed: str = "") -> None:
        """End FAILED the FINISHED runs of this entry's attempts other than `landed`, with `why`."""
        attempts = self.attempts.pop(stash, set()) - self.landed - {landed, ""}
        if not attempts:
            return
        from vaebench.tracking.runs import fail_unlanded  # MLflow, only when an attempt did not land
        from vaebench.tracking.store import check_tracking_server, is_server

        label, uri = self.collector.experiments[stash].label, os.environ.get("MLFLOW_TRACKING_URI", "")
        if not is_server(uri):
            say(f"{label}  the runs of attempts that did not land stay as they ended: export the workers'"
                " MLFLOW_TRACKING_URI (`vaebench team env`) so that this client can mark them")  # fmt: skip
            return
        try:
            check_tracking_server(uri)  # one line in seconds, not MLflow's retries, when it is down
            marked = fail_unlanded(dict.fromkeys(sorted(attempts), why))
        except Exception as exc:  # the tracking server is down: the experiment's outcome still stands
            say(f"{label}  could not mark the runs of attempts that did not land ({first_line(exc)})")
            return
        if marked:
            say(f"{label}  {len(marked)} MLflow runs of attempts that did not land marked FAILED")

    def _check_for_dvc_worker(self) -> None:
        """Say once that `dvc queue start` was run during the drain: DVC's worker takes the same
        entries (DVC's queue has no claim on one) and its results can replace the cluster's."""
        if not self.dvc_worker_seen and dvc_queue_workers(self.options.repo):
            self.dvc_worker_seen = True
            say("DVC's own queue worker started during this drain (`dvc queue start`): it runs these entries"
                " a second time, beside the cluster; `dvc queue stop --kill` stops it")  # fmt: skip

    def _progress(self, event: tuple[float, dict]) -> None:
        message = event[1]
        if message.get("attempt") and message.get("stash") in self.collector.experiments:  # may come after its result
            self.attempts.setdefault(message["stash"], set()).add(message["attempt"])
        e = self.collector.experiments.get(message.get("stash", ""))
        if e and message.get("state") in {"started", "running", "pushing"}:
            say(f"{e.label}  {message['state']} on {message['on']}")

    def refresh(self) -> list[QueuedExperiment]:
        """The queue as it is now (entries queued since the drain opened included)."""
        self.queued = queued_experiments(self.options.repo)
        self.collector.experiments.update({e.stash: e for e in self.queued})
        return self.queued

    def submit(self, experiments: list[QueuedExperiment], announce: bool = True) -> None:
        """Plan `experiments` (run, collect what an earlier drain's worker pushed, or refuse), push
        their stash commits and send one task each."""
        options, remote = self.options, self.options.git_remote
        self.collector.experiments.update({e.stash: e for e in experiments})
        plan = make_plan(experiments, remote_refs(remote, options.repo, DONE_REFS), options.repo)
        if announce:
            say(f"{len(experiments)} queued; {len(plan.run)} to run on {self.workers} workers at {options.address}")
        for stash, why in plan.refused.items():
            self.collector.fail(stash, why)
            self.ready.append((stash, why))
        for stash, commit in plan.collect.items():
            self.collector.collect(stash, commit)
            say(f"{self.collector.experiments[stash].label}  pushed by an earlier drain; collected")
            self.ready.append((stash, None))
        if not plan.run:
            return
        start = time.monotonic()
        publish(plan.run, remote, options.repo)
        say(f"pushed {len(plan.run)} stash commits to {remote} in {time.monotonic() - start:.1f} s")
        for task in tasks(plan.run, self):
            key = f"exp-{task.experiment.name}-{task.experiment.stash[:7]}-{self.session}"
            future = self.client.submit(run_queued, task, key=key, pure=False, resources=options.resources or None)
            self.futures[future] = task.experiment.stash
            self.completed.add(future)

    def results(self) -> Iterator[tuple[str, str | None]]:
        """(stash, None) for each entry collected, (stash, error) for each that failed, as they end."""
        while self.ready or self.futures:
            if self.ready:
                yield self.ready.pop(0)
                continue
            future = next(self.completed)
            stash = self.futures.pop(future)
            yield stash, self._settle(future, stash)

    def _settle(self, future, stash: str) -> str | None:
        from distributed.client import FutureCancelledError

        collector = self.collector
        try:
            outcome: Outcome = future.result()
        except FutureCancelledError:  # nothing here cancels a task before Ctrl-C: the scheduler went away
            raise StageError(
                f"the Dask scheduler at {self.options.address} went away: {len(collector.collected)} collected;"
                " the rest stay queued. Start it again (`vaebench team up` starts what is down), then run this again"
            ) from None
        except Exception as exc:  # KilledWorker after allowed-failures deaths, or a bug in the task
            return self._failed(stash, f"{type(exc).__name__}: {first_line(exc)}")
        self.attempts.setdefault(stash, set()).add(outcome.attempt)
        self._check_for_dvc_worker()
        if outcome.error:
            return self._failed(stash, outcome.error, outcome.log)
        try:
            seconds = collector.collect(stash, outcome.commit)
        except CommandFailed as exc:
            also = " (DVC's own queue worker may have run it too)" if self.dvc_worker_seen else ""
            return self._failed(stash, f"collecting: {exc}{also}")
        done = "pushed by an earlier attempt; collected" if outcome.earlier else describe(outcome, seconds)
        say(f"{collector.experiments[stash].label}  {done}")
        if outcome.earlier:
            self.attempts.pop(stash, None)  # which attempt pushed it is not known here: its runs stay
        else:
            self.landed.add(outcome.attempt)
            self._not_landed(stash, f"did not land: a later attempt ({outcome.attempt}) did", landed=outcome.attempt)
        return None


def tasks(experiments: list[QueuedExperiment], drain: Drain) -> list[Task]:
    """What each worker is sent: the entry, its stages, the git remote's URL, the DVC remote without
    credentials (`default_dvc_remote`)."""
    for e in experiments:
        say(f"{e.label}  queued")
    repo = drain.options.repo
    return [Task(e, drain.url, drain.dvc_remote, drain.author, queued_targets(repo, e.stash)) for e in experiments]


def repository_root(start: Path = Path(".")) -> Path:
    """The DVC repository's root from anywhere inside it: the queue, its refs and the drain's logs
    are the repository's, not a subfolder's."""
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        return Path(Repo.find_root(str(start)))
    except NotDvcRepoError:
        raise StageError(f"{start.resolve()} is not inside a DVC repository: run `vaebench queue` in one") from None


def only_drain(repo: Path):
    """One drain at a time per repository: two would each run the other's entries (DVC's queue
    has no claim on an entry) and report the other's results as failures."""
    return only_one(
        repo / LOGS / "drain.lock",
        "`vaebench queue`",
        "this repository's queue is already being drained by {holder}; nothing dequeued",
    )


def drain(options: Options) -> int:
    """Run every queued experiment on the cluster; the exit status (1 when any failed)."""
    with only_drain(options.repo), Drain(options) as running:
        if not running.queued:
            say("nothing queued: `dvc exp run --queue -S ...` first (`dvc queue status` lists the queue)")
            return 0
        running.submit(running.queued)
        failed = [stash for stash, error in running.results() if error]
        collector = running.collector
    say(f"{len(collector.collected)} collected, {len(failed)} failed")
    if failed:
        names = ", ".join(collector.experiments[s].label for s in failed)
        say(f"failed: {names}; their entries stay queued: fix, then run this again")
        return 1
    return 0
