"""Multiple-testing correction across metrics: a NaN-aware wrapper of statsmodels' ``multipletests``.

Examples
--------
>>> adjust_pvalues([0.01, 0.04, float("nan"), 0.03], method="holm").round(3).tolist()
[0.03, 0.06, nan, 0.06]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from multiscale.errors import StatsError

__all__ = ["CORRECTIONS", "adjust_pvalues"]

#: correction methods by the names statsmodels and R's ``p.adjust`` use
CORRECTIONS = {"holm": "holm", "bonferroni": "bonferroni", "fdr_bh": "fdr_bh", "bh": "fdr_bh", "BH": "fdr_bh",
               "fdr_by": "fdr_by", "by": "fdr_by", "hommel": "hommel", "none": "none"}


def adjust_pvalues(pvalues: Sequence[float] | np.ndarray, method: str = "holm") -> np.ndarray:
    """P-values adjusted for the number of finite ones (NaN, a test not computable, stays NaN).

    Parameters
    ----------
    pvalues : sequence of float
        One p-value per test (NaN for a test that could not be computed).
    method : str
        ``holm`` (default), ``bonferroni``, ``fdr_bh`` (Benjamini-Hochberg, also ``bh``), ``fdr_by``,
        ``hommel`` or ``none``; the same adjustments as R's ``p.adjust``.

    Returns
    -------
    numpy.ndarray
    """
    if method not in CORRECTIONS:
        raise StatsError(f"unknown correction {method!r}; use one of {sorted(set(CORRECTIONS))}")
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if not ok.any():
        return out
    if CORRECTIONS[method] == "none":
        out[ok] = p[ok]
        return out
    from statsmodels.stats.multitest import multipletests

    out[ok] = multipletests(p[ok], method=CORRECTIONS[method])[1]
    return out
