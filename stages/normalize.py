"""Stage normalize: [0, 1] float tensors, a seeded validation split, and reports/data.json."""

import _venv  # noqa: F401  # isort: skip  (first: one line if vaebench is not installed)

from vaebench.core import paths
from vaebench.core.io import write_json
from vaebench.core.params import load_params
from vaebench.core.stage import run_stage
from vaebench.data.mnist import data_summary, split
from vaebench.data.splits import save_splits


def main() -> None:
    params = load_params().data
    splits = split(paths.RAW, val_size=params.val_size, subset=params.subset, seed=params.seed)
    save_splits(splits, paths.PROCESSED)
    write_json(paths.DATA_SUMMARY, data_summary(splits))
    print(", ".join(f"{name}: {len(labels)}" for name, (_, labels) in splits.items()))


if __name__ == "__main__":
    run_stage(main)
