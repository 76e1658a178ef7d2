"""Imported first by every stage: the package of this checkout, and one line, not a traceback, when
the python DVC runs lacks vaebench's environment.

This checkout's src/ goes first on sys.path. DVC's queue runs an experiment in a copy of the
repository (.dvc/tmp/exps/...), while the venv's editable install points at the workspace's src/,
which may have changed since the experiment was queued; dvc.lock hashes the copy's files, so
those are the ones that must run.

`.venv/bin/dvc repro` without an activated venv, or a system `dvc`, runs stages with the system
python. Nothing is lost either way (every output is `persist`), but the user needs to know what to do.
"""

import importlib.metadata
import sys
from pathlib import Path

try:
    importlib.metadata.version("vaebench")  # installed into this python, with its dependencies
except importlib.metadata.PackageNotFoundError:
    sys.exit(
        f"error: {sys.executable} cannot import vaebench: run `make repro`, or `source .venv/bin/activate`"
        " and then `dvc repro`"
    )
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
