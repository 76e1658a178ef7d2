"""The training loop, the loss, and the train stage's run."""
