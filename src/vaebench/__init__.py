"""vaebench: VAEs on MNIST (an MLP and a CNN by default), trained and compared by a DVC pipeline tracked in MLflow."""

from __future__ import annotations

from typing import Any

__all__ = ["load_model"]


def __getattr__(name: str) -> Any:
    """`vaebench.load_model` without importing torch for every `import vaebench.<light module>`."""
    if name == "load_model":
        from vaebench.models import load_model

        return load_model
    raise AttributeError(name)
