"""Mixed-effects models for repeated measures, and variance components of nested designs.

Lesions within animals, sections within tumours, time points within animals: the rows are not
independent, so a group effect is estimated with a random intercept per animal
(``statsmodels`` ``MixedLM``, REML, the approach of R's lme4), and the spread is split into variance
components (between animals, between tumours within an animal, between sections within a tumour:
the residual).

Examples
--------
>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> animal = np.repeat(np.arange(8), 5)
>>> data = pd.DataFrame({"animal": animal, "treated": (animal % 2).astype(float),
...                      "y": 1 + 0.5 * (animal % 2) + rng.normal(0, 0.3, 8)[animal] + rng.normal(0, 0.1, 40)})
>>> fit = mixed_model(data, formula="y ~ treated", groups="animal")
>>> fit.set_index("term").loc["treated", "kind"]
'fixed'
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from multiscale.errors import StatsError

__all__ = ["mixed_model", "variance_components", "compare_groups_mixed"]


def mixed_model(data: pd.DataFrame, *, formula: str, groups: str, re_formula: str | None = None,
                vc_formula: dict[str, str] | None = None, reml: bool = True, alpha: float = 0.05) -> pd.DataFrame:
    """A linear mixed model (statsmodels ``MixedLM``) as one tidy row per fixed effect and variance parameter.

    Parameters
    ----------
    data : DataFrame
        Long table (e.g. :func:`multiscale.stats.design.measurements` of one metric: one row per lesion).
    formula : str
        Fixed effects, patsy syntax: ``"value ~ group"``.
    groups : str
        The column of the independent units (the animal, ``subject``); a random intercept per group.
    re_formula : str, optional
        Random slopes within a group (``"~time"``).
    vc_formula : dict, optional
        Nested variance components (``{"tumour": "0 + C(tumour)"}``).
    reml : bool
        REML (default, as lme4's ``lmer``) or maximum likelihood.

    Returns
    -------
    DataFrame
        ``term, kind ('fixed' or 'variance'), estimate, se, ci_low, ci_high, z, p_value`` plus
        ``n`` (rows), ``groups`` and ``converged``.
    """
    import statsmodels.formula.api as smf

    if groups not in data.columns:
        raise StatsError(f"no column {groups!r} to group by; columns are {list(data.columns)}")
    if data[groups].nunique() < 2:
        raise StatsError(f"{groups!r} has {data[groups].nunique()} level(s); a mixed model needs several groups")
    if vc_formula and re_formula is None:
        re_formula = "1"  # the groups keep their random intercept beside the nested components (as in lme4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter is summarised in `converged`
        model = smf.mixedlm(formula, data, groups=data[groups], re_formula=re_formula, vc_formula=vc_formula)
        try:
            fit = model.fit(reml=reml, method=["lbfgs", "powell"])
        except (np.linalg.LinAlgError, ValueError) as exc:
            raise StatsError(f"the mixed model {formula!r} with a random intercept per {groups!r} cannot be fit on "
                             f"{len(data)} rows in {data[groups].nunique()} groups ({exc}); it needs more groups (or "
                             "fewer random terms)") from None
    k = len(fit.fe_params)
    ci = fit.conf_int(alpha=alpha).iloc[:k]
    rows = [{"term": name, "kind": "fixed", "estimate": float(fit.fe_params[name]), "se": float(fit.bse_fe[name]),
             "ci_low": float(ci.loc[name].iloc[0]), "ci_high": float(ci.loc[name].iloc[1]),
             "z": float(fit.tvalues[name]), "p_value": float(fit.pvalues[name])} for name in fit.fe_params.index]
    cov = fit.cov_re
    for i, a in enumerate(cov.index):
        rows.append({"term": f"{groups} {a} variance" if a != "Group" else f"{groups} variance", "kind": "variance",
                     "estimate": float(cov.iloc[i, i])})
        for b in cov.index[i + 1:]:
            rows.append({"term": f"{groups} cov({a}, {b})", "kind": "variance", "estimate": float(cov.loc[a, b])})
    for name, v in zip(model.exog_vc.names if vc_formula else [], np.atleast_1d(fit.vcomp)):
        rows.append({"term": f"{name} variance", "kind": "variance", "estimate": float(v)})
    rows.append({"term": "residual variance", "kind": "variance", "estimate": float(fit.scale)})
    out = pd.DataFrame(rows)
    for c in ("se", "ci_low", "ci_high", "z", "p_value"):
        if c not in out.columns:
            out[c] = np.nan
    out["n"] = int(fit.nobs)
    out["groups"] = int(data[groups].nunique())
    out["converged"] = bool(fit.converged)
    return out


def variance_components(data: pd.DataFrame, *, value: str, levels: Sequence[str],
                        fixed: str = "1") -> pd.DataFrame:
    """Split the variance of ``value`` between nested levels (outermost first) by REML.

    ``levels=["animal", "tumour"]``: rows are sections (or lesions); the components are between
    animals, between tumours within an animal, and the residual (between sections within a tumour).

    Returns
    -------
    DataFrame
        ``component, variance, fraction, n_levels``; fractions sum to 1.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(1)
    >>> a = np.repeat(np.arange(10), 6)
    >>> d = pd.DataFrame({"animal": a, "y": rng.normal(0, 2, 10)[a] + rng.normal(0, 1, 60)})
    >>> vc = variance_components(d, value="y", levels=["animal"])
    >>> vc.component.tolist()
    ['between animal', 'residual (within animal)']
    """
    levels = list(levels)
    if not levels:
        raise StatsError("give at least one level (the outermost grouping, e.g. the animal)")
    missing = [c for c in [value, *levels] if c not in data.columns]
    if missing:
        raise StatsError(f"column(s) {missing} are not in the table; columns are {list(data.columns)}")
    d = data[[value, *levels]].dropna().copy()
    for lv in levels:
        d[lv] = d[lv].astype(str)
    inner = levels[1:]
    vc = {lv: f"0 + C({lv})" for lv in inner} or None
    fit = mixed_model(d.rename(columns={value: "__y"}), formula=f"__y ~ {fixed}", groups=levels[0],
                      vc_formula=vc)
    var = fit[fit.kind == "variance"].set_index("term")["estimate"]
    comps = [("between " + levels[0], float(var[f"{levels[0]} variance"]), d[levels[0]].nunique())]
    for i, lv in enumerate(inner):
        within = levels[i]
        comps.append((f"between {lv} within {within}", float(var[f"{lv} variance"]),
                       d[levels[: i + 2]].drop_duplicates().shape[0]))
    comps.append((f"residual (within {levels[-1]})", float(var["residual variance"]), len(d)))
    out = pd.DataFrame(comps, columns=["component", "variance", "n_levels"])
    total = out.variance.clip(lower=0).sum()
    out["fraction"] = out.variance.clip(lower=0) / total if total > 0 else np.nan
    out.attrs["converged"] = bool(fit.converged.iloc[0])
    return out[["component", "variance", "fraction", "n_levels"]]


def compare_groups_mixed(results: Any, *, by: str, unit: str = "subject", metrics: Sequence[str] | str | None = None,
                         design: Any = None, alpha: float = 0.05, correction: str = "holm",
                         order: Sequence[str] | None = None) -> pd.DataFrame:
    """Group effect on every metric from repeated measures: ``value ~ group`` with a random intercept per ``unit``.

    For lesions within animals (rows ``<mask>#<label>``), sections or time points within animals (a
    design column such as ``animal`` naming the unit of several subjects): one MixedLM (REML) per
    metric; the group coefficient (other - reference) is the effect, with its Wald CI and p-value,
    corrected across metrics.

    Returns
    -------
    DataFrame
        ``label, analysis, map, region, metric, units, by, unit, comparison, estimate, ci_low, ci_high, z, p_value,
        p_adjusted, correction, n_rows, n_units, unit_variance, residual_variance, computable, note``.
    """
    from .design import measurements
    from .multiple import adjust_pvalues

    rows = measurements(results, design, metrics=metrics)
    if by not in rows.columns:
        raise StatsError(f"no covariate {by!r} to group by; give the study design (covariates per subject)")
    if unit not in rows.columns:
        raise StatsError(f"no column {unit!r} naming the repeated unit (the animal); columns are {list(rows.columns)}")
    rows = rows[np.isfinite(rows["value"].to_numpy(float)) & rows[by].notna()].copy()
    rows[by] = rows[by].astype(str)
    levels = list(order) if order else sorted(rows[by].unique())
    if len(levels) < 2:
        raise StatsError(f"{by!r} has {len(levels)} group(s); a comparison needs two or more")
    out = []
    for _, d in rows.groupby("label", sort=False):
        first = d.iloc[0]
        base = {k: first[k] for k in ("label", "analysis", "map", "region", "metric", "units")}
        base.update(by=by, unit=unit, n_rows=len(d), n_units=int(d[unit].nunique()))
        note = ""
        if d[unit].nunique() == len(d):
            note = f"not computable: one row per {unit} (no repeated measures); use compare_groups"
        elif d[by].nunique() < 2:
            note = "not computable: one group has no rows"
        elif np.ptp(d["value"].to_numpy(float)) == 0:
            note = "not computable: every row has the same value"
        fit = None
        if not note:
            data = pd.DataFrame({"y": d["value"].to_numpy(float), "g": pd.Categorical(d[by], categories=levels),
                                 "u": d[unit].astype(str).to_numpy()})
            try:
                fit = mixed_model(data, formula="y ~ C(g)", groups="u", alpha=alpha).set_index("term")
            except StatsError as exc:
                note = f"not computable: {exc}"
        if fit is None:
            out.append({**base, "comparison": "", "computable": False, "note": note})
            continue
        for level in levels[1:]:
            term = f"C(g)[T.{level}]"
            if term not in fit.index:
                out.append({**base, "comparison": f"{level} - {levels[0]}", "computable": False,
                            "note": f"not computable: no rows of group {level!r}"})
                continue
            r = fit.loc[term]
            out.append({**base, "comparison": f"{level} - {levels[0]}", "estimate": r.estimate, "ci_low": r.ci_low,
                        "ci_high": r.ci_high, "z": r.z, "p_value": r.p_value,
                        "unit_variance": fit.loc["u variance", "estimate"],
                        "residual_variance": fit.loc["residual variance", "estimate"],
                        "computable": bool(fit.converged.iloc[0]),
                        "note": "" if fit.converged.iloc[0] else "the fit did not converge"})
    res = pd.DataFrame(out)
    for c in ("estimate", "ci_low", "ci_high", "z", "p_value", "unit_variance", "residual_variance"):
        if c not in res.columns:
            res[c] = np.nan
    res["p_adjusted"] = adjust_pvalues(res["p_value"].to_numpy(float), correction)
    res["correction"] = f"{correction} across {int(np.isfinite(res.p_value.astype(float)).sum())} tests"
    cols = ["label", "analysis", "map", "region", "metric", "units", "by", "unit", "comparison", "estimate", "ci_low",
            "ci_high", "z", "p_value", "p_adjusted", "correction", "n_rows", "n_units", "unit_variance",
            "residual_variance", "computable", "note"]
    return res[cols]
