"""The `vaebench` command: `generate` new digits from a trained model, `study` a sweep of
experiments, `protocol` the literature's likelihood protocol as an experiment, `queue` DVC's
experiment queue drained onto a Dask cluster, `tune` Optuna through that queue, `ui` the MLflow UI
on this repository's store, `team` the team stack on loopback."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from vaebench.core import paths

# MLflow 3's server starts a job runner (eight huey consumer processes) for its GenAI jobs, which
# nothing here uses: its servers start without it.
NO_JOB_RUNNER = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"
MAX_GENERATE = 10_000  # 10k digits are a 31 MB tensor; more is a job for the Python API in batches


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def generate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    from vaebench.core.io import atomic_path
    from vaebench.core.stage import run_stage
    from vaebench.figures.render import save_prior_samples
    from vaebench.models import load_model

    if not 1 <= args.n <= MAX_GENERATE or args.std < 0:
        parser.error(f"--n must be 1 to {MAX_GENERATE} and --std >= 0")
    if args.out.suffix.lower() not in {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}:
        parser.error(f"--out {args.out}: the extension must name an image format (.png, .jpg, ...)")
    if not args.out.resolve().parent.is_dir():
        parser.error(f"--out {args.out}: the folder {args.out.parent} does not exist")

    def write() -> None:
        model = load_model(args.model)
        with atomic_path(args.out) as tmp:
            out = tmp.with_suffix(args.out.suffix)
            save_prior_samples(model, out, n=args.n, mean=args.mean, std=args.std, seed=args.seed)
        print(f"wrote {args.n} samples from {args.model} to {args.out}")

    run_stage(write)  # a broken model folder is one line, not a traceback


def port_is_free(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:port now (else its URLs would be someone else's)."""
    import socket

    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def server_runs_url(uri: str, experiment: str) -> str:
    """The training runs' URL on a tracking server, or its front page where the experiment is not found."""
    from mlflow.tracking import MlflowClient

    from vaebench.tracking.store import configure_client
    from vaebench.tracking.ui import runs_url

    configure_client()
    try:
        found = MlflowClient(tracking_uri=uri).get_experiment_by_name(experiment)
    except Exception:  # unreachable, or credentials missing: the front page still tells the user
        found = None
    return runs_url(uri.rstrip("/"), found.experiment_id) if found else uri


