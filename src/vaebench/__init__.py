"""vaebench: VAEs on MNIST (an MLP and a CNN by default), trained and compared by a DVC pipeline tracked
in MLflow. A trained model: `from vaebench.models import load_model`."""
