"""Group comparisons of every metric: Welch t / Mann-Whitney for two groups, ANOVA / Kruskal-Wallis with
post-hoc tests for more, effect sizes with confidence intervals, corrected across metrics.

A thin layer over scipy and statsmodels: Welch's t (``scipy.stats.ttest_ind(equal_var=False)``,
Welch-Satterthwaite df, the CI of the difference of means), Mann-Whitney U
(``scipy.stats.mannwhitneyu``, two-sided, exact for small samples without ties), one-way ANOVA
(``scipy.stats.f_oneway``) followed by Tukey's HSD (``statsmodels ... pairwise_tukeyhsd``),
Kruskal-Wallis (``scipy.stats.kruskal``) followed by pairwise Mann-Whitney tests Holm-corrected
within the metric, and Hedges' g (bias-corrected standardised mean difference,
``statsmodels.stats.meta_analysis.effectsize_smd``) with its normal-approximation CI.

The experimental unit is the subject: lesion rows of one subject are averaged first
(:func:`multiscale.stats.design.subject_table`). A comparison that cannot be computed (a group with
fewer than two subjects, no variance) is a row with ``computable`` False and a ``note`` saying why,
never an exception.

Examples
--------
>>> import pandas as pd
>>> wide = pd.DataFrame({"subject": list("abcdef"), "group": ["c"] * 3 + ["t"] * 3,
...                      "uptake": [1.0, 1.2, 0.9, 2.0, 2.2, 1.9]})
>>> res = compare_groups(wide, by="group")
>>> r = res.iloc[0]
>>> r.comparison, round(float(r.difference), 3), r.test
('t - c', 1.0, 'Welch t')
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from multiscale.errors import StatsError

from .design import subject_table
from .multiple import adjust_pvalues

__all__ = ["COLUMNS", "TESTS", "compare_groups", "welch_t", "hedges_g", "group_summary"]

#: the columns of :func:`compare_groups`' table
COLUMNS = (
    "label", "analysis", "map", "region", "metric", "units", "by", "comparison", "group_a", "group_b", "n_a", "n_b",
    "mean_a", "mean_b", "sd_a", "sd_b", "difference", "difference_ci_low", "difference_ci_high", "hedges_g",
    "hedges_g_ci_low", "hedges_g_ci_high", "test", "statistic", "df", "p_value", "p_adjusted", "correction",
    "computable", "note",
)
#: the tests :func:`compare_groups` runs, by name: two-group tests, and their k-group counterparts
TESTS = {"welch": ("Welch t", "ANOVA"), "mannwhitney": ("Mann-Whitney U", "Kruskal-Wallis")}


def welch_t(a: Sequence[float], b: Sequence[float], alpha: float = 0.05) -> dict[str, float]:
    """Welch's two-sample t test of ``b - a``: t, df, two-sided p and the CI of the difference of means.

    Examples
    --------
    >>> r = welch_t([1.0, 2.0, 3.0], [2.0, 3.0, 5.0])
    >>> round(r["difference"], 4), round(r["df"], 3)
    (1.3333, 3.448)
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    res = sps.ttest_ind(b, a, equal_var=False)
    ci = res.confidence_interval(confidence_level=1 - alpha)
    return {"difference": float(b.mean() - a.mean()), "statistic": float(res.statistic), "df": float(res.df),
            "p_value": float(res.pvalue), "ci_low": float(ci.low), "ci_high": float(ci.high)}


def hedges_g(a: Sequence[float], b: Sequence[float], alpha: float = 0.05) -> tuple[float, float, float]:
    """Hedges' g of ``b - a`` (bias-corrected, pooled SD) with its normal-approximation CI.

    Examples
    --------
    >>> g, lo, hi = hedges_g([1.0, 2.0, 3.0], [2.0, 3.0, 4.0])
    >>> round(g, 4)
    0.8
    """
    from statsmodels.stats.meta_analysis import effectsize_smd

    a, b = np.asarray(a, float), np.asarray(b, float)
    g, var = effectsize_smd(b.mean(), b.std(ddof=1), len(b), a.mean(), a.std(ddof=1), len(a))
    g, var = float(g), float(var)
    z = sps.norm.ppf(1 - alpha / 2)
    half = z * math.sqrt(var) if np.isfinite(var) and var >= 0 else np.nan
    return g, g - half, g + half


def group_summary(wide: pd.DataFrame, by: str, column: str) -> pd.DataFrame:
    """n, mean, SD, median per group of one metric column (subjects with a value)."""
    d = wide[[by, column]].dropna()
    return d.groupby(by, sort=True)[column].agg(["count", "mean", "std", "median"]).rename(
        columns={"count": "n", "std": "sd"})