def ui(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Print the URL of the experiment's training runs, then serve the store's UI in this process.

    With MLFLOW_TRACKING_URI set to a server (the team's), that server already is the UI: print its
    URLs and start nothing. Otherwise serve the store the stages write to, bound to 127.0.0.1.
    """
    import os

    from vaebench.tracking.store import is_server, local_artifacts, sqlite_path, tracking_uri
    from vaebench.tracking.ui import experiment_id, grouped_runs_url, runs_url

    uri = tracking_uri()
    if is_server(uri):
        print(f"MLFLOW_TRACKING_URI is the server {uri}; its UI: {server_runs_url(uri, args.experiment)}")
        print("(unset MLFLOW_TRACKING_URI to serve this repository's mlflow.db instead)")
        return
    db = sqlite_path(uri)
    if db is None:
        parser.error(f"MLFLOW_TRACKING_URI={uri}: `vaebench ui` serves a sqlite:/// store or names an http(s) server")
    if not port_is_free(args.port):
        parser.exit(1, f"error: 127.0.0.1:{args.port} is in use (another MLflow UI?): choose a port with --port\n")
    base = f"http://127.0.0.1:{args.port}"
    found = experiment_id(db, args.experiment)
    if found is None:
        print(f"MLflow UI: {base} (no experiment {args.experiment!r} in {db} yet: run `make repro` first)", flush=True)
    else:
        print(f"MLflow UI, the training runs:          {runs_url(base, found)}", flush=True)
        print(f"            grouped by architecture:   {grouped_runs_url(base, found)}", flush=True)
    command = ["mlflow", "server", "--host", "127.0.0.1", "--port", str(args.port)]
    command += ["--backend-store-uri", uri, "--artifacts-destination", str(local_artifacts())]
    os.environ.setdefault(NO_JOB_RUNNER, "false")  # see NO_JOB_RUNNER
    os.execvp(command[0], command)


def study(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    from vaebench.core.stage import run_stage
    from vaebench.experiments.study import run_study

    run_stage(lambda: run_study(args.out, log_to_mlflow=not args.no_mlflow, rev=args.rev, force=args.force))


def protocol(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Run (or queue) the protocol's `dvc exp run`; DVC's output and exit status are the command's."""
    import os

    from vaebench.core.errors import StageError
    from vaebench.experiments.protocol import exp_run_command

    try:
        command = exp_run_command(args.name, args.set, args.queue)
    except StageError as exc:
        parser.error(str(exc))
    print("$ " + " ".join(command), flush=True)
    os.execvp(command[0], command)


def _resource(text: str) -> tuple[str, float]:
    name, _, amount = text.partition("=")
    try:
        return name, float(amount)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=AMOUNT (e.g. GPU=1)") from None


def queue(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    import os
    import sys

    from vaebench.core.stage import run_stage

    address = args.dask or os.environ.get("DASK_SCHEDULER_ADDRESS")
    if not address:
        parser.error("--dask ADDRESS (or DASK_SCHEDULER_ADDRESS) names the Dask scheduler, e.g. tcp://HOST:8786")

    def act() -> None:
        from vaebench.scaleout.drain import Options, drain, repository_root

        try:
            status = drain(Options(address, args.git_remote, dict(args.resources), repository_root()))
        except KeyboardInterrupt:
            print(
                "interrupted: the running experiments stop on their workers; what was collected stays."
                " Run the same command again to run the rest",
                file=sys.stderr,
            )
            sys.exit(130)
        sys.exit(status)

    run_stage(act)


def _at_least(low: int):
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"{text}: at least {low}")
        return value

    return parse


_positive = _at_least(1)


def tune(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    import os
    import sys

    from vaebench.core.stage import run_stage

    if args.retrain == bool(args.arch):
        parser.error("--arch ARCH runs trials of one architecture; --retrain (without --arch) retrains the best ones")
    address = args.dask or (os.environ.get("DASK_SCHEDULER_ADDRESS") if args.dask is None else None)

    def act() -> None:
        from vaebench.scaleout.drain import repository_root
        from vaebench.tuning.space import parse_overrides
        from vaebench.tuning.tune import Options, retrain
        from vaebench.tuning.tune import tune as run_trials

        options = Options(
            args.name, args.arch, args.trials, args.sampler, args.seed, args.parallel or 0, parse_overrides(args.set),
            address, args.git_remote, repository_root(),
        )  # fmt: skip
        try:
            retrain(options) if args.retrain else run_trials(options)
        except KeyboardInterrupt:
            print("interrupted: the journal keeps every trial; run the same command again to go on", file=sys.stderr)
            sys.exit(130)

    run_stage(act)


def team(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    from vaebench.core.errors import StageError
    from vaebench.core.stage import run_stage
    from vaebench.ops import team

    def act() -> None:
        if args.action == "up":
            stack = team.up(args.root)
            print(f"team stack up in {stack.root}: PostgreSQL :{stack.pg_port}, DVC remote {stack.dvc_remote_url},"
                  f" MLflow {stack.tracking_uri}, Dask {stack.scheduler_address}")  # fmt: skip
            print(team.next_steps(stack))
        elif args.action == "env":
            print(team.env_lines(team.Stack.load(args.root)))
        elif args.action == "status":
            parts = team.status(args.root)
            for part, address, up, log in parts:
                print(f"{part:<38} {address:<38} {'up' if up else f'DOWN (its log: {log})'}")
            if not all(up for *_, up, _ in parts):
                raise StageError("part of the team stack is down: `vaebench team up` starts what is down")
        elif args.action == "down":
            team.down(args.root)
            print(f"team stack in {args.root} stopped; its data stays (`vaebench team up` starts it again)")
        else:
            deleted = team.purge(args.root)
            print("deleted:\n  " + "\n  ".join(deleted) if deleted else f"no team stack in {args.root}")

    run_stage(act)


def _add_generate(commands: argparse._SubParsersAction) -> None:
    g = commands.add_parser("generate", help="decode latent codes drawn from N(mean, std^2 I)")
    g.add_argument("--model", type=Path, default=Path("models/vae/cnn-0"), help="a train stage's output folder")
    g.add_argument(
        "--n", type=int, default=64, help=f"how many digits, 1 to {MAX_GENERATE} (a square grid when n is a square)"
    )
    g.add_argument("--mean", type=_finite, default=0.0)
    g.add_argument("--std", type=_finite, default=1.0)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--out", type=Path, default=Path("samples.png"))
    g.set_defaults(handler=generate)


def _add_study(commands: argparse._SubParsersAction) -> None:
    s = commands.add_parser("study", help=f"gather the DVC experiments of a sweep into {paths.STUDY}/")
    s.add_argument("--out", type=Path, default=paths.STUDY)
    s.add_argument("--no-mlflow", action="store_true", help="do not log the study as an MLflow run")
    s.add_argument("--force", action="store_true", help="replace a study in --out that has more experiments")
    s.add_argument("--rev", help="the commit the experiments were queued on, if not HEAD (`dvc exp show --rev`)")
    s.set_defaults(handler=study)


def _add_protocol(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("protocol", help="dvc exp run with the literature's protocol (Burda et al. 2016)")
    p.add_argument("--name", default="protocol", help="the experiment's name")
    p.add_argument("--queue", action="store_true", help="queue it (`dvc queue start` runs it)")
    p.add_argument("-S", "--set", action="append", default=[], metavar="KEY=VALUE", help="more params, or overrides")
    p.set_defaults(handler=protocol)


def _add_queue(commands: argparse._SubParsersAction) -> None:
    q = commands.add_parser("queue", help="run every queued DVC experiment on a Dask cluster and collect them here")
    q.add_argument(
        "--dask", metavar="ADDRESS", help="the scheduler, tcp://HOST:8786 (default: $DASK_SCHEDULER_ADDRESS)"
    )
    q.add_argument("--git-remote", default="origin", help="the git remote the workers clone and push to")
    q.add_argument(
        "--resources", type=_resource, action="append", default=[], metavar="NAME=AMOUNT",
        help="what each experiment needs of a worker's --resources, e.g. GPU=1",
    )  # fmt: skip
    q.set_defaults(handler=queue)


def _add_tune(commands: argparse._SubParsersAction) -> None:
    n = commands.add_parser(
        "tune", help="Optuna through DVC's experiment queue: N trials of one architecture, or --retrain the best"
    )
    n.add_argument("name", help="the study: its trials are the experiments NAME-<arch>-<NNN>")
    n.add_argument("--arch", help="the architecture to tune (a section under model:)")
    n.add_argument("--trials", type=_positive, default=12, help="the study's trials of that architecture in all")
    n.add_argument("--sampler", choices=["random", "tpe"], default="random",
                   help="random: i.i.d. trials (expected-best curves); tpe: learns from each finished one")  # fmt: skip
    n.add_argument("--seed", type=_at_least(0), default=0, help="the sampler's seed")
    n.add_argument("--parallel", type=_positive, help="trials in flight (default: one per Dask worker, or 1)")
    n.add_argument("-S", "--set", action="append", default=[], metavar="KEY=VALUE", help="a param every trial gets")
    n.add_argument("--retrain", action="store_true", help="retrain each best recipe with compare.seeds; test it")
    n.add_argument("--dask", metavar="ADDRESS",
                   help="the Dask cluster (default: $DASK_SCHEDULER_ADDRESS; '' for DVC's queue here)")  # fmt: skip
    n.add_argument("--git-remote", default="origin", help="with --dask: the git remote the workers clone and push to")
    n.set_defaults(handler=tune)


def _add_ui(commands: argparse._SubParsersAction) -> None:
    u = commands.add_parser(
        "ui", help="the MLflow UI of the store the stages write to (MLFLOW_TRACKING_URI or mlflow.db)"
    )
    u.add_argument("--port", type=int, default=5000)
    u.add_argument("--experiment", default="vaebench")
    u.set_defaults(handler=ui)


def _add_team(commands: argparse._SubParsersAction) -> None:
    t = commands.add_parser(
        "team", help="PostgreSQL + MLflow with basic-auth + a WebDAV DVC remote + Dask over TLS, on 127.0.0.1"
    )
    t.add_argument(
        "action",
        choices=["up", "status", "env", "down", "purge"],
        help="up: start what is down, keep what is there; status: which part is up; down: stop, keep the data;"
        " purge: stop and delete it",
    )
    t.add_argument("--root", type=Path, default=Path(".team"), help="where its data, logs and passwords live")
    t.set_defaults(handler=team)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="vaebench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for add in (_add_generate, _add_study, _add_protocol, _add_queue, _add_tune, _add_ui, _add_team):
        add(commands)
    args = parser.parse_args(argv)
    args.handler(args, parser)


if __name__ == "__main__":
    main()
