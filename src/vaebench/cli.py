"""`vaebench generate`: new digits from a trained model's decoder, z ~ N(mean, std^2 I)."""

from __future__ import annotations

import argparse
from pathlib import Path

from vaebench.models import REGISTRY, load_model
from vaebench.render import save_prior_samples


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="vaebench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    generate = commands.add_parser("generate", help="decode latent codes drawn from N(mean, std^2 I)")
    generate.add_argument("--arch", choices=sorted(REGISTRY), required=True)
    generate.add_argument("--models", type=Path, default=Path("models"), help="the train stages' output folder")
    generate.add_argument("--n", type=int, default=64, help="how many digits (a square grid when n is a square)")
    generate.add_argument("--mean", type=float, default=0.0)
    generate.add_argument("--std", type=float, default=1.0)
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--out", type=Path, default=Path("samples.png"))
    args = parser.parse_args(argv)

    if args.n < 1 or args.std < 0:
        parser.error("--n must be >= 1 and --std >= 0")
    model_dir = args.models / args.arch
    if not (model_dir / "weights.pt").exists():
        parser.error(f"no trained model in {model_dir}: run `dvc repro train@{args.arch}` first")
    model = load_model(model_dir)
    save_prior_samples(model, args.out, n=args.n, mean=args.mean, std=args.std, seed=args.seed)
    print(f"wrote {args.n} samples from {model_dir} to {args.out}")


if __name__ == "__main__":
    main()
