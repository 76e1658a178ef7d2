"""What the Dask drain costs: the same queued sweep run by `vaebench queue --dask` on the team
stack's two workers and by DVC's own `dvc queue start -j 1`, on this machine, one after the other.

A throw-away team stack (PostgreSQL, MLflow, the WebDAV DVC remote, Dask) and a clone of this
repository with tiny params (or the default ones with --default-params) as the baseline, its outputs
pushed to the DVC remote. Each mode gets a fresh clone with the same sweep queued. Prints, per experiment, the drain's
own figures (the experiment's time and the overhead of cloning, pulling, pushing and collecting),
then both wall times. Nothing else should run meanwhile (2 cores: a test run halves both).

    python bench/scaleout.py [--betas 0.25,0.5,2,4] [--default-params] [--out bench/scaleout.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from vaebench.ops import team

REPO = Path(__file__).resolve().parents[1]
TINY = {
    "compare": {"archs": ["mlp"], "seeds": [0]},
    "data": {"subset": 600, "val_size": 500},
    "train": {"epochs": 2, "batch_size": 64},
    "evaluate": {"iwae_k": 2, "test_subset": 500, "n_samples": 500},
    "judge": {"epochs": 1},
}
DONE = re.compile(r"(\S+) \(\w+\)  done on \S+: experiment (\d+) s, overhead ([\d.]+) s \(([^)]*)\)")


def sh(cwd: Path, *command: str, env: dict[str, str]) -> str:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout + result.stderr


def set_params(project: Path, overrides: dict) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    for section, values in overrides.items():
        params[section].update(values)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def baseline(stack: team.Stack, root: Path, env: dict[str, str], tiny: bool) -> Path:
    """A clone of this repository's HEAD, reproduced and pushed: the bare git remote's main."""
    base = root / "base"
    sh(root, "git", "clone", "-q", str(REPO), str(base), env=env)
    if tiny:
        set_params(base, TINY)
    for command in stack.dvc_remote_commands():
        sh(base, *command, env=env)
    sh(base, "dvc", "repro", env=env)
    sh(base, "dvc", "push", "-q", env=env)
    sh(base, "git", "add", "-A", env=env)
    sh(base, "git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qm", "baseline", env=env)
    origin = root / "origin.git"
    sh(root, "git", "init", "-q", "--bare", "-b", "main", str(origin), env=env)
    sh(base, "git", "push", "-q", str(origin), "HEAD:main", env=env)
    return origin


def user_clone(stack: team.Stack, origin: Path, into: Path, env: dict[str, str], betas: str) -> Path:
    sh(into.parent, "git", "clone", "-q", str(origin), into.name, env=env)
    for command in stack.dvc_remote_commands():
        sh(into, *command, env=env)
    sh(into, "dvc", "pull", "-q", env=env)
    sh(into, "dvc", "exp", "run", "--queue", "-S", f"loss.kl_weight={betas}", env=env)
    return into


def through_dvc_queue(project: Path, env: dict[str, str]) -> float:
    start = time.monotonic()
    sh(project, "dvc", "queue", "start", "-j", "1", env=env)
    while re.search(r"\b(Queued|Running)\b", sh(project, "dvc", "queue", "status", env=env)):
        time.sleep(2)
    wall = time.monotonic() - start
    sh(project, "dvc", "queue", "stop", "--kill", env=env)
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--betas", default="0.25,0.5,2,4", help="the swept loss.kl_weight values")
    parser.add_argument("--default-params", action="store_true", help="params.yaml as it is, not the tiny ones")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "scaleout.json")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="vaebench-bench-"))
    root.chmod(0o755)  # PostgreSQL runs as its own user
    stack = team.up(root / "stack")
    try:
        env = {**os.environ, **stack.client_env(), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
        origin = baseline(stack, root, env, tiny=not args.default_params)
        dask_user = user_clone(stack, origin, root / "dask-user", env, args.betas)
        start = time.monotonic()
        drained = subprocess.run(
            ["vaebench", "queue", "--dask", stack.scheduler_address], cwd=dask_user, env=env, capture_output=True,
            text=True,
        )  # fmt: skip
        dask_wall = time.monotonic() - start
        print(drained.stdout + drained.stderr)
        local_wall = through_dvc_queue(user_clone(stack, origin, root / "dvc-user", env, args.betas), env)
    finally:
        team.purge(stack.root)
        shutil.rmtree(root, ignore_errors=True)
    rows = [
        {"experiment": m[1], "experiment_s": int(m[2]), "overhead_s": float(m[3]), "steps": m[4]}
        for m in DONE.finditer(drained.stdout)
    ]
    for row in rows:
        print(f"{row['experiment']:>14}  experiment {row['experiment_s']:4d} s  overhead {row['overhead_s']:5.1f} s"
              f"  ({row['steps']})")  # fmt: skip
    print(f"{len(rows)} experiments: vaebench queue --dask (2 workers) {dask_wall:.0f} s,"
          f" dvc queue start -j 1 {local_wall:.0f} s")  # fmt: skip
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.platform()}",
        "params": "default" if args.default_params else "tiny",
        "experiments": rows,
        "dask_wall_s": round(dask_wall, 1),
        "dvc_queue_wall_s": round(local_wall, 1),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
