"""MNIST: download through torchvision, normalize into splits, load and binarize them."""
