"""Voxel-map kernels of the run, zone, neighbourhood and dependence families (GLRLM, GLSZM, GLDZM, NGTDM, NGLDM).

A map evaluates one small kernel box (``5^3 = 125`` voxels for radius 2) per ROI voxel, and every
image voxel lies in ``125`` boxes. The generic kernel (``maps._kernel_block``) therefore repeats the
same neighbour comparisons ``125`` times per voxel: 26 look-ups per box voxel for zones,
neighbourhoods and dependences, a walk along 13 lines per box for runs. These kernels do that
per-voxel work once per dask chunk instead and keep only what depends on the box:

* **Neighbour bits.** For each voxel of the chunk, one integer holds a bit per neighbour offset:
  "same grey level" (zones), "within ``alpha``" (NGLDM dependence) or "same level as the voxel one
  step back" (runs). Which neighbours of a box position lie inside the box is also a bit mask, one
  per box position, so a box voxel's in-box matches are ``bits & in_box`` (a popcount for NGLDM; the
  set bits alone are visited in the zone flood fill).
* **Forward run lengths.** For runs, each voxel stores the length of its run forward along each
  direction; a run of the box starts at a box voxel whose predecessor is outside the box or of
  another level, and its length is that run length cut at the box face. One step per (voxel,
  direction), no branch on the data.
* **Zones from planes.** Boxes along a row of centres share all but one yz plane: each plane's
  zones and the links between neighbouring planes are found once per row, a box's zones are the
  union-find classes of its planes' zones.
* **Neighbourhood sums.** For NGTDM each voxel stores the sum and count of its in-plane neighbours
  for every way the box can clip them; a box voxel adds 2-3 of them instead of reading 26 voxels
  (the same terms in the same order as the generic kernel: bit-identical).
* **Features from counts.** The matrix is filled as a list of its non-zero cells; the 17 IBSI
  features come from integer sums (marginals, moments, sum of squares) plus, per cell, table
  look-ups (``1/g^2``, ``c^2``, ``c log2 c``): no division or logarithm per cell, and the cells are
  zeroed as they are read, so the work arrays are reused without clearing. This is a copy of
  ``_aggregate.count_matrix_features``'s formulas (cross-checked against it in the tests) rather than
  a call to it: that function scans the whole ``levels x columns`` matrix (``125`` columns for zone
  sizes) for every voxel of a map.

The matrices counted are the ones the generic kernel counts (exact integers); the features agree
with ``count_matrix_features`` to rounding (sums are taken in another order; variances from exact
integer moments), i.e. to ~1e-15 relative.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit

from multiscale.analysis.texture import ngtdm

#: neighbour offsets a bit mask can hold (the kernels fall back to the generic one beyond)
MAX_BITS = 32
_DEBRUIJN = np.array([0, 1, 28, 2, 29, 14, 24, 3, 30, 22, 20, 15, 25, 17, 4, 8,
                      31, 27, 13, 23, 21, 19, 16, 7, 26, 12, 18, 6, 11, 5, 10, 9], dtype=np.int64)


# ---------------------------------------------------------------------------------------------
# geometry of the kernel box (numpy, once per box shape and offsets)
# ---------------------------------------------------------------------------------------------


def cached_by_box(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Cache a box-geometry table by its ``(box shape, offsets)`` arguments.

    Every chunk of a map (and every map with the same kernel) asks for the same tables; built in
    Python they cost milliseconds per chunk, with the GIL held. The cached arrays are shared: callers
    must not write to them.
    """
    cache: dict[Any, Any] = {}

    @functools.wraps(fn)
    def wrapper(box: tuple[int, ...], offsets: np.ndarray) -> Any:
        arr = np.ascontiguousarray(offsets, dtype=np.int64)
        key = (tuple(int(n) for n in box), arr.shape, arr.tobytes())
        hit = cache.get(key)
        if hit is None:
            hit = cache.setdefault(key, fn(tuple(int(n) for n in box), arr))
        return hit

    return wrapper


def box_flat_offsets(box: tuple[int, int, int], shape: tuple[int, ...]) -> np.ndarray:
    """Flat index in an array of ``shape`` of each box position, relative to the box's first voxel."""
    a, b, c = np.meshgrid(*(np.arange(n) for n in box), indexing="ij")
    return ((a * shape[1] + b) * shape[2] + c).ravel().astype(np.int64)


