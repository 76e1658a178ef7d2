"""`vaebench tune` for real through DVC's own queue, on a tiny project of its own (its MNIST split
made, nothing trained: a trial trains): a wrong space and an absurd budget refused before anything
is queued, a study interrupted and resumed (a second start refused meanwhile), a trial that fails at
a learning rate far too high, the report, the MLflow tags, and an experiment the user removed."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from e2e import commit, make_project, mlflow_client, run, set_space, tool_env

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("project")]

SPACE = {"train.lr": [0.001, 1000000.0], "train.batch_size": [32, 64]}
TRIALS = 3


def draws(seed: int, n: int) -> list[dict]:
    """What the random sampler draws for trials 0..n-1 of a study with `seed`, computed apart from
    any study on disk: a study stopped and resumed must draw exactly these."""
    import optuna
    from optuna.distributions import CategoricalDistribution

    from vaebench.tuning.trials import make_sampler

    space = {key: CategoricalDistribution(choices) for key, choices in SPACE.items()}
    study = optuna.create_study(direction="minimize")
    drawn = []
    for number in range(n):
        study.sampler = make_sampler("random", seed, number)
        trial = study.ask(space)
        drawn.append(trial.params)
        study.tell(trial, 1.0)
    return drawn


def a_seed_with_one_failing_trial() -> tuple[int, list[dict]]:
    """A sampler seed whose trial 0 learns and exactly one later trial has the absurd rate."""
    for seed in range(100):
        drawn = draws(seed, TRIALS)
        rates = [d["train.lr"] for d in drawn]
        if rates[0] == 0.001 and rates.count(1000000.0) == 1:
            return seed, drawn
    raise AssertionError("no such seed among 100")


@pytest.fixture(scope="module")
def tuning(tmp_path_factory: pytest.TempPathFactory, mnist_mirror: Path) -> Path:
    project = make_project(tmp_path_factory.mktemp("tuning"), mnist_mirror)
    run(project, "dvc", "repro", "normalize")
    commit(project, "the split")
    return project


def tune(project: Path, *args: str) -> subprocess.CompletedProcess:
    command = ["vaebench", "tune", "t", "--dask", "", *args]
    return subprocess.run(command, cwd=project, env=tool_env(), capture_output=True, text=True)


def queue_names(project: Path) -> list[str]:
    lines = run(project, "dvc", "queue", "status").splitlines()
    return [line.split()[1] for line in lines[1:] if line.strip() and not line.startswith("Worker")]


def test_bad_input_is_refused_before_anything_is_queued(tuning: Path) -> None:
    project = tuning
    set_space(project, {"train.lrr": [0.1]})
    refused = tune(project, "--arch", "mlp")
    assert refused.returncode == 1 and refused.stderr.strip().count("\n") == 0, refused.stderr
    assert "tune.train.lrr: no such param in params.yaml; did you mean train.lr?" in refused.stderr
    set_space(project, {"train.lr": {"low": 0.001, "high": 0.01, "log": True}})
    day = tune(project, "--arch", "mlp", "--trials", "1000", "-S", "train.epochs=100000")
    assert day.returncode == 1 and "would take this machine at least" in day.stderr, day.stderr
    zero = tune(project, "--arch", "mlp", "--trials", "0")
    assert zero.returncode == 2 and "--trials: 0: at least 1" in zero.stderr, zero.stderr
    assert queue_names(project) == []


def test_a_study_stopped_and_resumed_draws_runs_and_reports_each_trial_once(tuning: Path) -> None:
    project = tuning
    seed, drawn = a_seed_with_one_failing_trial()
    set_space(project, SPACE)
    commit(project, "a tuning space")
    args = ("--arch", "mlp", "--trials", str(TRIALS), "--seed", str(seed))
    first = subprocess.Popen(
        ["vaebench", "tune", "t", "--dask", "", *args], cwd=project, env=tool_env(PYTHONUNBUFFERED="1"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # Ctrl-C as a terminal sends it
    )  # fmt: skip
    seen = []
    for line in first.stdout:
        seen.append(line)
        if "t-mlp-000  queued" in line:
            break
    else:
        raise AssertionError("".join(seen))
    second = tune(project, *args)
    assert second.returncode == 1 and "study t is already being tuned by `vaebench tune t` (pid" in second.stderr
    first.send_signal(signal.SIGINT)
    output = "".join(seen) + first.communicate(timeout=120)[0]
    assert first.returncode == 130 and "interrupted" in output and "Traceback" not in output, output

    resumed = tune(project, *args)
    output = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, output
    assert "t-mlp-000  queued by an earlier run; waiting for it" in output or "t-mlp-000  validation" in output
    names = [f"t-mlp-{n:03d}" for n in range(TRIALS)]
    assert sorted(n for n in queue_names(project) if n.startswith("t-")) == names  # each queued once

    table = pd.read_csv(project / "reports" / "tune" / "t" / "trials.csv")
    assert list(table["experiment"]) == names
    for (_, row), params in zip(table.iterrows(), drawn, strict=True):  # what an uninterrupted study draws
        assert (row["param train.lr"], row["param train.batch_size"]) == (
            params["train.lr"],
            params["train.batch_size"],
        )
        if params["train.lr"] == 0.001:
            assert row["state"] == "COMPLETE", row
            exp = run(project, "git", "for-each-ref", "--format=%(objectname)", f"refs/exps/*/*/{row['experiment']}")
            figures = json.loads(run(project, "git", "show", f"{exp.strip()}:metrics/val/mlp-{row['seed']}.json"))
            assert row["neg_elbo"] == pytest.approx(figures["neg_elbo"], rel=1e-5)  # trials.csv keeps 6 digits
        else:  # a NaN, or a loss worse than the constant model's: told as failed, the study went on
            error = row["error"]
            assert row["state"] == "FAIL" and ("not finite" in error or "diverged" in error), row
            assert f"- {row['experiment']}: {error}" in (project / "reports/tune/t/tune.md").read_text()
    assert {"tune.md", "expected_best.png", "mlp_history.png"} <= {
        p.name for p in (project / "reports/tune/t").iterdir()
    }

    client = mlflow_client(project)
    experiment = client.get_experiment_by_name("vaebench").experiment_id
    tagged = client.search_runs([experiment], filter_string="tags.`vaebench.tune.study` = 't'")
    complete = table[table["state"] == "COMPLETE"]
    assert sorted(r.data.tags["dvc_exp_name"] for r in tagged if r.info.status == "FINISHED") == sorted(
        complete["experiment"]
    )

    run(project, "dvc", "exp", "remove", "t-mlp-000")
    again = tune(project, *args)
    assert again.returncode == 0 and "wrote" in again.stdout, again.stdout + again.stderr
    table = pd.read_csv(project / "reports" / "tune" / "t" / "trials.csv")
    assert not table.loc[0, "experiment_kept"] and table.loc[0, "state"] == "COMPLETE"
