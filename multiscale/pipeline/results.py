"""The tidy results table: one row per subject x region x map x metric, with units.

Columns (in this order): ``subject``, ``region``, ``map``, ``analysis``, ``metric``, ``value``,
``units``, ``bin`` (the shell or bin index for profiles, else empty), ``bin_lo``/``bin_hi``
(the bin's bounds, e.g. depth from the surface in mm), ``bin_units`` and ``detail`` (free text,
e.g. the threshold method). Written as Parquet and CSV side by side, atomically.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["COLUMNS", "results_frame", "write_results", "read_results", "rows_from_result"]

COLUMNS: tuple[str, ...] = (
    "subject", "region", "map", "analysis", "metric", "value", "units", "bin", "bin_lo", "bin_hi",
    "bin_units", "detail",
)
_STRING_COLUMNS = ("subject", "region", "map", "analysis", "metric", "units", "bin_units", "detail")


def results_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Build the tidy table from row mappings; missing columns are filled, types fixed.

    Examples
    --------
    >>> df = results_frame([{"subject": "m1", "region": "tumour", "map": "pet", "analysis": "uptake",
    ...                      "metric": "suv_max", "value": 3.2, "units": "SUVbw"}])
    >>> list(df.columns[:7]), float(df.value[0])
    (['subject', 'region', 'map', 'analysis', 'metric', 'value', 'units'], 3.2)
    """
    df = pd.DataFrame(list(rows))
    for col in COLUMNS:
        if col not in df.columns:
            df[col] = np.nan if col in ("value", "bin", "bin_lo", "bin_hi") else ""
    extra = [c for c in df.columns if c not in COLUMNS]
    df = df[list(COLUMNS) + extra]
    for col in _STRING_COLUMNS:
        df[col] = df[col].fillna("").astype(str)
    df["value"] = pd.to_numeric(df["value"], errors="coerce").astype(float)
    df["bin"] = pd.to_numeric(df["bin"], errors="coerce").astype("Int64")
    for col in ("bin_lo", "bin_hi"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    return df.reset_index(drop=True)


def _umask_mode(mode: int = 0o666) -> int:
    """``mode`` less the process umask (mkstemp/mkdtemp create private files; outputs are shared)."""
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


def _atomic(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_results(table: pd.DataFrame, folder: str | Path, stem: str = "results") -> tuple[Path, Path]:
    """Write ``<folder>/<stem>.parquet`` and ``<folder>/<stem>.csv`` atomically.

    Returns
    -------
    (Path, Path)
        The Parquet and CSV paths.

    Examples
    --------
    >>> import tempfile
    >>> df = results_frame([{"subject": "m1", "metric": "n", "value": 1.0}])
    >>> pq, csv = write_results(df, tempfile.mkdtemp())
    >>> read_results(pq).metric.tolist()
    ['n']
    """
    folder = Path(folder)
    table = results_frame(table.to_dict("records")) if not table.empty else results_frame([])
    pq = folder / f"{stem}.parquet"
    csv = folder / f"{stem}.csv"
    _atomic(pq, lambda tmp: table.to_parquet(tmp, index=False))
    _atomic(csv, lambda tmp: table.to_csv(tmp, index=False))
    return pq, csv


def read_results(path: str | Path) -> pd.DataFrame:
    """Read a results table written by :func:`write_results` (Parquet or CSV)."""
    path = Path(path)
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return results_frame(pd.read_csv(path, keep_default_na=False, na_values=[""]).to_dict("records"))


def _number(value: Any) -> float | None:
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    if isinstance(value, np.ndarray) and value.size == 1:
        return float(value.reshape(-1)[0])
    return None


def rows_from_result(result: Any, base: Mapping[str, Any], units: Mapping[str, str] | str | None = None,
                     prefix: str = "") -> list[dict[str, Any]]:
    """Turn an analysis result (mapping, dataclass, pandas Series/DataFrame) into tidy rows.

    Numbers become one row each (``metric`` = key); nested mappings get dotted names; a
    DataFrame with ``metric``/``value`` columns is taken row by row (keeping its ``units``);
    other DataFrames are melted with the row index as ``bin``. Non-numeric values are skipped.

    Parameters
    ----------
    result : object
        What an analysis function returned.
    base : mapping
        Columns shared by every row (subject, region, map, analysis).
    units : mapping or str, optional
        Units per metric name (or one unit for all) when the result does not carry them.

    Examples
    --------
    >>> rows_from_result({"pearson": 0.8, "n": 10}, {"subject": "m1"}, units={"n": "voxels"})[1]["units"]
    'voxels'
    """
    def unit_of(name: str) -> str:
        if isinstance(units, str):
            return units
        if isinstance(units, Mapping):
            return str(units.get(name, units.get(name.split(".")[-1], "")))
        return ""

    rows: list[dict[str, Any]] = []
    if hasattr(result, "__dataclass_fields__"):
        result = {k: getattr(result, k) for k in result.__dataclass_fields__}
    if isinstance(result, pd.Series):
        result = result.to_dict()
    if isinstance(result, pd.DataFrame):
        df = result
        if {"metric", "value"} <= set(df.columns) or {"feature", "value"} <= set(df.columns):
            key = "metric" if "metric" in df.columns else "feature"
            for _, r in df.iterrows():
                v = _number(r["value"])
                if v is None:
                    continue
                row = dict(base)
                row.update(metric=prefix + str(r[key]), value=v,
                           units=str(r["units"]) if "units" in df.columns and pd.notna(r["units"])
                           else unit_of(str(r[key])))
                rows.append(row)
            return rows
        for i, (_, r) in enumerate(df.iterrows()):
            for col in df.columns:
                v = _number(r[col])
                if v is None:
                    continue
                row = dict(base)
                row.update(metric=prefix + str(col), value=v, units=unit_of(str(col)), bin=i)
                rows.append(row)
        return rows
    if isinstance(result, Mapping):
        for k, v in result.items():
            if isinstance(v, Mapping) or hasattr(v, "__dataclass_fields__"):
                rows.extend(rows_from_result(v, base, units, prefix=f"{prefix}{k}."))
                continue
            num = _number(v)
            if num is None:
                continue
            row = dict(base)
            row.update(metric=prefix + str(k), value=num, units=unit_of(str(k)))
            rows.append(row)
        return rows
    num = _number(result)
    if num is not None and not (isinstance(num, float) and math.isnan(num) and not prefix):
        row = dict(base)
        row.update(metric=prefix.rstrip(".") or "value", value=num, units=unit_of(prefix.rstrip(".")))
        rows.append(row)
    return rows
