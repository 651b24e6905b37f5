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
    # min/max instead of compare-and-swap: no branches, so the row loops vectorise (same values for
    # finite input; NaN handling is not scipy's either way, see the module docstring)
    s = min(a, b)
    g = max(a, b)
    return min(s, c), min(g, max(s, c)), max(g, max(s, c))


@numba.njit(inline="always")
def _med3(a, b, c):
    return max(min(a, b), min(max(a, b), c))


@numba.njit(inline="always")
def _median_row(a0, a1, a2, lo, mi, hi, dst):
    """3x3 medians of one row from its three source rows (edges repeated): sort each column triple,
    then the median of (max of the lows, median of the middles, min of the highs). The interior runs
    without index clamps so that both loops vectorise."""
    nx = dst.size
    for x in range(nx):
        lo[x], mi[x], hi[x] = _sort3(a0[x], a1[x], a2[x])
    if nx == 1:
        dst[0] = mi[0]
        return
    dst[0] = _med3(max(lo[0], lo[1]), _med3(mi[0], mi[0], mi[1]), min(hi[0], hi[1]))
    for x in range(1, nx - 1):
        mx_lo = max(lo[x - 1], max(lo[x], lo[x + 1]))
        md_mi = _med3(mi[x - 1], mi[x], mi[x + 1])
        mn_hi = min(hi[x - 1], min(hi[x], hi[x + 1]))
        dst[x] = _med3(mx_lo, md_mi, mn_hi)
    e = nx - 1
    dst[e] = _med3(max(lo[e - 1], lo[e]), _med3(mi[e - 1], mi[e], mi[e]), min(hi[e - 1], hi[e]))


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
            _median_row(a[k, ya], a[k, y], a[k, yb], lo, mi, hi, out[k, y])


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
def _radix_kth(bits, r, hist, prefix, level):
    """The ``r``-th smallest (0-based) of the float32 values whose bit patterns are ``bits``, all >= +0.0 (NaN
    allowed: last, as in ``numpy.partition``), by radix selection on the bit patterns (monotone for
    non-negative floats): 12, 12 and 8 bits, each pass a histogram of the values that share the bits found so
    far; linear passes instead of a quickselect. The values share ``prefix`` in the digits before ``level``
    (0: none; 1: the top 12 bits), where the selection starts."""
    n = bits.size
    for lv in range(level, 3):
        shift = 20 if lv == 0 else (8 if lv == 1 else 0)
        width = 12 if lv < 2 else 8
        nb = 1 << width
        hist[:nb] = 0
        above = shift + width  # bits above this digit must equal the prefix found so far
        # every value adds 0 or 1 to its digit's count: no branch on the data (values near the order statistic
        # share the prefix about half the time, and a branch would mispredict on every other one)
        if above >= 32:
            for j in range(n):
                hist[(bits[j] >> shift) & (nb - 1)] += 1
        else:
            want = prefix >> above
            for j in range(n):
                u = bits[j]
                hist[(u >> shift) & (nb - 1)] += (u >> above) == want
        c = 0
        d = 0
        while c + hist[d] <= r:
            c += hist[d]
            d += 1
        r -= c
        prefix |= np.uint32(d) << shift
    return np.array([prefix], dtype=np.uint32).view(np.float32)[0]


