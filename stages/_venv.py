"""Imported first by every stage: one line, not a traceback, when the python DVC runs lacks vaebench.

`.venv/bin/dvc repro` without an activated venv, or a system `dvc`, runs stages with the system
python. Nothing is lost either way (every output is `persist`), but the user needs to know what to do.
"""

import importlib.util
import sys

if importlib.util.find_spec("vaebench") is None:
    sys.exit(
        f"error: {sys.executable} cannot import vaebench: run `make repro`, or `source .venv/bin/activate`"
        " and then `dvc repro`"
    )
