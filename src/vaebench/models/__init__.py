"""One registry for both architectures, and the on-disk format of a trained model.

A model directory holds `config.json` (architecture and sizes: what rebuilds the module) and
`weights.pt` (a state dict, loaded with `weights_only=True`: a model file is data, never code).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vaebench.io import atomic_path, read_json, write_json
from vaebench.models.base import VAE
from vaebench.models.cnn import CNNVAE
from vaebench.models.mlp import MLPVAE
from vaebench.params import Params

REGISTRY: dict[str, type[VAE]] = {"mlp": MLPVAE, "cnn": CNNVAE}


def model_kwargs(params: Params, arch: str) -> dict[str, Any]:
    return getattr(params.model, arch).model_dump(mode="json")


def build_model(arch: str, **kwargs: Any) -> VAE:
    if arch not in REGISTRY:
        raise ValueError(f"unknown architecture {arch!r}; allowed: {', '.join(REGISTRY)}")
    return REGISTRY[arch](**kwargs)


def save_model(model: VAE, arch: str, kwargs: dict[str, Any], directory: Path) -> None:
    """Write config.json and weights.pt into `directory` (which the caller writes atomically)."""
    directory.mkdir(parents=True, exist_ok=True)
    write_json(directory / "config.json", {"arch": arch, "kwargs": kwargs})
    with atomic_path(directory / "weights.pt") as tmp:
        torch.save({k: v.cpu() for k, v in model.state_dict().items()}, tmp)


def load_model(directory: str | Path, device: str | torch.device = "cpu") -> VAE:
    """Rebuild a trained model from a train stage output, in eval mode."""
    directory = Path(directory)
    config = read_json(directory / "config.json")
    model = build_model(config["arch"], **config["kwargs"])
    state = torch.load(directory / "weights.pt", map_location=device, weights_only=True)
    model.load_state_dict(state)
    return model.to(device).eval()


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
