"""Metrics against outcome: correlation with CI, Kaplan-Meier by a metric split, log-rank and Cox regression.

Thin wrappers: Pearson r with the Fisher-z CI (``scipy.stats.pearsonr``), Spearman rho with the
Fisher-z CI using the Bonett-Wright standard error sqrt((1 + rho^2/2) / (n - 3)), Kaplan-Meier curves
and the log-rank test from lifelines (``KaplanMeierFitter``, ``multivariate_logrank_test``), and
Cox proportional hazards from lifelines' ``CoxPHFitter`` (Efron ties, as R's ``survival::coxph``).
Covariates of a Cox model may be design columns (categorical ones are dummy-coded against their
first level) or metrics of the results (one value per subject).

Examples
--------
>>> import pandas as pd
>>> wide = pd.DataFrame({"subject": list("abcde"), "uptake": [1.0, 2.0, 3.0, 4.0, 5.0],
...                      "response": [0.1, 0.3, 0.2, 0.5, 0.6]})
>>> r = correlate(wide, outcome="response", metrics=["uptake"])
>>> round(float(r.r.iloc[0]), 3), r.method.iloc[0]
(0.915, 'Pearson')
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

from .design import safe_column, subject_table
from .multiple import adjust_pvalues

__all__ = ["correlate", "kaplan_meier", "logrank", "cox", "survival_table"]


def _numeric(wide: pd.DataFrame, column: str, what: str) -> pd.Series:
    if column not in wide.columns:
        raise StatsError(f"no {what} {column!r}; columns are {list(wide.columns)[:40]} (outcomes come from the "
                         "study design: per-subject outcomes, or design=)")
    values = pd.to_numeric(wide[column], errors="coerce")
    bad = wide.index[values.isna() & wide[column].notna()].tolist()
    if bad:
        raise StatsError(f"{what} {column!r} is not a number for subject(s) {bad} "
                         f"({wide.loc[bad[0], column]!r}); give numbers (events as 0/1 or true/false)")
    return values.astype(float)


def correlate(results: pd.DataFrame | str | Path, *, outcome: str, metrics: Sequence[str] | str | None = None,
              design: Any = None, method: str = "pearson", alpha: float = 0.05,
              correction: str = "holm") -> pd.DataFrame:
    """Correlation of every metric with an outcome across subjects, with CI and p-values corrected across metrics.

    Parameters
    ----------
    results, design, metrics
        As in :func:`multiscale.stats.compare_groups`.
    outcome : str
        A numeric design column (response, tumour growth, survival time...).
    method : {"pearson", "spearman"}
    alpha : float
        1 - the confidence level.
    correction : str
        Across metrics (:func:`multiscale.stats.adjust_pvalues`).

    Returns
    -------
    DataFrame
        ``label, analysis, map, region, metric, units, outcome, method, n, r, ci_low, ci_high, p_value,
        p_adjusted, correction, computable, note``.
    """
    if method not in ("pearson", "spearman"):
        raise StatsError(f"unknown method {method!r}; use 'pearson' or 'spearman'")
    wide, info = subject_table(results, design, metrics=metrics)
    info = info[info.label != outcome]
    y_all = _numeric(wide, outcome, "outcome")
    z = sps.norm.ppf(1 - alpha / 2)
    rows = []
    for _, m in info.iterrows():
        d = pd.DataFrame({"x": pd.to_numeric(wide[m["label"]], errors="coerce"), "y": y_all}).dropna()
        row = {k: m[k] for k in ("label", "analysis", "map", "region", "metric", "units")}
        row.update(outcome=outcome, method=method.capitalize(), n=len(d), r=np.nan, ci_low=np.nan, ci_high=np.nan,
                   p_value=np.nan, computable=False, note="")
        if len(d) < 3 or d.x.nunique() < 2 or d.y.nunique() < 2:
            row["note"] = (f"not computable: {len(d)} subject(s) with both values" if len(d) < 3
                           else "not computable: no variation in the metric or the outcome")
            rows.append(row)
            continue
        if method == "pearson":
            res = sps.pearsonr(d.x, d.y)
            r, p = float(res.statistic), float(res.pvalue)
            if len(d) > 3:
                ci = res.confidence_interval(confidence_level=1 - alpha)
                row.update(ci_low=float(ci.low), ci_high=float(ci.high))
        else:
            res = sps.spearmanr(d.x, d.y)
            r, p = float(res.statistic), float(res.pvalue)
            if len(d) > 3 and abs(r) < 1:
                se = math.sqrt((1 + r * r / 2) / (len(d) - 3))
                row.update(ci_low=math.tanh(math.atanh(r) - z * se), ci_high=math.tanh(math.atanh(r) + z * se))
        row.update(r=r, p_value=p, computable=True,
                   note="" if len(d) > 3 else "no CI with 3 subjects (Fisher z needs n > 3)")
        rows.append(row)
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["p_adjusted"] = adjust_pvalues(out["p_value"].to_numpy(float), correction)
    out["correction"] = f"{correction} across {int(np.isfinite(out.p_value.astype(float)).sum())} metrics"
    return out


def _events(wide: pd.DataFrame, event: str) -> pd.Series:
    if event not in wide.columns:
        raise StatsError(f"no event column {event!r}; columns are {list(wide.columns)[:40]}")
    raw = wide[event]
    mapped = raw.map(lambda v: {"true": 1.0, "false": 0.0}.get(v.lower(), v) if isinstance(v, str) else v)
    values = _numeric(pd.DataFrame({event: mapped}, index=wide.index), event, "event")
    bad = values[values.notna() & ~values.isin([0.0, 1.0])]
    if len(bad):
        raise StatsError(f"event {event!r} must be 0/1 (or true/false); subject {bad.index[0]!r} has {bad.iloc[0]}")
    return values


def _split(wide: pd.DataFrame, by: str | None, metric: str | None, split: str | float) -> pd.Series:
    if by is not None:
        if by not in wide.columns:
            raise StatsError(f"no covariate {by!r}; columns are {list(wide.columns)[:40]}")
        return wide[by].astype("string")
    if metric is None:
        return pd.Series("all", index=wide.index, dtype="string")
    col = metric if metric in wide.columns else None
    if col is None:
        hits = [c for c in wide.columns if isinstance(c, str) and c.split(": ", 1)[-1].startswith(metric + " (")]
        if len(hits) != 1:
            raise StatsError(f"metric {metric!r} matches {len(hits)} columns ({hits[:5]}); give its full label")
        col = hits[0]
    x = pd.to_numeric(wide[col], errors="coerce")
    cut = float(x.median()) if split == "median" else float(split)
    return pd.Series(np.where(x.isna(), pd.NA, np.where(x > cut, f"> {cut:.4g}", f"<= {cut:.4g}")),
                     index=wide.index, dtype="string")


def survival_table(results: pd.DataFrame | str | Path, *, duration: str, event: str, design: Any = None,
                   by: str | None = None, metric: str | None = None, split: str | float = "median") -> pd.DataFrame:
    """One row per subject: ``duration``, ``event`` (0/1) and ``group`` (a covariate, or a metric split)."""
    wide, _ = subject_table(results, design)
    t = pd.DataFrame({"duration": _numeric(wide, duration, "duration"), "event": _events(wide, event),
                      "group": _split(wide, by, metric, split)}, index=wide.index)
    neg = t.index[t.duration < 0].tolist()
    if neg:
        raise StatsError(f"duration {duration!r} is negative for subject(s) {neg}; give times since the start")
    return t.dropna()


def kaplan_meier(results: pd.DataFrame | str | Path, *, duration: str, event: str, design: Any = None,
                 by: str | None = None, metric: str | None = None, split: str | float = "median",
                 alpha: float = 0.05) -> pd.DataFrame:
    """Kaplan-Meier survival per group (a covariate ``by``, or ``metric`` split at its median or a value).

    Returns
    -------
    DataFrame
        ``group, time, survival, ci_low, ci_high, at_risk, events`` (lifelines' ``KaplanMeierFitter``,
        log-log CI).
    """
    from lifelines import KaplanMeierFitter

    t = survival_table(results, duration=duration, event=event, design=design, by=by, metric=metric, split=split)
    frames = []
    for g, d in t.groupby("group", sort=True):
        km = KaplanMeierFitter(alpha=alpha).fit(d.duration, d.event, label=str(g))
        sf = km.survival_function_.iloc[:, 0]
        ci = km.confidence_interval_survival_function_
        table = km.event_table.reindex(sf.index)
        frames.append(pd.DataFrame({"group": str(g), "time": sf.index.to_numpy(float), "survival": sf.to_numpy(),
                                    "ci_low": ci.iloc[:, 0].to_numpy(), "ci_high": ci.iloc[:, 1].to_numpy(),
                                    "at_risk": table["at_risk"].to_numpy(), "events": table["observed"].to_numpy()}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def logrank(results: pd.DataFrame | str | Path, *, duration: str, event: str, design: Any = None,
            by: str | None = None, metric: str | None = None, split: str | float = "median") -> dict[str, Any]:
    """Log-rank test between the groups of :func:`kaplan_meier` (lifelines ``multivariate_logrank_test``).

    Returns ``{"statistic", "df", "p_value", "groups", "n", "events", "computable", "note"}``.
    """
    from lifelines.statistics import multivariate_logrank_test

    t = survival_table(results, duration=duration, event=event, design=design, by=by, metric=metric, split=split)
    groups = sorted(t.group.unique())
    out: dict[str, Any] = {"groups": groups, "n": len(t), "events": int(t.event.sum()), "statistic": np.nan,
                           "df": np.nan, "p_value": np.nan, "computable": False, "note": ""}
    if len(groups) < 2 or out["events"] == 0:
        out["note"] = "not computable: " + ("one group" if len(groups) < 2 else "no events")
        return out
    res = multivariate_logrank_test(t.duration, t.group, t.event)
    out.update(statistic=float(res.test_statistic), df=len(groups) - 1, p_value=float(res.p_value), computable=True)
    return out


def cox(results_or_table: pd.DataFrame | str | Path, *, duration: str, event: str, covariates: Sequence[str],
        design: Any = None, alpha: float = 0.05, strata: Sequence[str] | None = None,
        penalizer: float = 0.0) -> pd.DataFrame:
    """Cox proportional-hazards regression: one tidy row per coefficient with CI and p-value.

    Parameters
    ----------
    results_or_table : DataFrame or path
        A study's tidy results (with ``design``), or a table of one row per subject holding
        ``duration``, ``event`` and the covariates.
    duration, event : str
        The survival time and the event indicator (1 event, 0 censored; true/false accepted).
    covariates : list of str
        Design columns or metrics (names or labels). Non-numeric columns are dummy-coded against
        their first level (sorted), named ``column[level]``.
    strata : list of str, optional
        Columns to stratify the baseline hazard by.

    Returns
    -------
    DataFrame
        ``covariate, coef, se, coef_ci_low, coef_ci_high, hazard_ratio, hr_ci_low, hr_ci_high, z, p_value, n,
        events, concordance`` (lifelines ``CoxPHFitter``, Efron ties, Wald CIs).

    Examples
    --------
    >>> from lifelines.datasets import load_rossi
    >>> cols = ["fin", "age", "race", "wexp", "mar", "paro", "prio"]
    >>> t = cox(load_rossi(), duration="week", event="arrest", covariates=cols)
    >>> round(float(t.set_index("covariate").loc["fin", "coef"]), 3)
    -0.379
    """
    from lifelines import CoxPHFitter

    covariates = [covariates] if isinstance(covariates, str) else list(covariates)
    if not covariates:
        raise StatsError("cox needs at least one covariate")
    table = results_or_table
    tidy = isinstance(table, (str, Path)) or {"metric", "value", "subject"} <= set(table.columns)
    if tidy:
        wide, info = subject_table(table, design)
        names = {}
        for c in covariates:
            if c in wide.columns:
                names[c] = c
                continue
            hits = info[(info.metric == c) | (info.label == c)].label.tolist()
            if len(hits) != 1:
                raise StatsError(f"covariate {c!r} is {'not a column or metric' if not hits else 'ambiguous: ' + str(hits[:4])}"
                                 f"; covariates are design columns {[x for x in wide.columns if x not in set(info.label)]} "
                                 "or metrics (give the full label when a metric is in several analyses)")
            names[c] = hits[0]
        wide = wide.rename(columns={v: k for k, v in names.items()})
    else:
        wide = table.copy()
        missing = [c for c in [duration, event, *covariates, *(strata or [])] if c not in wide.columns]
        if missing:
            raise StatsError(f"column(s) {missing} are not in the table; columns are {list(wide.columns)[:40]}")
    data = pd.DataFrame({"__T": _numeric(wide, duration, "duration"), "__E": _events(wide, event)}, index=wide.index)
    for c in covariates:
        col = wide[c]
        num = pd.to_numeric(col.map(lambda v: float(v) if isinstance(v, bool) else v), errors="coerce")
        if (num.notna() == col.notna()).all():
            data[c] = num.astype(float)
        else:
            dummies = pd.get_dummies(col.astype("string"), prefix=c, prefix_sep="[", dtype=float)
            dummies.columns = [f"{n}]" for n in dummies.columns]
            data = data.join(dummies[sorted(dummies.columns)[1:]])
    for s in strata or []:
        data[s] = wide[s]
    data = data.dropna()
    if data["__E"].sum() == 0:
        raise StatsError("no events among the subjects with complete data; a Cox model needs events")
    fitter = CoxPHFitter(alpha=alpha, penalizer=penalizer)
    fitter.fit(data, duration_col="__T", event_col="__E", strata=list(strata) if strata else None)
    s = fitter.summary
    lo = [c for c in s.columns if c.startswith("coef lower")][0]
    hi = [c for c in s.columns if c.startswith("coef upper")][0]
    out = pd.DataFrame({
        "covariate": [str(i) for i in s.index], "coef": s["coef"].to_numpy(), "se": s["se(coef)"].to_numpy(),
        "coef_ci_low": s[lo].to_numpy(), "coef_ci_high": s[hi].to_numpy(), "hazard_ratio": s["exp(coef)"].to_numpy(),
        "hr_ci_low": np.exp(s[lo].to_numpy()), "hr_ci_high": np.exp(s[hi].to_numpy()), "z": s["z"].to_numpy(),
        "p_value": s["p"].to_numpy()})
    out["n"] = len(data)
    out["events"] = int(data["__E"].sum())
    out["concordance"] = float(fitter.concordance_index_)
    out.attrs["formula"] = f"Surv({duration}, {event}) ~ " + " + ".join(safe_column(c) for c in covariates)
    return out