def _row(info: pd.Series, by: str, **values: Any) -> dict[str, Any]:
    row = {k: info.get(k, "") for k in ("label", "analysis", "map", "region", "metric", "units")}
    row["by"] = by
    row.update(values)
    return row


def _two_groups(info: pd.Series, by: str, name_a: str, a: np.ndarray, name_b: str, b: np.ndarray, test: str,
                alpha: float, comparison: str | None = None) -> dict[str, Any]:
    base = dict(comparison=comparison or f"{name_b} - {name_a}", group_a=name_a, group_b=name_b, n_a=len(a),
                n_b=len(b), mean_a=float(a.mean()) if len(a) else np.nan, mean_b=float(b.mean()) if len(b) else np.nan,
                sd_a=float(a.std(ddof=1)) if len(a) > 1 else np.nan, sd_b=float(b.std(ddof=1)) if len(b) > 1 else np.nan,
                test=TESTS[test][0])
    small = [f"{n!r} has {len(x)} subject{'s' if len(x) != 1 else ''}" for n, x in ((name_a, a), (name_b, b))
             if len(x) < 2]
    if small:
        return _row(info, by, **base, computable=False,
                    note=f"not computable: group {' and '.join(small)}; a two-group test needs at least 2 per group")
    if np.ptp(np.concatenate([a, b])) == 0:
        return _row(info, by, **base, difference=0.0, computable=False,
                    note="not computable: every subject has the same value")
    w = welch_t(a, b, alpha)
    g, g_lo, g_hi = hedges_g(a, b, alpha)
    out = dict(base, difference=w["difference"], difference_ci_low=w["ci_low"], difference_ci_high=w["ci_high"],
               hedges_g=g, hedges_g_ci_low=g_lo, hedges_g_ci_high=g_hi, computable=True, note="")
    if test == "welch":
        out.update(statistic=w["statistic"], df=w["df"], p_value=w["p_value"])
        if a.std() == 0 and b.std() == 0:
            out.update(computable=False, statistic=np.nan, p_value=np.nan,
                       note="not computable: no variance within either group")
    else:
        res = sps.mannwhitneyu(b, a, alternative="two-sided")
        out.update(statistic=float(res.statistic), df=np.nan, p_value=float(res.pvalue))
    return _row(info, by, **out)


def _k_groups(info: pd.Series, by: str, groups: dict[str, np.ndarray], test: str, alpha: float) -> list[dict]:
    names = list(groups)
    omni = dict(comparison="all groups", group_a=", ".join(names), group_b="", n_a=sum(len(v) for v in groups.values()),
                test=TESTS[test][1])
    small = [n for n in names if len(groups[n]) < 2]
    if small:
        return [_row(info, by, **omni, computable=False,
                     note=f"not computable: group(s) {small} have fewer than 2 subjects")]
    if np.ptp(np.concatenate(list(groups.values()))) == 0:
        return [_row(info, by, **omni, computable=False, note="not computable: every subject has the same value")]
    rows = []
    if test == "welch":
        res = sps.f_oneway(*groups.values())
        n = sum(len(v) for v in groups.values())
        rows.append(_row(info, by, **omni, statistic=float(res.statistic), df=float(len(names) - 1),
                         p_value=float(res.pvalue), computable=True,
                         note=f"one-way ANOVA, F({len(names) - 1}, {n - len(names)}); post-hoc: Tukey HSD"))
        from statsmodels.stats.multicomp import pairwise_tukeyhsd

        values = np.concatenate(list(groups.values()))
        labels = np.concatenate([[n] * len(v) for n, v in groups.items()])
        tk = pairwise_tukeyhsd(values, labels, alpha=alpha)
        tab = pd.DataFrame(tk.summary().data[1:], columns=tk.summary().data[0])
        for _, t in tab.iterrows():
            ga, gb = str(t["group1"]), str(t["group2"])
            r = _two_groups(info, by, ga, groups[ga], gb, groups[gb], "welch", alpha)
            r.update(test="Tukey HSD", statistic=np.nan, df=np.nan, difference=float(t["meandiff"]),
                     difference_ci_low=float(t["lower"]), difference_ci_high=float(t["upper"]),
                     p_value=float(t["p-adj"]), p_adjusted=float(t["p-adj"]), correction="Tukey HSD",
                     note="post-hoc; p adjusted for the pairs of this metric (Tukey HSD)")
            rows.append(r)
    else:
        res = sps.kruskal(*groups.values())
        rows.append(_row(info, by, **omni, statistic=float(res.statistic), df=float(len(names) - 1),
                         p_value=float(res.pvalue), computable=True,
                         note="Kruskal-Wallis H; post-hoc: pairwise Mann-Whitney U, Holm-corrected within the metric"))
        pairs = [_two_groups(info, by, ga, groups[ga], gb, groups[gb], "mannwhitney", alpha)
                 for i, ga in enumerate(names) for gb in names[i + 1:]]
        for r, p in zip(pairs, adjust_pvalues([r.get("p_value", np.nan) for r in pairs], "holm")):
            r.update(p_adjusted=p, correction="holm (post-hoc)", note="post-hoc; p Holm-adjusted for the pairs "
                     "of this metric")
        rows += pairs
    return rows


