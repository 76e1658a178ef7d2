"""What every stage script shares: known failures become one clear line and exit status 1."""

from __future__ import annotations

import sys
from collections.abc import Callable

from vaebench.data import DownloadError
from vaebench.params import ParamsError
from vaebench.runtime import DeviceError
from vaebench.tracking import Terminated
from vaebench.train import NonFiniteLossError

EXPECTED_ERRORS = (ParamsError, DownloadError, NonFiniteLossError, DeviceError)


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's main(); expected failures print their message without a traceback."""
    try:
        main()
    except EXPECTED_ERRORS as exc:
        sys.exit(f"error: {exc}")
    except KeyboardInterrupt:
        print("interrupted: outputs left as they were", file=sys.stderr)
        sys.exit(130)
    except Terminated:
        print("terminated: outputs left as they were", file=sys.stderr)
        sys.exit(143)
