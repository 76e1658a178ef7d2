"""Stage validate: params.yaml and this machine checked before any other stage touches an output.

Every stage depends on its stamp, so DVC runs it first whenever params.yaml changes: a wrong
param fails here, in about a second, and no other stage starts. The stamp's content never changes,
so a valid edit reruns only the stages that track the edited params. It also removes the outputs
of (architecture, seed) pairs the params no longer have, which render and report would read.
"""

import _venv  # noqa: F401  # isort: skip  (first: one line if vaebench is not installed)

import shutil

from vaebench.core import paths
from vaebench.core.environment import mnist_mirror, resolve_device
from vaebench.core.io import write_json
from vaebench.core.params import load_params
from vaebench.core.stage import run_stage
from vaebench.models import architectures, check_model_params
from vaebench.tracking.store import check_tracking_server, tracking_uri
from vaebench.training.budget import check_budget


def main() -> None:
    params = check_model_params(load_params(paths.PARAMS))
    check_budget(params, resolve_device(params.runtime.device))
    mnist_mirror()
    check_tracking_server(tracking_uri())
    for stale in paths.stale_run_outputs(params.compare.archs, params.compare.seeds, architectures()):
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
        print(f"removed {stale}: compare.archs x compare.seeds no longer has it")
    write_json(paths.VALIDATED, {"params.yaml": "valid"})
    print(f"params.yaml is valid: {len(params.compare.archs)} architectures x {len(params.compare.seeds)} seeds")


if __name__ == "__main__":
    run_stage(main)
