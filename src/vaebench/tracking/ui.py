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


# MLflow's own "Share" mechanism: a runs-view state stored as an experiment tag, opened with
# ?viewStateShareKey=KEY. This one groups the runs by the `arch` tag and draws each group's mean
# curve with its spread (min to max) in the chart view.
GROUPED_VIEW_KEY = "vaebench-by-arch"
GROUPED_VIEW_STATE = {
    "groupBy": {"aggregateFunction": "average", "groupByKeys": [{"mode": "tag", "groupByData": "arch"}]},
    "useGroupedValuesInCharts": True,
    "groupsExpanded": {},
    "chartsSearchFilter": "loss",  # the training curves first: train_loss, val_loss
}


def grouped_runs_url(base: str, experiment: str) -> str:
    """The training runs grouped by architecture, as charts (see share_grouped_view)."""
    return f"{runs_url(base, experiment)}&viewStateShareKey={GROUPED_VIEW_KEY}&compareRunsMode=CHART"


def share_grouped_view(experiment: str) -> None:
    """Store the grouped view on the experiment, where `grouped_runs_url` finds it."""
    import json

    from mlflow.tracking import MlflowClient

    key = f"mlflow.sharedViewState.{GROUPED_VIEW_KEY}"
    MlflowClient().set_experiment_tag(experiment, key, json.dumps(GROUPED_VIEW_STATE))
