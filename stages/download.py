"""Stage download: the four MNIST files via torchvision (MD5-checked) into data/raw/."""

import _venv  # noqa: F401  # isort: skip  (first: one line if vaebench is not installed)

from vaebench.core import paths
from vaebench.core.environment import mnist_mirror
from vaebench.core.stage import run_stage


def main() -> None:
    mirror = mnist_mirror()  # a bad MNIST_MIRROR fails before torchvision loads
    from vaebench.data.mnist import download

    print(f"downloading MNIST from {mirror or 'torchvision mirrors'}")
    download(paths.RAW, mirror)


if __name__ == "__main__":
    run_stage(main)
