"""Stage validate: params.yaml and this machine checked before any other stage touches an output.

Every stage depends on its stamp, so DVC runs it first whenever params.yaml changes: a wrong
param fails here, in about a second, and no other stage starts. The stamp's content never changes,
so a valid edit reruns only the stages that track the edited params.
"""

import _venv  # noqa: F401  # isort: skip  (first: one line if vaebench is not installed)

from vaebench import paths
from vaebench.environment import check_tracking_server, mnist_mirror, resolve_device, tracking_uri
from vaebench.io import write_json
from vaebench.params import load_params
from vaebench.stage import run_stage


def main() -> None:
    params = load_params(paths.PARAMS)
    mnist_mirror()
    if params.runtime.device != "auto":
        resolve_device(params.runtime.device)
    check_tracking_server(tracking_uri())
    write_json(paths.VALIDATED, {"params.yaml": "valid"})
    print(f"params.yaml is valid: {len(params.compare.archs)} architectures x {len(params.compare.seeds)} seeds")


if __name__ == "__main__":
    run_stage(main)
