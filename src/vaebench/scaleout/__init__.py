"""DVC's experiment queue drained onto a Dask cluster: `vaebench queue --dask ADDRESS`.

DVC has no remote executor, so this is one, built on Dask distributed. Nothing is shared but three
services: code goes through the git remote (each queued experiment's stash commit under a private
ref), data and outputs through the DVC remote, tracking through the MLflow server.

- `queue`: the queued experiments of the user's repository, read with DVC's own queue API;
- `worker`: what one Dask task does with one of them on a worker (clone, rebuild the queued
  workspace, `dvc pull`, `dvc exp run`, `dvc exp push`, and a marker ref saying it is done);
- `drain`: the client that publishes, submits, shows progress and collects each result back into
  the user's repository as an ordinary experiment;
- `commands`: running git and DVC with a log, failures as one line, and a stop on request.
"""
