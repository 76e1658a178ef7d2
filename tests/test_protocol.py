"""`vaebench protocol`: the literature's params as one `dvc exp run`, the user's -S taking precedence."""

from __future__ import annotations

import pytest
import yaml
from test_params import with_

from vaebench.core.errors import StageError
from vaebench.core.params import parse_params
from vaebench.experiments.protocol import PROTOCOL, exp_run_command, overrides


def test_the_protocols_values_are_valid_params() -> None:
    """Every override names an existing key and passes validation (so a rename cannot rot it)."""
    settings = {}
    for key, value in PROTOCOL.items():
        section, _, rest = key.partition(".")
        settings.setdefault(section, {})[rest] = yaml.safe_load(value)  # as DVC's -S parses it
    params = parse_params(with_(settings))
    assert (
        params.data.binarize
        and params.train.schedule == "burda"
        and params.train.batch_size == 20
        and params.evaluate.iwae_k == 5000
    )
    assert "burda" in params.compare.archs


def test_user_overrides_win_and_come_once() -> None:
    command = exp_run_command("quick", ["evaluate.iwae_k=50", "train.epochs=3"])
    assert command[:5] == ["dvc", "exp", "run", "-n", "quick"]
    sets = command[6::2]
    assert "evaluate.iwae_k=50" in sets and "evaluate.iwae_k=5000" not in sets and "train.epochs=3" in sets
    assert len(sets) == len(PROTOCOL) + 1 and "--queue" in exp_run_command("q", [], queue=True)


def test_a_malformed_override_is_named() -> None:
    with pytest.raises(StageError, match=r"-S 'train\.epochs': expected key=value"):
        overrides(["train.epochs"])
