"""The tidy results table on disk: Parquet and CSV side by side, written atomically.

The schema (:data:`COLUMNS`: ``subject``, ``region``, ``map``, ``analysis``, ``metric``, ``value``,
``units``, ``bin``, ``bin_lo``, ``bin_hi``, ``bin_units``, ``detail``, ``flags``) is defined with the
analysis families, in :mod:`multiscale.analysis.family`, which fill it; this module writes and
reads it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from multiscale._util import atomic_write
from multiscale.analysis.family import COLUMNS, results_frame

__all__ = ["COLUMNS", "results_frame", "write_results", "read_results"]


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
    atomic_write(pq, lambda tmp: table.to_parquet(tmp, index=False))
    atomic_write(csv, lambda tmp: table.to_csv(tmp, index=False))
    return pq, csv


def read_results(path: str | Path) -> pd.DataFrame:
    """Read a results table written by :func:`write_results` (Parquet or CSV)."""
    path = Path(path)
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return results_frame(pd.read_csv(path, keep_default_na=False, na_values=[""]).to_dict("records"))
