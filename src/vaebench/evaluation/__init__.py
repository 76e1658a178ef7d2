"""Test-set metrics of a trained model, and the MNIST judge that scores samples."""
