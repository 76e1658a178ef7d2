"""Sample-quality figures: the Fréchet distance and the judge's class figures on known inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import linalg

from vaebench.evaluation.quality import class_metrics, frechet_distance


def test_frechet_distance_matches_the_sqrtm_formula() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3000, 8, generator=g, dtype=torch.float64)
    b = torch.randn(3000, 8, generator=g, dtype=torch.float64) @ torch.randn(8, 8, generator=g, dtype=torch.float64) + 2
    cov_a, cov_b = np.cov(a.numpy(), rowvar=False), np.cov(b.numpy(), rowvar=False)
    expected = ((a.mean(0) - b.mean(0)) ** 2).sum().item() + np.trace(
        cov_a + cov_b - 2 * linalg.sqrtm(cov_a @ cov_b).real
    )
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_is_near_zero_for_one_distribution_and_large_across() -> None:
    g = torch.Generator().manual_seed(1)
    same = frechet_distance(torch.randn(5000, 4, generator=g).double(), torch.randn(5000, 4, generator=g).double())
    shifted = frechet_distance(
        torch.randn(5000, 4, generator=g).double(), torch.randn(5000, 4, generator=g).double() + 3
    )
    assert same < 0.05
    assert shifted == pytest.approx(4 * 9, rel=0.05)  # ||mu shift||^2 = 4 dims x 3^2


def test_class_figures_of_confident_uniform_and_collapsed_judgements() -> None:
    uniform = torch.eye(10, dtype=torch.float64).repeat(100, 1)  # every digit, each judged with certainty
    figures = class_metrics(uniform)
    assert figures["digits_present"] == 10
    assert figures["class_entropy"] == pytest.approx(math.log(10))
    assert figures["inception_score"] == pytest.approx(10.0)
    collapsed = class_metrics(torch.eye(10, dtype=torch.float64)[[3] * 1000])  # one digit only
    assert collapsed["digits_present"] == 1
    assert collapsed["inception_score"] == pytest.approx(1.0)