@cached_by_box
def in_box_bits(box: tuple[int, int, int], offsets: np.ndarray) -> np.ndarray:
    """Per box position, a bit per offset whose neighbour lies inside the box."""
    pos = np.stack(np.unravel_index(np.arange(int(np.prod(box))), box), axis=1)
    bits = np.zeros(len(pos), dtype=np.int64)
    for m, o in enumerate(offsets):
        nb = pos + o
        ok = np.all((nb >= 0) & (nb < np.asarray(box)), axis=1)
        bits[ok] |= 1 << m
    return bits


@cached_by_box
def box_steps(box: tuple[int, int, int], offsets: np.ndarray) -> np.ndarray:
    """Flat box-index step of each offset (valid where :func:`in_box_bits` has its bit)."""
    return ((offsets[:, 0] * box[1] + offsets[:, 1]) * box[2] + offsets[:, 2]).astype(np.int64)


@cached_by_box
def exit_lengths(box: tuple[int, int, int], offsets: np.ndarray) -> np.ndarray:
    """``(positions, offsets)``: voxels from each box position forward along each offset inside the box."""
    pos = np.stack(np.unravel_index(np.arange(int(np.prod(box))), box), axis=1)
    out = np.zeros((len(pos), len(offsets)), dtype=np.int64)
    for m, o in enumerate(offsets):
        p = pos.copy()
        inside = np.ones(len(pos), dtype=bool)
        while inside.any():
            out[inside, m] += 1
            p = p + o
            inside &= np.all((p >= 0) & (p < np.asarray(box)), axis=1)
    return out


# ---------------------------------------------------------------------------------------------
# per-chunk voxel tables
# ---------------------------------------------------------------------------------------------


@njit(nogil=True, cache=True)
def neighbour_bits(q, offsets, alpha, same):
    """Per voxel of ``q`` (flat), a bit per offset: the neighbour is in ``q`` and matches the voxel.

    ``same``: the neighbour has the voxel's level (zones); else it has a level within ``alpha`` of it
    (NGLDM dependence). Voxels of level 0 (outside the kernel's reach) match nothing.
    """
    nz, ny, nx = q.shape
    out = np.zeros(nz * ny * nx, dtype=np.int64)
    n_off = offsets.shape[0]
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                g = q[z, y, x]
                if g <= 0:
                    continue
                bits = 0
                for m in range(n_off):
                    a = z + offsets[m, 0]
                    b = y + offsets[m, 1]
                    c = x + offsets[m, 2]
                    if a < 0 or a >= nz or b < 0 or b >= ny or c < 0 or c >= nx:
                        continue
                    h = q[a, b, c]
                    if h <= 0:
                        continue
                    if (same and h == g) or (not same and abs(h - g) <= alpha):
                        bits |= 1 << m
                out[(z * ny + y) * nx + x] = bits
    return out


@njit(nogil=True, cache=True)
def run_tables(q, offsets, cap):
    """Forward run lengths (capped at ``cap``) and "same level one step back" bits, per voxel and direction.

    ``runs[p, m]``: consecutive voxels of ``p``'s level from ``p`` forward along ``offsets[m]``;
    bit ``m`` of ``back[p]``: the voxel one step back along ``offsets[m]`` has ``p``'s level. Every
    offset must step forward in flat (z, y, x) order, so a reverse sweep sees the next voxel's run first.
    """
    nz, ny, nx = q.shape
    n_off = offsets.shape[0]
    runs = np.zeros((nz * ny * nx, n_off), dtype=np.uint8)
    back = np.zeros(nz * ny * nx, dtype=np.int64)
    for z in range(nz - 1, -1, -1):
        for y in range(ny - 1, -1, -1):
            for x in range(nx - 1, -1, -1):
                g = q[z, y, x]
                if g <= 0:
                    continue
                p = (z * ny + y) * nx + x
                for m in range(n_off):
                    a = z + offsets[m, 0]
                    b = y + offsets[m, 1]
                    c = x + offsets[m, 2]
                    run = 1
                    if 0 <= a < nz and 0 <= b < ny and 0 <= c < nx and q[a, b, c] == g:
                        run = min(int(runs[(a * ny + b) * nx + c, m]) + 1, cap)
                        back[(a * ny + b) * nx + c] |= 1 << m
                    runs[p, m] = run
    return runs, back


# ---------------------------------------------------------------------------------------------
# features of a count matrix given as its non-zero cells
# ---------------------------------------------------------------------------------------------


