"""The drain's pure parts: which line of a failed command is the error, the DVC remote a worker
configures, the entry plan, and the CLI's refusals."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from vaebench import cli
from vaebench.scaleout.commands import telling_line
from vaebench.scaleout.drain import make_plan
from vaebench.scaleout.queue import QueuedExperiment, remote_commands


def test_the_telling_line_is_the_stages_error_with_its_first_item() -> None:
    output = "Running stage 'validate':\nerror: params.yaml is invalid:\n  - loss.recon = 'hinge': must be one of\n"
    output += "ERROR: failed to reproduce 'validate': exited with 1\n"
    assert telling_line(output) == "error: params.yaml is invalid: - loss.recon = 'hinge': must be one of"


def test_without_a_stage_error_the_telling_line_is_dvcs_last_error_then_the_last_line() -> None:
    assert telling_line("ERROR: first\nsomething\nERROR: unexpected error - boom\n") == "ERROR: unexpected error - boom"
    assert telling_line("fatal: repository 'x' does not exist\n") == "fatal: repository 'x' does not exist"
    assert telling_line("") == "no output"


def test_a_worker_gets_the_default_remote_with_its_options() -> None:
    remote = {"name": "team", "url": "s3://bucket/path", "endpointurl": "http://127.0.0.1:9000"}
    assert remote_commands(remote) == [
        ["dvc", "remote", "add", "--local", "--force", "-d", "team", "s3://bucket/path"],
        ["dvc", "remote", "modify", "--local", "team", "endpointurl", "http://127.0.0.1:9000"],
    ]
    assert remote_commands({}) == []


def test_the_plan_runs_new_entries_collects_pushed_ones_and_refuses_clashing_names(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    base = "a" * 40
    fresh, again, pushed = (QueuedExperiment(c * 40, base, n) for c, n in (("1", "x"), ("2", "x"), ("3", "y")))
    plan = make_plan([fresh, again, pushed], {pushed.stash: "f" * 40}, tmp_path)
    assert plan.run == [fresh]
    assert plan.collect == {pushed.stash: "f" * 40}
    assert "queued more than once" in plan.refused[again.stash]


def test_queue_without_a_scheduler_address_says_how_to_give_one(monkeypatch, capsys) -> None:
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["queue"])
    assert exit_.value.code == 2
    assert "--dask ADDRESS (or DASK_SCHEDULER_ADDRESS)" in capsys.readouterr().err


def test_queue_refuses_a_resource_that_is_not_name_equals_amount(capsys) -> None:
    with pytest.raises(SystemExit):
        cli.main(["queue", "--dask", "tcp://127.0.0.1:1", "--resources", "GPU"])
    assert "'GPU' is not NAME=AMOUNT" in capsys.readouterr().err
