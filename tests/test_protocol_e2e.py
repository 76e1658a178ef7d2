"""`vaebench protocol` for real, on tiny params: the paper's architecture trained with dynamic
binarization and the staged learning rate, scored on the binarized test set. Runs in a clone of the
session's project that shares its DVC cache, so the project's own workspace is left as it was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from e2e import EPOCHS, commit, mlflow_client, run, runs_by_name, stages_run

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("project")]  # one worker, in file order


def test_protocol_runs_the_papers_vae_under_the_papers_params(project: Path, first_repro: str, tmp_path: Path) -> None:
    commit(project, "before the protocol")
    clone = tmp_path / "clone"
    run(tmp_path, "git", "clone", "-q", str(project), str(clone))
    run(clone, "dvc", "cache", "dir", "--local", str(project / ".dvc" / "cache"))
    run(clone, "dvc", "checkout", "-q")
    quick = ["compare.archs=[burda]", "compare.seeds=[0]", "evaluate.iwae_k=20"]  # the rest is the protocol's
    output = run(clone, "vaebench", "protocol", *[a for q in quick for a in ("-S", q)])

    assert stages_run(output) >= {"train@burda-0", "evaluate@burda-0", "report"}, output
    assert not {s for s in stages_run(output) if s.startswith(("train@mlp", "train@cnn", "judge"))}, output
    params = yaml.safe_load((clone / "params.yaml").read_text())
    assert params["data"]["binarize"] is True and params["train"]["schedule"] == "burda"
    assert params["evaluate"]["iwae_k"] == 20  # the -S given after the protocol wins
    figures = json.loads((clone / "metrics" / "eval" / "burda-0.json").read_text())
    assert figures["nll_iwae"] > 0 and figures["neg_elbo"] >= figures["nll_iwae"] - 1e-3

    training = runs_by_name(clone)["burda-0"]
    rates = [m.value for m in mlflow_client(clone).get_metric_history(training.info.run_id, "lr")]
    lr = params["train"]["lr"]
    assert rates == pytest.approx([lr, lr * 10 ** (-1 / 7)][:EPOCHS])  # stage 0 is 1 epoch, stage 1 three
    assert training.data.params["train.schedule"] == "burda" and training.data.params["model.hidden"] == "[200, 200]"
