"""The IWAE bound at k = 5000 over the whole test set, measured, not extrapolated.

For each trained model directory given (a train stage's output, e.g. models/vae/mlp-0), the
evaluate stage's own bound (`evaluate_model`'s batches of 500 images, importance samples decoded
`decodes_in_flight` at a time) over data/processed/test.pt, once per importance-sample seed: the
wall time of each, and the spread between the seeds (k = 5000 is meant to be precise: the
figures should agree within 0.1 nats). Prints a table and writes bench/iwae_full.json.

    python bench/iwae_full.py models/vae/mlp-0 models/vae/cnn-0 [--k 5000] [--seeds 0 1] [--binarized 0]

`--binarized SEED` scores the fixed binarization of the test set that the evaluate stage scores
under `data.binarize: true` with `data.seed: SEED` (the literature's protocol, `vaebench protocol`).

Needs data/processed and the models (`dvc repro`, or `dvc pull`). Run it alone: on 2 cores anything
beside it halves its speed.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from vaebench.core import paths
from vaebench.core.runtime import keep_freed_memory, seed_everything
from vaebench.data.splits import binarized, load_split
from vaebench.evaluation.evaluate import iwae_log_likelihood
from vaebench.models import load_model
from vaebench.speed import forms

BATCH = 500  # evaluate.batch_size's default


def nll_iwae(model: torch.nn.Module, images: torch.Tensor, k: int, seed: int) -> tuple[float, float]:
    """(−IWAE bound in nats per image, seconds) with the importance samples drawn from `seed`."""
    seed_everything(seed)
    start, total = time.perf_counter(), 0.0
    for x in images.split(BATCH):
        total -= iwae_log_likelihood(model, x, k, "bce", softplus=forms.softplus).sum().item()
    return total / len(images), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--k", type=int, default=5000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--binarized", type=int, metavar="SEED", help="score the test set binarized with this seed")
    parser.add_argument("--out", type=Path, default=Path("bench/iwae_full.json"))
    args = parser.parse_args()
    keep_freed_memory()  # as the evaluate stage does

    images, _ = load_split(paths.PROCESSED, "test")
    if args.binarized is not None:
        images = binarized(images, args.binarized)
    rows = []
    for directory in args.models:
        model = forms.accelerate(load_model(directory))  # as the evaluate stage runs it (runtime.fast)
        for seed in args.seeds:
            nll, seconds = nll_iwae(model, images, args.k, seed)
            rows.append({"model": str(directory), "k": args.k, "seed": seed, "nll_iwae": nll, "minutes": seconds / 60})
            print(f"{directory}: k = {args.k}, seed {seed}: {nll:.3f} nats in {seconds / 60:.1f} min", flush=True)
        spread = [r["nll_iwae"] for r in rows if r["model"] == str(directory)]
        print(f"{directory}: spread over seeds {max(spread) - min(spread):.3f} nats", flush=True)

    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    results = {"machine": machine, "torch": torch.__version__, "binarized_with_seed": args.binarized, "rows": rows}
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
