"""Files as a git commit holds them: a DVC experiment's git-tracked outputs (reports, metrics) are
read from its commit, without checking it out or touching the workspace."""

from __future__ import annotations

import subprocess
from pathlib import Path


def committed_text(repo: Path, commit: str, path: str | Path) -> str | None:
    """`path` as `commit` holds it, or None where the commit has no such file."""
    shown = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=repo, capture_output=True, text=True)
    return shown.stdout if shown.returncode == 0 else None
