"""Stage judge: train the MNIST classifier that scores the VAEs, once, and its reference figures."""

import _venv  # noqa: F401  # isort: skip  (first: one line if vaebench is not installed)

import time

from vaebench.core import paths
from vaebench.core.io import atomic_path, write_json
from vaebench.core.params import load_params
from vaebench.core.runtime import configure
from vaebench.core.stage import run_stage
from vaebench.data.mnist import mnist_tensors
from vaebench.evaluation.judge import reference_metrics, save_judge, train_judge


def main() -> None:
    params = load_params()
    p = params.judge
    device = configure(params.runtime, p.seed)
    train_images, train_labels = (t.to(device) for t in mnist_tensors(paths.RAW, train=True))
    test_images, test_labels = (t.to(device) for t in mnist_tensors(paths.RAW, train=False))
    start = time.perf_counter()
    judge = train_judge(train_images, train_labels, epochs=p.epochs, batch_size=p.batch_size, lr=p.lr, seed=p.seed)
    seconds = time.perf_counter() - start
    reference = reference_metrics(judge, test_images, test_labels)
    with atomic_path(paths.JUDGE) as out:
        save_judge(judge, out)
    write_json(
        paths.JUDGE_METRICS, {k: round(v, 5) for k, v in reference.items()} | {"train_seconds": round(seconds, 1)}
    )
    print(f"judge: test accuracy {reference['test_accuracy']:.4f} after {p.epochs} epochs in {seconds:.0f}s")


if __name__ == "__main__":
    run_stage(main)
