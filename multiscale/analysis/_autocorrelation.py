"""Global spatial autocorrelation: Moran's I and Geary's C (IBSI definitions).

Both run over all ordered pairs of different voxels with weights ``1 / d`` (``d`` the
Euclidean distance in mm between voxel centres). The pair sums are accumulated block by
block so that memory stays at ``block x N`` rather than ``N x N``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["morans_i", "gearys_c"]

_BLOCK_ELEMENTS = 4_000_000  # about 32 MB of float64 per temporary


def _check(values: np.ndarray, positions_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(values, dtype=float).reshape(-1)
    p = np.asarray(positions_mm, dtype=float)
    if p.ndim == 1:
        p = p[:, None]
    if p.ndim != 2 or p.shape[0] != v.size:
        raise ValueError(
            f"positions_mm must have shape (N, ndim) with N = {v.size} values, got {p.shape}; "
            "give one row of mm coordinates per value"
        )
    if not (np.all(np.isfinite(v)) and np.all(np.isfinite(p))):
        raise ValueError("values and positions_mm must be finite; drop NaN voxels first")
    return v, p


def _pair_sums(v: np.ndarray, p: np.ndarray) -> tuple[float, float, float]:
    """Return (W, sum w_ij (x_i-m)(x_j-m), sum w_ij (x_i-x_j)^2) over ordered pairs i != j."""
    n = v.size
    d = v - v.mean()
    step = max(1, _BLOCK_ELEMENTS // max(n, 1))
    w_total = 0.0
    cross = 0.0
    sq = 0.0
    for start in range(0, n, step):
        stop = min(n, start + step)
        diff = p[start:stop, None, :] - p[None, :, :]
        dist = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
        rows = np.arange(start, stop)
        dist[rows - start, rows] = np.inf  # exclude i == j
        w = 1.0 / dist
        w_total += float(w.sum())
        cross += float(d[start:stop] @ (w @ d))
        dv = v[start:stop, None] - v[None, :]
        sq += float(np.einsum("ij,ij->", w, dv * dv))
    return w_total, cross, sq


def morans_i(values: np.ndarray, positions_mm: np.ndarray) -> float:
    """Moran's I with inverse-distance weights (IBSI morph_moran_i, id N365).

    ``I = N / W * sum_{i!=j} w_ij (x_i - m)(x_j - m) / sum_i (x_i - m)^2``, ``w_ij = 1 / d_ij``.

    Parameters
    ----------
    values : numpy.ndarray
        Intensities, shape ``(N,)``.
    positions_mm : numpy.ndarray
        Voxel-centre positions in mm, shape ``(N, ndim)``.

    Returns
    -------
    float
        Moran's I; NaN when fewer than two values or constant values.

    Examples
    --------
    >>> import numpy as np
    >>> pos = np.array([[0.0], [1.0], [2.0], [3.0]])
    >>> round(morans_i(np.array([1.0, 1.0, 0.0, 0.0]), pos), 4)
    -0.0769
    """
    v, p = _check(values, positions_mm)
    n = v.size
    if n < 2:
        return float("nan")
    denom = float(((v - v.mean()) ** 2).sum())
    if denom == 0.0:
        return float("nan")
    w, cross, _ = _pair_sums(v, p)
    return float(n / w * cross / denom)


def gearys_c(values: np.ndarray, positions_mm: np.ndarray) -> float:
    """Geary's C with inverse-distance weights (IBSI morph_geary_c, id NPT7).

    ``C = (N - 1) / (2 W) * sum_{i!=j} w_ij (x_i - x_j)^2 / sum_i (x_i - m)^2``.

    Parameters
    ----------
    values : numpy.ndarray
        Intensities, shape ``(N,)``.
    positions_mm : numpy.ndarray
        Voxel-centre positions in mm, shape ``(N, ndim)``.

    Returns
    -------
    float
        Geary's C; NaN when fewer than two values or constant values.

    Examples
    --------
    >>> import numpy as np
    >>> pos = np.array([[0.0], [1.0], [2.0], [3.0]])
    >>> round(gearys_c(np.array([1.0, 1.0, 0.0, 0.0]), pos), 4)
    0.8077
    """
    v, p = _check(values, positions_mm)
    n = v.size
    if n < 2:
        return float("nan")
    denom = float(((v - v.mean()) ** 2).sum())
    if denom == 0.0:
        return float("nan")
    w, _, sq = _pair_sums(v, p)
    return float((n - 1) / (2.0 * w) * sq / denom)
