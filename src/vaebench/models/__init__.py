"""The architectures, found by their files, and the on-disk format of a trained model.

An architecture is a module `models/<arch>.py` that defines one `VAE` subclass with its `Config`;
its name is the file's name, which params.yaml uses (`compare.archs`, `model.<arch>`) and dvc.yaml
depends on. Adding one is that file plus its params section: nothing here lists them. A module of
this package that defines no model of its own (`base`, a helper) is not an architecture.

A model directory holds `config.json` (architecture and config: what rebuilds the module) and
`weights.pt` (a state dict, loaded with `weights_only=True`: a model file is data, never code).
This module imports torch only when a model is built, so params validation stays light.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from vaebench.core.errors import StageError
from vaebench.core.io import atomic_path, load_tensors, unreadable, write_json
from vaebench.core.params import Params, describe, invalid

if TYPE_CHECKING:
    import torch

    from vaebench.models.base import VAE, ModelConfig


def _defined_model(name: str) -> type[VAE] | None:
    """The one VAE subclass that module `name` of this package defines itself, if it defines exactly one."""
    from vaebench.models.base import VAE

    module = importlib.import_module(f"{__name__}.{name}")
    defined = [
        c
        for c in vars(module).values()
        if isinstance(c, type) and issubclass(c, VAE) and c is not VAE and c.__module__ == module.__name__
    ]
    return defined[0] if len(defined) == 1 else None


def architectures() -> list[str]:
    """Every model file of this package (and of any folder added to its __path__): a module that
    defines one VAE subclass of its own. Imports each module (and torch)."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if _defined_model(m.name) is not None)


def model_class(arch: str) -> type[VAE]:
    """The model class of `arch`, importing only its own module (so a stage runs only that model file)."""
    names = {m.name for m in pkgutil.iter_modules(__path__)}
    cls = _defined_model(arch) if arch in names else None
    if cls is None:
        raise StageError(f"unknown architecture {arch!r}; allowed: {', '.join(architectures())}")
    return cls


def config_class(arch: str) -> type[ModelConfig]:
    return model_class(arch).Config


def model_problems(params: Params) -> list[str]:
    """Each compared architecture has a model file and a valid section under `model:`."""
    known = architectures()
    problems = [
        f"compare.archs: {arch!r} has no model file; allowed: {', '.join(known)} (src/vaebench/models/<arch>.py)"
        for arch in params.compare.archs
        if arch not in known
    ]
    problems += [
        f"model.{arch}: missing; every compared architecture needs its section"
        for arch in params.compare.archs
        if arch in known and arch not in params.model
    ]
    for arch, section in params.model.items():
        if arch not in known:
            problems.append(f"model.{arch}: no model file for it; allowed: {', '.join(known)}")
            continue
        schema = config_class(arch)
        try:
            schema.model_validate(section)
        except ValidationError as exc:
            problems += [describe(e, ("model", arch), schema) for e in exc.errors()]
    return problems


def check_model_params(params: Params, source: str = "params.yaml") -> Params:
    """params.yaml's model sections against the model files: ParamsError naming every problem."""
    problems = model_problems(params)
    if problems:
        raise invalid(source, problems)
    return params


def build_model(arch: str, config: dict[str, Any] | ModelConfig | None = None, **sizes: Any) -> VAE:
    """The architecture with its config, given whole or as keyword sizes (the rest default)."""
    cls = model_class(arch)
    return cls(cls.Config.model_validate(config if config is not None else sizes))


def save_model(model: VAE, directory: Path) -> None:
    """Write config.json and weights.pt into `directory` (which the caller writes atomically)."""
    import torch

    directory.mkdir(parents=True, exist_ok=True)
    write_json(directory / "config.json", {"arch": model.arch, "config": model.config.model_dump(mode="json")})
    with atomic_path(directory / "weights.pt") as tmp:
        torch.save({k: v.cpu() for k, v in model.state_dict().items()}, tmp)


def load_model(directory: str | Path, device: str | torch.device = "cpu") -> VAE:
    """Rebuild a trained model from a train stage output, in eval mode.

    Every way the directory can be broken (missing, corrupt, an unknown architecture, weights that
    are not plain tensors, sizes in config.json that do not fit the weights) raises a one-line
    error that names the file, the field where it can, and how to get it back.
    """
    directory = Path(directory)
    config_path, weights_path = directory / "config.json", directory / "weights.pt"
    try:
        config = json.loads(config_path.read_text())
        arch, sizes = config["arch"], config["config"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise unreadable(config_path, exc) from None
    try:
        model = build_model(arch, sizes)
    except StageError as exc:  # no such architecture
        raise unreadable(config_path, exc) from None
    except (ValidationError, TypeError, ValueError) as exc:
        raise unreadable(config_path, f"its config does not build a {arch} model: {exc}") from None
    state = load_tensors(weights_path, device)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise misfit(directory, arch, sizes, state, exc) from None
    return model.to(device).eval()


def _shapes(arch: str, sizes: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    import torch

    with torch.device("meta"):  # shapes only: nothing is allocated
        return {k: tuple(v.shape) for k, v in build_model(arch, sizes).state_dict().items()}


def misfit(directory: Path, arch: str, sizes: dict[str, Any], state: Any, exc: Exception) -> StageError:
    """Weights that do not load into the model config.json describes: where one integer field of the
    config, set to a size the weights have, makes every shape fit, name it and both values."""
    config_path, weights_path = directory / "config.json", directory / "weights.pt"
    if not isinstance(state, dict):
        return unreadable(weights_path, exc)
    wanted = {k: tuple(v.shape) for k, v in state.items() if hasattr(v, "shape")}
    if _shapes(arch, sizes).keys() != wanted.keys():
        return unreadable(weights_path, f"its tensors are not a {arch} model's: {str(exc).splitlines()[0]}")
    sizes_seen = sorted({d for shape in wanted.values() for d in shape})
    for field, value in sizes.items():
        if not isinstance(value, int) or isinstance(value, bool):
            continue
        for size in sizes_seen:
            try:
                fits = _shapes(arch, {**sizes, field: size}) == wanted
            except (ValidationError, TypeError, ValueError, RuntimeError):
                continue
            if fits:
                return unreadable(
                    config_path,
                    f"config.{field} = {value} does not fit {weights_path.name}, trained with {field} = {size}",
                )
    return unreadable(config_path, f"its sizes {sizes} do not fit {weights_path.name}: {str(exc).splitlines()[0]}")


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
