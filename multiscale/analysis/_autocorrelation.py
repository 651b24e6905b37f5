"""Global spatial autocorrelation: Moran's I and Geary's C (IBSI definitions).

Both run over all ordered pairs of different voxels with weights ``1 / d`` (``d`` the
Euclidean distance in mm between voxel centres). The pair sums are accumulated block by
block so that memory stays at ``block x N`` rather than ``N x N``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["morans_i", "gearys_c", "grid_autocorrelation"]

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


def grid_autocorrelation(values: np.ndarray, mask: np.ndarray, spacing) -> tuple[float, float]:
    """Moran's I and Geary's C of the voxels of ``mask`` on a regular grid, exactly, by FFT.

    On a grid the inverse-distance weight depends only on the offset between two voxels, so the
    pair sums are convolutions of the (deviation and mask) images with the kernel ``1 / d`` over
    all offsets. Memory is about eight times the mask's bounding box, time ``O(n log n)``; the
    result equals :func:`morans_i` / :func:`gearys_c` on the same voxels.

    Parameters
    ----------
    values : numpy.ndarray
        Image, any number of dims.
    mask : numpy.ndarray
        Bool mask of the voxels to use (their values must be finite).
    spacing : sequence of float
        Voxel size in mm along each dim.

    Returns
    -------
    tuple of float
        ``(morans_i, gearys_c)``; NaN for fewer than two voxels or constant values.

    Examples
    --------
    >>> import numpy as np
    >>> v = np.array([[1.0, 1.0, 0.0, 0.0]])
    >>> [round(x, 4) for x in grid_autocorrelation(v, v > -1, (1.0, 1.0))]
    [-0.0769, 0.8077]
    """
    from scipy import fft

    mask = np.asarray(mask, dtype=bool)
    n_vox = int(mask.sum())
    if n_vox < 2:
        return float("nan"), float("nan")
    idx = np.nonzero(mask)
    crop = tuple(slice(int(i.min()), int(i.max()) + 1) for i in idx)
    m = mask[crop]
    v = np.where(m, np.asarray(values, dtype=float)[crop], 0.0)
    x = v[m]
    if not np.all(np.isfinite(x)):
        raise ValueError("grid_autocorrelation: NaN values inside the mask; drop them from the mask first")
    d = np.where(m, v - x.mean(), 0.0)
    denom = float((d * d).sum())
    if denom == 0.0:
        return float("nan"), float("nan")
    shape = m.shape
    fshape = [fft.next_fast_len(2 * n - 1, real=True) for n in shape]
    grids = []
    for n, L, s in zip(shape, fshape, spacing):
        i = np.arange(L)
        off = np.where(i < n, i, i - L).astype(float)
        off[(i >= n) & (i <= L - n)] = np.nan  # offsets never reached
        grids.append(off * float(s))
    dist2 = np.zeros(fshape)
    for ax, g in enumerate(grids):
        sh = [1] * len(fshape)
        sh[ax] = -1
        dist2 = dist2 + (g**2).reshape(sh)
    with np.errstate(divide="ignore", invalid="ignore"):
        kernel = np.where(np.isfinite(dist2) & (dist2 > 0), 1.0 / np.sqrt(dist2), 0.0)
    kf = fft.rfftn(kernel, fshape)
    del kernel, dist2
    axes = tuple(range(len(shape)))
    sl = tuple(slice(0, n) for n in shape)
    km = fft.irfftn(fft.rfftn(m.astype(float), fshape) * kf, fshape, axes=axes)[sl]
    kd = fft.irfftn(fft.rfftn(d, fshape) * kf, fshape, axes=axes)[sl]
    w_total = float((km * m).sum())
    cross = float((kd * d).sum())
    sq = 2.0 * float((d * d * km).sum()) - 2.0 * cross
    moran = n_vox / w_total * cross / denom
    geary = (n_vox - 1) / (2.0 * w_total) * sq / denom
    return float(moran), float(geary)
