"""The drain's pure parts: which line of a failed command is the error, the DVC remote a worker
configures, the entry plan, and the CLI's refusals."""

from __future__ import annotations

import subprocess
import time
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


def test_git_says_why_in_its_first_fatal_line_and_a_hook_in_its_remote_lines() -> None:
    no_remote = "fatal: 'nowhere' does not appear to be a git repository\nfatal: Could not read from remote"
    no_remote += " repository.\n\nPlease make sure you have the correct access rights\nand the repository exists.\n"
    assert telling_line(no_remote) == "fatal: 'nowhere' does not appear to be a git repository"
    hook = "remote: pushes under refs/vaebench are closed this week        \nTo /srv/git/vaebench.git\n"
    hook += " ! [remote rejected] 1a2b3c -> refs/vaebench/queued/1a2b3c (pre-receive hook declined)\n"
    hook += "error: failed to push some refs to '/srv/git/vaebench.git'\n"
    assert telling_line(hook) == "the git remote refused the push: pushes under refs/vaebench are closed this week"


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


def test_a_remote_credential_in_config_local_stays_on_the_client(dvc_project: Path) -> None:
    """DVC's documented place for a remote's keys is .dvc/config.local; a task carries none of them."""
    from vaebench.scaleout.queue import default_dvc_remote

    (dvc_project / ".dvc" / "config.local").write_text(
        "[core]\n    remote = team\n"
        "['remote \"team\"']\n    url = s3://bucket/path\n    endpointurl = http://127.0.0.1:9000\n"
        "    access_key_id = AKIAEXAMPLE\n    secret_access_key = s3cr3t-value\n"
    )
    remote, withheld = default_dvc_remote(dvc_project)
    assert remote == {"name": "team", "url": "s3://bucket/path", "endpointurl": "http://127.0.0.1:9000"}
    assert withheld == ["access_key_id", "secret_access_key"]
    assert "s3cr3t-value" not in repr(remote_commands(remote))


def test_a_log_leaves_with_every_credential_of_the_environment_redacted() -> None:
    from vaebench.scaleout.commands import REDACTED, redact

    environ = {"AWS_SECRET_ACCESS_KEY": "s3cr3t-value", "MLFLOW_TRACKING_PASSWORD": "pa55word!", "HOME": "/root"}
    log = "$ dvc push\nauth with s3cr3t-value failed; password pa55word! in /root\n"
    assert redact(log, environ) == f"$ dvc push\nauth with {REDACTED} failed; password {REDACTED} in /root\n"


def test_a_second_drain_of_one_repository_is_refused_naming_the_first(tmp_path: Path) -> None:
    from vaebench.core.errors import StageError
    from vaebench.scaleout.drain import only_drain

    refused = pytest.raises(StageError, match=r"already being drained by `vaebench queue` \(pid \d+, since")
    with only_drain(tmp_path), refused, only_drain(tmp_path):
        pass
    with only_drain(tmp_path):  # released with its holder
        pass


def test_a_drain_beside_dvcs_own_queue_worker_is_refused_naming_it(tmp_path: Path) -> None:
    """`dvc queue start` and a drain would each run the same entries: the drain refuses, in one line,
    before it connects anywhere (the address here answers nothing)."""
    from e2e import GIT_USER, run, tool_env

    from vaebench.scaleout.queue import dvc_queue_workers

    repo = tmp_path / "repo"
    run(tmp_path, "git", "init", "-q", "--bare", "remote.git")
    run(tmp_path, "git", "init", "-q", repo.name)
    run(repo, "dvc", "init", "-q")
    (repo / "dvc.yaml").write_text("stages:\n  slow:\n    cmd: sleep 300 && echo done > out\n    outs: [out]\n")
    run(repo, "git", "add", "-A")
    run(repo, "git", *GIT_USER, "commit", "-q", "-m", "a slow stage")
    run(repo, "git", "remote", "add", "origin", str(tmp_path / "remote.git"))
    run(repo, "dvc", "exp", "run", "--queue", "-n", "slow")
    # the worker DVC spawns would hold a captured output's pipe open for as long as it lives
    subprocess.run(["dvc", "queue", "start"], cwd=repo, env=tool_env(), stdout=subprocess.DEVNULL, check=True)
    try:
        deadline = time.monotonic() + 60
        while not dvc_queue_workers(repo):
            assert time.monotonic() < deadline, run(repo, "dvc", "queue", "status")
        command = ["vaebench", "queue", "--dask", "tcp://127.0.0.1:9"]
        result = subprocess.run(command, cwd=repo, env=tool_env(), capture_output=True, text=True, timeout=120)
    finally:
        subprocess.run(["dvc", "queue", "kill", "slow"], cwd=repo, env=tool_env(), capture_output=True)  # its stage too
        run(repo, "dvc", "queue", "stop", "--kill")
    assert result.returncode == 1 and result.stderr.strip().count("\n") == 0, result.stdout + result.stderr
    assert "DVC's own queue worker runs in this repository" in result.stderr and "`dvc queue stop`" in result.stderr


def test_a_landed_attempts_progress_that_comes_after_its_result_marks_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Dask delivers a worker's events apart from its result: a late "pushing" of the attempt that
    landed must not make its runs look like those of an attempt that did not."""
    from vaebench.scaleout.drain import Collector, Drain, Options

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # any marking would say it cannot
    entry = QueuedExperiment("a" * 40, "b" * 40, "quick")
    drain = Drain(Options(address="tls://127.0.0.1:9"))
    drain.collector = Collector(drain.options, {entry.stash: entry})
    drain.landed.add("worker-1:1a2b")
    drain._progress((0.0, {"stash": entry.stash, "state": "pushing", "on": "worker-1", "attempt": "worker-1:1a2b"}))
    drain._not_landed(entry.stash, "did not land: the drain stopped before it was collected")
    assert "did not land" not in capsys.readouterr().out and not drain.attempts
    drain._progress((0.0, {"stash": entry.stash, "state": "started", "on": "worker-2", "attempt": "worker-2:3c4d"}))
    drain._not_landed(entry.stash, "did not land: the drain stopped before it was collected")
    assert "runs of attempts that did not land stay as they ended" in capsys.readouterr().out  # another attempt


def test_queue_outside_a_repository_or_in_a_subfolder_finds_the_root(tmp_path: Path, dvc_project: Path) -> None:
    from vaebench.core.errors import StageError
    from vaebench.scaleout.drain import repository_root

    (dvc_project / "src").mkdir()
    assert repository_root(dvc_project / "src") == dvc_project
    outside = tmp_path.parent / "outside"
    outside.mkdir(exist_ok=True)
    with pytest.raises(StageError, match="is not inside a DVC repository"):
        repository_root(outside)
