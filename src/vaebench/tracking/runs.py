"""MLflow runs: one per (architecture, seed), one per comparison, and honest run status.

The store is `vaebench.tracking.store`'s; a run whose process died is closed FAILED by the next
stage that would have written it, SIGTERM/SIGINT end a run KILLED, and a stage whose `dvc` died
(`core.stop`: a killed Dask worker, a lost node) ends its run FAILED with a note. A store or server
that fails is one line naming it (`store_errors`), not MLflow's traceback.
"""

from __future__ import annotations

import errno
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
from filelock import FileLock
from mlflow.entities import Metric, RunStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from vaebench.core import stop
from vaebench.core.errors import StageError, Terminated, first_line
from vaebench.core.io import process_alive
from vaebench.tracking.store import (
    check_tracking_server,
    configure_client,
    local_artifacts,
    local_database,
    sqlite_path,
    tracking_uri,
)
from vaebench.tracking.ui import share_grouped_view

if TYPE_CHECKING:
    import torch


STORE_FULL = "database or disk is full"  # SQLite's, through MLflow
SERVER_ERROR = "500 error responses"  # MLflow's client, after its retries of a server's internal errors


@contextmanager
def store_errors() -> Iterator[None]:
    """An exception of MLflow, SQLAlchemy or SQLite inside the block (the store or the server failed)
    becomes one StageError naming the store; the stage's outputs stay as they were."""
    try:
        yield
    except Exception as exc:
        if not type(exc).__module__.startswith(("mlflow", "sqlalchemy", "sqlite3")) or isinstance(exc, StageError):
            raise
        if STORE_FULL in str(exc):
            problem = f"the disk of the MLflow store {tracking_uri()} is full: free space, then rerun"
        else:
            problem = f"MLflow at {tracking_uri()} failed: {first_line(exc)}"
            if SERVER_ERROR in str(exc):  # the server answers, its own store does not
                problem += " (the server's database or artifact store is down: `vaebench team status` says which)"
        error = StageError(f"{problem}; outputs left as they were")
        error.__notes__ = getattr(exc, "__notes__", [])
        raise error from None


@store_errors()
def use_experiment(name: str) -> str:
    """Point MLflow at the store and select the experiment (created on first use); returns its id.

    A SQLite store is created or migrated under a file lock, then switched to WAL mode, so that
    parallel stages (`dvc queue start -j 2`) neither race MLflow's migrations nor block readers.
    A store that is not a database, is read-only, or keeps its artifacts outside this repository
    (a copied or moved checkout) stops the stage here, in one line, before any work.
    """
    configure_client()
    uri = tracking_uri()
    check_tracking_server(uri)
    mlflow.set_tracking_uri(uri)
    db = sqlite_path(uri)
    try:
        with FileLock(f"{db}.lock") if db else nullcontext():
            if db:
                with closing(sqlite3.connect(db)) as connection:
                    connection.execute("PRAGMA journal_mode=WAL")
            experiment = mlflow.get_experiment_by_name(name)  # the first call creates the tables
            if experiment is None:
                # With a local store, pin artifacts beside mlflow.db: MLflow's default is ./mlruns
                # relative to whatever directory the first run happened to start in.
                location = local_artifacts().as_uri() if db else None
                mlflow.create_experiment(name, artifact_location=location)
                experiment = mlflow.get_experiment_by_name(name)
    except (sqlite3.DatabaseError, OSError, MlflowException) as exc:
        if db is None:
            raise
        raise unusable_store(db, exc) from None
    if db == local_database() and experiment.artifact_location != local_artifacts().as_uri():
        raise StageError(
            f"{db} keeps experiment {name!r}'s artifacts in {experiment.artifact_location}, outside this repository"
            f" (the store came with a copied or moved checkout): move it aside (`mv {db.name} {db.name}.copied`)"
            " and rerun to start this checkout's own store"
        )
    mlflow.set_experiment(experiment_id=experiment.experiment_id)
    return experiment.experiment_id


