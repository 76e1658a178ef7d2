"""The MLflow UI's address for an experiment's training runs.

MLflow 3.17 opens an experiment on its GenAI overview (traces, token usage); the training runs are
under `?workflowType=machine_learning`. This module finds the experiment's id in the store.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path


def experiment_id(db: Path, name: str) -> str | None:
    """The experiment's id in a SQLite store, read directly: no MLflow import, no migration."""
    if not db.exists():
        return None
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as connection:
        row = connection.execute("SELECT experiment_id FROM experiments WHERE name = ?", (name,)).fetchone()
    return str(row[0]) if row else None


def runs_url(base: str, experiment: str) -> str:
    """The experiment's training runs ("Model training" view), not its GenAI overview."""
    return f"{base}/#/experiments/{experiment}/runs?workflowType=machine_learning"


def experiment_url(base: str, db: Path, name: str) -> str:
    found = experiment_id(db, name)
    if found is None:
        return f"{base}/#/experiments  (no experiment {name!r} yet: run `make repro` first)"
    return runs_url(base, found)
