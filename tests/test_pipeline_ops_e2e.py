"""Operations on the real pipeline: bad params, SIGTERM, parallel queued experiments, a DVC
remote, a remote MLflow tracking server and its UI. Runs after test_pipeline_e2e on the same project.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from e2e import EPOCHS, commit, mlflow_client, run, runs_by_name, set_params, stages_run, tool_env

pytestmark = pytest.mark.e2e


def test_bad_param_stops_before_any_work_and_loses_nothing(project: Path, first_repro: str) -> None:
    """DVC removes a changed stage's outputs before its command; the run-cache gives them back."""
    params = (project / "params.yaml").read_text()
    weights = (project / "models" / "mlp" / "weights.pt").read_bytes()
    runs_before = len(runs_by_name(project))
    set_params(project, {"train": {"epochs": 0}})
    result = subprocess.run(["dvc", "repro"], cwd=project, env=tool_env(), capture_output=True, text=True)
    assert result.returncode != 0
    assert "train.epochs = 0: Input should be greater than or equal to 1" in result.stderr + result.stdout
    assert len(runs_by_name(project)) == runs_before

    (project / "params.yaml").write_text(params)
    output = run(project, "dvc", "repro")
    assert stages_run(output) == set(), output  # restored from DVC's run-cache, not retrained
    assert (project / "models" / "mlp" / "weights.pt").read_bytes() == weights


def test_sigterm_marks_run_killed_and_keeps_previous_outputs(project: Path, first_repro: str) -> None:
    params = (project / "params.yaml").read_text()
    weights = (project / "models" / "cnn" / "weights.pt").read_bytes()
    set_params(project, {"train": {"epochs": 500}})
    process = subprocess.Popen(
        [sys.executable, "stages/train.py", "cnn"], cwd=project, env=tool_env(), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        for line in process.stdout:
            if line.startswith("epoch"):
                break
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=120)[0]
    finally:
        process.kill()
        (project / "params.yaml").write_text(params)
    assert process.returncode == 143, output
    assert "terminated: outputs left as they were" in output
    assert_previous_model_kept(project, "cnn", weights)
    assert_latest_run(project, "cnn", "KILLED")


def test_diverging_training_fails_its_run_and_writes_no_model(project: Path, first_repro: str) -> None:
    """An absurd learning rate makes the loss overflow: exit 1, the epoch and batch named, run FAILED."""
    params = (project / "params.yaml").read_text()
    weights = (project / "models" / "mlp" / "weights.pt").read_bytes()
    set_params(project, {"train": {"lr": 1e30}})
    try:
        result = subprocess.run(
            [sys.executable, "stages/train.py", "mlp"], cwd=project, env=tool_env(), capture_output=True, text=True
        )
    finally:
        (project / "params.yaml").write_text(params)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert re.search(r"loss is not finite at epoch 1, batch \d+; training stopped", output), output
    assert "Traceback" not in output  # one clear line, not a stack trace
    assert_previous_model_kept(project, "mlp", weights)
    assert_latest_run(project, "mlp", "FAILED")


def assert_previous_model_kept(project: Path, arch: str, weights: bytes) -> None:
    assert (project / "models" / arch / "weights.pt").read_bytes() == weights
    assert not list(project.rglob("*.tmp")), "a temporary output was left behind"


def assert_latest_run(project: Path, name: str, status: str) -> None:
    """The newest MLflow run of the project has this name and ended with this status."""
    client = mlflow_client(project)
    experiment = client.get_experiment_by_name("vaebench")
    (latest,) = client.search_runs([experiment.experiment_id], order_by=["start_time DESC"], max_results=1)
    assert (latest.info.run_name, latest.info.status) == (name, status)


def test_parallel_queued_experiments(project: Path, first_repro: str) -> None:
    """Two experiments at once through DVC's queue: both finish, and MLflow has all of their runs."""
    commit(project, "before queue")
    names = {"lr-a": "0.002", "lr-b": "0.003"}
    for name, lr in names.items():
        run(project, "dvc", "exp", "run", "--queue", "-n", name, "-S", f"train.lr={lr}")
    run(project, "dvc", "queue", "start", "-j", "2")
    deadline = time.monotonic() + 600
    while re.search(r"\b(Queued|Running)\b", status := run(project, "dvc", "queue", "status")):
        assert time.monotonic() < deadline, status
        time.sleep(3)
    assert status.count("Success") >= 2, status

    shown = json.loads(run(project, "dvc", "exp", "show", "--json"))
    experiments = {exp["name"]: exp for baseline in shown for exp in baseline.get("experiments") or []}
    for name, lr in names.items():
        data = experiments[name]["revs"][0]["data"]
        assert data["params"]["params.yaml"]["data"]["train"]["lr"] == float(lr)
        assert "nll_iwae" in data["metrics"]["metrics/eval.json"]["data"]["mlp"]

    client = mlflow_client(project)
    experiment = client.get_experiment_by_name("vaebench")
    for name in names:
        runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.dvc_exp_name = '{name}'")
        assert sorted(r.info.run_name for r in runs) == ["cnn", "mlp"], name
        for r in runs:
            assert r.info.status == "FINISHED"
            assert len(client.get_metric_history(r.info.run_id, "val_loss")) == EPOCHS
            assert "test_nll_iwae" in r.data.metrics and "figures" in {
                a.path for a in client.list_artifacts(r.info.run_id)
            }


