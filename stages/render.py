"""Stage render: the figures of every architecture (its first seed) and the loss curves of all
seeds, as PNGs under reports/figures/."""

import _venv  # noqa: F401  # isort: skip  (first: one line if vaebench is not installed)

from vaebench.core import paths
from vaebench.core.io import atomic_path
from vaebench.core.params import load_params
from vaebench.core.runtime import configure
from vaebench.core.stage import run_stage
from vaebench.data.splits import load_split
from vaebench.figures.render import render_all


def main() -> None:
    params = load_params()
    configure(params.runtime, params.compare.seeds[0])
    images, labels = load_split(paths.PROCESSED, "test")
    with atomic_path(paths.FIGURES) as out:
        out.mkdir()
        render_all(params.compare.archs, params.compare.seeds, images, labels, out)
    print(f"wrote {len(list(paths.FIGURES.glob('*.png')))} figures to {paths.FIGURES}/")


if __name__ == "__main__":
    run_stage(main)
