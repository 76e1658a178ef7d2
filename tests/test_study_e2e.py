"""A tiny β sweep through DVC's queue, gathered by `vaebench study`: runs after the other e2e modules."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pandas as pd
import pytest
from e2e import commit, run

pytestmark = pytest.mark.e2e


def test_sweep_through_the_queue_and_study(project: Path, first_repro: str) -> None:
    commit(project, "before sweep")
    run(project, "dvc", "exp", "run", "--queue", "-S", "loss.kl_weight=0.5,2", "-S", "compare.seeds=[7]")
    run(project, "dvc", "exp", "run", "--queue", "-n", "other-data", "-S", "data.subset=500", "-S", "compare.seeds=[7]")
    run(project, "dvc", "queue", "start", "-j", "2")
    deadline = time.monotonic() + 900
    while re.search(r"\b(Queued|Running)\b", status := run(project, "dvc", "queue", "status")):
        assert time.monotonic() < deadline, status
        time.sleep(3)
    output = run(project, "vaebench", "study")
    assert re.search(r"skipped other-data: other params than the baseline: data\.subset = 500", output), output
    points = pd.read_csv(project / "reports" / "study" / "points.csv")
    swept = points[points["seeds"] == 1]
    assert sorted(zip(swept["arch"], swept["beta"], strict=True)) == [
        ("cnn", 0.5),
        ("cnn", 2.0),
        ("mlp", 0.5),
        ("mlp", 2.0),
    ]
    assert {"rate_distortion.png", "vs_beta.png", "study.md"} <= {
        p.name for p in (project / "reports" / "study").iterdir()
    }
    report = (project / "reports" / "study" / "study.md").read_text()
    assert "- other-data: other params than the baseline" in report
