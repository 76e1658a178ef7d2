"""Across seeds: mean, spread and 95 % interval per figure, and Welch's t-test between architectures.

scipy does the statistics (Student's t quantiles, `ttest_ind(equal_var=False)` and its interval
for the difference); this module only decides what a verdict may say: a winner where the test
rejects "no difference" at ALPHA, "no clear difference" where it does not, and nothing with one seed.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from scipy import stats

ALPHA = 0.05
NO_DIFFERENCE = "no clear difference"
ONE_SEED = "one seed: no verdict possible"
Better = Literal["lower", "higher"] | None


@dataclass(frozen=True)
class Summary:
    """One figure of one architecture over its seeds; the interval is Student's t at 95 %."""

    mean: float
    std: float
    n: int
    ci_low: float
    ci_high: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Difference:
    """b - a with Welch's 95 % interval and two-sided p-value; `verdict` names the better one."""

    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    verdict: str

    def as_dict(self) -> dict[str, float | str]:
        return asdict(self)


def summarize(values: list[float]) -> Summary:
    x = np.asarray(values, dtype=float)
    n, mean = len(x), float(x.mean())
    if n < 2:
        return Summary(mean, math.nan, n, math.nan, math.nan)
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(1 - ALPHA / 2, n - 1)) * std / math.sqrt(n)
    return Summary(mean, std, n, mean - half, mean + half)


def compare(a: list[float], b: list[float], names: tuple[str, str], better: Better) -> Difference:
    """Welch's t-test of b against a. Figures without a better direction get no verdict."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = float(y.mean() - x.mean())
    if min(len(x), len(y)) < 2:
        return Difference(diff, math.nan, math.nan, math.nan, ONE_SEED)
    if x.std() == 0 and y.std() == 0:  # no spread at all (a count, say): equal or different every time
        p = 1.0 if diff == 0 else 0.0
        low = high = diff
    else:
        with warnings.catch_warnings():  # one group without spread: Welch is still defined
            warnings.simplefilter("ignore", RuntimeWarning)
            result = stats.ttest_ind(y, x, equal_var=False)
        interval = result.confidence_interval(1 - ALPHA)
        p, low, high = float(result.pvalue), float(interval.low), float(interval.high)
    if better is None:
        verdict = ""
    elif p >= ALPHA:
        verdict = NO_DIFFERENCE
    else:
        b_better = (diff < 0) == (better == "lower")
        verdict = names[1] if b_better else names[0]
    return Difference(diff, low, high, p, verdict)
