"""Stopping is an event (vaebench.core.stop): a signal sets a flag that the training loop and the
atomic writes act on at their checks; a stage whose dvc died learns it at the same checks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_training import blobs, recipe

from vaebench.core import stop
from vaebench.core.errors import Terminated
from vaebench.core.io import write_text
from vaebench.models import build_model
from vaebench.training.fit import fit


@pytest.fixture(autouse=True)
def no_stop_pending(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stop, "_signal", None)
    monkeypatch.setattr(stop, "_dvc", None)


def test_ctrl_c_during_training_stops_it_at_the_end_of_that_epoch() -> None:
    seen = []

    def interrupt_once(model, metrics) -> None:
        seen.append(metrics.epoch)
        os.kill(os.getpid(), signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)
    with stop.deferred(), pytest.raises(KeyboardInterrupt):
        fit(build_model("mlp", hidden=16, latent=2), blobs(64), blobs(32), recipe(epochs=5), on_epoch=interrupt_once)
    assert seen == [1]
    assert signal.getsignal(signal.SIGINT) == before  # restored after the block


def test_a_requested_stop_replaces_no_output(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    write_text(target, "old")
    with stop.deferred():
        os.kill(os.getpid(), signal.SIGTERM)
        with pytest.raises(Terminated, match="received signal 15"):
            write_text(target, "new")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_a_stage_whose_dvc_died_stops_at_its_next_check(monkeypatch: pytest.MonkeyPatch) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    monkeypatch.setattr(stop, "_dvc", (dead.pid, "0"))
    assert stop.orphaned() and stop.orphaned_alone()
    with pytest.raises(Terminated, match=f"the dvc process {dead.pid} that ran this stage is gone"):
        stop.check()
    monkeypatch.setattr(stop, "_signal", signal.SIGTERM)  # a group's SIGTERM killed dvc: a user's stop
    assert not stop.orphaned_alone()