def compare_groups(results: pd.DataFrame | str | Path, *, by: str, metrics: Sequence[str] | str | None = None,
                   design: Any = None, test: str = "welch", correction: str = "holm", alpha: float = 0.05,
                   order: Sequence[str] | None = None) -> pd.DataFrame:
    """Compare every metric between the groups of covariate ``by``; one tidy row per metric and comparison.

    Parameters
    ----------
    results : DataFrame or path
        The tidy results table of a study run (or its output folder), or a wide table with a
        ``subject`` column, the ``by`` column and numeric metric columns.
    by : str
        The design column that names each subject's group (``group``, ``formulation``, ``dose``...).
    metrics : list of str, optional
        Only these metrics (names such as ``rim_core_ratio``, or full labels); all scalar metrics by default.
    design : DataFrame, mapping or CSV path, optional
        One row per subject with ``by`` (and other covariates); needed when ``results`` is the tidy
        table (the study's design: :func:`multiscale.pipeline.cohort.study_design`).
    test : {"welch", "mannwhitney"}
        Two groups: Welch's t or Mann-Whitney U. More groups: one-way ANOVA with Tukey's HSD, or
        Kruskal-Wallis with Holm-corrected pairwise Mann-Whitney tests.
    correction : str
        Correction of the two-group / omnibus p-values across metrics (:func:`adjust_pvalues`):
        ``holm`` (default), ``fdr_bh``, ``bonferroni``, ``none``...
    alpha : float
        1 - the confidence level of the intervals.
    order : list of str, optional
        The groups in order; the first is the reference (``difference`` = other - reference).
        Sorted by name when not given.

    Returns
    -------
    DataFrame
        :data:`COLUMNS`: per metric the groups' n, mean and SD, the difference of means with its CI,
        Hedges' g with its CI, the test, its statistic, df and p-value, the corrected p-value,
        ``computable`` and a ``note`` (why a test could not be computed).
    """
    if test not in TESTS:
        raise StatsError(f"unknown test {test!r}; use one of {sorted(TESTS)}")
    if not 0 < alpha < 1:
        raise StatsError(f"alpha must be between 0 and 1, got {alpha}")
    wide, info = subject_table(results, design, metrics=metrics)
    if by not in wide.columns:
        raise StatsError(f"no covariate {by!r} to group by; covariates are "
                         f"{[c for c in wide.columns if c not in set(info.label)]} (give the study design: "
                         "covariates per subject, or design=)")
    groups_all = wide[by].dropna()
    names = [str(g) for g in (order or sorted(groups_all.astype(str).unique()))]
    unknown = sorted(set(groups_all.astype(str)) - set(names))
    if unknown:
        raise StatsError(f"order {list(names)} lacks group(s) {unknown} of {by!r}")
    if len(names) < 2:
        raise StatsError(f"{by!r} has one group ({names}); a comparison needs two or more groups")
    rows: list[dict[str, Any]] = []
    for _, m in info.iterrows():
        col = m["label"]
        d = wide[[by, col]].dropna()
        vals = {n: d.loc[d[by].astype(str) == n, col].to_numpy(float) for n in names}
        if len(names) == 2:
            rows.append(_two_groups(m, by, names[0], vals[names[0]], names[1], vals[names[1]], test, alpha))
        else:
            rows += _k_groups(m, by, vals, test, alpha)
    out = pd.DataFrame(rows)
    for c in COLUMNS:
        if c not in out.columns:
            out[c] = np.nan if c not in ("note", "correction") else ""
    main = out["comparison"].eq("all groups") if len(names) > 2 else pd.Series(True, index=out.index)
    out.loc[main, "p_adjusted"] = adjust_pvalues(out.loc[main, "p_value"].to_numpy(float), correction)
    out.loc[main, "correction"] = f"{correction} across {int(np.isfinite(out.loc[main, 'p_value'].astype(float)).sum())} metrics"
    out["computable"] = out["computable"].astype(bool)
    out["note"] = out["note"].fillna("")
    return out[list(COLUMNS)]
