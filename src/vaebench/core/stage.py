"""What every stage script shares: expected failures become one clear line and a non-zero exit."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from vaebench.core.errors import StageError, Terminated
from vaebench.core.io import disk_full
from vaebench.core.stop import watch_dvc


def _where(exc: BaseException) -> Path:
    where = Path(exc.filename).parent if isinstance(exc, OSError) and exc.filename else Path.cwd()
    while not where.exists() and where != where.parent:
        where = where.parent
    return where


def _notes(exc: BaseException) -> str:
    """What else went wrong on the way out (an MLflow run that could not be closed), on the same line."""
    return "".join(f"; {note}" for note in getattr(exc, "__notes__", []))


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's main(); expected failures print one line without a traceback and exit non-zero.

    Outputs are written atomically and declared `persist` in dvc.yaml, so whatever fails here,
    the previous outputs are still in place.
    """
    watch_dvc()
    try:
        main()
    except StageError as exc:
        sys.exit(f"error: {exc}{_notes(exc)}")
    except KeyboardInterrupt as exc:
        print(f"interrupted: outputs left as they were{_notes(exc)}", file=sys.stderr)
        sys.exit(130)
    except Terminated as exc:
        print(f"terminated: outputs left as they were ({exc}){_notes(exc)}", file=sys.stderr)
        sys.exit(143)
    except Exception as exc:
        if disk_full(exc):
            where = _where(exc)
            sys.exit(
                f"error: the disk is full ({shutil.disk_usage(where).free:,} bytes free on the file system of"
                f" {where}): free space, then rerun{_notes(exc)}; outputs left as they were"
            )
        raise
