"""The command line of a matrix stage (`python stages/train.py mlp 0`): the architecture, checked
against the model files, and the seed."""

from __future__ import annotations

import argparse

from vaebench.models import architectures


def arch_and_seed(description: str | None) -> tuple[str, int]:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("arch", choices=architectures())
    parser.add_argument("seed", type=int)
    args = parser.parse_args()
    return args.arch, args.seed
