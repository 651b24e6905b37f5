"""The study design joined to the results: one row per subject with its covariates and metrics.

The statistics of :mod:`multiscale.stats` work on the tidy results table of a study run
(:data:`multiscale.analysis.family.COLUMNS`: one row per subject x region x map x metric) and a
*design*: one row per subject with its covariates (group, dose, sex, weight, time point...) and
outcomes (response, survival time and event). This module checks that the two describe the same
subjects and turns the long table into what a test needs.

A *metric* of the cohort is one scalar row kind: an ``(analysis, map, region, metric)`` with its
units, labelled ``"analysis: metric (map / region)"``. Regions named ``<mask>#<label>`` are lesions
of a label image (one region per label): they share the metric of ``<mask>``, and a subject's value
for a group test is the mean over its lesions (the subject is the experimental unit); the lesion
rows themselves feed the mixed models and the lesion summaries.

Examples
--------
>>> import pandas as pd
>>> results = pd.DataFrame({"subject": ["a", "b"], "analysis": "u", "map": "pet", "region": "tumour",
...                         "metric": "suv_mean", "value": [1.0, 2.0], "units": "SUVbw"})
>>> design = pd.DataFrame({"subject": ["a", "b"], "group": ["control", "treated"]})
>>> wide, metrics = subject_table(results, design)
>>> wide.loc["b", "u: suv_mean (pet / tumour)"], metrics.label.tolist()
(np.float64(2.0), ['u: suv_mean (pet / tumour)'])
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from multiscale.errors import StatsError

__all__ = [
    "LESION_SEPARATOR",
    "METRIC_KEYS",
    "as_design",
    "check_design",
    "read_results_table",
    "metric_rows",
    "select_metrics",
    "subject_table",
    "measurements",
]

#: separator between a label-image mask and the label of one of its regions (``lesions#3``)
LESION_SEPARATOR = "#"
#: the columns that identify one metric of the cohort
METRIC_KEYS = ("analysis", "map", "region", "metric")


def read_results_table(source: str | Path | pd.DataFrame) -> pd.DataFrame:
    """The results table: a DataFrame as given, or read from a run's output folder or a results file.

    Examples
    --------
    >>> read_results_table(pd.DataFrame({"subject": ["a"]})).shape
    (1, 1)
    """
    if isinstance(source, pd.DataFrame):
        return source
    path = Path(source)
    if path.is_dir():
        for name in ("results.parquet", "results.csv"):
            if (path / name).is_file():
                path = path / name
                break
        else:
            raise StatsError(f"{source}: no results.parquet or results.csv in this folder; give a study run's output "
                             "folder or its results file")
    if not path.is_file():
        raise StatsError(f"{path}: no such results file; give a study run's output folder or its results file")
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def as_design(design: Any, id_column: str = "subject") -> pd.DataFrame | None:
    """A design as a DataFrame indexed by subject id (strings); None stays None.

    ``design`` is a DataFrame (with an ``id_column`` column, or already indexed by subject), a
    mapping ``{subject: {covariate: value}}``, or the path of a CSV file with an ``id_column`` column.

    Examples
    --------
    >>> as_design({"m1": {"group": "treated"}, "m2": {"group": "control"}}).loc["m2", "group"]
    'control'
    """
    if design is None:
        return None
    if isinstance(design, (str, Path)):
        path = Path(design)
        if not path.is_file():
            raise StatsError(f"{path}: design file not found; give a CSV with one row per subject and a "
                             f"{id_column!r} column")
        frame = pd.read_csv(path, dtype={id_column: str}, keep_default_na=False, na_values=[""])
        if id_column not in frame.columns:
            raise StatsError(f"{path}: no {id_column!r} column (columns: {list(frame.columns)}); name the subject "
                             "id column or pass id_column=")
        design = frame
    if isinstance(design, Mapping):
        frame = pd.DataFrame.from_dict({str(k): dict(v) for k, v in design.items()}, orient="index")
        frame.index.name = id_column
        return frame
    if not isinstance(design, pd.DataFrame):
        raise StatsError(f"design must be a DataFrame, a mapping subject -> covariates or a CSV path, "
                         f"got {type(design).__name__}")
    frame = design.copy()
    if id_column in frame.columns:
        frame[id_column] = frame[id_column].astype(str)
        dup = frame[id_column][frame[id_column].duplicated()].tolist()
        if dup:
            raise StatsError(f"design: subject(s) {dup} appear on more than one row; give one row per subject")
        frame = frame.set_index(id_column)
    frame.index = frame.index.astype(str)
    frame.index.name = id_column
    return frame


def check_design(design: pd.DataFrame, subjects: Sequence[str], where: str = "design") -> None:
    """Refuse a design that lacks a subject of the results, or names one the results do not have.

    Examples
    --------
    >>> check_design(pd.DataFrame(index=["a"]), ["a", "b"])
    Traceback (most recent call last):
    ...
    multiscale.errors.StatsError: design: no row for subject(s) ['b'] of the results; add them (or drop their rows from the results)
    """
    have = set(map(str, design.index))
    want = list(dict.fromkeys(map(str, subjects)))
    missing = [s for s in want if s not in have]
    if missing:
        raise StatsError(f"{where}: no row for subject(s) {missing} of the results; add them (or drop their rows "
                         "from the results)")
    extra = [s for s in design.index if s not in set(want)]
    if extra:
        raise StatsError(f"{where}: subject(s) {extra} are not in the results (failed, not run or misspelt?); "
                         "fix the id or drop the row")


def _is_tidy(table: pd.DataFrame) -> bool:
    return {"subject", "metric", "value"} <= set(table.columns)


def metric_rows(results: pd.DataFrame) -> pd.DataFrame:
    """The scalar rows of a tidy results table with their metric ``label`` and ``lesion`` (label image regions).

    Profile rows (a ``bin``) are left out. A region ``<mask>#<k>`` becomes region ``<mask>`` with
    ``lesion`` ``k``; other rows have an empty ``lesion``.
    """
    t = results
    if "bin" in t.columns:
        t = t[pd.isna(t["bin"])]
    t = t.copy()
    for col in METRIC_KEYS:
        if col not in t.columns:
            t[col] = ""
        t[col] = t[col].fillna("").astype(str)
    if "units" not in t.columns:
        t["units"] = ""
    t["units"] = t["units"].fillna("").astype(str)
    t["subject"] = t["subject"].astype(str)
    parts = t["region"].str.partition(LESION_SEPARATOR)
    t["lesion"] = parts[2]
    t["region"] = parts[0]
    t["value"] = pd.to_numeric(t["value"], errors="coerce")
    t["label"] = t["analysis"] + ": " + t["metric"] + " (" + t["map"] + " / " + t["region"] + ")"
    return t


def select_metrics(rows: pd.DataFrame, metrics: Sequence[str] | str | None) -> pd.DataFrame:
    """The rows of ``metrics``: metric names (``suv_mean``), labels, or ``analysis:metric``; None keeps all.

    Raises
    ------
    StatsError
        A name that matches no row, with the metrics there are.
    """
    if metrics is None:
        return rows
    if isinstance(metrics, str):
        metrics = [metrics]
    keep = np.zeros(len(rows), bool)
    for m in metrics:
        hit = (rows["metric"] == m) | (rows["label"] == m) | ((rows["analysis"] + ":" + rows["metric"]) == m)
        if not hit.any():
            known = sorted(rows["metric"].unique())
            raise StatsError(f"metric {m!r} is not in the results; metrics are {known[:40]}"
                             + (" ..." if len(known) > 40 else ""))
        keep |= hit.to_numpy()
    return rows[keep]


def _metric_info(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.drop_duplicates("label")[["label", *METRIC_KEYS, "units"]].reset_index(drop=True)


def subject_table(results: pd.DataFrame | str | Path, design: Any = None, *,
                  metrics: Sequence[str] | str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per subject: the design's covariates and one column per metric (lesions averaged).

    Parameters
    ----------
    results : DataFrame or path
        A tidy results table (or a run's output folder), or an already wide table with a ``subject``
        column and numeric metric columns.
    design : DataFrame, mapping or CSV path, optional
        Covariates and outcomes per subject (:func:`as_design`); checked against the results' subjects.
    metrics : list of str, optional
        Keep only these metrics (:func:`select_metrics`).

    Returns
    -------
    (DataFrame, DataFrame)
        The wide table indexed by subject, and one row per metric column: ``label``, ``analysis``,
        ``map``, ``region``, ``metric``, ``units``.
    """
    table = read_results_table(results)
    design_frame = as_design(design)
    if not _is_tidy(table):
        wide = table.copy()
        if "subject" in wide.columns:
            wide["subject"] = wide["subject"].astype(str)
            wide = wide.set_index("subject")
        wide.index = wide.index.astype(str)
        if design_frame is not None:
            check_design(design_frame, wide.index)
            wide = design_frame.join(wide.drop(columns=[c for c in design_frame.columns if c in wide.columns]))
        covs = set(design_frame.columns) if design_frame is not None else set()
        cols = [c for c in wide.columns if c not in covs and pd.api.types.is_numeric_dtype(wide[c])]
        if metrics is not None:
            wanted = [metrics] if isinstance(metrics, str) else list(metrics)
            unknown = [m for m in wanted if m not in wide.columns]
            if unknown:
                raise StatsError(f"metric(s) {unknown} are not columns of the table; columns are {list(wide.columns)}")
            cols = wanted
        info = pd.DataFrame({"label": cols, "analysis": "", "map": "", "region": "", "metric": cols, "units": ""})
        return wide, info
    rows = select_metrics(metric_rows(table), metrics)
    subjects = list(dict.fromkeys(table["subject"].astype(str)))
    wide = rows.pivot_table(index="subject", columns="label", values="value", aggfunc="mean", sort=False)
    wide = wide.reindex(subjects)
    wide.columns.name = None
    if design_frame is not None:
        check_design(design_frame, subjects)
        wide = design_frame.reindex(subjects).join(wide)
    wide.index.name = "subject"
    return wide, _metric_info(rows)


