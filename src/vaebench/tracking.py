"""MLflow: where the store lives, one run per architecture, and honest run status.

The store is `MLFLOW_TRACKING_URI` when set; otherwise SQLite `mlflow.db` with artifacts in
`mlartifacts/`, both at the repository root. DVC sets `DVC_ROOT` to that root for stage commands,
also in the temporary copy that `dvc exp run --queue` runs in, where a relative path would be lost.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing, contextmanager, nullcontext
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # offline machines; no phoning home

import mlflow
import torch
from filelock import FileLock
from mlflow.entities import RunStatus
from mlflow.exceptions import MlflowException

from vaebench.errors import Terminated


def repo_root() -> Path:
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repo_root() / 'mlflow.db'}"


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def use_experiment(name: str) -> str:
    """Point MLflow at the store and select the experiment (created on first use); returns its id.

    A SQLite store is created or migrated under a file lock, then switched to WAL mode, so that
    parallel stages (`dvc queue start -j 2`) neither race MLflow's migrations nor block readers.
    """
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    db = _sqlite_path(uri)
    with FileLock(f"{db}.lock") if db else nullcontext():
        if db:
            with closing(sqlite3.connect(db)) as connection:
                connection.execute("PRAGMA journal_mode=WAL")
        experiment = mlflow.get_experiment_by_name(name)  # the first call creates the tables
        if experiment is None:
            # With a local store, pin artifacts beside mlflow.db: MLflow's default is ./mlruns
            # relative to whatever directory the first run happened to start in.
            location = (repo_root() / "mlartifacts").as_uri() if db else None
            mlflow.create_experiment(name, artifact_location=location)
            experiment = mlflow.get_experiment_by_name(name)
    mlflow.set_experiment(experiment_id=experiment.experiment_id)
    return experiment.experiment_id


def _git(*args: str) -> str:
    result = subprocess.run(["git", *args], capture_output=True, text=True, cwd=Path.cwd())
    return result.stdout.strip() if result.returncode == 0 else ""


def provenance_tags(arch: str) -> dict[str, str]:
    """Architecture, git commit and dirtiness, and DVC's experiment and stage names when set.

    MLflow sets the commit tag only for `mlflow run` projects and never flags a dirty tree.
    """
    tags = {"arch": arch}
    commit = _git("rev-parse", "HEAD")
    if commit:
        tags["mlflow.source.git.commit"] = commit
        tags["git_dirty"] = str(bool(_git("status", "--porcelain", "--untracked-files=no"))).lower()
    for var in ("DVC_EXP_NAME", "DVC_STAGE"):
        if os.environ.get(var):
            tags[var.lower()] = os.environ[var]
    return tags


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated(f"received signal {signum}")


@contextmanager
def tracked_run(**start_run_kwargs: Any) -> Iterator[mlflow.ActiveRun]:
    """`mlflow.start_run`, ending FINISHED, FAILED on an error, KILLED on Ctrl-C or SIGTERM."""
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    run = mlflow.start_run(**start_run_kwargs)
    status = RunStatus.FAILED
    try:
        yield run
        status = RunStatus.FINISHED
    except (KeyboardInterrupt, Terminated):
        status = RunStatus.KILLED
        raise
    finally:
        mlflow.end_run(RunStatus.to_string(status))
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def resumed_run(run_id: str) -> Iterator[mlflow.ActiveRun | None]:
    """Reopen a training run to add evaluation figures; None (with a warning) if the store lacks it.

    The run can be missing when models came from a DVC remote (`dvc pull`) into another checkout
    whose MLflow store never saw that training: the stage's DVC outputs are still worth writing.
    """
    try:
        existing = mlflow.get_run(run_id)
    except MlflowException:
        print(f"warning: MLflow run {run_id} is not in {tracking_uri()}; figures go to DVC outputs only")
        yield None
        return
    mlflow.set_experiment(experiment_id=existing.info.experiment_id)  # start_run insists they match
    with tracked_run(run_id=run_id) as run:
        yield run


class _Reconstructor(torch.nn.Module):
    """Images in, deterministic reconstructions out: one tensor, which MLflow can serve."""

    def __init__(self, vae: torch.nn.Module) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(self.vae.encode(x)[0])


def log_torch_model(model: torch.nn.Module, example: torch.Tensor) -> None:
    """The trained model as the run's LoggedModel: a reconstructor, served by `mlflow models serve`.

    MLflow 3's default `pt2` format is a torch.export graph, not a pickle, so loading it runs no
    code of ours; it traces forward() on `example`. Requirements are given because pip inference
    needs the network. The VAE itself (encode/decode) is `vaebench.load_model("models/<arch>")`.
    """
    import mlflow.pytorch
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    images = TensorSpec(np.dtype(np.float32), (-1, 1, 28, 28))
    signature = ModelSignature(inputs=Schema([images]), outputs=Schema([images]))
    mlflow.pytorch.log_model(
        _Reconstructor(model.cpu()).eval(),
        name="model",
        signature=signature,
        input_example=example.cpu().numpy(),
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
        serialization_format="pt2",
    )
