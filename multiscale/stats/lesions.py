"""Lesion-level summaries: how many lesions take up the agent, how much of the tumour burden, two tracers' agreement.

Lesions are the regions of a label image (one region per label, ``<mask>#<label>`` in the results,
see :mod:`multiscale.stats.design`) or a list of region names. A lesion is *positive* when its
metric exceeds ``ratio`` x the reference region's value in the same map (e.g. the blood pool) or
a fixed ``threshold``. The tumour burden is the lesions' volume (the ``volume_ml`` rows of the
uptake analysis).

Examples
--------
>>> import pandas as pd
>>> rows = [{"subject": "p1", "analysis": "u", "map": "pet", "region": r, "metric": m, "value": v, "units": "1"}
...         for r, m, v in [("lesions#1", "suv_mean", 3.0), ("lesions#2", "suv_mean", 1.0), ("blood", "suv_mean", 2.0),
...                         ("lesions#1", "volume_ml", 1.0), ("lesions#2", "volume_ml", 3.0)]]
>>> s = lesion_summary(pd.DataFrame(rows), metric="suv_mean", lesions="lesions", reference="blood")
>>> row = s.iloc[0]
>>> int(row.n_lesions), float(row.fraction_positive), float(row.burden_fraction_positive)
(2, 0.5, 0.25)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from multiscale.errors import StatsError

from .design import metric_rows, read_results_table

__all__ = ["lesion_values", "lesion_summary", "lesion_concordance"]


def lesion_values(results: pd.DataFrame | str | Path, *, metric: str, lesions: str | Sequence[str],
                  map: str | None = None, analysis: str | None = None) -> pd.DataFrame:
    """One row per subject x map x lesion with the metric's ``value`` (and ``volume_ml`` when measured)."""
    rows = metric_rows(read_results_table(results))
    if analysis is not None:
        rows = rows[rows.analysis == analysis]
    if map is not None:
        rows = rows[rows["map"] == map]
    if isinstance(lesions, str):
        sel = (rows.region == lesions) & (rows.lesion != "")
        rows = rows[sel].assign(lesion_id=lambda t: t.lesion)
    else:
        rows = rows[rows.region.isin(list(lesions)) & (rows.lesion == "")].assign(lesion_id=lambda t: t.region)
    if rows.empty:
        raise StatsError(f"no lesion rows for {lesions!r}: give the label-image mask's name (regions "
                         "'<mask>#<label>') or a list of region names")
    vals = rows[rows.metric == metric]
    if vals.empty:
        raise StatsError(f"metric {metric!r} is not measured in the lesions; metrics are {sorted(rows.metric.unique())}")
    keys = ["subject", "analysis", "map", "lesion_id"]
    out = vals[keys + ["value", "units"]].copy()
    vol = rows[rows.metric == "volume_ml"][keys + ["value"]].rename(columns={"value": "volume_ml"})
    out = out.merge(vol, on=keys, how="left") if len(vol) else out.assign(volume_ml=np.nan)
    return out.reset_index(drop=True)


def _reference(results: pd.DataFrame, metric: str, reference: str, out: pd.DataFrame) -> pd.Series:
    rows = metric_rows(results)
    ref = rows[(rows.region == reference) & (rows.metric == metric) & (rows.lesion == "")]
    if ref.empty:
        raise StatsError(f"no {metric!r} rows in the reference region {reference!r}; regions are "
                         f"{sorted(rows.region.unique())}")
    level = ref.groupby(["subject", "analysis", "map"])["value"].first()
    return pd.Series([level.get((s, a, m), np.nan) for s, a, m in zip(out.subject, out.analysis, out["map"])],
                     index=out.index, dtype=float)