def measurements(results: pd.DataFrame | str | Path, design: Any = None, *,
                 metrics: Sequence[str] | str | None = None) -> pd.DataFrame:
    """The long scalar rows (one per subject x metric x lesion) with the design's covariates joined.

    The table mixed models and lesion summaries work on: ``subject``, ``label``, ``analysis``,
    ``map``, ``region``, ``lesion``, ``metric``, ``value``, ``units`` and every covariate.
    """
    table = read_results_table(results)
    if not _is_tidy(table):
        raise StatsError("measurements need the tidy results table (subject, metric, value columns)")
    rows = select_metrics(metric_rows(table), metrics)
    design_frame = as_design(design)
    if design_frame is not None:
        check_design(design_frame, list(dict.fromkeys(table["subject"].astype(str))))
        clash = [c for c in design_frame.columns if c in rows.columns]
        if clash:
            raise StatsError(f"design column(s) {clash} clash with result columns; rename them")
        rows = rows.join(design_frame, on="subject")
    return rows.reset_index(drop=True)


def safe_column(name: str) -> str:
    """A formula-safe column name (letters, digits and ``_``).

    Examples
    --------
    >>> safe_column("uptake: suv_mean (pet / tumour)")
    'uptake_suv_mean_pet_tumour'
    """
    out = re.sub(r"\W+", "_", str(name)).strip("_")
    return out if out and not out[0].isdigit() else f"v_{out}"
