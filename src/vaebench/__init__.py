"""vaebench: an MLP VAE and a CNN VAE on MNIST, trained and compared by a DVC pipeline tracked in MLflow."""

from vaebench.models import load_model

__all__ = ["load_model"]
