"""The statistics against scipy computed independently, and what a verdict may say."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from vaebench.comparison.stats import NO_DIFFERENCE, ONE_SEED, compare, summarize


def test_interval_is_students_t() -> None:
    values = [100.1, 100.9, 99.4, 100.6]
    s = summarize(values)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert (s.mean, s.std, s.n) == (pytest.approx(np.mean(values)), pytest.approx(np.std(values, ddof=1)), 4)
    assert (s.ci_low, s.ci_high) == (pytest.approx(low), pytest.approx(high))


def test_one_value_has_no_interval() -> None:
    s = summarize([3.0])
    assert s.mean == 3.0 and s.n == 1 and math.isnan(s.ci_low) and math.isnan(s.std)


def test_welch_difference_interval_and_p_match_scipy() -> None:
    a, b = [1.0, 1.2, 0.9, 1.1], [1.6, 1.9, 1.4]
    d = compare(a, b, ("a", "b"), better="lower")
    # Welch by hand: the difference's standard error and the Welch-Satterthwaite degrees of freedom
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    diff = np.mean(b) - np.mean(a)
    assert d.diff == pytest.approx(diff)
    assert (d.ci_low, d.ci_high) == (pytest.approx(diff - half), pytest.approx(diff + half))
    assert d.p_value == pytest.approx(2 * stats.t.sf(abs(diff) / math.sqrt(va + vb), df))
    assert d.verdict == "a"  # lower is better and a is lower


def test_verdict_direction_and_no_difference() -> None:
    assert compare([1, 2, 3], [11, 12, 13], ("a", "b"), better="higher").verdict == "b"
    assert compare([1, 2, 3], [1.5, 2.5, 3.5], ("a", "b"), better="higher").verdict == NO_DIFFERENCE
    assert compare([1, 2, 3], [11, 12, 13], ("a", "b"), better=None).verdict == ""
    assert compare([1.0], [2.0, 3.0], ("a", "b"), better="lower").verdict == ONE_SEED


def test_no_spread_at_all() -> None:
    assert compare([10, 10], [10, 10], ("a", "b"), better="higher").verdict == NO_DIFFERENCE
    assert compare([9, 9, 9], [10, 10, 10], ("a", "b"), better="higher").verdict == "b"
