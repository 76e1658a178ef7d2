"""What every stage script shares: expected failures become one clear line and a non-zero exit."""

from __future__ import annotations

import sys
from collections.abc import Callable

from vaebench.core.errors import StageError, Terminated


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's main(); expected failures print their message without a traceback.

    Outputs are written atomically and declared `persist` in dvc.yaml, so whatever fails here,
    the previous outputs are still in place.
    """
    try:
        main()
    except StageError as exc:
        sys.exit(f"error: {exc}")
    except KeyboardInterrupt:
        print("interrupted: outputs left as they were", file=sys.stderr)
        sys.exit(130)
    except Terminated:
        print("terminated: outputs left as they were", file=sys.stderr)
        sys.exit(143)
    except Exception as exc:
        if type(exc).__module__.startswith("mlflow"):  # the server went away mid-run, say
            from vaebench.tracking.store import tracking_uri

            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            sys.exit(f"error: MLflow at {tracking_uri()} failed: {first_line}; outputs left as they were")
        raise
