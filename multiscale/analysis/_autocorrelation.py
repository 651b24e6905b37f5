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


def _padded_rfftn(a: np.ndarray, full: list[int]) -> np.ndarray:
    """``scipy.fft.rfftn(a, full)`` for a zero-padded ``a``, skipping the transforms of all-zero lines.

    The last axis goes first (only ``a``'s own lines), then each leading axis from the back, so every
    1-D transform runs over the lines that can be non-zero: about half the work of ``rfftn``.
    """
    from scipy import fft

    out = fft.rfft(a, n=full[-1], axis=-1)
    for ax in range(a.ndim - 2, -1, -1):
        out = fft.fft(out, n=full[ax], axis=ax)
    return out


def _fourier_pair_sums(m: np.ndarray, d: np.ndarray, spacing) -> tuple[float, float, float]:
    """``sum M (K*M)``, ``sum d (K*d)`` and ``sum d^2 (K*M)`` for the inverse-distance kernel ``K``.

    Circular convolution on a grid of ``L = 2h`` (``h >= n``) per axis has no wrap-around for offsets
    ``|o| <= n - 1``. ``K`` is even in every axis, so its DFT is real and equals the type-1 DCT of its
    first octant (offsets ``0..h``, zero beyond ``n - 1``); the sums then follow from Parseval's
    theorem on the half spectra of ``rfftn``, without inverse transforms.
    """
    from scipy import fft

    shape = m.shape
    half = [fft.next_fast_len(n, real=True) for n in shape]
    full = [2 * h for h in half]
    dist2 = np.zeros([h + 1 for h in half])
    for ax, (n, h, sp) in enumerate(zip(shape, half, spacing)):
        off = np.arange(h + 1, dtype=float) * float(sp)
        off[n:] = np.nan  # offsets never reached
        sh = [1] * len(shape)
        sh[ax] = -1
        dist2 = dist2 + (off**2).reshape(sh)
    with np.errstate(divide="ignore", invalid="ignore"):
        octant = np.where(np.isfinite(dist2) & (dist2 > 0), 1.0 / np.sqrt(dist2), 0.0)
    del dist2
    k_half = fft.dctn(octant, type=1)  # the DFT of the even kernel at frequencies 0..h per axis
    del octant
    # rfftn layout: full frequencies 0..L-1 on the leading axes (fold f -> min(f, L - f)), 0..h on the last
    for ax in range(len(shape) - 1):
        f = np.arange(full[ax])
        k_half = np.take(k_half, np.minimum(f, full[ax] - f), axis=ax)
    weight = np.full(half[-1] + 1, 2.0)
    weight[0] = weight[-1] = 1.0  # the zero and Nyquist bins appear once in the full spectrum
    kw = k_half * weight / float(np.prod(full))
    del k_half
    fm = _padded_rfftn(m.astype(float), full)
    kfm = kw * fm
    w_total = float(np.vdot(fm, kfm).real)  # sum kw |FM|^2
    del fm
    fd = _padded_rfftn(d, full)
    cross = float(np.vdot(fd, kw * fd).real)  # sum kw |FD|^2
    del fd
    fd2 = _padded_rfftn(d * d, full)
    sq = float(np.vdot(fd2, kfm).real)  # sum kw Re(conj(FD2) FM)
    return w_total, cross, sq


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
    w_total, cross, sq_dev_km = _fourier_pair_sums(m, d, spacing)
    sq = 2.0 * sq_dev_km - 2.0 * cross
    moran = n_vox / w_total * cross / denom
    geary = (n_vox - 1) / (2.0 * w_total) * sq / denom
    return float(moran), float(geary)
