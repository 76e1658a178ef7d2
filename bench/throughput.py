"""Training throughput, side by side: the original recipe's DataLoader loop, the project's trainer, the limit.

For each architecture and batch size, in one process on one machine, images per second of:
  1. original: the original recipe's model as written (the specification, `vaebench.models`) fed by
     torchvision MNIST with ToTensor + Normalize through a shuffled DataLoader, as the original recipe's loop does;
  2. trainer:  vaebench.training.fit's epoch loop on device tensors and the model's speed forms
     (`vaebench.speed.forms`, runtime.fast), as the pipeline runs it;
  3. limit:    forward + backward + Adam step of the speed forms on batches already in memory, nothing else;
and the trainer with `train.compile: true` (torch.compile), its compile time measured apart.
Then the IWAE bound's decodes per second as the evaluate stage runs it (batches of 500 test
images, importance samples decoded in chunks of `decodes_in_flight`), against one chunk size of
32,768, and the minutes that makes for k = 5000 over the 10,000 test images.
Also the wall time of a no-op `dvc repro` and of each stage's start-up (its imports).
Prints a table and writes the same figures to JSON. Run: `make bench` (needs data/raw, i.e. the
download stage, or MNIST_MIRROR).

    python bench/throughput.py [--images 4800] [--repeats 3] [--out bench/results.json]

Each figure is the best of --repeats interleaved measurements: on a shared CPU single runs drift
by 10-20 %, which is more than the differences measured here.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml
from torch.utils.data import DataLoader
from torchvision import transforms
from torchvision.datasets import MNIST

from vaebench.core.environment import mnist_mirror, resolve_device
from vaebench.core.params import Recipe, load_params
from vaebench.core.runtime import keep_freed_memory
from vaebench.data.mnist import download
from vaebench.evaluation.evaluate import decodes_in_flight, iwae_log_likelihood
from vaebench.models import build_model
from vaebench.speed import forms
from vaebench.training.fit import adam, train_epoch
from vaebench.training.loss import vae_loss

STAGES = tuple(yaml.safe_load(Path("dvc.yaml").read_text())["stages"])  # each runs stages/<name>.py


def original_loop(arch: str, raw: Path, batch: int, images: int, device: torch.device) -> float:
    """The original recipe's way: its model, per-item PIL -> ToTensor -> Normalize, DataLoader, MSE + 0.0002 KL."""
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    loader = DataLoader(MNIST(raw, train=True, transform=tf), batch_size=batch, shuffle=True)
    model = build_model(arch).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    seen, start = 0, time.perf_counter()
    for x, _ in loader:
        x = x.to(device)
        logits, mu, logvar = model(x)
        loss = vae_loss(logits, x, mu, logvar, "mse", 0.0002).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        seen += len(x)
        if seen >= images:
            break
    _sync(device)
    return seen / (time.perf_counter() - start)


def fast_model(arch: str, device: torch.device) -> torch.nn.Module:
    """The architecture in its speed forms, as training and evaluation run it (runtime.fast)."""
    return forms.accelerate(build_model(arch).to(device))


def bench_recipe(batch: int) -> Recipe:
    """params.yaml's recipe at this batch size, one epoch, BCE and beta = 1, in the speed forms."""
    params = load_params()
    train = params.train.model_copy(update={"epochs": 1, "batch_size": batch, "lr": 1e-3, "compile": False})
    loss = params.loss.model_copy(update={"recon": "bce", "kl_weight": 1.0})
    return Recipe(train=train, loss=loss, binarize=False, fast=True, seed=0)


class Trainer:
    """vaebench.training.fit's epoch loop on one model, as the pipeline runs it; `compile` as train.compile."""

    def __init__(self, arch: str, batch: int, device: torch.device, compile: bool = False) -> None:
        self.model = fast_model(arch, device)
        self.forward = torch.compile(self.model) if compile else self.model
        self.optimizer = adam(self.model, lr=1e-3)
        self.generator = torch.Generator().manual_seed(0)
        self.batch, self.device = batch, device

    def images_per_second(self, data: torch.Tensor) -> float:
        start = time.perf_counter()
        train_epoch(self.model, self.optimizer, data, bench_recipe(self.batch), self.generator, 1, self.forward)
        _sync(self.device)
        return len(data) / (time.perf_counter() - start)


def trainer(arch: str, data: torch.Tensor, batch: int, device: torch.device) -> float:
    """A fresh model's first epoch: what the pipeline's trainer delivers from the start."""
    return Trainer(arch, batch, device).images_per_second(data)


