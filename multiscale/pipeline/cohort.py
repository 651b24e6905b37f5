"""The cohort statistics a study report shows, computed by :mod:`multiscale.stats` from the study's design.

``multiscale stats OUTPUT`` (:mod:`multiscale.pipeline.stats_command`) computes the same tables
with the same functions.

The report's statistics follow the study's ``report:`` options: ``by`` (the design column to
compare; default ``group`` when the design has it, else the first covariate with 2 to 8 levels),
``test`` (``welch``/``mannwhitney``), ``correction`` (``holm``...), ``repeated`` (the design column
naming the unit of repeated measures, e.g. ``animal`` when each session is a subject: a mixed model
per metric with a random intercept per unit; lesion rows get one per subject automatically; a list
``[animal, tumour]`` names nested units, outermost first; with ``repeated`` the report also splits
each metric's variance into components: between animals, between tumours within an animal, and
between sections (subjects) or lesions, :func:`variance_table`),
``lesions`` (``{mask: lesions, reference: blood, metric: suv_mean, concordance: [pet, her2]}``:
lesion-level summaries of a label-image mask), ``outcome`` (a column to
correlate every metric with; default every outcome that is not a survival field) and ``survival``
(``{duration: pfs_days, event: progressed, covariates: [...]}`` for a Cox model, and Kaplan-Meier
curves with a log-rank test by the group, by ``survival.by``, or split at the median of
``survival.metric``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the command line builds its parser from here: keep this import light
    import pandas as pd

    from .spec import Study

#: metrics that describe another metric (CI bounds, counts, settings): left out of the report's statistics
HELPER_METRICS = r"ci_low|ci_high|_n$|n_voxels|points|radius|^n$|threshold|depth_mm$"

__all__ = ["design_frame", "cohort_statistics", "default_grouping", "repeated_levels", "variance_table"]


def design_frame(study: Study, subjects: list[str] | None = None) -> pd.DataFrame | None:
    """The study's design as a DataFrame indexed by subject (only ``subjects`` when given); None without one."""
    if not study.design:
        return None
    frame = study.design.frame()
    if subjects is not None:
        frame = frame.reindex([s for s in subjects if s in frame.index])
    return frame


def default_grouping(design: pd.DataFrame, options: dict[str, Any]) -> str | None:
    """The design column the report compares: ``report.by``, else ``group``, else the first with 2-8 levels."""
    import pandas as pd
    if options.get("by"):
        return str(options["by"])
    if "group" in design.columns and design["group"].nunique() >= 2:
        return "group"
    for c in design.columns:
        levels = design[c].dropna()
        if 2 <= levels.nunique() <= 8 and not pd.api.types.is_float_dtype(levels):
            if levels.nunique() < len(levels):
                return str(c)
    return None


def repeated_levels(option: Any) -> list[str]:
    """The nested units of ``report: {repeated: ...}``, outermost first (a name or a list of names).

    Examples
    --------
    >>> repeated_levels("animal"), repeated_levels(["animal", "tumour"]), repeated_levels(None)
    (['animal'], ['animal', 'tumour'], [])
    """
    if not option:
        return []
    return [str(option)] if isinstance(option, str) else [str(v) for v in option]


def variance_table(results: pd.DataFrame, design: pd.DataFrame | None, levels: list[str],
                   metrics: Any = None) -> pd.DataFrame:
    """Per metric, its variance split between nested units by REML (:func:`multiscale.stats.variance_components`).

    ``levels`` are design columns, outermost first (``["animal", "tumour"]``); the subject (a
    section or a session) is added as the innermost level when the metric has several rows per
    subject (lesions), so the residual is between lesions; otherwise the residual is between
    subjects within the innermost level. A metric that cannot be split (one level, equal values, a
    fit that fails) gets a row with ``component`` empty and a ``note``.

    Returns
    -------
    DataFrame
        ``label, analysis, map, region, metric, units, component, variance, fraction, n_levels, converged, note``.
    """
    import warnings

    import numpy as np
    import pandas as pd

    from multiscale import stats
    from multiscale.errors import StatsError

    rows = stats.measurements(results, design, metrics=metrics)
    missing = [lv for lv in levels if lv not in rows.columns]
    if missing:
        raise StatsError(f"report.repeated names {missing}, not design columns; the design has "
                         f"{[c for c in (design.columns if design is not None else [])]}")
    rows = rows[np.isfinite(rows["value"].to_numpy(float))]
    out = []
    for _, d in rows.groupby("label", sort=False):
        first = d.iloc[0]
        base = {k: first[k] for k in ("label", "analysis", "map", "region", "metric", "units")}
        lv = list(levels) + (["subject"] if d["subject"].nunique() < len(d) and "subject" not in levels else [])
        note = ""
        if d[levels[0]].nunique() < 2:
            note = f"not computable: one {levels[0]}"
        elif np.ptp(d["value"].to_numpy(float)) == 0:
            note = "not computable: every row has the same value"
        elif d[lv].drop_duplicates().shape[0] == len(d):
            note = f"not computable: one row per {lv[-1]} (nothing within it)"
        if not note:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    vc = stats.variance_components(d, value="value", levels=lv)
            except StatsError as exc:
                note = f"not computable: {exc}"
        if note:
            out.append({**base, "component": "", "note": note})
            continue
        converged = bool(vc.attrs.get("converged", True))
        for r in vc.itertuples():
            out.append({**base, "component": r.component, "variance": r.variance, "fraction": r.fraction,
                        "n_levels": int(r.n_levels), "converged": converged,
                        "note": "" if converged else "the fit did not converge"})
    res = pd.DataFrame(out)
    for c in ("label", "analysis", "map", "region", "metric", "units", "component", "variance", "fraction",
              "n_levels", "converged", "note"):
        if c not in res.columns:
            res[c] = np.nan
    return res[["label", "analysis", "map", "region", "metric", "units", "component", "variance", "fraction",
                "n_levels", "converged", "note"]]


