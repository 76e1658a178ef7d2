"""Stage download: the four MNIST files via torchvision (MD5-checked) into data/raw/."""

from pathlib import Path

from vaebench.data import download, mirror_from_env
from vaebench.params import load_params
from vaebench.stage import run_stage


def main() -> None:
    load_params()  # every stage validates params.yaml before doing any work
    mirror = mirror_from_env()
    print(f"downloading MNIST from {mirror or 'torchvision mirrors'}")
    download(Path("data/raw"), mirror)


if __name__ == "__main__":
    run_stage(main)
