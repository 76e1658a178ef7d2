"""The params.yaml schema: every stage validates the whole file before it does any work.

A typo in a key or a value out of range must fail in the first second of a stage, naming the key,
the value and what is allowed, not after an hour of training.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from vaebench.errors import StageError

ARCHITECTURES = ("mlp", "cnn")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataParams(_Section):
    val_size: int = Field(10_000, ge=1, le=59_000)
    subset: int = Field(0, ge=0)
    seed: int = 0
    standardize_input: bool = False
    binarize: bool = False


class MLPParams(_Section):
    hidden: int = Field(400, ge=1)
    latent: int = Field(20, ge=1)


class CNNParams(_Section):
    channels: tuple[int, int, int] = (16, 32, 16)
    latent: int = Field(10, ge=1)

    @model_validator(mode="after")
    def _positive_channels(self) -> CNNParams:
        if min(self.channels) < 1:
            raise ValueError(f"channels = {list(self.channels)}: every channel count must be >= 1")
        return self


class ModelParams(_Section):
    mlp: MLPParams = MLPParams()
    cnn: CNNParams = CNNParams()


class LossParams(_Section):
    recon: Literal["bce", "mse"] = "bce"
    kl_weight: float = Field(1.0, ge=0.0)


SEED_SNAPSHOT_EPOCHS = (1, 3, 5, 10, 20, 30, 40, 50)  # the epochs of the seed's published grids


class TrainParams(_Section):
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(1e-3, gt=0.0)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    threads: int = Field(0, ge=0)
    compile: bool = False
    amp: bool = False
    snapshot_epochs: Literal["auto"] | tuple[int, ...] = "auto"

    @model_validator(mode="after")
    def _snapshots_within_run(self) -> TrainParams:
        if self.snapshot_epochs != "auto":
            outside = [e for e in self.snapshot_epochs if not 1 <= e <= self.epochs]
            if outside:
                raise ValueError(
                    f"snapshot_epochs = {list(self.snapshot_epochs)}: {outside} outside the run;"
                    f" allowed: epochs 1..{self.epochs} (train.epochs), or 'auto'"
                )
        return self

    def snapshots(self) -> list[int]:
        """Snapshot epochs; 'auto' is the seed's list cut at `epochs`. The last epoch is always one."""
        chosen = SEED_SNAPSHOT_EPOCHS if self.snapshot_epochs == "auto" else self.snapshot_epochs
        return sorted({e for e in chosen if e <= self.epochs} | {self.epochs})


class EvaluateParams(_Section):
    iwae_k: int = Field(50, ge=1)
    test_subset: int = Field(0, ge=0)
    batch_size: int = Field(500, ge=1)
    n_samples: int = Field(10_000, ge=2)


class JudgeParams(_Section):
    epochs: int = Field(3, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(3e-3, gt=0.0)
    seed: int = 0


class MlflowParams(_Section):
    experiment: str = Field("vaebench", min_length=1)


class Params(_Section):
    data: DataParams = DataParams()
    model: ModelParams = ModelParams()
    loss: LossParams = LossParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    judge: JudgeParams = JudgeParams()
    mlflow: MlflowParams = MlflowParams()

    @model_validator(mode="after")
    def _binarized_needs_bce(self) -> Params:
        if self.data.binarize and self.loss.recon != "bce":
            raise ValueError(
                f"data.binarize = true: needs loss.recon = 'bce' (a Bernoulli likelihood on binary pixels),"
                f" got {self.loss.recon!r}"
            )
        return self


class ParamsError(StageError, ValueError):
    """params.yaml does not match the schema; the message lists every problem."""


def _allowed(section: type[BaseModel] | None) -> list[str]:
    return sorted(section.model_fields) if section is not None else []


def _section_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The schema class that holds the key at `loc`, for suggesting a close valid name."""
    section: type[BaseModel] | None = Params
    for part in loc[:-1]:
        field = section.model_fields.get(str(part)) if section else None
        annotation = field.annotation if field else None
        section = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return section


def _describe(error: dict[str, Any]) -> str:
    loc = tuple(error["loc"])
    key = ".".join(str(p) for p in loc)
    if error["type"] == "extra_forbidden":
        allowed = _allowed(_section_at(loc))
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return f"{key}: unknown key{hint} (allowed: {', '.join(allowed)})"
    message = error["msg"]
    if error["type"] == "value_error":  # a check across keys: its message names them and the values
        message = message.removeprefix("Value error, ")
        return f"{key}.{message}" if key else message
    if error["type"] == "literal_error":
        message = f"must be one of {message.removeprefix('Input should be ')}"
    return f"{key} = {error.get('input')!r}: {message}"


def parse_params(raw: dict[str, Any] | None, source: str = "params.yaml") -> Params:
    try:
        return Params.model_validate(raw or {})
    except ValidationError as exc:
        problems = "\n".join(f"  - {_describe(e)}" for e in exc.errors())
        raise ParamsError(f"{source} is invalid:\n{problems}") from None


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    return parse_params(yaml.safe_load(path.read_text()), source=str(path))


def flat_params(params: Params, arch: str) -> dict[str, Any]:
    """Params for MLflow, flat; the run's own model section becomes `model.*` so both runs align."""
    dumped = params.model_dump(mode="json")
    dumped["model"] = dumped["model"][arch]
    flat: dict[str, Any] = {"arch": arch}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        else:
            flat[prefix] = node

    walk("", dumped)
    return flat
