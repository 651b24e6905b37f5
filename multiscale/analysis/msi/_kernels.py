"""Private: compiled inner loops of MSI colocalisation (numba), cross-checked against scipy in the tests.

``median3x3`` equals ``scipy.ndimage.median_filter(a, size=(1, 3, 3))`` (mode "reflect", which for a
3-wide window repeats the edge pixel: the same as "nearest") bit for bit on finite input; it uses the exact
median-of-nine network: sort each column triple, then the median of (max of the lows, median of the
middles, min of the highs).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(inline="always")
def _sort3(a, b, c):
    if a > b:
        a, b = b, a
    if b > c:
        b, c = c, b
    if a > b:
        a, b = b, a
    return a, b, c


@numba.njit(inline="always")
def _med3(a, b, c):
    return max(min(a, b), min(max(a, b), c))


@numba.njit(cache=True, nogil=True)
def _median3x3_into(a, out):
    n, ny, nx = a.shape
    lo = np.empty(nx, dtype=a.dtype)
    mi = np.empty(nx, dtype=a.dtype)
    hi = np.empty(nx, dtype=a.dtype)
    for k in range(n):
        for y in range(ny):
            ya = y - 1 if y > 0 else 0
            yb = y + 1 if y < ny - 1 else ny - 1
            for x in range(nx):
                lo[x], mi[x], hi[x] = _sort3(a[k, ya, x], a[k, y, x], a[k, yb, x])
            for x in range(nx):
                xa = x - 1 if x > 0 else 0
                xb = x + 1 if x < nx - 1 else nx - 1
                mx_lo = max(lo[xa], max(lo[x], lo[xb]))
                md_mi = _med3(mi[xa], mi[x], mi[xb])
                mn_hi = min(hi[xa], min(hi[x], hi[xb]))
                out[k, y, x] = _med3(mx_lo, md_mi, mn_hi)


def median3x3(a: np.ndarray) -> np.ndarray:
    """3x3 median filter of every 2-D plane of ``a`` (shape ``(n, ny, nx)``), edges repeated.

    Examples
    --------
    >>> median3x3(np.array([[[0.0, 0, 0], [0, 9, 0], [0, 0, 0]]], dtype=np.float32))[0, 1, 1]
    np.float32(0.0)
    """
    a = np.ascontiguousarray(a)
    out = np.empty_like(a)
    if a.size:
        _median3x3_into(a, out)
    return out


@numba.njit(cache=True, nogil=True)
def _colocml_rows(a, dom_idx, quantile, median, out):
    """Per image (``a``: n, nz, ny, nx): 3x3 median per plane (if ``median``), gather the domain, zero values
    below the quantile (exact order statistics; the common all-zero lower half is found by counting)."""
    n, nz, ny, nx = a.shape
    m = dom_idx.size
    buf = np.empty((nz, ny, nx), dtype=np.float32)
    tmp = np.empty(m, dtype=np.float32)
    lo = np.empty(nx, dtype=np.float32)
    mi = np.empty(nx, dtype=np.float32)
    hi = np.empty(nx, dtype=np.float32)
    h = (m - 1) * quantile
    k0 = int(np.floor(h))
    frac = np.float32(h - k0)
    for k in range(n):
        if median:
            for z in range(nz):
                for y in range(ny):
                    ya = y - 1 if y > 0 else 0
                    yb = y + 1 if y < ny - 1 else ny - 1
                    for x in range(nx):
                        lo[x], mi[x], hi[x] = _sort3(a[k, z, ya, x], a[k, z, y, x], a[k, z, yb, x])
                    for x in range(nx):
                        xa = x - 1 if x > 0 else 0
                        xb = x + 1 if x < nx - 1 else nx - 1
                        mx_lo = max(lo[xa], max(lo[x], lo[xb]))
                        md_mi = _med3(mi[xa], mi[x], mi[xb])
                        mn_hi = min(hi[xa], min(hi[x], hi[xb]))
                        buf[z, y, x] = _med3(mx_lo, md_mi, mn_hi)
        else:
            buf[:] = a[k]
        flat = buf.reshape(nz * ny * nx)
        n_neg = 0
        n_zero = 0
        for j in range(m):
            v = flat[dom_idx[j]]
            out[k, j] = v
            if v < 0:
                n_neg += 1
            elif v == 0:
                n_zero += 1
        if quantile > 0 and m > 0:
            if n_neg == 0 and n_zero >= k0 + 2:
                continue  # both order statistics around the quantile are 0: nothing lies below it
            for j in range(m):
                tmp[j] = out[k, j]
            part = np.partition(tmp, k0)
            q = part[k0]
            if frac > 0 and k0 + 1 < m:
                nxt = part[k0 + 1]
                for j in range(k0 + 1, m):
                    if part[j] < nxt:
                        nxt = part[j]
                q = q + frac * (nxt - q)
            for j in range(m):
                if out[k, j] < q:
                    out[k, j] = 0.0


def colocml_rows(a: np.ndarray, dom_idx: np.ndarray, quantile: float = 0.5, median: bool = True,
                 out: np.ndarray | None = None) -> np.ndarray:
    """ColocML preprocessing of ``(n, ny, nx)`` or ``(n, nz, ny, nx)`` images, returning the domain pixels.

    3x3 median per 2-D plane (edges repeated), then values below the ``quantile`` (numpy's linear
    interpolation over the domain pixels ``dom_idx``, flat indices of one image) set to 0; one image at a
    time, in cache. Returns float32 ``(n, len(dom_idx))``.

    Examples
    --------
    >>> colocml_rows(np.arange(9, dtype=np.float32).reshape(1, 3, 3), np.arange(9), median=False)[0].tolist()
    [0.0, 0.0, 0.0, 0.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    """
    a = np.ascontiguousarray(a, dtype=np.float32)
    if a.ndim == 3:
        a = a[:, None]
    idx = np.ascontiguousarray(dom_idx, dtype=np.int64)
    if out is None:
        out = np.empty((a.shape[0], idx.size), dtype=np.float32)
    if a.shape[0]:
        _colocml_rows(a, idx, float(quantile), bool(median), out)
    return out
