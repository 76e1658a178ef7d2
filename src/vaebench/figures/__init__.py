"""One model's figures: image grids (training's MLflow slider, the render stage), samples, progress,
latent maps, interpolations, and the loss curves the render stage draws."""