def lesion_summary(results: pd.DataFrame | str | Path, *, metric: str, lesions: str | Sequence[str],
                   reference: str | None = None, threshold: float | None = None, ratio: float = 1.0,
                   map: str | None = None, analysis: str | None = None) -> pd.DataFrame:
    """Per subject and map: the lesions above the reference, and the fraction of the burden (volume) they hold.

    Parameters
    ----------
    metric : str
        The lesion metric compared (``suv_mean``, ``suv_max``...).
    lesions : str or list of str
        The label-image mask's name, or the lesion regions' names.
    reference : str, optional
        Region whose value (same metric, same map) is the reference level (``blood``).
    threshold : float, optional
        A fixed level instead of a reference region.
    ratio : float
        A lesion is positive when its value > ratio x reference (or > threshold).

    Returns
    -------
    DataFrame
        ``subject, analysis, map, n_lesions, n_positive, fraction_positive, burden_ml, positive_ml,
        burden_fraction_positive, reference_value, criterion``.
    """
    table = read_results_table(results)
    if (reference is None) == (threshold is None):
        raise StatsError("give either reference= (a region, e.g. the blood pool) or threshold= (a value)")
    v = lesion_values(table, metric=metric, lesions=lesions, map=map, analysis=analysis)
    level = _reference(table, metric, reference, v) if reference is not None else pd.Series(float(threshold),
                                                                                              index=v.index)
    v["positive"] = v.value > ratio * level
    v["reference_value"] = level
    crit = (f"{metric} > {ratio:g} x {metric} of {reference}" if reference is not None else f"{metric} > {threshold:g}")
    rows = []
    for (s, a, m), d in v.groupby(["subject", "analysis", "map"], sort=False):
        vol = d.volume_ml.to_numpy(float)
        burden = float(np.nansum(vol)) if np.isfinite(vol).any() else np.nan
        pos = float(np.nansum(vol[d.positive.to_numpy()])) if np.isfinite(vol).any() else np.nan
        rows.append({"subject": s, "analysis": a, "map": m, "n_lesions": len(d), "n_positive": int(d.positive.sum()),
                     "fraction_positive": float(d.positive.mean()), "burden_ml": burden, "positive_ml": pos,
                     "burden_fraction_positive": pos / burden if burden and np.isfinite(burden) else np.nan,
                     "reference_value": float(d.reference_value.iloc[0]), "criterion": crit})
    return pd.DataFrame(rows)


def lesion_concordance(results: pd.DataFrame | str | Path, *, metric: str, map_a: str, map_b: str,
                       lesions: str | Sequence[str], reference: str | None = None, ratio: float = 1.0,
                       alpha: float = 0.05) -> dict[str, float | int | str]:
    """Per-lesion concordance of two tracers (maps): Spearman rho with CI, and positivity agreement (Cohen's kappa).

    Lesions of every subject are pooled (they are not independent within a subject: read the
    CI as descriptive). Positivity (needs ``reference``) uses :func:`lesion_summary`'s criterion in each map.

    Returns
    -------
    dict
        ``n_lesions, n_subjects, spearman, ci_low, ci_high, p_value, agreement, kappa, note``.
    """
    table = read_results_table(results)
    a = lesion_values(table, metric=metric, lesions=lesions, map=map_a)
    b = lesion_values(table, metric=metric, lesions=lesions, map=map_b)
    if reference is not None:
        a["ref"] = _reference(table, metric, reference, a)
        b["ref"] = _reference(table, metric, reference, b)
    m = a.merge(b, on=["subject", "lesion_id"], suffixes=("_a", "_b"))
    out: dict[str, float | int | str] = {"n_lesions": len(m), "n_subjects": int(m.subject.nunique()),
                                         "spearman": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan,
                                         "agreement": np.nan, "kappa": np.nan, "note": ""}
    if len(m) < 3:
        out["note"] = f"not computable: {len(m)} lesion(s) measured in both maps"
        return out
    res = sps.spearmanr(m.value_a, m.value_b)
    r = float(res.statistic)
    out.update(spearman=r, p_value=float(res.pvalue))
    if len(m) > 3 and abs(r) < 1:
        se = math.sqrt((1 + r * r / 2) / (len(m) - 3))
        z = sps.norm.ppf(1 - alpha / 2)
        out.update(ci_low=math.tanh(math.atanh(r) - z * se), ci_high=math.tanh(math.atanh(r) + z * se))
    if reference is not None:
        from statsmodels.stats.inter_rater import cohens_kappa

        pa = (m.value_a > ratio * m.ref_a).to_numpy()
        pb = (m.value_b > ratio * m.ref_b).to_numpy()
        out["agreement"] = float((pa == pb).mean())
        table2 = np.array([[np.sum(pa & pb), np.sum(pa & ~pb)], [np.sum(~pa & pb), np.sum(~pa & ~pb)]])
        out["kappa"] = float(cohens_kappa(table2).kappa) if len(set(pa) | set(pb)) > 1 else np.nan
    return out