def cohort_statistics(study: Study, table: pd.DataFrame) -> dict[str, Any]:
    """The report's statistics: group comparisons, correlations with outcomes, Cox and log-rank (when asked).

    Returns a mapping of ``groups`` / ``correlation`` / ``cox`` / ``logrank`` tables (DataFrames or
    dicts) and ``notes`` (why a table is absent or partial). Never raises for the data: a request
    that cannot be answered becomes a note.
    """
    import pandas as pd

    from multiscale import stats

    notes: list[str] = []
    out: dict[str, Any] = {"notes": notes}
    if table.empty or "subject" not in table:
        return out
    subjects = list(dict.fromkeys(table["subject"].astype(str)))
    design = design_frame(study, subjects)
    if design is None or design.empty:
        return out
    missing = [s for s in subjects if s not in design.index]
    if missing:
        notes.append(f"subjects without design rows are left out: {missing}")
    options = dict(study.report or {})
    by = default_grouping(design, options)
    keep = table[table["subject"].astype(str).isin(design.index)]
    if not options.get("metrics"):
        # the metrics a reader compares: not CI bounds, counts or settings (the same rows as the heatmap's)
        keep = keep[~keep["metric"].astype(str).str.contains(HELPER_METRICS, regex=True)]
    if by is not None:
        out["by"] = by
        try:
            out["groups"] = stats.compare_groups(keep, by=by, design=design, test=options.get("test", "welch"),
                                                 correction=options.get("correction", "holm"),
                                                 metrics=options.get("metrics"))
            out["by"] = by
        except Exception as exc:  # noqa: BLE001 - a statistic that cannot be computed is a note, not a failed run
            notes.append(f"group comparison by {by!r}: {exc}")
    nested = repeated_levels(options.get("repeated"))
    unit = nested[0] if nested else None
    lesions = bool(keep["region"].astype(str).str.contains("#", regex=False).any())
    if by is not None and (unit or lesions):
        try:
            out["mixed"] = stats.compare_groups_mixed(keep, by=by, unit=str(unit or "subject"), design=design,
                                                      correction=options.get("correction", "holm"),
                                                      metrics=options.get("metrics"))
            out["unit"] = str(unit or "subject")
        except Exception as exc:  # noqa: BLE001 - as above
            notes.append(f"repeated-measures comparison by {by!r}: {exc}")
    if nested:
        try:
            out["variance"] = variance_table(keep, design, nested, metrics=options.get("metrics"))
            out["levels"] = nested
        except Exception as exc:  # noqa: BLE001 - as above
            notes.append(f"variance components over {nested}: {exc}")
    lesion_opts = options.get("lesions") or {}
    if lesion_opts:
        try:
            summary = stats.lesion_summary(keep, metric=lesion_opts.get("metric", "suv_mean"), lesions=lesion_opts["mask"],
                                           reference=lesion_opts.get("reference"),
                                           threshold=lesion_opts.get("threshold"),
                                           ratio=float(lesion_opts.get("ratio", 1.0)), map=lesion_opts.get("map"))
            out["lesions"] = summary
            pair = lesion_opts.get("concordance")
            if pair:
                out["concordance"] = stats.lesion_concordance(
                    keep, metric=lesion_opts.get("metric", "suv_mean"), map_a=pair[0], map_b=pair[1],
                    lesions=lesion_opts["mask"], reference=lesion_opts.get("reference"),
                    ratio=float(lesion_opts.get("ratio", 1.0)))
        except Exception as exc:  # noqa: BLE001 - as above
            notes.append(f"lesions: {exc}")
    survival = options.get("survival") or {}
    skip = {survival.get("duration"), survival.get("event")}
    outcomes = [options["outcome"]] if options.get("outcome") else [o for o in study.design.outcomes if o not in skip]
    frames = []
    for outcome in outcomes:
        try:
            frames.append(stats.correlate(keep, outcome=outcome, design=design, metrics=options.get("metrics"),
                                          method=options.get("method", "pearson")))
        except Exception as exc:  # noqa: BLE001 - as above
            notes.append(f"correlation with {outcome!r}: {exc}")
    if frames:
        out["correlation"] = pd.concat(frames, ignore_index=True)
    if survival:
        try:
            if survival.get("covariates"):
                out["cox"] = stats.cox(keep, duration=survival["duration"], event=survival["event"],
                                       covariates=survival["covariates"], design=design)
            metric = survival.get("metric")  # Kaplan-Meier split at a metric's median, else by a covariate
            split = None if metric else (survival.get("by") or by)
            if split or metric:
                out["logrank"] = stats.logrank(keep, duration=survival["duration"], event=survival["event"],
                                               design=design, by=split, metric=metric)
                out["kaplan_meier"] = stats.kaplan_meier(keep, duration=survival["duration"],
                                                         event=survival["event"], design=design, by=split,
                                                         metric=metric)
        except Exception as exc:  # noqa: BLE001 - as above (lifelines' convergence errors included)
            notes.append(f"survival: {exc}")
    return out