@numba.njit(cache=True, nogil=True)
def _kth_pair_nonnegative(v, r, hist, cand):
    """The ``r``-th and ``(r + 1)``-th smallest (0-based; the second = the first when ``r`` is the last) of
    float32 values that are all >= 0 (-0.0 counts as +0.0; NaN last), as :func:`_radix_kth` and
    :func:`_next_order_statistic` give them, in two passes over ``v`` instead of four and without a copy of
    it: a histogram of the top 12 bits, then the values of the bucket that holds rank ``r`` copied to
    ``cand`` (and the smallest value of the later buckets kept), whose own selection is short (typically a
    few % of ``v``)."""
    raw = v.view(np.uint32)
    n = raw.size
    neg0 = np.uint32(0x80000000)
    zero = np.uint32(0)
    # four interleaved histograms, summed after: consecutive values of one bucket would otherwise wait on each
    # other's increments (measured: 6 % off the dense-image preprocessing)
    hist[:16384] = 0
    n4 = n - n % 4
    for j in range(0, n4, 4):  # (-0.0 has the sign bit alone: bucket 2048, and it counts in bucket 0)
        hist[(zero if raw[j] == neg0 else raw[j]) >> 20] += 1
        hist[4096 + ((zero if raw[j + 1] == neg0 else raw[j + 1]) >> 20)] += 1
        hist[8192 + ((zero if raw[j + 2] == neg0 else raw[j + 2]) >> 20)] += 1
        hist[12288 + ((zero if raw[j + 3] == neg0 else raw[j + 3]) >> 20)] += 1
    for j in range(n4, n):
        hist[(zero if raw[j] == neg0 else raw[j]) >> 20] += 1
    for b in range(4096):
        hist[b] += hist[4096 + b] + hist[8192 + b] + hist[12288 + b]
    c = 0
    d = 0
    while c + hist[d] <= r:
        c += hist[d]
        d += 1
    r1 = r - c
    ud = np.uint32(d)
    big = np.uint32(0xFFFFFFFF)
    nxt = big  # smallest bit pattern above bucket d (monotone: the smallest value there)
    cb = cand.view(np.uint32)
    nc = 0
    for j in range(n):
        u = zero if raw[j] == neg0 else raw[j]
        top = u >> 20
        cb[nc] = u
        nc += top == ud
        # u if it lies above the bucket, else all ones: integer arithmetic, not a branch on the data (about half
        # the values of a dense image lie above)
        nxt = min(nxt, u | (zero - np.uint32(top <= ud)))
    sub = cand[:nc]
    q0 = _radix_kth(cb[:nc], r1, hist, ud << 20, 1)  # all of them share the top 12 bits: start below
    if r1 + 1 < nc:
        q1 = _next_order_statistic(sub, q0, r1)
    elif nxt != big:
        q1 = np.array([nxt], dtype=np.uint32).view(np.float32)[0]
    else:
        q1 = q0
    return q0, q1


@numba.njit(cache=True, nogil=True)
def _next_order_statistic(v, q, r):
    """The ``(r + 1)``-th smallest of ``v`` given that ``q`` is the ``r``-th: ``q`` itself if more than
    ``r + 1`` values are <= ``q``, else the smallest value above ``q`` (one pass)."""
    n_le = 0
    nxt = np.float32(np.inf)
    for j in range(v.size):  # selects, not branches (see _radix_kth)
        x = v[j]
        n_le += x <= q
        nxt = min(nxt, x if x > q else np.float32(np.inf))
    if n_le > r + 1:
        return q
    return np.float32(nxt)


@numba.njit(cache=True, nogil=True)
def _sum_squares(v):
    """Sum of squares in float64 over 8 interleaved partial sums, in a fixed order (the same result on every
    machine). One running sum waits for each addition to finish: 33 us on 40,000 pixels, against 11 us."""
    p0 = p1 = p2 = p3 = p4 = p5 = p6 = p7 = 0.0
    n8 = v.size - v.size % 8
    for j in range(0, n8, 8):
        x0 = np.float64(v[j])
        x1 = np.float64(v[j + 1])
        x2 = np.float64(v[j + 2])
        x3 = np.float64(v[j + 3])
        x4 = np.float64(v[j + 4])
        x5 = np.float64(v[j + 5])
        x6 = np.float64(v[j + 6])
        x7 = np.float64(v[j + 7])
        p0 += x0 * x0
        p1 += x1 * x1
        p2 += x2 * x2
        p3 += x3 * x3
        p4 += x4 * x4
        p5 += x5 * x5
        p6 += x6 * x6
        p7 += x7 * x7
    for j in range(n8, v.size):
        x = np.float64(v[j])
        p0 += x * x
    return ((p0 + p1) + (p2 + p3)) + ((p4 + p5) + (p6 + p7))


