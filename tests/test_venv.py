"""A stage imports the package of its own checkout: a queued DVC experiment runs in a copy of the
repository, and must not pick up the workspace's src/ through the venv's editable install."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_a_stage_in_a_copy_of_the_repository_runs_the_copys_package(tmp_path: Path) -> None:
    copy = tmp_path / "exp-copy"
    shutil.copytree(REPO / "stages", copy / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "src", copy / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    probe = copy / "stages" / "probe.py"
    probe.write_text("import _venv  # noqa: F401\nimport vaebench\nprint(vaebench.__file__)\n")
    result = subprocess.run([sys.executable, str(probe)], capture_output=True, text=True, check=True)
    assert Path(result.stdout.strip()) == (copy / "src" / "vaebench" / "__init__.py").resolve()
