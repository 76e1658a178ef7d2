"""Operations on the real pipeline: bad params, SIGTERM, parallel queued experiments, a DVC
remote, a remote MLflow tracking server and its UI. Runs after test_pipeline_e2e on the same project.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from e2e import commit, mlflow_client, output_hashes, run, runs_by_name, set_params, stages_run, tool_env

from vaebench.ops.team import free_port
from vaebench.tracking.ui import grouped_runs_url, runs_url

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("project")]  # one worker, in file order


def repro_fails(project: Path, *args: str, **env: str) -> str:
    """`dvc repro ARGS` must fail; returns its output."""
    dvc = str(Path(sys.executable).parent / "dvc")  # by path: one test takes the venv off PATH
    result = subprocess.run([dvc, "repro", *args], cwd=project, env=tool_env(**env), capture_output=True, text=True)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    return output


@pytest.mark.parametrize(
    ("overrides", "message"),
    [  # one case per way validate refuses (the messages are test_params.py's): the schema, before torch
        ({"train": {"epochs": 20.5}}, r"train\.epochs = 20\.5: Input should be a valid integer"),
        (  # and the budget, after the model files
            {"model": {"mlp.hidden": 10**9}},
            r"model\.mlp: 1,630,000,000,824 parameters need at least [\d,]+ [GP]iB to train",
        ),
    ],
)
def test_bad_param_under_dvc_repro_loses_nothing(
    project: Path, first_repro: str, overrides: dict, message: str
) -> None:
    """DVC would delete a changed stage's outputs before its command: validate fails first, alone."""
    params = (project / "params.yaml").read_text()
    before, runs_before = output_hashes(project), len(runs_by_name(project))
    set_params(project, overrides)
    try:
        output = repro_fails(project)
    finally:
        (project / "params.yaml").write_text(params)
    assert re.search(message, output), output
    assert stages_run(output) == {"validate"} and "Traceback" not in output
    assert output_hashes(project) == before
    assert len(runs_by_name(project)) == runs_before


def test_bad_mirror_keeps_the_downloaded_data(project: Path, first_repro: str) -> None:
    before = output_hashes(project)
    output = repro_fails(project, "-f", "-s", "download", MNIST_MIRROR="/nonexistent")
    assert "MNIST_MIRROR='/nonexistent' is neither an http(s) URL nor an existing directory" in output
    assert output_hashes(project) == before


def test_unreachable_tracking_server_fails_in_seconds(project: Path, first_repro: str) -> None:
    before = output_hashes(project)
    start = time.monotonic()
    output = repro_fails(project, "-f", "-s", "train@mlp-0", MLFLOW_TRACKING_URI="http://127.0.0.1:9")
    assert time.monotonic() - start < 60
    assert "error: MLflow tracking server http://127.0.0.1:9 does not answer" in output and "Traceback" not in output
    assert output_hashes(project) == before


@pytest.mark.parametrize(
    ("broken", "stage", "message", "restore"),
    [  # one case of the mechanism; each way a file can be broken is test_models.py's and test_data.py's
        ("models/vae/mlp-0/weights.pt", "evaluate@mlp-0", r"error: models/vae/mlp-0/weights\.pt is unreadable",
         "dvc checkout --force models/vae/mlp-0"),
    ],
)  # fmt: skip
def test_a_broken_input_is_one_line_whose_restore_command_works(
    project: Path, first_repro: str, broken: str, stage: str, message: str, restore: str
) -> None:
    before = output_hashes(project)
    (project / broken).write_bytes((project / broken).read_bytes()[:1000])  # truncated
    try:
        output = repro_fails(project, "-f", "-s", stage)
        assert re.search(message, output) and "Traceback" not in output, output
        assert "weights_only=False" not in output  # torch's advice, the one thing not to do with such a file
        assert f"restore it with `{restore}`" in output, output
        run(project, *restore.split())  # the command the message gives works as given
    finally:
        run(project, "dvc", "checkout", "--force", str(Path(broken).parent))
    assert output_hashes(project) == before


def test_a_broken_store_stops_training_in_one_line(project: Path, first_repro: str, tmp_path: Path) -> None:
    """A store that is not a database (a truncated copy, say). It is another file than the project's
    own mlflow.db, which this test process keeps open: swapping that one under SQLite corrupts it."""
    broken = tmp_path / "mlflow.db"
    broken.write_bytes(b"not an SQLite file, " * 200)
    before = output_hashes(project)
    output = repro_fails(project, "-f", "-s", "train@mlp-0", MLFLOW_TRACKING_URI=f"sqlite:///{broken}")
    assert re.search(r"the MLflow store .*mlflow\.db cannot be used .*move it aside", output), output
    assert "Traceback" not in output and output_hashes(project) == before