@njit(nogil=True, cache=True)
def inverse_squares(n):
    """``1 / k^2`` for ``k = 1..n`` (index ``k - 1``)."""
    out = np.empty(n)
    for k in range(n):
        out[k] = 1.0 / ((k + 1.0) * (k + 1.0))
    return out


@njit(nogil=True, cache=True)
def count_log_table(n):
    """``c log2 c`` for the integer counts ``0..n``."""
    out = np.zeros(n + 1)
    for c in range(2, n + 1):
        out[c] = c * np.log2(c)
    return out


@njit(nogil=True, cache=True)
def cell_features(mat, ci, cj, n_cells, n_voxels, rows, cols, ig2, ic2, clog, out):
    """The 17 features of ``_aggregate.count_matrix_features`` from a matrix's listed non-zero cells.

    ``mat[ci[k], cj[k]]`` (k < ``n_cells``, each cell listed once) are the counts, row ``i`` is grey
    level ``i + 1`` and column ``j`` the count value ``j + 1`` (run length, zone size, distance,
    dependence). Marginals, moments and sums of squares are sums of integers (exact); the per-cell
    terms multiply by ``ig2[i] = 1/g^2`` and ``ic2[j] = 1/c^2`` (no division per cell), and
    ``-sum p log2 p = log2 T - sum(c log2 c) / T`` with ``c log2 c`` from ``clog`` (no logarithm per cell).
    ``mat``, ``rows`` and ``cols`` are zero on entry and zero again on return.
    """
    if n_cells == 0:
        for k in range(out.shape[0]):
            out[k] = np.nan
        return
    total = 0.0
    sq = 0.0
    cl = 0.0
    sl = sh = ll = lh = 0.0
    for k in range(n_cells):
        i = ci[k]
        j = cj[k]
        v = mat[i, j]
        mat[i, j] = 0.0
        total += v
        sq += v * v
        iv = int(v)
        cl += clog[iv] if iv < clog.shape[0] else v * np.log2(v)
        rows[i] += v
        cols[j] += v
        g2 = (i + 1.0) * (i + 1.0)
        c2 = (j + 1.0) * (j + 1.0)
        a = v * ig2[i]
        b = v * g2
        sl += a * ic2[j]
        sh += b * ic2[j]
        ll += a * c2
        lh += b * c2
    se = le = lg = hg = 0.0
    s_g = s_g2 = s_c = s_c2 = glnu = cnu = 0.0
    for k in range(n_cells):
        i = ci[k]
        r = rows[i]
        if r != 0.0:
            rows[i] = 0.0
            g = i + 1.0
            lg += r * ig2[i]
            hg += r * g * g
            s_g += r * g
            s_g2 += r * g * g
            glnu += r * r
        j = cj[k]
        c = cols[j]
        if c != 0.0:
            cols[j] = 0.0
            n = j + 1.0
            se += c * ic2[j]
            le += c * n * n
            s_c += c * n
            s_c2 += c * n * n
            cnu += c * c
    inv = 1.0 / total
    out[0] = se * inv
    out[1] = le * inv
    out[2] = lg * inv
    out[3] = hg * inv
    out[4] = sl * inv
    out[5] = sh * inv
    out[6] = ll * inv
    out[7] = lh * inv
    out[8] = glnu * inv
    out[9] = glnu / (total * total)
    out[10] = cnu * inv
    out[11] = cnu / (total * total)
    out[12] = total / n_voxels if n_voxels > 0 else np.nan
    out[13] = (total * s_g2 - s_g * s_g) * inv * inv  # exact integer numerator: 0 for one level
    out[14] = (total * s_c2 - s_c * s_c) * inv * inv
    out[15] = 0.0 if n_cells == 1 else np.log2(total) - cl * inv
    out[16] = sq * inv * inv


# ---------------------------------------------------------------------------------------------
# kernels
# ---------------------------------------------------------------------------------------------


@njit(nogil=True, cache=True, inline="always")
def _popcount(x):
    x = x - ((x >> 1) & 0x55555555)
    x = (x & 0x33333333) + ((x >> 2) & 0x33333333)
    x = (x + (x >> 4)) & 0x0F0F0F0F
    return ((x * 0x01010101) & 0xFFFFFFFF) >> 24