def test_dvc_remote_restores_every_output_without_retraining(project: Path, first_repro: str, tmp_path: Path) -> None:
    run(project, "dvc", "remote", "add", "-d", "storage", str(tmp_path / "remote"))
    commit(project, "remote")
    run(project, "dvc", "push")
    clone = tmp_path / "clone"
    run(tmp_path, "git", "clone", "-q", str(project), str(clone))
    run(clone, "dvc", "pull")
    for output in ("data/processed/train.pt", "models/cnn/weights.pt", "reports/figures/loss_curves.png"):
        assert (clone / output).read_bytes() == (project / output).read_bytes()
    assert stages_run(run(clone, "dvc", "repro")) == set()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rest(base: str, endpoint: str, payload: dict | None = None) -> dict:
    """One call of MLflow's REST API: GET with a query, or POST with a JSON body."""
    if payload is None:
        request = urllib.request.Request(f"{base}/api/2.0/mlflow/{endpoint}")
    else:
        request = urllib.request.Request(
            f"{base}/api/2.0/mlflow/{endpoint}", json.dumps(payload).encode(), {"Content-Type": "application/json"}
        )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def served_pipeline(project: Path, first_repro: str, tmp_path_factory: pytest.TempPathFactory):
    """An `mlflow server` on a free loopback port with its own store, and an experiment run against it."""
    store = tmp_path_factory.mktemp("server")
    port = free_port()
    log = (store / "server.log").open("w")
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", "1", "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}"]
    command += ["--artifacts-destination", str(store / "artifacts")]
    server = subprocess.Popen(command, env=tool_env(), stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, (store / "server.log").read_text()
                time.sleep(0.5)
        output = run(project, "dvc", "exp", "run", "-n", "served", "-S", "train.seed=1", MLFLOW_TRACKING_URI=base)
        assert stages_run(output) == {"train@mlp", "train@cnn", "evaluate", "render", "report"}, output
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_pipeline_against_a_tracking_server(served_pipeline: str) -> None:
    experiment = rest(served_pipeline, "experiments/get-by-name?experiment_name=vaebench")["experiment"]
    runs = rest(served_pipeline, "runs/search", {"experiment_ids": [experiment["experiment_id"]]})["runs"]
    assert sorted(r["info"]["run_name"] for r in runs) == ["cnn", "mlp"]
    for r in runs:
        assert r["info"]["status"] == "FINISHED"
        assert {"val_loss", "test_nll_iwae"} <= {m["key"] for m in r["data"]["metrics"]}
        tags = {t["key"]: t["value"] for t in r["data"]["tags"]}
        assert tags["dvc_exp_name"] == "served"
        artifacts = rest(served_pipeline, f"artifacts/list?run_id={r['info']['run_id']}&path=figures")
        assert any(f["path"].endswith("loss_curves.png") for f in artifacts["files"])


def test_mlflow_ui_compares_both_runs(served_pipeline: str) -> None:
    """MLflow's compare page in headless Chromium shows both run names and a shared metric."""
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Chromium is not installed (make test installs Debian's chromium where apt-get runs as root)")
    experiment = rest(served_pipeline, "experiments/get-by-name?experiment_name=vaebench")["experiment"]
    runs = rest(served_pipeline, "runs/search", {"experiment_ids": [experiment["experiment_id"]]})["runs"]
    run_ids = json.dumps([r["info"]["run_id"] for r in runs])
    url = (
        f"{served_pipeline}/#/compare-runs?runs={urllib.parse.quote(run_ids)}"
        f"&experiments={urllib.parse.quote(json.dumps([experiment['experiment_id']]))}"
    )
    SCREENSHOTS.mkdir(exist_ok=True)
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            try:  # a single-page app: HTTP 200 proves nothing, wait for the run names and a metric
                for text in ("mlp", "cnn", "train_loss"):
                    page.get_by_text(text, exact=True).first.wait_for(timeout=60_000)
            finally:
                page.screenshot(path=str(SCREENSHOTS / "mlflow-compare-runs.png"), full_page=True)
        finally:
            browser.close()
    assert (SCREENSHOTS / "mlflow-compare-runs.png").stat().st_size > 10_000


SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip
