"""The command line of a matrix stage (`python stages/train.py mlp 0`): the architecture and the seed.

The architecture is not checked here: `validate` checked `compare.archs` against the model files
before any stage ran, and `models.model_class` names the allowed ones if a hand-typed one is unknown.
"""

from __future__ import annotations

import argparse


def arch_and_seed(description: str | None) -> tuple[str, int]:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("arch", help="an architecture: a model file src/vaebench/models/<arch>.py")
    parser.add_argument("seed", type=int)
    args = parser.parse_args()
    return args.arch, args.seed