@njit(nogil=True, cache=True, inline="always")
def _add_cell(mat, ci, cj, n_cells, i, j):
    """One count in cell ``(i, j)``; the cell is listed when it becomes non-zero. Returns the new list length."""
    old = mat[i, j]
    mat[i, j] = old + 1.0
    ci[n_cells] = i
    cj[n_cells] = j
    return n_cells + (1 if old == 0.0 else 0)


@njit(nogil=True, cache=True)
def dependence_block(q, centres, rz, ry, rx, n_levels, bits, boff, inbox, sel, out):
    """NGLDM features of every centre's kernel: a box voxel's dependence is ``1 + popcount(bits & in_box)``."""
    nzo, nyo, nxo = out.shape[1], out.shape[2], out.shape[3]
    ny, nx = q.shape[1], q.shape[2]
    qf = q.ravel()
    n_kernel = boff.shape[0]
    n_cols = 33
    mat = np.zeros((n_levels, n_cols))
    ci = np.empty(n_kernel + 1, dtype=np.int64)
    cj = np.empty(n_kernel + 1, dtype=np.int64)
    rows = np.zeros(n_levels)
    cols = np.zeros(n_cols)
    clog = count_log_table(n_kernel)
    ig2 = inverse_squares(n_levels)
    ic2 = inverse_squares(cols.shape[0])
    vals = np.empty(17)
    for z in range(nzo):
        for y in range(nyo):
            for x in range(nxo):
                if not centres[z + rz, y + ry, x + rx]:
                    continue
                base = (z * ny + y) * nx + x
                n_cells = 0
                nvox = 0
                for p in range(n_kernel):
                    v = base + boff[p]
                    g = qf[v]
                    if g <= 0:
                        continue
                    nvox += 1
                    n_cells = _add_cell(mat, ci, cj, n_cells, g - 1, _popcount(bits[v] & inbox[p]))
                cell_features(mat, ci, cj, n_cells, float(nvox), rows, cols, ig2, ic2, clog, vals)
                _store(vals, nvox, sel, out, z, y, x)


@njit(nogil=True, cache=True)
def kernel_border_distance(sub, fnb, dist, queue):
    """Face-connected distance of each kernel ROI voxel to the ROI border (1 at the border), BFS."""
    head = 0
    tail = 0
    for p in range(sub.shape[0]):
        dist[p] = 0
        if sub[p] <= 0:
            continue
        for m in range(fnb.shape[1]):
            n = fnb[p, m]
            if n < 0 or sub[n] <= 0:
                dist[p] = 1
                queue[tail] = p
                tail += 1
                break
    while head < tail:
        p = queue[head]
        head += 1
        for m in range(fnb.shape[1]):
            n = fnb[p, m]
            if n >= 0 and sub[n] > 0 and dist[n] == 0:
                dist[n] = dist[p] + 1
                queue[tail] = n
                tail += 1


@njit(nogil=True, cache=True)
def run_block(q, centres, rz, ry, rx, n_levels, runs, back, boff, inback, exits, sel, out):
    """GLRLM features of every centre's kernel, runs counted at their first box voxel.

    A run of the box along direction ``m`` starts at a box voxel whose predecessor is outside the
    box (``inback`` bit clear) or of another level (``back`` bit clear); its length is the voxel's
    forward run cut at the box face, ``min(runs, exits)``. A voxel's 13 directions are tallied in one
    integer, 4 bits per run length (at most 13 runs start at a voxel), so the inner loop neither
    branches on the data nor waits on a matrix cell in memory; the tallies are then added to the
    voxel's grey-level row. Needs at most 15 directions and runs of at most 16 voxels.
    """
    nzo, nyo, nxo = out.shape[1], out.shape[2], out.shape[3]
    ny, nx = q.shape[1], q.shape[2]
    qf = q.ravel()
    n_kernel = boff.shape[0]
    n_dirs = runs.shape[1]
    longest = 0
    for p in range(n_kernel):
        for m in range(n_dirs):
            longest = max(longest, exits[p, m])
    mat = np.zeros((n_levels, longest))
    ci = np.empty(n_levels * longest + 1, dtype=np.int64)
    cj = np.empty(n_levels * longest + 1, dtype=np.int64)
    levels = np.empty(n_levels, dtype=np.int64)
    seen = np.zeros(n_levels, dtype=np.bool_)
    rows = np.zeros(n_levels)
    cols = np.zeros(longest)
    clog = count_log_table(n_kernel * n_dirs)
    ig2 = inverse_squares(n_levels)
    ic2 = inverse_squares(longest)
    vals = np.empty(17)
    for z in range(nzo):
        for y in range(nyo):
            for x in range(nxo):
                if not centres[z + rz, y + ry, x + rx]:
                    continue
                base = (z * ny + y) * nx + x
                nvox = 0
                n_lev = 0
                for p in range(n_kernel):
                    v = base + boff[p]
                    g = qf[v]
                    if g <= 0:
                        continue
                    nvox += 1
                    cont = back[v] & inback[p]  # directions in which the run started before p
                    tally = 0
                    for m in range(n_dirs):
                        length = min(np.int64(runs[v, m]), exits[p, m])
                        tally += (1 - ((cont >> m) & 1)) << (4 * (length - 1))
                    i = g - 1
                    if not seen[i]:
                        seen[i] = True
                        levels[n_lev] = i
                        n_lev += 1
                    for j in range(longest):
                        mat[i, j] += (tally >> (4 * j)) & 15
                n_cells = 0
                for k in range(n_lev):
                    i = levels[k]
                    seen[i] = False
                    for j in range(longest):
                        if mat[i, j] > 0.0:
                            ci[n_cells] = i
                            cj[n_cells] = j
                            n_cells += 1
                cell_features(mat, ci, cj, n_cells, float(nvox * n_dirs), rows, cols, ig2, ic2, clog, vals)
                _store(vals, nvox, sel, out, z, y, x)


@njit(nogil=True, cache=True, inline="always")
def _store(vals, nvox, sel, out, z, y, x):
    if nvox == 0:
        for f in range(vals.shape[0]):
            vals[f] = np.nan
    for f in range(sel.shape[0]):
        out[f, z, y, x] = vals[sel[f]]


# ---------------------------------------------------------------------------------------------
# NGTDM: neighbourhood sums per clipping class
# ---------------------------------------------------------------------------------------------

#: NGTDM sums are packed as ``value sum + (count << COUNT_SHIFT)`` in one int32
COUNT_SHIFT = 22


def axis_classes(size: int, distance: int) -> tuple[np.ndarray, np.ndarray]:
    """Per position along a box axis, its clipping class; and each class's ``(below, above)`` reach.

    A neighbourhood of Chebyshev ``distance`` around box position ``a`` reaches ``min(distance, a)``
    voxels below and ``min(distance, size - 1 - a)`` above inside the box.
    """
    reach = [(min(distance, a), min(distance, size - 1 - a)) for a in range(size)]
    kinds = sorted(set(reach))
    return (np.array([kinds.index(r) for r in reach], dtype=np.int64),
            np.array(kinds, dtype=np.int64).reshape(-1, 2))


@njit(nogil=True, cache=True)
def _axis_sums(src, n_outer, n_axis, n_inner, reach):
    """Sums of ``src`` (``(classes, n_outer * n_axis * n_inner)``) over each ``reach`` window along the middle axis."""
    n_src = src.shape[0]
    n_cls = reach.shape[0]
    out = np.zeros((n_cls * n_src, src.shape[1]), dtype=np.int32)
    for c in range(n_cls):
        lo = reach[c, 0]
        hi = reach[c, 1]
        for k in range(n_src):
            row = c * n_src + k
            for o in range(n_outer):
                for a in range(n_axis):
                    dst = (o * n_axis + a) * n_inner
                    for b in range(max(a - lo, 0), min(a + hi, n_axis - 1) + 1):
                        first = (o * n_axis + b) * n_inner
                        for i in range(n_inner):  # contiguous: vectorised
                            out[row, dst + i] += src[k, first + i]
    return out


@njit(nogil=True, cache=True)
def plane_sums(q, yreach, xreach):
    """Per voxel of ``q`` and in-plane clipping class, the packed sum and count of the ROI voxels around it.

    Class ``cy * n_x + cx`` covers ``yreach[cy]`` rows below/above and ``xreach[cx]`` columns left/right
    of the voxel, in its own z plane, itself included; voxels of level 0 count for nothing. Returned
    as ``(voxels, classes)`` int32, ``sum + (count << 22)``; a kernel adds the planes its z class reaches.
    """
    nz, ny, nx = q.shape
    n = nz * ny * nx
    w = np.zeros((1, n), dtype=np.int32)
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                g = q[z, y, x]
                if g > 0:
                    w[0, (z * ny + y) * nx + x] = g + (1 << COUNT_SHIFT)
    sxy = _axis_sums(_axis_sums(w, nz * ny, nx, 1, xreach), nz, ny, nx, yreach)
    return np.ascontiguousarray(sxy.T)  # a voxel's classes side by side


