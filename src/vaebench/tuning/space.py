"""The search space of `vaebench tune`: params.yaml's `tune:` section, checked before anything is queued.

    tune:
      train.lr: {low: 3.0e-4, high: 1.0e-2, log: true}   # a range: floats, or ints where both ends are
      train.batch_size: [64, 128, 256]                   # a list: the choices

Each key is a param a trial's stages read (the train stage's params in dvc.yaml, DVC's own view),
never `compare.*` (the tuner sets the architecture and the seed itself). Every end of a range and
every choice is checked with the project's params schema (`core.params`, then the model sections'
own check), so a wrong space is one line naming its key before any work, and each sampled trial is
checked the same way before it is queued. No stage tracks `tune`: editing it retrains nothing.
"""

from __future__ import annotations

import difflib
import math
from pathlib import Path
from typing import Any

import yaml

from vaebench.core.errors import StageError
from vaebench.core.params import ParamsError, flatten, parse_params, with_values

SECTION = "tune"
SET_BY_TUNER = ("compare",)  # the trial's architecture and seed


class SpaceError(StageError, ValueError):
    """The `tune:` section or an override cannot make a valid trial; the message names the key."""


def check_params(raw: dict[str, Any], values: dict[str, Any], arch: str) -> str | None:
    """Why params.yaml with `values` set is not a valid trial of `arch`, in one line; None if it is."""
    from vaebench.models import check_model_params

    trial = with_values(raw, {"compare.archs": [arch], "compare.seeds": [0], **values})
    try:
        check_model_params(parse_params(trial, source="the trial's params"))
    except ParamsError as exc:
        problems = [line.strip(" -") for line in str(exc).splitlines()[1:]] or [str(exc)]
        return "; ".join(problems)
    except StageError as exc:
        return str(exc)
    return None


def readable_keys(repo: Path, arch: str) -> set[str]:
    """The params keys (or sections) a trial's train stage tracks, from DVC's index of dvc.yaml.
    Each train@<arch>-<seed> tracks its own model section: any one of them, read for `arch`."""
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc:
        keys = {key for stage in dvc.index.stages if stage.addressing.startswith("train@") for d in stage.params
                for key in d.params}  # fmt: skip
    return {f"model.{arch}" if key.startswith("model.") else key for key in keys}


def _read_by(key: str, readable: set[str]) -> bool:
    parts = key.split(".")
    return any(".".join(parts[:n]) in readable for n in range(1, len(parts) + 1))


def _check_key(key: str, flat: dict[str, Any], readable: set[str], arch: str) -> None:
    if key.split(".")[0] in SET_BY_TUNER:
        raise SpaceError(f"{SECTION}.{key}: set by `vaebench tune` itself (the architecture and each trial's seed)")
    if key not in flat:
        close = difflib.get_close_matches(key, list(flat), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise SpaceError(f"{SECTION}.{key}: no such param in params.yaml{hint}")
    if not _read_by(key, readable):
        raise SpaceError(
            f"{SECTION}.{key}: no train stage of {arch} reads it (dvc.yaml tracks {', '.join(sorted(readable))}):"
            " a trial would not change"
        )


def _distribution(key: str, spec: Any):
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(spec, list):
        if not spec:
            raise SpaceError(f"{SECTION}.{key}: an empty list of choices")
        if len({yaml.safe_dump(c) for c in spec}) != len(spec):
            raise SpaceError(f"{SECTION}.{key}: {spec}: each choice once")
        return CategoricalDistribution(spec)
    if not isinstance(spec, dict) or not {"low", "high"} <= spec.keys() or spec.keys() - {"low", "high", "log"}:
        raise SpaceError(
            f"{SECTION}.{key}: {spec!r}: a list of choices, or {{low: A, high: B}} with an optional log: true"
        )
    low, high, log = spec["low"], spec["high"], spec.get("log", False)
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in (low, high))
    if not numbers or not isinstance(log, bool):
        raise SpaceError(f"{SECTION}.{key}: low and high must be finite numbers and log true or false, got {spec!r}")
    if not low < high:
        raise SpaceError(f"{SECTION}.{key}: the range {low} to {high} is empty or inverted: low < high")
    if log and low <= 0:
        raise SpaceError(f"{SECTION}.{key}: a log range must stay above 0, got low = {low}")
    if isinstance(low, int) and isinstance(high, int):
        return IntDistribution(low, high, log=log)
    return FloatDistribution(float(low), float(high), log=log)


def _ends(distribution) -> list[Any]:
    from optuna.distributions import CategoricalDistribution

    if isinstance(distribution, CategoricalDistribution):
        return list(distribution.choices)
    return [distribution.low, distribution.high]


def load_space(raw: dict[str, Any], readable: set[str], arch: str, fixed: dict[str, Any]) -> dict[str, Any]:
    """{param key: Optuna distribution} of the `tune:` section; SpaceError naming the key of the first
    problem. `fixed` are the overrides every trial gets (`-S`), checked with it."""
    space = raw.get(SECTION)
    if not isinstance(space, dict) or not space:
        raise SpaceError(f"params.yaml has no {SECTION}: section mapping param keys to ranges or choices (see README)")
    flat = flatten({k: v for k, v in raw.items() if k != SECTION})
    for key in fixed:
        _check_key(key, flat, readable, arch)
        if key in space:
            raise SpaceError(f"{SECTION}.{key}: both searched and fixed with -S {key}=...; drop one")
    if problem := check_params(raw, fixed, arch):
        raise SpaceError(f"-S {', '.join(f'{k}={v}' for k, v in fixed.items())}: {problem}")
    distributions = {}
    for key, spec in space.items():
        _check_key(str(key), flat, readable, arch)
        distributions[key] = _distribution(key, spec)
        for value in _ends(distributions[key]):
            if problem := check_params(raw, {**fixed, key: value}, arch):
                raise SpaceError(f"{SECTION}.{key}: {value!r} is not a valid value: {problem}")
    return distributions


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`-S key=value` as DVC reads it (the value is YAML): {key: value}."""
    values = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise SpaceError(f"-S {pair}: expected KEY=VALUE, e.g. -S model.cnn.latent=20")
        values[key.strip()] = yaml.safe_load(text)
    return values
