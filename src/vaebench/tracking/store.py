"""Where MLflow's store is: `MLFLOW_TRACKING_URI` when set (a team's server, say), otherwise SQLite
`mlflow.db` with artifacts in `mlartifacts/`, both at the repository root.

Every stage, `vaebench ui` and `make clean` ask this module; nothing else spells the location.
Import-light (no MLflow), so the validate stage can check a server before any work starts.
`python -m vaebench.tracking.store --remove` deletes the local store (what `make clean` runs).
"""

from __future__ import annotations

import os
import shutil
import sys
import urllib.error
import urllib.request
from pathlib import Path

from vaebench.core.environment import repo_root
from vaebench.core.errors import StageError

HEALTH_TIMEOUT_S = 5
# MLflow's client retries an unreachable server for minutes by default; a stage should say so in seconds.
CLIENT_SETTINGS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
DATABASE = "mlflow.db"
ARTIFACTS = "mlartifacts"


def local_database() -> Path:
    """The SQLite store of this repository (DVC_ROOT also in `dvc exp run --queue`'s temporary copy)."""
    return repo_root() / DATABASE


def local_artifacts() -> Path:
    return repo_root() / ARTIFACTS


def configure_client() -> None:
    """CLIENT_SETTINGS for this process's MLflow client, where the user has not set them (called before
    the first request, never at import)."""
    for variable, value in CLIENT_SETTINGS.items():
        os.environ.setdefault(variable, value)


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{local_database()}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI; None for a server."""
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def check_tracking_server(uri: str) -> None:
    """A tracking server that does not answer its /health within seconds stops the stage at once
    (MLflow's own client would retry for minutes, then print a traceback)."""
    if not is_server(uri):
        return
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=HEALTH_TIMEOUT_S) as response:
            response.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise StageError(
            f"MLflow tracking server {uri} does not answer ({reason}): start it, or unset MLFLOW_TRACKING_URI"
            f" to use the local {DATABASE}"
        ) from None


def remove_local_store() -> None:
    for path in (local_database(), *local_database().parent.glob(f"{DATABASE}-*"), local_artifacts()):
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
            print(f"removed {path}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--remove"]:
        sys.exit("usage: python -m vaebench.tracking.store --remove")
    remove_local_store()