@njit(nogil=True, cache=True)
def ngtdm_block(q, centres, rz, ry, rx, n_levels, sums, boff, pclass, zlo, zhi, sel, out):
    """NGTDM features of every centre's kernel from per-voxel in-plane neighbourhood sums (:func:`plane_sums`).

    A box voxel's neighbours inside the box are the voxels of its clipped cube minus itself: the
    in-plane sums of its clipping class ``pclass`` over the planes ``zlo`` below to ``zhi`` above, i.e.
    2-3 table reads instead of 26 look-ups.
    ``s`` and ``n`` are accumulated exactly as the generic kernel does (same terms, same order):
    the features (``ngtdm.feature_kernel``) are bit-identical.
    """
    nzo, nyo, nxo = out.shape[1], out.shape[2], out.shape[3]
    ny, nx = q.shape[1], q.shape[2]
    qf = q.ravel()
    n_kernel = boff.shape[0]
    s = np.zeros(n_levels)
    n = np.zeros(n_levels)
    levels = np.empty(n_levels, dtype=np.int64)
    seen = np.zeros(n_levels, dtype=np.bool_)
    low = (1 << COUNT_SHIFT) - 1
    plane = ny * nx
    vals = np.empty(5)
    for z in range(nzo):
        for y in range(nyo):
            for x in range(nxo):
                if not centres[z + rz, y + ry, x + rx]:
                    continue
                base = (z * ny + y) * nx + x
                nvox = 0
                n_lev = 0
                for p in range(n_kernel):
                    v = base + boff[p]
                    g = qf[v]
                    if g <= 0:
                        continue
                    nvox += 1
                    if not seen[g - 1]:
                        seen[g - 1] = True
                        levels[n_lev] = g - 1
                        n_lev += 1
                    packed = -(g + (1 << COUNT_SHIFT))  # without the voxel itself
                    for dz in range(-zlo[p], zhi[p] + 1):
                        packed += sums[v + dz * plane, pclass[p]]
                    count = packed >> COUNT_SHIFT
                    if count > 0:
                        total = float(packed & low)
                        s[g - 1] += abs(g - total / count)
                        n[g - 1] += 1.0
                ngtdm.feature_kernel(s, n, vals)
                for k in range(n_lev):
                    i = levels[k]
                    seen[i] = False
                    s[i] = 0.0
                    n[i] = 0.0
                _store(vals, nvox, sel, out, z, y, x)


# ---------------------------------------------------------------------------------------------
# zones from the box's planes (GLSZM, GLDZM)
# ---------------------------------------------------------------------------------------------