def limit(arch: str, data: torch.Tensor, batch: int, device: torch.device) -> float:
    """Forward, backward and step over contiguous batches already in memory: no gather, no shuffle.

    Not one repeated batch: a model overfitting a single batch drifts into denormal values, which
    the CPU handles far slower, and the "limit" would come out below the trainer.
    """
    model = fast_model(arch, device).train()
    optimizer = adam(model, lr=1e-3)
    batches = data.split(batch)
    start = time.perf_counter()
    for x in batches:
        logits, mu, logvar = model(x)
        loss = vae_loss(logits, x, mu, logvar, "bce", 1.0, forms.softplus).loss / len(x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    _sync(device)
    return len(data) / (time.perf_counter() - start)


def iwae_decodes_per_second(arch: str, data: torch.Tensor, in_flight: int, k: int = 200) -> float:
    """Importance samples decoded and scored per second by the evaluate stage's IWAE bound."""
    model = fast_model(arch, data.device).eval()
    images = data[:500]  # evaluate.batch_size's default
    start = time.perf_counter()
    iwae_log_likelihood(model, images, k, "bce", chunk=max(1, in_flight // len(images)), softplus=forms.softplus)
    _sync(data.device)
    return len(images) * k / (time.perf_counter() - start)


def iwae_rows(data: torch.Tensor, repeats: int) -> list[dict[str, float | str]]:
    """Decodes/s at the stage's chunk size and at 32,768; minutes for k = 5000 on 10,000 images."""
    rows = []
    for arch in ("mlp", "cnn"):
        sizes = {"stage": decodes_in_flight(data.device), "32768": 32_768}
        best = {name: 0.0 for name in sizes}
        for _ in range(repeats):
            for name, in_flight in sizes.items():
                best[name] = max(best[name], iwae_decodes_per_second(arch, data, in_flight))
        row = {"arch": arch, "decodes_in_flight": sizes["stage"], "decodes_per_s": best["stage"]}
        row |= {"decodes_per_s_at_32768": best["32768"], "k5000_full_test_min": 10_000 * 5000 / best["stage"] / 60}
        print(
            f"{arch:4s} IWAE: {row['decodes_per_s']:8.0f} decodes/s in chunks of {sizes['stage']}"
            f" ({row['decodes_per_s_at_32768']:.0f} at 32768): k = 5000 on 10,000 images"
            f" = {row['k5000_full_test_min']:.1f} min",
            flush=True,
        )
        rows.append(row)
    return rows


def flops_per_image(arch: str, batch: int, device: torch.device) -> float:
    """Forward + backward FLOPs of one training image, counted by torch's FlopCounterMode
    (matrix products and convolutions; the elementwise ops and Adam's update are not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model(arch).to(device).train()
    x = torch.rand(batch, 1, 28, 28, device=device)
    with FlopCounterMode(display=False) as counter:
        logits, mu, logvar = model(x)
        vae_loss(logits, x, mu, logvar, "bce", 1.0).loss.backward()
    return counter.get_total_flops() / batch


def cpu_peak_gflops() -> tuple[float, str]:
    """fp32 peak of this CPU: cores x clock x FLOPs per cycle, from /proc/cpuinfo.

    With AVX2 and FMA, a core retires two 256-bit FMAs per cycle: 2 x 8 lanes x 2 = 32 FLOPs
    (AVX-512: 64). The clock is the nominal `cpu MHz`; turbo can exceed it, so the share is an
    estimate. One thread per core assumed, as torch uses here.
    """
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    mhz = max((float(line.split(":")[1]) for line in info.splitlines() if line.startswith("cpu MHz")), default=0.0)
    flags = next((line.split(":")[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    per_cycle = 64 if "avx512f" in flags else 32 if {"avx2", "fma"} <= set(flags) else 16
    cores = torch.get_num_threads()
    peak = cores * mhz * 1e6 * per_cycle / 1e9
    return peak, f"{cores} cores x {mhz:.0f} MHz x {per_cycle} FLOP/cycle (fp32 FMA)"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def wall(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def stage_startup(stage: str) -> float:
    """Seconds to start Python and import a stage script (run_path without __main__ runs no work)."""
    return wall(
        [sys.executable, "-c", f"import runpy, sys; sys.path.insert(0, 'stages'); runpy.run_path('stages/{stage}.py')"]
    )


def measure(arch: str, batch: int, data: torch.Tensor, raw: Path, repeats: int) -> dict:
    """One row of the table: images per second of the original loop, the trainer, the compiled
    trainer and the limit, the best of `repeats` interleaved measurements each (a shared CPU's
    speed drifts), and what they make of the arithmetic."""
    device = data.device
    limit(arch, data[: batch * 20], batch, device)  # warm-up: allocator, kernels, thread pool
    compiled = Trainer(arch, batch, device, compile=True)
    first_compiled_epoch_s = len(data) / compiled.images_per_second(data)  # compiles every batch shape
    best = {"original": 0.0, "trainer": 0.0, "compiled": 0.0, "limit": 0.0}
    for _ in range(repeats):
        best["original"] = max(best["original"], original_loop(arch, raw, batch, len(data), device))
        best["trainer"] = max(best["trainer"], trainer(arch, data, batch, device))
        best["compiled"] = max(best["compiled"], compiled.images_per_second(data))
        best["limit"] = max(best["limit"], limit(arch, data, batch, device))
    # compile time: the first compiled epoch less a steady one
    compile_s = first_compiled_epoch_s - len(data) / best["compiled"]
    row = {"arch": arch, "batch": batch, **best, "compile_s": compile_s}
    row["mflop_per_image"] = flops_per_image(arch, batch, device) / 1e6
    row["trainer_gflops"] = row["trainer"] * row["mflop_per_image"] / 1e3
    row["limit_gflops"] = row["limit"] * row["mflop_per_image"] / 1e3
    row["trainer/original"] = row["trainer"] / row["original"]
    row["trainer/limit"] = row["trainer"] / row["limit"]
    row["compiled/trainer"] = row["compiled"] / row["trainer"]
    print(
        f"{arch:4s} batch {batch:4d}: original {row['original']:8.0f}  trainer {row['trainer']:8.0f}"
        f"  compiled {row['compiled']:8.0f} (+{row['compile_s']:.0f}s to compile)  limit {row['limit']:8.0f}"
        f" img/s   trainer/original {row['trainer/original']:5.2f}  trainer/limit {row['trainer/limit']:4.2f}",
        flush=True,
    )
    return row


def print_table(results: dict) -> None:
    """The throughput rows as docs/performance.md's table, then the start-up figures."""
    print(f"\nmachine: {results['machine']}, torch {results['torch']}")
    print(f"peak: {results['peak_gflops']:.0f} GFLOP/s = {results['peak_how']}")
    print(
        "| arch | batch | original img/s | trainer img/s | limit img/s | trainer/original | trainer/limit"
        " | compiled img/s | compiled/trainer | compile s | MFLOP/img | trainer GFLOP/s | of peak |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results["throughput"]:
        print(
            f"| {r['arch']} | {r['batch']} | {r['original']:.0f} | {r['trainer']:.0f} | {r['limit']:.0f}"
            f" | {r['trainer/original']:.2f} | {r['trainer/limit']:.2f} | {r['compiled']:.0f}"
            f" | {r['compiled/trainer']:.2f} | {r['compile_s']:.0f} | {r['mflop_per_image']:.2f}"
            f" | {r['trainer_gflops']:.1f} | {r['trainer_share_of_peak']:.1%} |"
        )
    print("stage start-up (s): " + ", ".join(f"{s} {t:.2f}" for s, t in results["stage_startup_s"].items()))
    noop = results["noop_dvc_repro_s"]
    print(f"no-op dvc repro: {noop:.2f} s" if noop is not None else "no-op dvc repro: skipped (no dvc.lock)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=4800, help="training images per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements of each kind; the best is kept")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=Path("bench/results.json"))
    args = parser.parse_args()
    device = resolve_device(args.device)
    keep_freed_memory()  # as every computing stage does (vaebench.core.runtime.configure)
    raw = Path("data/raw")  # the download stage's output, if the pipeline ran here
    if not (raw / "MNIST" / "raw").is_dir():
        raw = Path(tempfile.mkdtemp(prefix="vaebench-bench-")) / "raw"
        download(raw, mnist_mirror())
    torch.manual_seed(0)
    data = torch.rand(args.images, 1, 28, 28, device=device)

    rows = [measure(arch, batch, data, raw, args.repeats) for arch in ("mlp", "cnn") for batch in (32, 128)]
    iwae = iwae_rows(data, args.repeats)
    startup = {stage: stage_startup(stage) for stage in STAGES}
    noop = wall(["dvc", "repro"]) if Path("dvc.lock").exists() else None
    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, {device}"
    if device.type == "cuda":
        machine += f" ({torch.cuda.get_device_name()})"
    peak, peak_how = cpu_peak_gflops() if device.type == "cpu" else (float("nan"), "not computed for accelerators")
    for r in rows:
        r["trainer_share_of_peak"] = r["trainer_gflops"] / peak
    results = {"machine": machine, "torch": torch.__version__, "repeats": args.repeats, "images": args.images}
    results |= {"peak_gflops": peak, "peak_how": peak_how}
    results |= {"throughput": rows, "iwae": iwae, "stage_startup_s": startup}
    results["noop_dvc_repro_s"] = noop

    print_table(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
