"""Stage judge: train the MNIST classifier that scores the VAEs, once (cached by DVC)."""

import time
from pathlib import Path

from vaebench.data import mnist_tensors
from vaebench.io import atomic_path, write_json
from vaebench.judge import accuracy, judge_outputs, save_judge, train_judge
from vaebench.params import load_params
from vaebench.runtime import configure, resolve_device
from vaebench.stage import run_stage


def main() -> None:
    params = load_params()
    configure(params.judge.seed, params.train.threads)
    device = resolve_device(params.train.device)
    train_images, train_labels = (t.to(device) for t in mnist_tensors(Path("data/raw"), train=True))
    test_images, test_labels = mnist_tensors(Path("data/raw"), train=False)
    p = params.judge
    start = time.perf_counter()
    judge = train_judge(train_images, train_labels, epochs=p.epochs, batch_size=p.batch_size, lr=p.lr, seed=p.seed)
    seconds = time.perf_counter() - start
    test_accuracy = accuracy(judge_outputs(judge, test_images.to(device))[1], test_labels)
    with atomic_path("models/judge") as out:
        save_judge(judge, out)
    write_json("metrics/judge.json", {"test_accuracy": round(test_accuracy, 5), "train_seconds": round(seconds, 1)})
    print(f"judge: test accuracy {test_accuracy:.4f} after {p.epochs} epochs in {seconds:.0f}s")


if __name__ == "__main__":
    run_stage(main)