@cached_by_box
def plane_tables(box: tuple[int, int, int], offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per position ``t = a * ky + b`` of a box's yz plane: bits of the offsets that stay in the plane
    (``dx = 0``) and of those that reach the next plane (``dx = +1``) inside the box's yz extent; and
    each offset's step in ``t``."""
    kz, ky, _ = box
    a, b = np.divmod(np.arange(kz * ky), ky)
    same = np.zeros(kz * ky, dtype=np.int64)
    ahead = np.zeros(kz * ky, dtype=np.int64)
    for m, (dz, dy, dx) in enumerate(offsets):
        ok = (a + dz >= 0) & (a + dz < kz) & (b + dy >= 0) & (b + dy < ky)
        if dx == 0:
            same[ok] |= 1 << m
        elif dx == 1:
            ahead[ok] |= 1 << m
    return same, ahead, (offsets[:, 0] * ky + offsets[:, 1]).astype(np.int64)


@njit(nogil=True, cache=True, inline="always")
def _root(parent, i):
    while parent[i] != i:
        parent[i] = parent[parent[i]]  # path halving
        i = parent[i]
    return i


@njit(nogil=True, cache=True)
def zone_rows_block(q, centres, rz, ry, rx, distance_zones, n_levels, bits, boff, inbox, steps, fnb, full_dist,
                    same, ahead, pstep, sel, out):
    """GLSZM / GLDZM features of every centre's kernel, zones joined from the zones of the box's planes.

    Along a row of centres, consecutive boxes share all but one of their ``kx`` yz planes. Each
    plane's zones (same-level voxels connected within the plane), and the same-level links between
    neighbouring planes, are found once per row instead of once per box; a box's zones are then the
    union-find classes of its ``kx`` planes' zones over the links between them (a few dozen nodes
    instead of a flood fill over 125 voxels and their neighbours). A zone's GLDZM distance is the
    smallest full-box distance of its voxels (kept per plane zone for each column the plane can
    take); a box that is not entirely in the ROI is flood-filled (:func:`_flood_zones`), as its
    distances to the ROI border need the whole box.
    """
    nzo, nyo, nxo = out.shape[1], out.shape[2], out.shape[3]
    ny, nx = q.shape[1], q.shape[2]
    kx = 2 * rx + 1
    n_plane = (2 * rz + 1) * (2 * ry + 1)
    qf = q.ravel()
    n_kernel = boff.shape[0]
    n_off = pstep.shape[0]
    strip = nxo + kx - 1
    lab = np.empty((strip, n_plane), dtype=np.int64)
    n_comp = np.zeros(strip, dtype=np.int64)
    comp_level = np.empty((strip, n_plane), dtype=np.int64)
    comp_size = np.empty((strip, n_plane), dtype=np.int64)
    comp_dist = np.empty((strip, n_plane, kx), dtype=np.int64)
    plane_nvox = np.zeros(strip, dtype=np.int64)
    link_a = np.empty((strip, n_plane * n_off), dtype=np.int64)
    link_b = np.empty((strip, n_plane * n_off), dtype=np.int64)
    n_links = np.zeros(strip, dtype=np.int64)
    linked = np.zeros(n_plane * n_plane, dtype=np.int64)
    link_stamp = 0
    parent = np.empty(kx * n_plane, dtype=np.int64)
    zone_size = np.empty(kx * n_plane, dtype=np.int64)
    zone_dist = np.empty(kx * n_plane, dtype=np.int64)
    pstack = np.empty(n_plane, dtype=np.int64)
    # the flood fill of boxes not entirely in the ROI (GLDZM)
    sub = np.empty(n_kernel, dtype=np.int32)
    seen = np.zeros(n_kernel, dtype=np.int64)
    stack = np.empty(n_kernel, dtype=np.int64)
    dist = np.zeros(n_kernel, dtype=np.int64)
    stamp = 0
    mat = np.zeros((n_levels, n_kernel))
    ci = np.empty(n_kernel + 1, dtype=np.int64)
    cj = np.empty(n_kernel + 1, dtype=np.int64)
    rows = np.zeros(n_levels)
    cols = np.zeros(n_kernel)
    clog = count_log_table(n_kernel)
    ig2 = inverse_squares(n_levels)
    ic2 = inverse_squares(n_kernel)
    vals = np.empty(17)
    for z in range(nzo):
        for y in range(nyo):
            x0 = -1
            x1 = -1
            for x in range(nxo):
                if centres[z + rz, y + ry, x + rx]:
                    if x0 < 0:
                        x0 = x
                    x1 = x
            if x0 < 0:
                continue
            row = (z * ny + y) * nx
            n_planes = x1 - x0 + kx
            for k in range(n_planes):  # zones of each plane
                col = row + x0 + k
                for t in range(n_plane):
                    lab[k, t] = -1
                nc = 0
                nv = 0
                for t0 in range(n_plane):
                    g = qf[col + boff[t0 * kx]]
                    if g <= 0:
                        continue
                    nv += 1
                    if lab[k, t0] >= 0:
                        continue
                    lab[k, t0] = nc
                    comp_level[k, nc] = g
                    if distance_zones:
                        for c in range(kx):
                            comp_dist[k, nc, c] = n_kernel
                    size = 0
                    pstack[0] = t0
                    depth = 1
                    while depth > 0:
                        depth -= 1
                        t = pstack[depth]
                        size += 1
                        if distance_zones:
                            for c in range(kx):
                                d = full_dist[t * kx + c]
                                if d < comp_dist[k, nc, c]:
                                    comp_dist[k, nc, c] = d
                        m = bits[col + boff[t * kx]] & same[t]
                        while m != 0:
                            low = m & -m
                            m ^= low
                            u = t + pstep[_DEBRUIJN[((low * 0x077CB531) & 0xFFFFFFFF) >> 27]]
                            if lab[k, u] < 0:
                                lab[k, u] = nc
                                pstack[depth] = u
                                depth += 1
                    comp_size[k, nc] = size
                    nc += 1
                n_comp[k] = nc
                plane_nvox[k] = nv
            for k in range(n_planes - 1):  # links between neighbouring planes
                col = row + x0 + k
                n_l = 0
                link_stamp += 1
                for t in range(n_plane):
                    a = lab[k, t]
                    if a < 0:
                        continue
                    m = bits[col + boff[t * kx]] & ahead[t]
                    while m != 0:
                        low = m & -m
                        m ^= low
                        u = t + pstep[_DEBRUIJN[((low * 0x077CB531) & 0xFFFFFFFF) >> 27]]
                        pair = a * n_plane + lab[k + 1, u]
                        if linked[pair] != link_stamp:  # each pair of plane zones once
                            linked[pair] = link_stamp
                            link_a[k, n_l] = a
                            link_b[k, n_l] = lab[k + 1, u]
                            n_l += 1
                n_links[k] = n_l
            for x in range(x0, x1 + 1):
                if not centres[z + rz, y + ry, x + rx]:
                    continue
                k0 = x - x0
                nvox = 0
                for c in range(kx):
                    nvox += plane_nvox[k0 + c]
                if distance_zones and nvox < n_kernel:
                    stamp += 1
                    n_cells = _flood_zones(qf, bits, row + x, boff, inbox, steps, fnb, full_dist, True, sub, seen,
                                           stamp, stack, dist, mat, ci, cj)
                else:
                    for c in range(kx):
                        for i in range(n_comp[k0 + c]):
                            node = c * n_plane + i
                            parent[node] = node
                            zone_size[node] = 0
                            zone_dist[node] = n_kernel
                    for c in range(kx - 1):
                        for e in range(n_links[k0 + c]):
                            a = _root(parent, c * n_plane + link_a[k0 + c, e])
                            b = _root(parent, (c + 1) * n_plane + link_b[k0 + c, e])
                            if a != b:
                                parent[b] = a
                    for c in range(kx):
                        for i in range(n_comp[k0 + c]):
                            r = _root(parent, c * n_plane + i)
                            zone_size[r] += comp_size[k0 + c, i]
                            if distance_zones and comp_dist[k0 + c, i, c] < zone_dist[r]:
                                zone_dist[r] = comp_dist[k0 + c, i, c]
                    n_cells = 0
                    for c in range(kx):
                        for i in range(n_comp[k0 + c]):
                            node = c * n_plane + i
                            if parent[node] == node:
                                value = zone_dist[node] if distance_zones else zone_size[node]
                                n_cells = _add_cell(mat, ci, cj, n_cells, comp_level[k0 + c, i] - 1, value - 1)
                cell_features(mat, ci, cj, n_cells, float(nvox), rows, cols, ig2, ic2, clog, vals)
                _store(vals, nvox, sel, out, z, y, x)


@njit(nogil=True, cache=True)
def _flood_zones(qf, bits, base, boff, inbox, steps, fnb, full_dist, distance_zones, sub, seen, stamp, stack, dist,
                 mat, ci, cj):
    """Zones of one box by flood fill over ``bits & in_box``, added to ``mat`` as listed cells; returns the count."""
    n_kernel = boff.shape[0]
    nvox = 0
    for p in range(n_kernel):
        g = qf[base + boff[p]]
        sub[p] = g
        if g > 0:
            nvox += 1
    if distance_zones:
        if nvox == n_kernel:
            for p in range(n_kernel):
                dist[p] = full_dist[p]
        else:
            kernel_border_distance(sub, fnb, dist, stack)
    n_cells = 0
    for p0 in range(n_kernel):
        if sub[p0] <= 0 or seen[p0] == stamp:
            continue
        seen[p0] = stamp
        stack[0] = p0
        depth = 1
        size = 0
        dmin = dist[p0]
        while depth > 0:
            depth -= 1
            p = stack[depth]
            size += 1
            if dist[p] < dmin:
                dmin = dist[p]
            m = bits[base + boff[p]] & inbox[p]
            while m != 0:
                low = m & -m
                m ^= low
                n = p + steps[_DEBRUIJN[((low * 0x077CB531) & 0xFFFFFFFF) >> 27]]
                if seen[n] != stamp:
                    seen[n] = stamp
                    stack[depth] = n
                    depth += 1
        value = dmin if distance_zones else size
        n_cells = _add_cell(mat, ci, cj, n_cells, sub[p0] - 1, value - 1)
    return n_cells
