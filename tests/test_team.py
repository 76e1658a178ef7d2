"""The team stack's bookkeeping, without starting it (tests/test_team_e2e.py starts it)."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from vaebench.ops.team import Stack, TeamStackError, env_lines, next_steps, status


def test_stack_state_round_trips_and_is_private(tmp_path: Path) -> None:
    stack = Stack(root=tmp_path / ".team", pg_port=5432, dav_port=5001, mlflow_port=5002, pids={"dvc-remote": 12})
    stack.save()
    assert stat.S_IMODE((stack.root / "stack.json").stat().st_mode) == 0o600  # it holds passwords
    assert Stack.load(stack.root) == stack


def test_passwords_are_fresh_and_safe_as_a_command_line_argument(tmp_path: Path) -> None:
    # a token beginning with `-` once made `dvc remote modify ... password <token>` read it as an option
    stack = Stack(root=tmp_path, pg_port=1, dav_port=2, mlflow_port=3)
    passwords = [stack.pg_password, stack.admin_password, stack.worker_password, stack.dav_password]
    assert all(re.fullmatch("[0-9a-f]{32}", password) for password in passwords), passwords
    assert len(set(passwords)) == len(passwords)


def test_no_stack_says_how_to_start_one(tmp_path: Path) -> None:
    with pytest.raises(TeamStackError, match="vaebench team up"):
        Stack.load(tmp_path)


def test_a_worker_gets_the_tracking_server_and_where_the_remote_credentials_are(tmp_path: Path) -> None:
    stack = Stack(root=tmp_path, pg_port=1, dav_port=2, mlflow_port=3)
    lines = env_lines(stack)
    assert "export MLFLOW_TRACKING_URI=http://127.0.0.1:3" in lines
    assert f"export MLFLOW_TRACKING_PASSWORD={stack.worker_password}" in lines
    assert f"export DVC_GLOBAL_CONFIG_DIR={tmp_path / 'dvc-config'}" in lines
    assert "dvc remote add --local --force -d team webdav://127.0.0.1:2/vaebench" in lines
    assert stack.pg_password not in lines and stack.dav_password not in lines  # they stay in their 0600 files
    assert stack.pg_password not in stack.database_uri("mlflow")  # a command line's: libpq reads pgpass


def test_team_up_prints_the_next_commands_and_no_password(tmp_path: Path) -> None:
    """`team up`'s output lands in terminal scrollback and CI logs; `team env` is what `eval` reads."""
    stack = Stack(root=tmp_path, pg_port=1, dav_port=2, mlflow_port=3)
    printed = next_steps(stack)
    assert "eval \"$(vaebench team env | grep '^export')\"" in printed
    assert "dvc remote add --local --force -d team webdav://127.0.0.1:2/vaebench" in printed
    secrets = [stack.pg_password, stack.dav_password, stack.worker_password, stack.admin_password]
    assert not [secret for secret in secrets if secret in printed]
    assert stack.admin_password in env_lines(stack)  # the UI's login, for whoever asks `team env`


def test_the_workers_get_a_relative_mnist_mirror_as_an_absolute_path(tmp_path, monkeypatch) -> None:
    """CI's `MNIST_MIRROR=../shared/mnist` names nothing from a worker's scratch clone."""
    from vaebench.ops.team import _absolute_mirror

    (tmp_path / "shared" / "mnist").mkdir(parents=True)
    (tmp_path / "repo").mkdir()
    monkeypatch.chdir(tmp_path / "repo")
    monkeypatch.setenv("MNIST_MIRROR", "../shared/mnist")
    assert _absolute_mirror() == {"MNIST_MIRROR": str(tmp_path / "shared" / "mnist")}
    monkeypatch.setenv("MNIST_MIRROR", "https://example.invalid/mnist/")
    assert _absolute_mirror() == {}


def test_the_certificates_are_private_signed_by_the_ca_and_kept(tmp_path: Path) -> None:
    from cryptography import x509

    from vaebench.ops.tls import CA, CLIENT, MEMBER, make_certificates

    made = make_certificates(tmp_path / "tls")
    assert (tmp_path / "tls").stat().st_mode & 0o777 == 0o700
    files = sorted((tmp_path / "tls").iterdir())
    assert len(files) == 6 and all(f.stat().st_mode & 0o777 == 0o600 for f in files)
    ca = x509.load_pem_x509_certificate(made.cert(CA).read_bytes())
    for who in (MEMBER, CLIENT):
        cert = x509.load_pem_x509_certificate(made.cert(who).read_bytes())
        cert.verify_directly_issued_by(ca)  # raises if another key signed it
        assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    before = {f.name: f.read_bytes() for f in files}
    make_certificates(tmp_path / "tls")  # a restart: the parts already running must still trust each other
    assert {f.name: f.read_bytes() for f in sorted((tmp_path / "tls").iterdir())} == before


def test_a_colleague_exports_where_the_client_certificate_is_and_no_key_itself(tmp_path: Path) -> None:
    stack = Stack(root=tmp_path, dask_port=8786)
    env = stack.client_env()
    assert env["DASK_SCHEDULER_ADDRESS"] == "tls://127.0.0.1:8786"
    assert env["DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY"] == str(tmp_path / "tls" / "client-key.pem")
    assert env["DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION"] == "True"


def test_status_names_every_part_down_with_its_log(tmp_path: Path) -> None:
    Stack(root=tmp_path, pg_port=1, dav_port=2, mlflow_port=3, dask_port=4).save()  # nothing listens there
    parts = status(tmp_path)
    assert [part for part, *_ in parts][:4] == [
        "PostgreSQL (MLflow's runs and users)",
        "DVC remote (rclone serve webdav)",
        "MLflow tracking server",
        "Dask scheduler",
    ]
    assert len(parts) == 6 and not any(up for _, _, up, _ in parts)
    assert {log.name for *_, log in parts} >= {"postgres.log", "mlflow.log", "dask-worker-2.log"}