def unusable_store(db: Path, exc: BaseException) -> StageError:
    """One line for a SQLite store that cannot be opened or written, and how to get going again."""
    reason = first_line(exc)
    read_only = isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM)
    if read_only or "readonly" in reason:
        fix = f"make it and its folder writable (`chmod u+w {db} {db.parent}`, or remount the file system)"
    else:
        fix = f"move it aside (`mv {db} {db}.broken`) and rerun to start a new store (its runs stay in the old file)"
    return StageError(f"the MLflow store {db} cannot be used ({reason}): {fix}, or set MLFLOW_TRACKING_URI")


def _git(*args: str) -> str:
    result = subprocess.run(["git", *args], capture_output=True, text=True, cwd=Path.cwd())
    return result.stdout.strip() if result.returncode == 0 else ""


def provenance_tags(stage: str, **tags: str) -> dict[str, str]:
    """The stage, git commit and dirtiness, DVC's experiment name, and the process that logs.

    MLflow sets the commit tag only for `mlflow run` projects and never flags a dirty tree. The
    host and pid let the next run of the stage tell a run whose process died from a live one.
    """
    tags = {"vaebench.stage": stage, "host": socket.gethostname(), "pid": str(os.getpid()), **tags}
    commit = _git("rev-parse", "HEAD")
    if commit:
        tags["mlflow.source.git.commit"] = commit
        tags["git_dirty"] = str(bool(_git("status", "--porcelain", "--untracked-files=no"))).lower()
    for var in ("DVC_EXP_NAME", "DVC_STAGE", "VAEBENCH_ATTEMPT"):  # the last: `vaebench queue`'s attempt
        if os.environ.get(var):
            tags[var.lower()] = os.environ[var]
    return tags


@store_errors()
def close_stale_runs(experiment_id: str, stage: str) -> list[str]:
    """Mark FAILED the RUNNING runs of `stage` whose process on this host is gone (SIGKILL, OOM)."""
    client = MlflowClient()
    running = client.search_runs(
        [experiment_id], filter_string=f"tags.`vaebench.stage` = '{stage}' and attributes.status = 'RUNNING'"
    )
    closed = []
    for run in running:
        tags = run.data.tags
        if (
            tags.get("host") == socket.gethostname()
            and tags.get("pid", "").isdigit()
            and not process_alive(int(tags["pid"]))
        ):
            client.set_tag(run.info.run_id, "vaebench.note", f"process {tags['pid']} died without closing this run")
            client.set_terminated(run.info.run_id, "FAILED")
            closed.append(run.info.run_id)
            print(f"marked MLflow run {run.info.run_id} FAILED: its process {tags['pid']} had died")
    return closed


def fail_unlanded(notes: dict[str, str]) -> list[str]:
    """Mark FAILED, with its note, each FINISHED run logged by a `vaebench queue` attempt that never
    landed (its worker died after a stage, its push was refused): a landed experiment then has
    exactly one FINISHED run per stage. `notes` maps an attempt (the `vaebench_attempt` tag) to
    why it did not land; the store is the environment's, the workers' tracking server."""
    configure_client()
    client, marked = MlflowClient(), []
    for attempt, note in notes.items():
        finished = mlflow.search_runs(
            search_all_experiments=True,
            filter_string=f"tags.vaebench_attempt = '{attempt}' and attributes.status = 'FINISHED'",
            output_format="list",
        )
        for run in finished:
            client.set_tag(run.info.run_id, "vaebench.note", note)
            client.set_terminated(run.info.run_id, "FAILED", end_time=run.info.end_time)
            marked.append(run.info.run_id)
    return marked


@contextmanager
def tracked_run(**start_run_kwargs: Any) -> Iterator[mlflow.ActiveRun]:
    """`mlflow.start_run` as one stop-deferring block (`core.stop`): the run ends FINISHED, FAILED on
    an error or when the stage's dvc died (with a note), KILLED on Ctrl-C or SIGTERM. A signal that
    comes while the block runs is acted on at the next check, at the latest before the run closes."""
    with stop.deferred(), store_errors():
        run = mlflow.start_run(**start_run_kwargs)
        status = RunStatus.FAILED
        try:
            yield run
            stop.check()
            status = RunStatus.FINISHED
        except (KeyboardInterrupt, Terminated):
            status = RunStatus.KILLED
            if stop.orphaned_alone():  # not stopped by a user: the dvc (or the machine's worker) running it died
                status = RunStatus.FAILED
                mlflow.set_tag("vaebench.note", "the dvc process that ran this stage died; the stage stopped")
            raise
        finally:
            _end_run(run, status, failure=sys.exc_info()[1])


