"""Intensity discretisation (IBSI 2.7): fixed bin number (FBN) and fixed bin size (FBS)."""

from __future__ import annotations

import numpy as np

__all__ = ["discretise", "n_levels_of", "fbs_range_levels", "pyradiomics_bins"]


def discretise(
    values: np.ndarray,
    method: str,
    n_bins: int | None = None,
    bin_width: float | None = None,
    min_anchor: float | None = None,
) -> np.ndarray:
    """Grey levels 1, 2, ... of ``values`` (IBSI discretisation).

    * ``"fbn"``: ``floor(Ng (x - min) / (max - min)) + 1``, the maximum mapped to ``Ng``; ``min`` and
      ``max`` are those of ``values`` (the ROI after re-segmentation). A constant ROI maps to 1.
    * ``"fbs"``: ``floor((x - X_min) / w) + 1`` with ``X_min = min_anchor`` (the lower bound of the
      re-segmentation range, IBSI) or, when ``min_anchor`` is None, the minimum of ``values``.

    Parameters
    ----------
    values : numpy.ndarray
        Intensities (finite), any shape.
    method : {"fbn", "fbs"}
        Fixed bin number or fixed bin size.
    n_bins : int, optional
        Number of bins ``Ng`` (FBN).
    bin_width : float, optional
        Bin width ``w`` in the image's units (FBS).
    min_anchor : float, optional
        ``X_min`` for FBS.

    Returns
    -------
    numpy.ndarray of int
        Same shape as ``values``.

    Examples
    --------
    >>> import numpy as np
    >>> discretise(np.array([0.0, 0.5, 1.0]), "fbn", n_bins=2).tolist()
    [1, 2, 2]
    >>> discretise(np.array([-480.0, -20.0]), "fbs", bin_width=25.0, min_anchor=-500.0).tolist()
    [1, 20]
    """
    v = np.asarray(values, dtype=float)
    method = str(method).lower()
    if v.size and not np.all(np.isfinite(v)):
        raise ValueError("discretise: values contain NaN or infinity; remove them from the ROI first")
    if method == "fbn":
        if n_bins is None or int(n_bins) < 1:
            raise ValueError(f"discretise: FBN needs n_bins >= 1, got {n_bins!r}")
        ng = int(n_bins)
        if v.size == 0:
            return np.zeros(v.shape, dtype=np.int64)
        lo, hi = float(v.min()), float(v.max())
        if hi <= lo:
            return np.ones(v.shape, dtype=np.int64)
        q = np.floor(ng * (v - lo) / (hi - lo)).astype(np.int64) + 1
        return np.clip(q, 1, ng)
    if method == "fbs":
        if bin_width is None or not float(bin_width) > 0:
            raise ValueError(f"discretise: FBS needs bin_width > 0, got {bin_width!r}")
        if v.size == 0:
            return np.zeros(v.shape, dtype=np.int64)
        w = float(bin_width)
        anchor = float(v.min()) if min_anchor is None else float(min_anchor)
        q = np.floor((v - anchor) / w).astype(np.int64) + 1
        if q.min() < 1:
            raise ValueError(
                f"discretise: values below the FBS anchor {anchor} (minimum {v.min()}); "
                "re-segment the ROI to start at the anchor or lower min_anchor"
            )
        return q
    raise ValueError(f"discretise: method must be 'fbn' or 'fbs', got {method!r}")


def fbs_range_levels(lower: float, upper: float, bin_width: float) -> int:
    """Number of FBS bins of width ``bin_width`` that cover the re-segmentation range ``[lower, upper]``.

    IBSI counts bins from the lower bound (``X_d = floor((X - lower) / w) + 1``), so the range holds
    ``ceil((upper - lower) / w)`` bins: [-500, 400] HU at 25 HU is 36 bins (not ``floor(900 / 25) + 1 = 37``,
    which counts a bin starting at the upper bound). A voxel exactly at an upper bound that falls on a bin edge
    is level ``ceil(...) + 1`` by the formula: callers take the maximum with the levels present.

    Examples
    --------
    >>> fbs_range_levels(-500.0, 400.0, 25.0), fbs_range_levels(-1000.0, 400.0, 25.0), fbs_range_levels(0.0, 10.0, 3.0)
    (36, 56, 4)
    """
    return max(int(np.ceil((float(upper) - float(lower)) / float(bin_width) - 1e-12)), 1)


def n_levels_of(q: np.ndarray, method: str, n_bins: int | None = None, bin_width: float | None = None,
                min_anchor: float | None = None, upper: float | None = None) -> int:
    """Number of grey levels ``Ng``: ``n_bins`` for FBN; for FBS the number of bins covering the re-segmentation
    range ``[min_anchor, upper]`` when ``upper`` is finite (:func:`fbs_range_levels`), and never fewer than the
    highest level present."""
    if str(method).lower() == "fbn":
        return int(n_bins)
    top = int(q.max()) if q.size else 0
    if upper is not None and np.isfinite(upper) and min_anchor is not None and bin_width:
        top = max(top, fbs_range_levels(min_anchor, upper, bin_width))
    return max(top, 1)


def pyradiomics_bins(values: np.ndarray, n_bins: int | None = None,
                     bin_width: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Grey levels as pyradiomics 3.0.1 bins them (``imageoperations.getBinEdges`` + ``numpy.digitize``).

    * ``bin_width``: edges ``lowBound, lowBound + w, ...`` with ``lowBound = min - (min mod w)``, i.e.
      ``floor(min / w) * w``: bins are anchored at multiples of ``w`` (from 0), not at the ROI minimum or a
      re-segmentation bound as in IBSI; a maximum on an edge opens a bin of its own.
    * ``n_bins``: the edges of ``numpy.histogram(values, n_bins)`` with the last edge raised by 1.

    Returns the levels (1, 2, ...) and the edges.

    Examples
    --------
    >>> import numpy as np
    >>> q, edges = pyradiomics_bins(np.array([54.0, 60.0, 166.0]), bin_width=25.0)
    >>> q.tolist(), edges.tolist()
    ([1, 1, 5], [50.0, 75.0, 100.0, 125.0, 150.0, 175.0, 200.0])
    """
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return np.zeros(v.shape, dtype=np.int64), np.zeros(0)
    if n_bins is not None:
        edges = np.histogram(v, int(n_bins))[1]
        edges[-1] += 1
    else:
        w = float(bin_width)
        lo, hi = float(v.min()), float(v.max())
        low = lo - (lo % w)
        edges = np.arange(low, hi + 2 * w, w)
        if len(edges) == 1:
            edges = np.array([edges[0] - 0.5, edges[0] + 0.5])
    return np.digitize(v, edges).astype(np.int64), edges
