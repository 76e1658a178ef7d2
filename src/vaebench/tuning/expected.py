"""Expected best validation score against the tuning budget (Dodge et al. 2019, "Show Your Work:
Improved Reporting of Experimental Results", EMNLP, section 3; their code:
dodgejesse/show_your_work, expected_max_performance.py).

With N random-search trial scores sorted from worst to best, v(1), ..., v(N), the best of n trials
drawn with replacement is v(i) with probability (i/N)^n − ((i−1)/N)^n, so

    E[best of n] = Σ_i v(i) · [(i/N)^n − ((i−1)/N)^n],

and its variance is Σ_i v(i)² · p_i − E². At n = 1 it is the mean score; it reaches the best score
as n grows. The trials must be i.i.d. (random search, each trial its own seed): a TPE study's
trials are not, and its curve is not drawn. Nothing is extrapolated past N.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def expected_best(scores: list[float], lower_is_better: bool = True) -> pd.DataFrame:
    """One row per budget n = 1..N: the expected best score of n trials and its standard deviation."""
    values = np.sort(np.asarray(scores, dtype=float))
    if lower_is_better:
        values = values[::-1]  # from worst to best
    n_trials = len(values)
    if n_trials == 0:
        return pd.DataFrame(columns=["n", "expected", "std"])
    i = np.arange(1, n_trials + 1)
    rows = []
    for n in range(1, n_trials + 1):
        p = (i / n_trials) ** n - ((i - 1) / n_trials) ** n
        mean = float(np.sum(values * p))
        variance = max(float(np.sum(values**2 * p)) - mean**2, 0.0)
        rows.append({"n": n, "expected": mean, "std": variance**0.5})
    return pd.DataFrame(rows)
