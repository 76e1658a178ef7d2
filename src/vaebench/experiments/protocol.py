"""The literature's likelihood protocol (Burda et al. 2016) as the overrides of one DVC experiment.

`vaebench protocol` is `dvc exp run -n protocol` with these params set on top of params.yaml;
`-S key=value` after it sets the rest (train.epochs, compare.seeds) or overrides the protocol's own
values for a quick run. Left as params.yaml has them: the learning rate at the start of the schedule
(1e-3, the paper's).
"""

from __future__ import annotations

from vaebench.core.errors import StageError

PROTOCOL = {
    "data.binarize": "true",  # Bernoulli-sampled pixels in every training batch, a fixed seeded test binarization
    "loss.recon": "bce",
    "loss.kl_weight": "1",  # the true ELBO
    "train.schedule": "burda",  # 3^i epochs at lr * 10^(-i/7)
    "train.batch_size": "20",  # the paper's; 6.4x the updates per epoch of params.yaml's 128
    "evaluate.iwae_k": "5000",
    "evaluate.test_subset": "0",  # all 10,000 test images
    "compare.archs": "[mlp,cnn,burda]",  # ours and the paper's 784-200-200-50
}


def overrides(extra: list[str]) -> list[str]:
    """`key=value` strings: the protocol's, then `extra`'s, a key given in both taking `extra`'s value."""
    merged = dict(PROTOCOL)
    for item in extra:
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise StageError(f"-S {item!r}: expected key=value, e.g. -S train.epochs=100")
        merged[key] = value
    return [f"{key}={value}" for key, value in merged.items()]


def exp_run_command(name: str, extra: list[str], queue: bool = False) -> list[str]:
    command = ["dvc", "exp", "run", "-n", name, *(["--queue"] if queue else [])]
    for override in overrides(extra):
        command += ["-S", override]
    return command
