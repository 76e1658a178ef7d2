"""The trained VAE as its training run's MLflow LoggedModel (only the train stage imports torch for it)."""

from __future__ import annotations

import mlflow
import mlflow.pytorch
import numpy as np
import torch
from mlflow.models import ModelSignature
from mlflow.types import Schema, TensorSpec

from vaebench.models.base import VAE, Reconstructor


def log_torch_model(model: VAE, example: torch.Tensor) -> None:
    """The trained model as the run's LoggedModel: a reconstructor, served by `mlflow models serve`.

    MLflow 3's default `pt2` format is a torch.export graph, not a pickle, so loading it runs no
    code of ours; it traces forward() on `example`. Requirements are given because pip inference
    needs the network. The VAE itself (encode/decode) is `vaebench.models.load_model("models/vae/<arch>-<seed>")`.
    """
    images = TensorSpec(np.dtype(np.float32), (-1, 1, 28, 28))
    signature = ModelSignature(inputs=Schema([images]), outputs=Schema([images]))
    mlflow.pytorch.log_model(
        Reconstructor(model.cpu()).eval(),
        name="model",
        signature=signature,
        input_example=example.cpu().numpy(),
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
        serialization_format="pt2",
    )
