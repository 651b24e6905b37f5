"""Intensity histogram features (IBSI chapter 3.4, ``ih_*``) of the discretised intensities.

Like :mod:`.intensity`, written for many groups at once (one per region).
"""

from __future__ import annotations

import numpy as np

from ._rows import feature_row
from .intensity import grouped_statistics

__all__ = ["FAMILY", "FEATURES", "histogram_features", "grouped_histogram_features"]

FAMILY = "ih"

#: (tag, IBSI id, name)
FEATURES: tuple[tuple[str, str, str], ...] = (
    ("ih_mean", "X6K6", "Mean discretised intensity"),
    ("ih_var", "CH89", "Discretised intensity variance"),
    ("ih_skew", "88K1", "Discretised intensity skewness"),
    ("ih_kurt", "C3I7", "(Excess) discretised intensity kurtosis"),
    ("ih_median", "WIFQ", "Median discretised intensity"),
    ("ih_min", "1PR8", "Minimum discretised intensity"),
    ("ih_p10", "1PR8", "10th discretised intensity percentile"),
    ("ih_p90", "GPMT", "90th discretised intensity percentile"),
    ("ih_max", "3NCY", "Maximum discretised intensity"),
    ("ih_mode", "AMMC", "Intensity histogram mode"),
    ("ih_iqr", "WR0O", "Discretised intensity interquartile range"),
    ("ih_range", "5Z3W", "Discretised intensity range"),
    ("ih_mad", "D2ZX", "Intensity histogram mean absolute deviation"),
    ("ih_rmad", "WRZB", "Intensity histogram robust mean absolute deviation"),
    ("ih_medad", "4RNL", "Intensity histogram median absolute deviation"),
    ("ih_cov", "CWYJ", "Intensity histogram coefficient of variation"),
    ("ih_qcod", "SLWD", "Intensity histogram quartile coefficient of dispersion"),
    ("ih_entropy", "TLU2", "Discretised intensity entropy"),
    ("ih_uniformity", "BJ5W", "Discretised intensity uniformity"),
    ("ih_max_grad", "12CE", "Maximum histogram gradient"),
    ("ih_max_grad_g", "8E6O", "Maximum histogram gradient intensity"),
    ("ih_min_grad", "VQB3", "Minimum histogram gradient"),
    ("ih_min_grad_g", "RHQZ", "Minimum histogram gradient intensity"),
)


def grouped_histogram_features(q: np.ndarray, groups: np.ndarray | None, n_groups: int,
                               n_levels: np.ndarray | int) -> dict[str, np.ndarray]:
    """IBSI intensity-histogram features for many groups at once.

    Parameters
    ----------
    q : numpy.ndarray
        1-D grey levels (1..Ng) of the intensity-mask voxels.
    groups : numpy.ndarray or None
        1-D int group index per voxel; None: one group (``n_groups`` 1, no per-voxel group look-ups).
    n_groups : int
        Number of groups.
    n_levels : int or numpy.ndarray
        ``Ng`` (one for all groups or one per group); the histogram spans levels 1..Ng.

    Returns
    -------
    dict
        Short name (tag without ``ih_``) to an array of ``n_groups`` values.

    Examples
    --------
    >>> import numpy as np
    >>> f = grouped_histogram_features(np.array([1, 1, 2, 4]), np.zeros(4, int), 1, 4)
    >>> f["mode"].tolist(), f["entropy"].tolist()
    ([1.0], [1.5])
    """
    q = np.asarray(q, dtype=np.int64).ravel()
    g = None if groups is None else np.asarray(groups, dtype=np.int64).ravel()
    ng = np.broadcast_to(np.asarray(n_levels, dtype=np.int64), (n_groups,)).copy()
    if q.size:
        top = np.zeros(n_groups, dtype=np.int64)
        if g is None:
            top[:] = q.max()
        else:
            np.maximum.at(top, g, q)
        ng = np.maximum(ng, top)
    ng = np.maximum(ng, 1)
    out = grouped_statistics(q.astype(float), g, n_groups)
    gmax = int(ng.max()) if n_groups else 1
    index = q - 1 if g is None else g * gmax + (q - 1)
    hist = np.bincount(index, minlength=n_groups * gmax).reshape(n_groups, gmax).astype(float)
    n = hist.sum(axis=1)
    levels = np.arange(1, gmax + 1, dtype=float)
    valid = levels[None, :] <= ng[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        p = hist / np.where(n > 0, n, 1)[:, None]
        plogp = np.where(p > 0, p * np.log2(np.where(p > 0, p, 1)), 0.0)
    entropy = -plogp.sum(axis=1)
    uniformity = (p * p).sum(axis=1)

    hmax = hist.max(axis=1, initial=0)
    dist = np.where((hist == hmax[:, None]) & valid, np.abs(levels[None, :] - out["mean"][:, None]), np.inf)
    mode = levels[np.argmin(dist, axis=1)]

    grad = np.zeros_like(hist)
    if gmax > 1:
        grad[:, 1:-1] = (hist[:, 2:] - hist[:, :-2]) / 2.0
        grad[:, 0] = hist[:, 1] - hist[:, 0]
        rows = np.arange(n_groups)
        last = ng - 1
        multi = ng > 1
        grad[rows[multi], last[multi]] = hist[rows[multi], last[multi]] - hist[rows[multi], last[multi] - 1]
        grad[rows[~multi], 0] = 0.0
    gmask_hi = np.where(valid, grad, -np.inf)
    gmask_lo = np.where(valid, grad, np.inf)
    imax = np.argmax(gmask_hi, axis=1)
    imin = np.argmin(gmask_lo, axis=1)
    rows = np.arange(n_groups)
    out.update(
        mode=mode,
        entropy=entropy,
        uniformity=uniformity,
        max_grad=grad[rows, imax],
        max_grad_g=levels[imax],
        min_grad=grad[rows, imin],
        min_grad_g=levels[imin],
    )
    empty = n == 0
    for key in ("mode", "entropy", "uniformity", "max_grad", "max_grad_g", "min_grad", "min_grad_g"):
        out[key] = np.where(empty, np.nan, out[key])
    return out


def histogram_features(q: np.ndarray, n_levels: int) -> list[dict]:
    """IBSI intensity-histogram features of discretised intensities.

    Parameters
    ----------
    q : numpy.ndarray
        Grey levels 1..Ng of the intensity-mask voxels.
    n_levels : int
        ``Ng``.

    Returns
    -------
    list of dict
        One row per feature; NaN values for an empty ROI.

    Examples
    --------
    >>> import numpy as np
    >>> rows = histogram_features(np.array([1, 1, 2, 4]), 4)
    >>> {r["tag"]: r["value"] for r in rows}["ih_uniformity"]
    0.375
    """
    q = np.asarray(q).ravel()
    f = grouped_histogram_features(q, None, 1, n_levels)
    return [feature_row(tag, fid, FAMILY, name, f[tag[3:]][0]) for tag, fid, name in FEATURES]