def test_a_copied_checkout_does_not_write_into_the_original(project: Path, first_repro: str, tmp_path: Path) -> None:
    """`cp -a`: the copy's store names the original's mlartifacts/; training there is refused in one line."""
    copy = tmp_path / "copy"
    # By another process, as a user's `cp -a`: closing a file descriptor of mlflow.db in this
    # process would drop the POSIX locks of this process's own open SQLite connection to it.
    subprocess.run(["cp", "-a", str(project), str(copy)], check=True)
    artifacts = sorted(p for p in (project / "mlartifacts").rglob("*"))
    before = output_hashes(copy)
    output = repro_fails(copy, "-f", "-s", "train@mlp-0")
    assert "artifacts in " + (project / "mlartifacts").as_uri() + ", outside this repository" in output, output
    assert "Traceback" not in output and output_hashes(copy) == before
    assert sorted(p for p in (project / "mlartifacts").rglob("*")) == artifacts


def _stage_processes(project: Path, script: str) -> list[int]:
    """Pids of this project's processes running `script` (read from /proc)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            ours = proc.name.isdigit() and script in (proc / "cmdline").read_bytes().decode(errors="replace")
            if ours and Path(os.readlink(proc / "cwd")) == project:
                found.append(int(proc.name))
        except OSError:
            continue
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="the orphan guard reads /proc (Linux)")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_a_stage_whose_dvc_dies_replaces_nothing(project: Path, first_repro: str, signum: int) -> None:
    """`kill` of `dvc` alone (not its process group): the stage notices, stops, its run ends FAILED
    with a note (what a killed Dask worker leaves: not a user's stop, and not RUNNING forever)."""
    params = (project / "params.yaml").read_text()
    before = output_hashes(project)
    set_params(project, {"train": {"epochs": 500}})
    process = subprocess.Popen(
        ["dvc", "repro", "-s", "train@mlp-0"], cwd=project, env=tool_env(PYTHONUNBUFFERED="1"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        for line in process.stdout:
            if line.startswith("epoch   1/500"):
                break
        process.send_signal(signum)  # dvc only: the stage is left running, as after `kill <pid of dvc>`
        process.communicate(timeout=60)
        deadline = time.monotonic() + 60
        while _stage_processes(project, "stages/train.py") and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not _stage_processes(project, "stages/train.py"), "the orphaned stage kept running"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        for pid in _stage_processes(project, "stages/train.py"):
            os.kill(pid, signal.SIGKILL)
        (project / "params.yaml").write_text(params)
    assert output_hashes(project) == before
    failed = assert_latest_training_run(project, "FAILED")
    assert "dvc process that ran this stage died" in failed.data.tags["vaebench.note"]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a small tmpfs, which needs root")
def test_a_full_disk_is_one_line_and_the_run_ends_failed(project: Path, first_repro: str) -> None:
    """metrics/train on a full 1 MB tmpfs: training ends with one line naming the place, run FAILED."""
    curves = project / "metrics" / "train"
    saved = {p.name: p.read_bytes() for p in curves.iterdir()}
    before = output_hashes(project)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(curves)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        for name, data in saved.items():
            (curves / name).write_bytes(data)
        with contextlib.suppress(OSError), (curves / ".filler").open("wb") as filler:
            while True:
                filler.write(b"\0" * 4096)
                filler.flush()
        output = repro_fails(project, "-f", "-s", "train@mlp-0")
        (curves / ".filler").unlink()
        assert re.search(r"error: the disk is full: writing .*metrics/train/mlp-0\.csv failed", output), output
        assert "Traceback" not in output
        assert {p.name: p.read_bytes() for p in curves.iterdir()} == saved
    finally:
        subprocess.run(["umount", str(curves)], check=True)
    assert output_hashes(project) == before
    assert_latest_training_run(project, "FAILED")


def test_forgotten_venv_says_what_to_do_and_loses_nothing(project: Path, first_repro: str) -> None:
    """`.venv/bin/dvc repro` with the venv not on PATH runs stages with another python."""
    venv_bin = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != venv_bin)
    python = shutil.which("python", path=path)
    probe = python and subprocess.run([python, "-c", "import vaebench"], capture_output=True)
    if not python or probe.returncode == 0:
        pytest.skip("no python without vaebench on PATH")
    before = output_hashes(project)
    output = repro_fails(project, "-f", "-s", "normalize", PATH=path)
    assert "cannot import vaebench: run `make repro`, or `source .venv/bin/activate`" in output, output
    assert "Traceback" not in output
    assert output_hashes(project) == before


@pytest.mark.parametrize(("signum", "said"), [(signal.SIGINT, "interrupted"), (signal.SIGTERM, "terminated")])
def test_interrupted_training_under_dvc_repro_keeps_every_model(
    project: Path, first_repro: str, signum: int, said: str
) -> None:
    """Ctrl-C or SIGTERM during `dvc repro`: the training run ends KILLED, every previous output is intact."""
    params = (project / "params.yaml").read_text()
    before = output_hashes(project)
    set_params(project, {"train": {"epochs": 500}})
    process = subprocess.Popen(
        ["dvc", "repro"], cwd=project, env=tool_env(PYTHONUNBUFFERED="1"), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        for line in process.stdout:
            if line.startswith("epoch   1/500"):
                break
        os.killpg(process.pid, signum)  # to the whole process group, as Ctrl-C or `kill -- -PGID` does
        output = process.communicate(timeout=120)[0]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        (project / "params.yaml").write_text(params)
    assert process.returncode != 0
    assert f"{said}: outputs left as they were" in output, output
    assert output_hashes(project) == before
    # a signal only sets a flag (core.stop): no MLflow write is cut short, so the run always closes
    assert "could not be marked" not in output, output
    assert_latest_training_run(project, "KILLED")
    # validate had passed epochs = 500; back at the old params it checks them again, and that is all.
    assert stages_run(run(project, "dvc", "repro")) == {"validate"}
    assert output_hashes(project) == before


def test_diverging_training_fails_its_run_and_writes_no_model(project: Path, first_repro: str) -> None:
    """An absurd learning rate makes the loss overflow: exit 1, the epoch and batch named, run FAILED."""
    params = (project / "params.yaml").read_text()
    before = output_hashes(project)
    set_params(project, {"train": {"lr": 1e30}})
    try:
        output = repro_fails(project, "-s", "train@mlp-0")
    finally:
        (project / "params.yaml").write_text(params)
    assert re.search(r"loss is not finite at epoch 1, batch \d+; training stopped", output), output
    assert "Traceback" not in output  # one clear line, not a stack trace
    assert output_hashes(project) == before
    assert_latest_training_run(project, "FAILED")


def assert_latest_training_run(project: Path, status: str):
    """The newest MLflow training run of the project ended with this status; returns it."""
    client = mlflow_client(project)
    experiment = client.get_experiment_by_name("vaebench")
    (latest,) = client.search_runs(
        [experiment.experiment_id], "tags.`vaebench.stage` LIKE 'train@%'", order_by=["start_time DESC"], max_results=1
    )
    assert latest.info.status == status
    return latest


def test_dvc_remote_restores_every_output_without_retraining(project: Path, first_repro: str, tmp_path: Path) -> None:
    run(project, "dvc", "remote", "add", "-d", "storage", str(tmp_path / "remote"))
    commit(project, "remote")
    run(project, "dvc", "push")
    clone = tmp_path / "clone"
    run(tmp_path, "git", "clone", "-q", str(project), str(clone))
    run(clone, "dvc", "pull")
    for output in ("data/processed/train.pt", "models/vae/cnn-1/weights.pt", "reports/figures/loss_curves.png"):
        assert (clone / output).read_bytes() == (project / output).read_bytes()
    assert stages_run(run(clone, "dvc", "repro")) == set()


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
    env = tool_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")  # as `vaebench ui` and the team stack start it
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
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
        commit(project, "before the served experiment")  # what the checkout below returns to
        try:
            output = run(
                project, "dvc", "exp", "run", "-n", "served", "-S", "compare.seeds=[5]", MLFLOW_TRACKING_URI=base
            )
        finally:  # the workspace back at the baseline (`dvc exp run` leaves the experiment in it)
            run(project, "git", "checkout", "--", ".")
            run(project, "dvc", "checkout", "--force")
        fan_out = {f"{stage}@{arch}-5" for stage in ("train", "evaluate") for arch in ("mlp", "cnn")}
        assert stages_run(output) == {"validate", "render", "report"} | fan_out, output
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_pipeline_against_a_tracking_server(served_pipeline: str) -> None:
    experiment = rest(served_pipeline, "experiments/get-by-name?experiment_name=vaebench")["experiment"]
    runs = rest(served_pipeline, "runs/search", {"experiment_ids": [experiment["experiment_id"]]})["runs"]
    assert sorted(r["info"]["run_name"] for r in runs) == ["cnn-5", "comparison", "mlp-5"]
    for r in runs:
        assert r["info"]["status"] == "FINISHED"
        tags = {t["key"]: t["value"] for t in r["data"]["tags"]}
        assert tags["dvc_exp_name"] == "served"
        if r["info"]["run_name"] != "comparison":
            assert {"val_loss", "test_nll_iwae"} <= {m["key"] for m in r["data"]["metrics"]}
        else:
            artifacts = rest(served_pipeline, f"artifacts/list?run_id={r['info']['run_id']}&path=figures")
            assert any(f["path"].endswith("loss_curves.png") for f in artifacts["files"])


def test_mlflow_ui_shows_the_training_runs_and_compares_them(served_pipeline: str) -> None:
    """In headless Chromium: the URLs `make ui` prints land on the training runs (not the GenAI
    overview) and on the runs grouped by architecture (mean curves with their spread), and
    MLflow's compare page shows both runs and a shared metric."""
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Chromium is not installed (make test installs Debian's chromium where apt-get runs as root)")
    experiment = rest(served_pipeline, "experiments/get-by-name?experiment_name=vaebench")["experiment"]
    runs = rest(served_pipeline, "runs/search", {"experiment_ids": [experiment["experiment_id"]]})["runs"]
    run_ids = json.dumps([r["info"]["run_id"] for r in runs if r["info"]["run_name"] != "comparison"])
    compare = (
        f"{served_pipeline}/#/compare-runs?runs={urllib.parse.quote(run_ids)}"
        f"&experiments={urllib.parse.quote(json.dumps([experiment['experiment_id']]))}"
    )
    SCREENSHOTS.mkdir(exist_ok=True)
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            for url, texts, shot in (
                (runs_url(served_pipeline, experiment["experiment_id"]), ("mlp-5", "cnn-5", "comparison"), "runs"),
                (
                    grouped_runs_url(served_pipeline, experiment["experiment_id"]),
                    ("Group: mlp", "Group: cnn"),
                    "grouped",
                ),
                (compare, ("mlp-5", "cnn-5", "train_loss"), "compare-runs"),
            ):
                page.goto(url)
                try:  # a single-page app: HTTP 200 proves nothing, wait for the run names and a metric
                    for text in texts:
                        page.get_by_text(text, exact=True).first.wait_for(timeout=60_000)
                finally:
                    page.screenshot(path=str(SCREENSHOTS / f"mlflow-{shot}.png"), full_page=True)
        finally:
            browser.close()
    assert (SCREENSHOTS / "mlflow-compare-runs.png").stat().st_size > 10_000


def rendered_charts(html: Path, chromium: str) -> tuple[int, int]:
    """(vega charts on the page, charts drawn) in headless Chromium with every non-file request blocked."""
    from playwright.sync_api import sync_playwright

    ids = re.findall(r"vegaEmbed\('#([^']+)'", html.read_text())  # vegaEmbed replaces its script once drawn
    count = "ids => ids.filter(id => document.getElementById(id).querySelector('canvas, svg')).length"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.route(
                "**/*", lambda route: route.continue_() if route.request.url.startswith("file:") else route.abort()
            )
            page.goto(html.as_uri())
            deadline = time.monotonic() + 30
            while (drawn := page.evaluate(count, ids)) < len(ids) and time.monotonic() < deadline:
                time.sleep(0.5)
            page.screenshot(path=str(SCREENSHOTS / f"dvc-plots-{html.parent.name}.png"), full_page=True)
            return len(ids), drawn
        finally:
            browser.close()


def test_dvc_plots_draw_every_chart_offline(project: Path, first_repro: str, tmp_path: Path) -> None:
    """The repository's template (.dvc/plots/offline.html) carries vega; DVC's default loads it
    from a CDN, which this test blocks: there no chart is drawn, with ours every one is."""
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Chromium is not installed (make test installs Debian's chromium where apt-get runs as root)")
    from dvc_render.html import PAGE_HTML

    SCREENSHOTS.mkdir(exist_ok=True)
    run(project, "dvc", "plots", "show", "-o", str(tmp_path / "offline"))
    (tmp_path / "cdn.html").write_text(PAGE_HTML)
    run(project, "dvc", "plots", "show", "-o", str(tmp_path / "cdn"), "--html-template", str(tmp_path / "cdn.html"))
    total, drawn = rendered_charts(tmp_path / "offline" / "index.html", chromium)
    assert total >= 3 and drawn == total  # the loss chart and one per (architecture, seed) in the workspace
    assert rendered_charts(tmp_path / "cdn" / "index.html", chromium) == (total, 0)


SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip
