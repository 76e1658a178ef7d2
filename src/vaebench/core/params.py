"""The params.yaml schema: the `validate` stage checks the whole file before any other stage runs.

A typo in a key or a value out of range must fail in the first second, naming the key, the value
and what is allowed, not after an hour of training. Types are strict (no bool for an int, no "20"
for 20, no 20.0 for an epoch count), floats finite, every section present, no key given twice.
Model sections are checked by each architecture's own config class (models/<arch>.py), which
needs torch: `vaebench.models.check_model_params`, called by the validate stage after this schema,
so that every other mistake is reported before torch loads, and the stages that build no model
neither import nor depend on the model files.
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from vaebench.core.errors import StageError

MNIST_TRAIN_IMAGES, MNIST_TEST_IMAGES = 60_000, 10_000
MAX_IWAE_K = 100_000  # memory does not grow with k, time does: 5000 is the literature's figure
MAX_SAMPLES = 100_000  # prior samples are decoded at once: 100k images are 314 MB, ten times the test set
MAX_THREADS = 1024
# numpy's generators take seeds of 0 to 2**32 - 1 (torch's more): every seed here reaches both.
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]


class Section(BaseModel):
    """A params section: strict types, finite floats, no unknown keys."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class CompareParams(Section):
    archs: list[str] = Field(min_length=1)
    seeds: list[Seed] = Field(min_length=1)

    @field_validator("archs", "seeds")
    @classmethod
    def _unique(cls, values: list) -> list:
        if len(set(values)) != len(values):
            raise ValueError(f"{values}: each value once")
        return values


class DataParams(Section):
    val_size: int = Field(ge=1, le=MNIST_TRAIN_IMAGES - 1000)
    subset: int = Field(ge=0)
    seed: Seed
    standardize_input: bool
    binarize: bool

    @model_validator(mode="after")
    def _subset_within_split(self) -> DataParams:
        available = MNIST_TRAIN_IMAGES - self.val_size
        if self.subset > available:
            raise ValueError(
                f"subset = {self.subset}: only {available} training images remain after val_size = {self.val_size};"
                f" allowed: 0 (all) to {available}"
            )
        return self


class LossParams(Section):
    recon: Literal["bce", "mse"]
    kl_weight: float = Field(ge=0.0)


Schedule = Literal["constant", "burda", "cosine"]  # the learning rate over epochs: vaebench.training.fit.lr_factor
ORIGINAL_SNAPSHOT_EPOCHS = (1, 3, 5, 10, 20, 30, 40, 50)  # the epochs of the original recipe's published grids


class TrainParams(Section):
    """How every compared model is trained: Adam on the per-image loss (`vaebench.training.fit`)."""

    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1, le=MNIST_TRAIN_IMAGES)  # a larger batch is the whole training set
    lr: float = Field(gt=0.0)  # Adam's learning rate at epoch 1; the schedule scales it per epoch
    schedule: Schedule
    # torch.compile the training forward pass (the saved model is the plain module, same weights): it
    # needs a C compiler and costs seconds to compile; docs/performance.md has what it gains
    compile: bool
    amp: bool  # bfloat16 autocast of the training forward pass, on CUDA only (ignored elsewhere)
    snapshot_epochs: Literal["auto"] | list[int]  # epochs whose reconstructions are kept (render's montage)

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
        """Snapshot epochs; 'auto' is the original recipe's list cut at `epochs`. The last epoch is always one."""
        chosen = ORIGINAL_SNAPSHOT_EPOCHS if self.snapshot_epochs == "auto" else self.snapshot_epochs
        return sorted({e for e in chosen if e <= self.epochs} | {self.epochs})


class RuntimeParams(Section):
    """Settings every stage shares: where tensors live, how many CPU threads torch uses, and whether
    training and evaluation compute the models in their speed forms (`vaebench.speed.forms`)."""

    device: Literal["auto", "cpu", "cuda", "mps"]
    threads: int = Field(ge=0, le=MAX_THREADS)
    fast: bool


class EvaluateParams(Section):
    iwae_k: int = Field(ge=1, le=MAX_IWAE_K)
    test_subset: int = Field(ge=0, le=MNIST_TEST_IMAGES)
    batch_size: int = Field(ge=1, le=MNIST_TEST_IMAGES)
    n_samples: int = Field(ge=2, le=MAX_SAMPLES)
    seed: Seed


class JudgeParams(Section):
    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1, le=MNIST_TRAIN_IMAGES)
    lr: float = Field(gt=0.0)
    seed: Seed


class MlflowParams(Section):
    experiment: str = Field(min_length=1, pattern=r"\S")


class Params(Section):
    compare: CompareParams
    data: DataParams
    model: dict[str, dict[str, Any]]
    loss: LossParams
    train: TrainParams
    runtime: RuntimeParams
    evaluate: EvaluateParams
    judge: JudgeParams
    mlflow: MlflowParams
    # `vaebench tune`'s search space, checked by it (vaebench.tuning.space) against this schema; no
    # stage tracks it, and a file without it has nothing to tune
    tune: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _binarized_needs_bce(self) -> Params:
        if self.data.binarize and self.loss.recon != "bce":
            raise ValueError(
                f"data.binarize = true: needs loss.recon = 'bce' (a Bernoulli likelihood on binary pixels),"
                f" got {self.loss.recon!r}"
            )
        return self


class Recipe(Section):
    """How one model is trained, as `vaebench.training.fit` reads it: the params sections it uses
    (no field of its own but the seed), so that a training recipe has one schema, params.yaml's."""

    train: TrainParams
    loss: LossParams
    binarize: bool  # data.binarize: a fresh Bernoulli sample of every batch's pixel intensities
    fast: bool  # runtime.fast: train the model's speed forms (vaebench.speed.forms)
    seed: Seed  # one of compare.seeds

    @classmethod
    def of(cls, params: Params, seed: int) -> Recipe:
        return cls(
            train=params.train, loss=params.loss, binarize=params.data.binarize, fast=params.runtime.fast, seed=seed
        )


class ParamsError(StageError, ValueError):
    """params.yaml does not match the schema; the message lists every problem."""


def invalid(source: str, problems: list[str]) -> ParamsError:
    return ParamsError(f"{source} is invalid:\n" + "\n".join(f"  - {p}" for p in problems))


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


def describe(error: dict[str, Any], prefix: tuple[Any, ...] = (), schema: type[BaseModel] | None = None) -> str:
    loc = prefix + tuple(error["loc"])
    key = ".".join(str(p) for p in loc)
    if error["type"] == "extra_forbidden":
        allowed = _allowed(schema if schema is not None else _section_at(loc))
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return f"{key}: unknown key{hint} (allowed: {', '.join(allowed)})"
    if error["type"] == "missing":
        return f"{key}: missing; every key must be in params.yaml (DVC tracks only what is written there)"
    message = error["msg"]
    if error["type"] == "value_error":  # a check across keys: its message names them and the values
        message = message.removeprefix("Value error, ")
        if not key:
            return message
        section_level = _section_at((*loc, "")) is not None  # a section's check names its own keys
        return f"{key}.{message}" if section_level else f"{key} = {message}"
    if error["type"] == "literal_error":
        message = f"must be one of {message.removeprefix('Input should be ')}"
    return f"{key} = {error.get('input')!r}: {message}"


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's own loader, except that a key given twice is an error instead of 'last one wins'."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice (line {key_node.start_mark.line + 1})", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def parse_params(raw: Any, source: str = "params.yaml") -> Params:
    if not isinstance(raw, dict):
        raise ParamsError(f"{source} is empty or not a mapping of sections (compare, data, model, ...)")
    try:
        params = Params.model_validate(raw)
    except ValidationError as exc:
        raise invalid(source, [describe(e) for e in exc.errors()]) from None
    return params


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
    except FileNotFoundError:
        raise ParamsError(f"{path} not found: run the stage from the repository root") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {exc}") from None
    return parse_params(raw, source=str(path))


def flat_params(params: Params, arch: str, seed: int) -> dict[str, Any]:
    """Params for MLflow, flat; the run's own model section becomes `model.*` so all runs align."""
    dumped = params.model_dump(mode="json", exclude={"compare", "tune"})
    dumped["model"] = dumped["model"][arch]
    return {"arch": arch, "seed": seed, **flatten(dumped)}


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """Nested params as dotted keys (`train.lr`): the names of DVC's `-S`, `dvc exp show` and MLflow."""
    if not isinstance(node, dict):
        return {prefix: node}
    return {
        k: v for key, child in node.items() for k, v in flatten(child, f"{prefix}.{key}" if prefix else key).items()
    }


def with_values(raw: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A copy of the raw params with each dotted key set (`-S train.lr=0.003` as DVC applies it)."""
    out = copy.deepcopy(raw)
    for key, value in values.items():
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node[part]
        node[leaf] = value
    return out