def _end_run(run: mlflow.ActiveRun, status: int, failure: BaseException | None) -> None:
    """End the run; a store that cannot take it (a full disk, a lock left by an earlier write) is said
    in the stage's one error line, or printed when there is none."""
    try:
        mlflow.end_run(RunStatus.to_string(status))
    except Exception as exc:
        note = (
            f"the MLflow run {run.info.run_id} could not be marked {RunStatus.to_string(status)} ({first_line(exc)});"
            " the next run of this stage marks it FAILED"
        )
        if failure is not None:
            failure.add_note(note)
        else:
            print(f"warning: {note}")


def find_run(run_id: str) -> bool:
    """Whether the store holds the run; False (with a warning) when the models came from a DVC
    remote into a checkout whose MLflow store never saw their training."""
    try:
        MlflowClient().get_run(run_id)
    except MlflowException:
        print(f"warning: MLflow run {run_id} is not in {tracking_uri()}; figures go to DVC outputs only")
        return False
    return True


@store_errors()
def add_to_run(run_id: str, metrics: dict[str, float]) -> None:
    """Add metrics to a finished training run without reopening it, so its end time (the
    'Duration' column) stays the training's."""
    if not find_run(run_id):
        return
    client = MlflowClient()
    now = int(time.time() * 1000)
    items = [Metric(key, float(value), now, 0) for key, value in metrics.items()]
    for start in range(0, len(items), 1000):  # MLflow's batch limit
        client.log_batch(run_id, metrics=items[start : start + 1000])


def log_epoch(metrics: dict[str, float]) -> None:
    """One epoch's figures (EpochMetrics: losses, lr, seconds) at step `epoch` of the active run."""
    mlflow.log_metrics({k: v for k, v in metrics.items() if k != "epoch"}, step=int(metrics["epoch"]))


def log_reconstructions(grid: torch.Tensor, epoch: int) -> None:
    """A grid of originals over reconstructions (3 x H x W in [0, 1]) as the run's image slider at `epoch`."""
    from PIL import Image

    image = Image.fromarray(grid.mul(255).round().clamp(0, 255).byte().permute(1, 2, 0).numpy())
    mlflow.log_image(image, key="reconstructions", step=epoch)


def log_training_data(images: torch.Tensor, digest: str, source: str) -> None:
    """The training split as the run's dataset input (the UI's Dataset column); the digest is
    DVC's hash of data/processed, so a run names the exact data it saw."""
    import mlflow.data

    dataset = mlflow.data.from_numpy(images[:1].cpu().numpy(), source=source, name="mnist-train", digest=digest)
    mlflow.log_input(dataset, context="training")


def log_comparison(per_seed: Any, summary: Any, files: list[Path], run_ids: dict[str, str]) -> str:
    """One run `comparison` per pipeline run that aggregates: its tables and figures, and the ids
    of the training runs it summarises. Not their parent: DVC reuses a cached training run in
    every later comparison that keeps its params, so a training run belongs to many comparisons."""
    tags = provenance_tags("report", role="comparison")
    with tracked_run(run_name="comparison", tags=tags) as run:
        mlflow.log_params({"runs": ",".join(run_ids), "run_ids": ",".join(run_ids.values())})
        mlflow.log_table(per_seed, artifact_file="per_seed.json")
        mlflow.log_table(summary, artifact_file="summary.json")
        for path in files:
            mlflow.log_artifact(str(path), artifact_path="figures" if path.suffix == ".png" else None)
    share_grouped_view(run.info.experiment_id)
    return run.info.run_id
