"""What every stage script shares: expected failures become one clear line and a non-zero exit."""

from __future__ import annotations

import sys
from collections.abc import Callable

from vaebench.errors import StageError, Terminated


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's main(); expected failures print their message without a traceback."""
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