@numba.njit(cache=True, nogil=True)
def _colocml_rows(a, dom_idx, quantile, median, out, sumsq, nnz, full):
    """Per image (``a``: n, nz, ny, nx): 3x3 median per plane (if ``median``), gather the domain, zero values
    below the quantile (exact order statistics; the common all-zero lower half is found by counting). ``sumsq``
    and ``nnz`` (if not empty) receive each row's sum of squares and number of non-zero values."""
    n, nz, ny, nx = a.shape
    m = dom_idx.size
    buf = np.empty((nz, ny, nx), dtype=np.float32)
    tmp = np.empty(m, dtype=np.float32)
    cand = np.empty(m, dtype=np.float32)
    lo = np.empty(nx, dtype=np.float32)
    mi = np.empty(nx, dtype=np.float32)
    hi = np.empty(nx, dtype=np.float32)
    hist = np.empty(16384, dtype=np.int32)
    h = (m - 1) * quantile
    k0 = int(np.floor(h))
    frac = np.float32(h - k0)
    for k in range(n):
        if median:
            for z in range(nz):
                for y in range(ny):
                    ya = y - 1 if y > 0 else 0
                    yb = y + 1 if y < ny - 1 else ny - 1
                    _median_row(a[k, z, ya], a[k, z, y], a[k, z, yb], lo, mi, hi, buf[z, y])
        else:
            buf[:] = a[k]
        flat = buf.reshape(nz * ny * nx)
        n_neg = 0
        n_zero = 0
        if full:  # every pixel: a straight copy the compiler vectorises, no index gather
            for j in range(m):
                v = flat[j]
                out[k, j] = v
                n_neg += v < 0
                n_zero += v == 0
        else:
            for j in range(m):
                v = flat[dom_idx[j]]
                out[k, j] = v
                n_neg += v < 0
                n_zero += v == 0
        # (when both order statistics around the quantile are 0, nothing lies below it)
        if quantile > 0 and m > 0 and not (n_neg == 0 and n_zero >= k0 + 2):
            if n_neg == 0:
                q, q_next = _kth_pair_nonnegative(out[k], k0, hist, cand)
                if frac > 0 and k0 + 1 < m:
                    q = q + frac * (q_next - q)
            else:  # negative values (not ion counts): numpy's selection
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
            ob = out[k].view(np.uint32)
            kept = 0
            for j in range(m):  # a mask, not a branch: half the pixels of a dense image go each way
                ob[j] &= np.uint32(0) - np.uint32(not (out[k, j] < q))
                kept += (ob[j] << np.uint32(1)) != 0  # non-zero after it (-0.0 is a zero, NaN is not)
            n_zero = m - kept
        if nnz.size:  # which rows are scored sparsely
            nnz[k] = m - n_zero
        if sumsq.size:  # while the row is in cache: its sum of squares in float64 (cosine norms)
            sumsq[k] = _sum_squares(out[k])


def colocml_rows(a: np.ndarray, dom_idx: np.ndarray, quantile: float = 0.5, median: bool = True,
                 out: np.ndarray | None = None, sumsq: np.ndarray | None = None,
                 nnz: np.ndarray | None = None) -> np.ndarray:
    """ColocML preprocessing of ``(n, ny, nx)`` or ``(n, nz, ny, nx)`` images, returning the domain pixels.

    3x3 median per 2-D plane (edges repeated), then values below the ``quantile`` (numpy's linear
    interpolation over the domain pixels ``dom_idx``, flat indices of one image) set to 0; one image at a
    time, in cache. Returns float32 ``(n, len(dom_idx))``; ``sumsq`` (float64 ``(n,)``) and ``nnz`` (int64
    ``(n,)``), if given, receive each returned row's sum of squares and number of non-zero values.

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
        n_pix = int(np.prod(a.shape[1:]))
        full = idx.size == n_pix and bool(np.array_equal(idx, np.arange(n_pix)))
        _colocml_rows(a, idx, float(quantile), bool(median), out,
                      np.zeros(0, np.float64) if sumsq is None else sumsq,
                      np.zeros(0, np.int64) if nnz is None else nnz, full)
    return out


@numba.njit(cache=True, nogil=True, fastmath={"contract"}, inline="always")
def _row_products(fr, idx, q0, q1, r, rp, acc):
    """``acc`` = the products of row ``fr``'s listed pixels ``idx[q0:q1]`` with their rows of ``rp``; returns the
    product with ``r``. Four pixels per step: ``acc`` is read and written once per four rows of ``rp``, not
    once per row (the loop is bound by those loads and stores, not by the multiplications: 10-15 % faster)."""
    s_n = acc.size
    for s in range(s_n):
        acc[s] = 0
    a0 = np.float32(0)
    q = q0
    while q + 3 < q1:
        pa = idx[q]
        pb = idx[q + 1]
        pc = idx[q + 2]
        pd = idx[q + 3]
        va = fr[pa]
        vb = fr[pb]
        vc = fr[pc]
        vd = fr[pd]
        a0 += va * r[pa]
        a0 += vb * r[pb]
        a0 += vc * r[pc]
        a0 += vd * r[pd]
        ra = rp[pa]
        rb = rp[pb]
        rc = rp[pc]
        rd = rp[pd]
        for s in range(s_n):
            acc[s] += (va * ra[s] + vb * rb[s]) + (vc * rc[s] + vd * rd[s])
        q += 4
    while q < q1:
        p = idx[q]
        v = fr[p]
        a0 += v * r[p]
        row = rp[p]
        for s in range(s_n):
            acc[s] += v * row[s]
        q += 1
    return a0


@numba.njit(cache=True, nogil=True, fastmath={"contract"})
def sparse_scores(f, ks, r, rp, obs, null, block):
    """``obs[i] += f[ks[i]] . r`` and ``null[i] += f[ks[i]] @ rp`` over the non-zero values of each row only.

    ``f`` (n, m) float32 rows, ``r`` (m,) and ``rp`` (m, s) C-ordered float32; ``obs`` and ``null`` float64,
    zero on entry. Pixels are taken ``block`` at a time (that slab of ``rp``, 4,096 x 100 values, stays in
    cache while every row passes over it); within a slab the non-zero pixels of four rows are listed in one
    loop (no branch on the data; four streams from memory at once, where one row's 16 KB segment at a time
    left the loop waiting on memory: 0.059 -> 0.036 s per 1,700 rows of workload A), then each listed pixel adds its value times its ``rp`` row
    (a vectorised loop over the shuffles). Sums run in float32 within a slab and float64 across slabs. NaN
    values count as non-zero, so they propagate as in a matrix product."""
    m = f.shape[1]
    s_n = rp.shape[1]
    n = ks.size
    acc = np.empty(s_n, np.float32)
    idx = np.empty(4 * block, np.uint64)  # unsigned: no negative-index check on the reads it indexes (4 % faster)
    cnt = np.empty(4, np.int64)
    for p0 in range(0, m, block):
        p1 = min(m, p0 + block)
        span = p1 - p0
        for i0 in range(0, n, 4):
            g = min(4, n - i0)
            # a last group of fewer than four rows lists its last row again in the spare slots (not scored)
            fa = f[ks[i0]]
            fb = f[ks[min(i0 + 1, n - 1)]]
            fc = f[ks[min(i0 + 2, n - 1)]]
            fd = f[ks[min(i0 + 3, n - 1)]]
            ca = 0
            cb = span
            cc = 2 * span
            cd = 3 * span
            for p in range(p0, p1):
                up = np.uint64(p)
                idx[ca] = up
                ca += fa[p] != 0
                idx[cb] = up
                cb += fb[p] != 0
                idx[cc] = up
                cc += fc[p] != 0
                idx[cd] = up
                cd += fd[p] != 0
            cnt[0] = ca
            cnt[1] = cb - span
            cnt[2] = cc - 2 * span
            cnt[3] = cd - 3 * span
            for k in range(g):
                if cnt[k] == 0:
                    continue
                i = i0 + k
                obs[i] += _row_products(f[ks[i]], idx, k * span, k * span + cnt[k], r, rp, acc)
                ni = null[i]
                for s in range(s_n):
                    ni[s] += acc[s]
