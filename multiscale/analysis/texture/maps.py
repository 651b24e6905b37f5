"""Voxel-wise texture maps: IBSI matrix features in a sliding kernel, chunk by chunk on dask.

For every voxel of the region of interest, :func:`feature_map` takes the ``(2r + 1)^3`` kernel
around it (``(2r + 1)^2`` for 2-D images), builds the family's merged matrix from the kernel's own
voxels and computes its features: one ``c`` channel per feature. The value at a voxel equals the
family's ``family_features`` on that kernel alone (3-D merged, or 2-D slice-merged for 2-D images),
with the grey levels of the map's global discretisation.

How it is computed
------------------
* The image is discretised once, blockwise, for the whole map (fixed bin number over the minimum and
  maximum of the voxels that can enter a kernel, or fixed bin size from the IBSI minimum anchor), so
  one grey level means one intensity range everywhere in the map.
* Only the ROI's bounding box, grown by the kernel radius, is computed; the rest of the grid is NaN,
  as read-only broadcast blocks that hold no memory until the map is assembled or written. The image
  and mask are cut to the mask's bounding box (grown by the radius) before any dask work, so the
  ROI statistics, the grey-level range and the task graph scale with the ROI, not the grid.
* Within that box, a dask chunk holding no ROI voxel skips the kernel: a per-chunk "has ROI" table,
  computed with the grey-level range, makes its block a NaN block (its grey levels are still
  discretised, as the halo of its neighbours). A small ROI in a large volume costs its own chunks.
* The grey-level volume (with the ROI flag in bit 24 of the same int32 array, one halo exchange) is
  split into dask chunks with a halo of ``radius`` voxels (``dask.array.map_overlap``); a numba
  kernel (``nogil``, so dask threads run in parallel) walks the chunk's ROI voxels and builds each
  kernel's merged matrix. What a box voxel contributes that does not depend on the box is computed
  once per chunk, not once per box (every voxel lies in ``(2r + 1)^3`` boxes): GLCM updates its
  co-occurrences as the box slides along x; GLRLM reads per-voxel forward run lengths, GLSZM/GLDZM
  and NGLDM per-voxel neighbour bit masks, NGTDM per-voxel neighbourhood sums
  (:mod:`._map_kernels`). Features come from the same formulas as the whole-ROI families
  (``glcm.feature_kernel_sparse_into``, ``ngtdm.feature_kernel``; ``_map_kernels.cell_features``
  for the count matrices, ``_aggregate.count_matrix_features``'s formulas from the non-zero cells).
  Other settings (e.g. NGLDM distance 2) use the generic kernel (``_kernel_block``).
  Working memory is bounded by the chunk size times the number of features; the result stays lazy
  (write it with ``to_zarr`` to keep memory bounded end to end).
* An ROI box of at most ``EAGER_VOXELS`` voxels (2 M: e.g. a 40-voxel sphere's, or a 200 x 200 x 50
  one) is prepared in memory with numpy (ROI statistics, grey-level range, discretisation) and its
  map is a dask array of one task per chunk reading a zero-padded copy of the box: the same chunks
  and values as the ``map_overlap`` path, without the cost of building and scheduling its graph.

Kernel voxels
-------------
``masked_kernel=False`` (default): a kernel holds every finite image voxel within it (inside the
re-segmentation range, if any), whether or not it is in the mask; maps are computed at the mask's
voxels only, and the fixed-bin-number range is that of the mask grown by the kernel box.
``masked_kernel=True``: a kernel holds only mask voxels, and the range is the mask's. Voxels beyond
the image edge never count.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph
from numba import njit

from multiscale import image as msi
from multiscale.analysis._masks import single_channel
from multiscale.analysis.family import Family, FamilyResult, image_units
from multiscale.analysis.figures import feature_map_figure
from multiscale.analysis.texture import glcm, gldzm, glrlm, glszm, ngldm, ngtdm
from multiscale.analysis.texture._aggregate import (
    border_distance,
    count_matrix_features,
    direction_offsets,
    face_offsets,
    neighbourhood_offsets,
)
from multiscale.analysis.texture._discretise import fbs_range_levels
from multiscale.analysis.texture._map_kernels import (
    COUNT_SHIFT,
    MAX_BITS,
    axis_classes,
    box_flat_offsets,
    box_steps,
    cached_by_box,
    dependence_block,
    exit_lengths,
    in_box_bits,
    kernel_border_distance,
    neighbour_bits,
    ngtdm_block,
    plane_sums,
    plane_tables,
    run_block,
    run_tables,
    zone_rows_block,
)
from multiscale.analysis.texture._roi import RoiError, TextureWarning
from multiscale.analysis.texture._settings import ALIASES, DEFAULTS, texture_settings
from multiscale.analysis.texture.processing import refuse_processing
from multiscale.analysis.texture.units import feature_unit

__all__ = ["feature_map", "map_features", "MAP_FAMILIES", "feature_map_table", "feature_map_result", "FAMILY"]

#: families with voxel maps, and their numba dispatch code
MAP_FAMILIES: dict[str, int] = {"glcm": 0, "glrlm": 1, "glszm": 2, "gldzm": 3, "ngtdm": 4, "ngldm": 5}
_MODULES = {"glcm": glcm, "glrlm": glrlm, "glszm": glszm, "gldzm": gldzm, "ngtdm": ngtdm, "ngldm": ngldm}
_ALIASES = {"cm": "glcm", "rlm": "glrlm", "szm": "glszm", "dzm": "gldzm", "ngt": "ngtdm", "ngl": "ngldm", "gldm": "ngldm"}

#: default dask chunk (voxels per side) when the image is not chunked already
DEFAULT_CHUNK = 64
#: ROI boxes of at most this many voxels are prepared in memory (numpy) rather than through dask
EAGER_VOXELS = 2**21
#: bit of the per-chunk int32 grey-level array that flags ROI voxels (maps allow at most 4096 levels)
_ROI_BIT = 24


# ---------------------------------------------------------------------------------------------
# the per-chunk kernel
# ---------------------------------------------------------------------------------------------


@cached_by_box
def _box_neighbours(shape: tuple[int, int, int], offsets: np.ndarray) -> np.ndarray:
    """For each voxel of a kernel box (flat index), the flat index of each offset neighbour, -1 outside."""
    idx = np.arange(int(np.prod(shape))).reshape(shape)
    pos = np.stack(np.unravel_index(idx.ravel(), shape), axis=1)
    out = np.full((len(pos), len(offsets)), -1, dtype=np.int64)
    for m, o in enumerate(offsets):
        nb = pos + o
        ok = np.all((nb >= 0) & (nb < np.asarray(shape)), axis=1)
        out[ok, m] = np.ravel_multi_index(tuple(nb[ok].T), shape)
    return out


@cached_by_box
def _box_lines(shape: tuple[int, int, int], offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All lines through a kernel box along each offset: concatenated flat indices and line starts."""
    nb = _box_neighbours(shape, offsets)
    back = _box_neighbours(shape, -offsets)
    idx, ptr = [], [0]
    for m in range(len(offsets)):
        for p in np.flatnonzero(back[:, m] < 0):  # first voxel of a line
            while p >= 0:
                idx.append(p)
                p = nb[p, m]
            ptr.append(len(idx))
    return np.asarray(idx, dtype=np.int64), np.asarray(ptr, dtype=np.int64)


@njit(nogil=True, cache=True)
def _kernel_block(q, centres, rz, ry, rx, code, n_levels, nb, lines, line_ptr, n_dirs, fnb, full_dist, flag, alpha,
                  sel, out):
    """Features of every centre voxel's kernel; ``q`` and ``centres`` carry a halo of (rz, ry, rx).

    The kernel box's geometry is precomputed: ``nb`` (neighbour / pair offsets as flat indices, -1
    outside the box), ``lines`` (run lines per direction), ``fnb`` (face neighbours) and
    ``full_dist`` (the distance map of a kernel entirely inside the ROI).
    """
    nzo = out.shape[1]
    nyo = out.shape[2]
    nxo = out.shape[3]
    kz = 2 * rz + 1
    ky = 2 * ry + 1
    kx = 2 * rx + 1
    n_kernel = kz * ky * kx
    n_nb = nb.shape[1]
    sub = np.empty(n_kernel, dtype=np.int32)
    vals = np.empty(32)
    longest = max(kz, max(ky, kx))
    cm = np.zeros((n_levels, n_levels))
    rl = np.zeros((n_levels, longest))
    rl_cols = np.arange(1, longest + 1).astype(np.float64)
    zm = np.zeros((n_levels, n_kernel))
    zm_cols = np.arange(1, n_kernel + 1).astype(np.float64)
    ngt_s = np.zeros(n_levels)
    ngt_n = np.zeros(n_levels)
    dm = np.zeros((n_levels, n_nb + 1))
    dm_cols = np.arange(1, n_nb + 2).astype(np.float64)
    seen = np.zeros(n_levels + 1, dtype=np.bool_)
    present = np.empty(n_levels, dtype=np.int64)
    visited = np.zeros(n_kernel, dtype=np.bool_)
    stack = np.empty(n_kernel, dtype=np.int64)
    z_level = np.empty(n_kernel, dtype=np.int64)
    z_col = np.empty(n_kernel, dtype=np.int64)
    dist = np.zeros(n_kernel, dtype=np.int64)
    for z in range(nzo):
        for y in range(nyo):
            for x in range(nxo):
                if not centres[z + rz, y + ry, x + rx]:
                    continue
                nvox = 0
                n_present = 0
                top = 0
                p = 0
                for a in range(kz):
                    for b in range(ky):
                        for c in range(kx):
                            v = q[z + a, y + b, x + c]
                            sub[p] = v
                            p += 1
                            if v > 0:
                                nvox += 1
                                if not seen[v]:
                                    seen[v] = True
                                    present[n_present] = v - 1
                                    n_present += 1
                                    if v > top:
                                        top = v
                for k in range(n_present):
                    seen[present[k] + 1] = False
                levels_here = present[:n_present]
                if code == 0:  # GLCM: pairs (p, nb[p, m]) along each direction
                    for p in range(n_kernel):
                        g = sub[p]
                        if g <= 0:
                            continue
                        for m in range(n_nb):
                            n = nb[p, m]
                            if n < 0:
                                continue
                            h = sub[n]
                            if h > 0:
                                cm[g - 1, h - 1] += 1.0
                                if flag:
                                    cm[h - 1, g - 1] += 1.0
                    glcm.feature_kernel_sparse(cm, n_levels, levels_here, vals)
                    for a in range(n_present):
                        for b in range(n_present):
                            cm[levels_here[a], levels_here[b]] = 0.0
                elif code == 1:  # GLRLM: runs along every line of the box
                    for line in range(line_ptr.shape[0] - 1):
                        prev = 0
                        run = 0
                        for t in range(line_ptr[line], line_ptr[line + 1]):
                            g = sub[lines[t]]
                            if g == prev and g > 0:
                                run += 1
                            else:
                                if prev > 0:
                                    rl[prev - 1, run - 1] += 1.0
                                prev = g
                                run = 1
                        if prev > 0:
                            rl[prev - 1, run - 1] += 1.0
                    count_matrix_features(rl[:top, :], rl_cols, float(nvox * n_dirs), vals)
                    for a in range(n_present):
                        rl[levels_here[a], :] = 0.0
                elif code == 2 or code == 3:  # GLSZM / GLDZM: zones by flood fill
                    if code == 3:
                        if nvox == n_kernel:
                            for p in range(n_kernel):
                                dist[p] = full_dist[p]
                        else:
                            kernel_border_distance(sub, fnb, dist, stack)
                    n_zones = 0
                    width = 1
                    for p0 in range(n_kernel):
                        g = sub[p0]
                        if g <= 0 or visited[p0]:
                            continue
                        visited[p0] = True
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
                            for m in range(n_nb):
                                n = nb[p, m]
                                if n >= 0 and sub[n] == g and not visited[n]:
                                    visited[n] = True
                                    stack[depth] = n
                                    depth += 1
                        col = size if code == 2 else dmin
                        z_level[n_zones] = g - 1
                        z_col[n_zones] = col - 1
                        n_zones += 1
                        zm[g - 1, col - 1] += 1.0
                        if col > width:
                            width = col
                    for p in range(n_kernel):
                        visited[p] = False
                    count_matrix_features(zm[:top, :width], zm_cols[:width], float(nvox), vals)
                    for k in range(n_zones):
                        zm[z_level[k], z_col[k]] = 0.0
                elif code == 4:  # NGTDM
                    for p in range(n_kernel):
                        g = sub[p]
                        if g <= 0:
                            continue
                        total = 0.0
                        count = 0
                        for m in range(n_nb):
                            n = nb[p, m]
                            if n >= 0 and sub[n] > 0:
                                total += sub[n]
                                count += 1
                        if count > 0:
                            ngt_s[g - 1] += abs(g - total / count)
                            ngt_n[g - 1] += 1.0
                    ngtdm.feature_kernel(ngt_s, ngt_n, vals)
                    for a in range(n_present):
                        ngt_s[levels_here[a]] = 0.0
                        ngt_n[levels_here[a]] = 0.0
                else:  # NGLDM
                    for p in range(n_kernel):
                        g = sub[p]
                        if g <= 0:
                            continue
                        k = 1
                        for m in range(n_nb):
                            n = nb[p, m]
                            if n >= 0:
                                h = sub[n]
                                if h > 0 and abs(h - g) <= alpha:
                                    k += 1
                        dm[g - 1, k - 1] += 1.0
                    count_matrix_features(dm[:top, :], dm_cols, float(nvox), vals)
                    for a in range(n_present):
                        dm[levels_here[a], :] = 0.0
                if nvox == 0:
                    for f in range(vals.shape[0]):
                        vals[f] = np.nan
                for f in range(sel.shape[0]):
                    out[f, z, y, x] = vals[sel[f]]


@cached_by_box
def _box_pairs(shape: tuple[int, int, int], offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The voxel pairs of a kernel box along ``offsets``, as ``(a1, b1, c1, a2, b2, c2)`` box positions.

    Returns every pair, the pairs that leave when the box slides one voxel along x (one voxel in its
    first column) and the pairs that enter (one voxel in its last column, positions in the new box).
    """
    nb = _box_neighbours(shape, offsets)
    rows = []
    for p in range(nb.shape[0]):
        for m in range(nb.shape[1]):
            n = nb[p, m]
            if n >= 0:
                rows.append(np.unravel_index(p, shape) + np.unravel_index(n, shape))
    pairs = np.asarray(rows, dtype=np.int64).reshape(-1, 6)
    last = shape[2] - 1
    leave = pairs[(pairs[:, 2] == 0) | (pairs[:, 5] == 0)]
    enter = pairs[(pairs[:, 2] == last) | (pairs[:, 5] == last)]
    return pairs, np.ascontiguousarray(leave), np.ascontiguousarray(enter)


def _flat_pairs(pairs: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Box pairs ``(a1, b1, c1, a2, b2, c2)`` as flat index offsets ``(first, second)`` in an array of ``shape``."""
    ny, nx = int(shape[1]), int(shape[2])
    first = (pairs[:, 0] * ny + pairs[:, 1]) * nx + pairs[:, 2]
    second = (pairs[:, 3] * ny + pairs[:, 4]) * nx + pairs[:, 5]
    return np.ascontiguousarray(np.stack([first, second], axis=1), dtype=np.int64)


@njit(nogil=True, cache=True)
def _glcm_add(qf, base, pairs, cm, flag, sign):
    """Add (``sign`` 1) or remove (-1) the co-occurrences of ``pairs`` (flat offsets from ``base``)."""
    for k in range(pairs.shape[0]):
        g = qf[base + pairs[k, 0]]
        if g <= 0:
            continue
        h = qf[base + pairs[k, 1]]
        if h <= 0:
            continue
        cm[g - 1, h - 1] += sign
        if flag:
            cm[h - 1, g - 1] += sign


@njit(nogil=True, cache=True)
def _glcm_clear(cm, hist):
    """Zero the co-occurrences among the levels present (all a box can hold) and the level counts."""
    for i in range(1, hist.shape[0]):
        if hist[i] > 0:
            for j in range(1, hist.shape[0]):
                if hist[j] > 0:
                    cm[i - 1, j - 1] = 0.0
    for i in range(hist.shape[0]):
        hist[i] = 0


@njit(nogil=True, cache=True)
def _glcm_sliding_block(q, centres, rz, ry, rx, n_levels, pairs, leave, enter, flag, sel, out):
    """GLCM features of every centre voxel's kernel, the co-occurrence matrix updated as the box slides.

    Along x the next box shares all but two planes with the last: the pairs with a voxel in the
    leaving plane are subtracted and those with a voxel in the entering plane added (exact integer
    counts), instead of recounting every pair of the box (:func:`_kernel_block`'s GLCM branch).
    A run of centres is restarted from a full count after a gap. Levels are visited in ascending
    order, so a voxel's value does not depend on where its run (or its chunk) starts. The pairs are
    flat index offsets in ``q`` (:func:`_flat_pairs`): two look-ups per pair, no 3-D index arithmetic.
    """
    nzo = out.shape[1]
    nyo = out.shape[2]
    nxo = out.shape[3]
    kz = 2 * rz + 1
    ky = 2 * ry + 1
    kx = 2 * rx + 1
    cm = np.zeros((n_levels, n_levels))
    hist = np.zeros(n_levels + 1, dtype=np.int64)
    present = np.empty(n_levels, dtype=np.int64)
    vals = np.empty(32)
    pi = np.zeros(n_levels)
    pj = np.zeros(n_levels)
    pdiff = np.zeros(n_levels)
    psum = np.zeros(2 * n_levels + 1)
    ny, nx = q.shape[1], q.shape[2]
    qf = q.ravel()
    for z in range(nzo):
        for y in range(nyo):
            last = -2
            for x in range(nxo):
                if not centres[z + rz, y + ry, x + rx]:
                    continue
                base = (z * ny + y) * nx + x
                if x == last + 1:  # slide: drop the plane at x - 1, take the plane at x + kx - 1
                    _glcm_add(qf, base - 1, leave, cm, flag, -1.0)
                    for a in range(kz):
                        for b in range(ky):
                            g = q[z + a, y + b, x - 1]
                            if g > 0:
                                hist[g] -= 1
                            g = q[z + a, y + b, x + kx - 1]
                            if g > 0:
                                hist[g] += 1
                    _glcm_add(qf, base, enter, cm, flag, 1.0)
                else:  # a new run: count the whole box
                    if last >= 0:
                        _glcm_clear(cm, hist)
                    for a in range(kz):
                        for b in range(ky):
                            for c in range(kx):
                                g = q[z + a, y + b, x + c]
                                if g > 0:
                                    hist[g] += 1
                    _glcm_add(qf, base, pairs, cm, flag, 1.0)
                last = x
                n_present = 0
                for g in range(1, n_levels + 1):
                    if hist[g] > 0:
                        present[n_present] = g - 1
                        n_present += 1
                if n_present == 0:
                    for f in range(sel.shape[0]):
                        out[f, z, y, x] = np.nan
                    continue
                glcm.feature_kernel_sparse_into(cm, n_levels, present[:n_present], vals, pi, pj, pdiff, psum)
                for f in range(sel.shape[0]):
                    out[f, z, y, x] = vals[sel[f]]
            if last >= 0:
                _glcm_clear(cm, hist)


def _bitmask_block(q: np.ndarray, centres: np.ndarray, family: str, box: tuple[int, int, int], offsets: np.ndarray,
                   n_levels: int, planar: bool, alpha: float, sel: np.ndarray, out: np.ndarray) -> None:
    """GLRLM, GLSZM, GLDZM and NGLDM maps of one block with per-voxel neighbour bits (:mod:`._map_kernels`).

    The per-voxel tables (neighbour bits, forward run lengths) are built once for the block, then
    every kernel box reads them instead of comparing its voxels with their neighbours again.
    """
    rz, ry, rx = ((n - 1) // 2 for n in box)
    boff = box_flat_offsets(box, q.shape)
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    if family == "glrlm":
        runs, back = run_tables(q, offsets, max(box))
        inback = in_box_bits(box, -offsets)
        run_block(q, centres, rz, ry, rx, n_levels, runs, back, boff, inback, exit_lengths(box, offsets), sel, out)
    elif family == "ngldm":
        bits = neighbour_bits(q, offsets, alpha, False)
        dependence_block(q, centres, rz, ry, rx, n_levels, bits, boff, in_box_bits(box, offsets), sel, out)
    else:
        faces = face_offsets(planar)
        bits = neighbour_bits(q, offsets, 0.0, True)
        full_dist = _full_box_distance(box, faces)
        zone_rows_block(q, centres, rz, ry, rx, family == "gldzm", n_levels, bits, boff, in_box_bits(box, offsets),
                        box_steps(box, offsets), _box_neighbours(box, faces), full_dist, *plane_tables(box, offsets),
                        sel, out)


def _centre_span(centres: np.ndarray, radius: tuple[int, int, int]) -> tuple[slice, ...] | None:
    """Bounding box of the centres inside the halo, in output coordinates; None when there are none."""
    inner = centres[tuple(slice(r, n - r) for r, n in zip(radius, centres.shape))]
    span = []
    for axis in range(3):
        hit = np.flatnonzero(inner.any(axis=tuple(a for a in range(3) if a != axis)))
        if hit.size == 0:
            return None
        span.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(span)


def _bitmask_fits(family: str, box: tuple[int, int, int], offsets: np.ndarray) -> bool:
    """Whether :func:`_bitmask_block` takes these offsets: one bit each in 32 bits; for GLRLM's 4-bit run tallies
    at most 15 directions and runs of at most 16 voxels, every direction stepping forward in (z, y, x) order."""
    if len(offsets) > MAX_BITS:
        return False
    if family != "glrlm":
        return True
    forward = all(tuple(o) > (0, 0, 0) for o in np.asarray(offsets).tolist())
    return forward and len(offsets) <= 15 and max(box) <= 16


def _ngtdm_by_classes(offsets: np.ndarray, planar: bool, distance: int, n_levels: int) -> bool:
    """Whether the NGTDM neighbourhood is a full cube (square) minus its centre whose packed sums fit 32 bits."""
    side = 2 * int(distance) + 1
    cube = side ** (2 if planar else 3)
    return len(offsets) == cube - 1 and cube < 2**9 and cube * int(n_levels) < 2**COUNT_SHIFT


def _ngtdm_class_block(q: np.ndarray, centres: np.ndarray, box: tuple[int, int, int], distance: int, n_levels: int,
                       sel: np.ndarray, out: np.ndarray) -> None:
    """NGTDM map of one block from per-voxel sums over each clipping class of the neighbourhood."""
    (cz, z_reach), (cy, y_reach), (cx, x_reach) = (axis_classes(k, distance) for k in box)
    sums = plane_sums(q, y_reach, x_reach)
    # per box position (flat): its in-plane class and how many planes below / above its neighbours reach
    pclass = np.broadcast_to((cy[:, None] * len(x_reach) + cx[None, :])[None], box).ravel()
    zlo, zhi = (np.broadcast_to(z_reach[cz, k][:, None, None], box).ravel() for k in (0, 1))
    rz, ry, rx = ((n - 1) // 2 for n in box)
    ngtdm_block(q, centres, rz, ry, rx, n_levels, sums, box_flat_offsets(box, q.shape),
                *(np.ascontiguousarray(a, dtype=np.int64) for a in (pclass, zlo, zhi)), sel, out)


@cached_by_box
def _full_box_distance(box: tuple[int, int, int], faces: np.ndarray) -> np.ndarray:
    """GLDZM distance to the border of each voxel of a kernel box entirely inside the ROI (flat)."""
    return border_distance(np.ones(box, dtype=np.bool_), faces).ravel().astype(np.int64)


def _family_offsets(family: str, planar: bool, settings: dict[str, Any]) -> tuple[np.ndarray, bool, float]:
    """Offsets, boolean flag (GLCM symmetry) and NGLDM coarseness a family's kernel needs."""
    if family == "glcm":
        return direction_offsets(settings["glcm_distance"], planar), bool(settings["glcm_symmetric"]), 0.0
    if family == "glrlm":
        return direction_offsets(1, planar), False, 0.0
    if family in ("glszm", "gldzm"):
        return neighbourhood_offsets(1, planar), False, 0.0
    if family == "ngtdm":
        return neighbourhood_offsets(settings["ngtdm_distance"], planar), False, 0.0
    return neighbourhood_offsets(settings["ngldm_distance"], planar), False, float(settings["ngldm_alpha"])


def map_features(
    q: np.ndarray,
    centres: np.ndarray,
    family: str,
    radius: Sequence[int],
    n_levels: int,
    planar: bool = False,
    features: Sequence[int] | None = None,
    settings: dict[str, Any] | None = None,
    dtype: Any = np.float64,
) -> np.ndarray:
    """Kernel features at the ``centres`` of one in-memory grey-level block (the per-chunk worker).

    Parameters
    ----------
    q
        ``(z, y, x)`` grey levels ``1..n_levels``, 0 where a voxel may not enter a kernel. It carries
        a halo of ``radius`` voxels on every side (zeros beyond the image).
    centres
        Bool array of ``q``'s shape: voxels whose features are wanted (halo ignored).
    family
        One of :data:`MAP_FAMILIES`.
    radius
        ``(rz, ry, rx)`` kernel half-widths in voxels.
    n_levels
        Number of grey levels.
    planar
        2-D directions and neighbourhoods (for 2-D images, with ``rz = 0``).
    features
        Indices into the family's ``FEATURES`` (all by default).
    settings
        ``glcm_distance``, ``glcm_symmetric``, ``ngtdm_distance``, ``ngldm_distance``, ``ngldm_alpha``.

    Returns
    -------
    numpy.ndarray
        ``(n_features, z - 2 rz, y - 2 ry, x - 2 rx)``; NaN where ``centres`` is False.

    Examples
    --------
    >>> q = np.pad(np.array([[[1, 2, 1], [2, 1, 2], [1, 2, 1]]], np.int32), ((1, 1), (1, 1), (1, 1)))
    >>> out = map_features(q, q > 0, "glcm", (1, 1, 1), 2, features=[11])
    >>> out.shape
    (1, 1, 3, 3)
    """
    family = _family_name(family)
    s = _family_settings(settings or {})
    rz, ry, rx = (int(r) for r in radius)
    n_all = len(_MODULES[family].FEATURES)
    sel = np.arange(n_all, dtype=np.int64) if features is None else np.asarray(features, dtype=np.int64)
    shape = (len(sel), q.shape[0] - 2 * rz, q.shape[1] - 2 * ry, q.shape[2] - 2 * rx)
    out = np.full(shape, np.nan, dtype=dtype)
    span = _centre_span(centres, (rz, ry, rx)) if out.size else None
    if span is None:
        return out
    # only the centres' bounding box (and its halo) is read: the per-block tables cost that box, not the
    # whole block (a chunk the ROI crosses at a corner, or the chunk-aligned box of a small ROI)
    halo = tuple(slice(sl.start, sl.stop + 2 * r) for sl, r in zip(span, (rz, ry, rx)))
    q = np.ascontiguousarray(q[halo], dtype=np.int32)
    centres = np.ascontiguousarray(centres[halo], dtype=np.bool_)
    region = (slice(None),) + span
    if out[region].flags.c_contiguous:  # the whole block (or whole planes of it): the kernel writes in place
        _family_block(q, centres, family, (rz, ry, rx), int(n_levels), planar, s, sel, out[region])
    else:
        part = np.full(out[region].shape, np.nan, dtype=dtype)
        _family_block(q, centres, family, (rz, ry, rx), int(n_levels), planar, s, sel, part)
        out[region] = part
    return out


def _family_block(q: np.ndarray, centres: np.ndarray, family: str, radius: tuple[int, int, int], n_levels: int,
                  planar: bool, s: dict[str, Any], sel: np.ndarray, out: np.ndarray) -> None:
    """Run the family's kernel on one contiguous block (``q`` with its halo) into ``out`` (NaN on entry)."""
    rz, ry, rx = radius
    offsets, flag, alpha = _family_offsets(family, planar, s)
    box = (2 * rz + 1, 2 * ry + 1, 2 * rx + 1)
    if family == "glcm":
        pairs, leave, enter = (_flat_pairs(a, q.shape) for a in _box_pairs(box, offsets))
        _glcm_sliding_block(q, centres, rz, ry, rx, n_levels, pairs, leave, enter, flag, sel, out)
    elif family == "ngtdm" and _ngtdm_by_classes(offsets, planar, s["ngtdm_distance"], n_levels):
        _ngtdm_class_block(q, centres, box, int(s["ngtdm_distance"]), n_levels, sel, out)
    elif family != "ngtdm" and _bitmask_fits(family, box, offsets):
        _bitmask_block(q, centres, family, box, offsets, n_levels, planar, alpha, sel, out)
    else:
        faces = face_offsets(planar)
        nb = _box_neighbours(box, offsets)
        no_lines = (np.zeros(1, np.int64), np.zeros(1, np.int64))
        lines, line_ptr = _box_lines(box, offsets) if family == "glrlm" else no_lines
        _kernel_block(q, centres, rz, ry, rx, MAP_FAMILIES[family], n_levels, nb, lines, line_ptr, len(offsets),
                      _box_neighbours(box, faces), _full_box_distance(box, faces), flag, alpha, sel, out)


# ---------------------------------------------------------------------------------------------
# settings, names and inputs
# ---------------------------------------------------------------------------------------------


def _family_name(family: str) -> str:
    key = _ALIASES.get(str(family).lower(), str(family).lower())
    if key not in MAP_FAMILIES:
        raise ValueError(f"feature_map: unknown family {family!r}; choose from {', '.join(MAP_FAMILIES)}")
    return key


def _family_settings(settings: dict[str, Any]) -> dict[str, Any]:
    out = {"glcm_distance": 1, "glcm_symmetric": True, "ngtdm_distance": 1, "ngldm_distance": 1, "ngldm_alpha": 0}
    out.update({k: v for k, v in settings.items() if k in out and v is not None})
    return out


def _normalised_settings(bins: int | None, settings: dict[str, Any]) -> dict[str, Any]:
    """IBSI-named settings via the texture core's :func:`texture_settings` (aliases, checks)."""
    given = dict(settings)
    fbs = any(k in given for k in ("bin_width", "binWidth"))
    if "discretisation" not in given and "discretization" not in given:
        given["discretisation"] = "fbs" if fbs else "fbn"
    if not fbs and not any(k in given for k in ("n_bins", "binCount", "bin_count")):
        given["n_bins"] = bins
    out = texture_settings(**given)
    refuse_processing(out, "feature_map")
    return out


def _feature_indices(family: str, features: Sequence[str] | str | None, suffix: str) -> list[int]:
    module = _MODULES[family]
    shorts = [f[0] for f in module.FEATURES]
    if features is None:
        return list(range(len(shorts)))
    if isinstance(features, str):
        features = [features]
    out = []
    for name in features:
        key = str(name)
        for pre in (module.PREFIX + "_",):
            if key.startswith(pre):
                key = key[len(pre) :]
        for suf in ("_" + suffix, "_3D_comb", "_2D_comb", "_3D", "_2D"):
            if key.endswith(suf):
                key = key[: -len(suf)]
                break
        if key not in shorts:
            raise ValueError(
                f"feature_map: {family} has no feature {name!r}; choose from "
                + ", ".join(f"{module.PREFIX}_{s}" for s in shorts)
            )
        out.append(shorts.index(key))
    return out


def _kernel_radius(image: xr.DataArray, radius: int | Sequence[int], radius_mm: Any, is_2d: bool) -> tuple[int, int, int]:
    sp = msi.spacing(image)
    if radius_mm is not None:
        rmm = np.broadcast_to(np.asarray(radius_mm, dtype=float), (len(sp),))
        if np.any(~np.isfinite(rmm)) or np.any(rmm < 0):
            raise ValueError(f"feature_map: radius_mm={radius_mm!r} must be finite and >= 0 mm")
        r = [int(math.floor(m / s + 1e-9)) for m, s in zip(rmm, sp)]
    else:
        r = list(np.broadcast_to(np.asarray(radius), (len(sp),)))
        if any(int(v) != v or v < 0 for v in r):
            raise ValueError(f"feature_map: radius={radius!r} must be a non-negative whole number of voxels")
        r = [int(v) for v in r]
    if is_2d:
        r = [0] + r
    if all(v == 0 for v in r):
        raise ValueError(
            f"feature_map: the kernel is a single voxel (radius {radius!r}, radius_mm {radius_mm!r}, spacing {sp} mm); "
            "give radius >= 1 voxel or a radius_mm of at least one voxel spacing"
        )
    return tuple(r)  # type: ignore[return-value]


def _as_dask(data: Any, chunks: Any) -> da.Array:
    if isinstance(data, da.Array):
        return data if chunks is None else data.rechunk(chunks)
    return da.from_array(np.asarray(data), chunks=chunks if chunks is not None else DEFAULT_CHUNK)


def _mask_data(image: xr.DataArray, mask: Any, label: Any) -> Any:
    if mask is None:
        return None
    if isinstance(mask, xr.DataArray):
        if not msi.same_grid(image, mask):
            gi, gm = msi.grid_of(image), msi.grid_of(mask)
            raise RoiError(
                f"feature_map: mask is on another grid than the image (image shape {gi['shape']}, spacing "
                f"{gi['spacing']}, origin {gi['origin']}; mask shape {gm['shape']}, spacing {gm['spacing']}, origin "
                f"{gm['origin']}); resample the mask onto the image grid (nearest neighbour) first"
            )
        data = mask.data
    else:
        data = mask
    if tuple(data.shape) != tuple(image.shape):
        raise RoiError(
            f"feature_map: mask has shape {tuple(data.shape)} but the image has shape {tuple(image.shape)}; "
            "pass a mask on the image grid"
        )
    if label is not None:
        return data == label
    return data != 0


# ---------------------------------------------------------------------------------------------
# blockwise discretisation
# ---------------------------------------------------------------------------------------------


def _levels_block(v: np.ndarray, keep: np.ndarray, method: str, n_levels: int, lo: float, hi: float,
                  width: float, anchor: float) -> np.ndarray:
    """Grey levels of a block (IBSI FBN over the global min/max, or FBS from the anchor); 0 elsewhere."""
    q = np.zeros(v.shape, dtype=np.int32)
    if not keep.any():
        return q
    x = v[keep].astype(float)
    if method == "fbn":
        if hi <= lo:
            lev = np.ones(x.shape, dtype=np.int64)
        else:
            lev = np.clip(np.floor(n_levels * (x - lo) / (hi - lo)).astype(np.int64) + 1, 1, n_levels)
    else:
        lev = np.floor((x - anchor) / width).astype(np.int64) + 1
        lev = np.clip(lev, 1, n_levels)
    q[keep] = lev
    return q


def _chunks_at_least(chunks: tuple[tuple[int, ...], ...], depth: Sequence[int]) -> tuple[tuple[int, ...], ...]:
    """``chunks`` with every chunk merged into a neighbour until it is at least ``depth`` wide."""
    out = []
    for sizes, d in zip(chunks, depth):
        sizes = list(sizes)
        k = 0
        while len(sizes) > 1 and k < len(sizes):
            if sizes[k] < max(int(d), 1):
                j = k - 1 if k == len(sizes) - 1 else k + 1
                sizes[min(j, k)] = sizes[j] + sizes[k]
                del sizes[max(j, k)]
                k = 0
            else:
                k += 1
        out.append(tuple(sizes))
    return tuple(out)


def _dilated(mask: da.Array, radius: tuple[int, int, int]) -> da.Array:
    """``mask`` grown by the kernel box: the voxels some kernel centred in ``mask`` can reach."""
    from scipy import ndimage

    size = tuple(2 * r + 1 for r in radius)
    return da.map_overlap(
        lambda b: ndimage.maximum_filter(b, size=size, mode="constant", cval=False),
        mask, depth={0: radius[0], 1: radius[1], 2: radius[2]}, boundary=False, dtype=bool,
    )


def _reach_box(mask: Any, radius: Sequence[int]) -> tuple[slice, ...] | None:
    """The mask's bounding box grown by the kernel radius (clipped to the grid); None: no mask or an empty one."""
    if mask is None:
        return None
    axes = tuple(range(mask.ndim))
    spans = [mask.any(axis=tuple(a for a in axes if a != k)) for k in axes]
    if any(isinstance(x, da.Array) for x in spans):
        spans = list(dask.compute(*spans))
    box = []
    for k, span in enumerate(spans):
        hit = np.flatnonzero(np.asarray(span))
        if hit.size == 0:
            return None
        box.append(slice(max(int(hit[0]) - int(radius[k]), 0), min(int(hit[-1]) + int(radius[k]) + 1, mask.shape[k])))
    return tuple(box)


def _any_block(b: np.ndarray) -> np.ndarray:
    """One bool per block: does it hold any True voxel (the per-chunk "has ROI" table)."""
    return np.full((1,) * b.ndim, bool(b.any()))


def _nan_block(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """A read-only all-NaN block that holds no memory (a broadcast scalar)."""
    return np.broadcast_to(np.array(np.nan, dtype=dtype), shape)


def _nan_array(chunks: tuple[tuple[int, ...], ...], dtype: Any) -> da.Array:
    """An all-NaN dask array whose blocks are broadcast scalars (no memory until assembled)."""
    dtype = np.dtype(dtype)
    name = "texture-map-nan-" + tokenize(chunks, dtype.str)
    dsk = {
        (name,) + idx: (_nan_block, tuple(c[i] for c, i in zip(chunks, idx)), dtype)
        for idx in itertools.product(*(range(len(c)) for c in chunks))
    }
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=())
    return da.Array(graph, name, chunks, meta=np.empty((0,) * len(chunks), dtype=dtype))


def _snapped(box: Sequence[slice], chunks: Sequence[Sequence[int]]) -> tuple[slice, ...]:
    """``box`` grown outwards to the nearest chunk boundaries of ``chunks`` (one slice per axis).

    A map that is padded back to the whole grid then has the grid's own chunks: a zarr store takes its
    blocks as they are computed instead of rechunking irregular ones (which holds many blocks at once).
    """
    out = []
    for b, sizes in zip(box, chunks):
        edges = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        lo = int(edges[np.searchsorted(edges, b.start, side="right") - 1])
        hi = int(edges[np.searchsorted(edges, b.stop, side="left")])
        out.append(slice(lo, hi))
    return tuple(out)


def _pad_chunks(sizes: Sequence[int], width: int, before: bool) -> tuple[int, ...]:
    """The chunk sizes of ``width`` voxels at the start (or end) of an axis chunked as ``sizes``."""
    seq = list(sizes) if before else list(sizes)[::-1]
    out, total = [], 0
    for c in seq:
        if total >= width:
            break
        out.append(min(int(c), width - total))
        total += out[-1]
    return tuple(out if before else out[::-1])


def _nan_padded(core: da.Array, pads: Sequence[tuple[int, int]], dtype: Any,
                grid_chunks: Sequence[Sequence[int]] | None = None) -> da.Array:
    """``core`` padded with NaN (``da.pad``'s result, but the padding blocks are broadcast scalars).

    With ``grid_chunks`` (the chunks of the padded result) the padding follows them, so a core whose
    edges sit on chunk boundaries gives back exactly the grid's chunks.
    """
    out = core
    for axis, (before, after) in enumerate(pads):
        pieces = []
        for width, first in ((before, True), (after, False)):
            sizes = ((int(width),) if grid_chunks is None or not width
                     else _pad_chunks(grid_chunks[axis], int(width), first))
            chunks = out.chunks[:axis] + (sizes,) + out.chunks[axis + 1 :]
            pieces.append(_nan_array(chunks, dtype) if width else None)
        parts = [p for p in (pieces[0], out, pieces[1]) if p is not None]
        if len(parts) > 1:
            out = da.concatenate(parts, axis=axis)
    return out


def _grid_chunks(data: Any, chunks: Any) -> tuple[tuple[int, ...], ...]:
    """The dask chunks of the image grid, as :func:`_as_dask` would give them, without building the array."""
    if isinstance(data, da.Array):
        return data.chunks if chunks is None else data.rechunk(chunks).chunks
    data = np.asarray(data)
    return da.core.normalize_chunks(chunks if chunks is not None else DEFAULT_CHUNK, data.shape, dtype=data.dtype)


def _numpy_box(data: Any, box: Sequence[slice] | None) -> np.ndarray:
    """``data[box]`` (all of it when ``box`` is None) in memory."""
    part = data if box is None else data[tuple(box)]
    return np.asarray(part.compute() if isinstance(part, da.Array) else part)


def _sliced_chunks(chunks: Sequence[Sequence[int]], box: Sequence[slice]) -> tuple[tuple[int, ...], ...]:
    """The chunk sizes of ``box`` cut from an array chunked as ``chunks`` (as dask slices it)."""
    out = []
    for sizes, b in zip(chunks, box):
        edges = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        part = [min(hi, b.stop) - max(lo, b.start) for lo, hi in zip(edges[:-1], edges[1:])]
        out.append(tuple(int(n) for n in part if n > 0))
    return tuple(out)


def _block_slices(chunks: Sequence[Sequence[int]]) -> dict[tuple[int, ...], tuple[slice, ...]]:
    """Every block's index and its slices in an array chunked as ``chunks``."""
    edges = [np.concatenate([[0], np.cumsum(c)]).astype(int) for c in chunks]
    return {
        idx: tuple(slice(int(e[i]), int(e[i + 1])) for e, i in zip(edges, idx))
        for idx in itertools.product(*(range(len(c)) for c in chunks))
    }


def _block_table(a: np.ndarray, chunks: Sequence[Sequence[int]], fn: Any) -> np.ndarray:
    """``fn`` of every block of ``a`` (chunked as ``chunks``), one value per block: ``map_blocks`` in numpy."""
    out = np.zeros(tuple(len(c) for c in chunks), dtype=bool)
    for idx, sl in _block_slices(chunks).items():
        out[idx] = fn(a[sl]).ravel()[0]
    return out


def _dilated_numpy(mask: np.ndarray, radius: tuple[int, int, int]) -> np.ndarray:
    """:func:`_dilated` of an in-memory mask (the same filter on the whole box, no halo exchange)."""
    from scipy import ndimage

    return ndimage.maximum_filter(mask, size=tuple(2 * r + 1 for r in radius), mode="constant", cval=False)


def _roi_moments(v: Any, roi: Any, chunks: Sequence[Sequence[int]]) -> tuple[Any, Any, Any]:
    """Count, sum and sum of squares of ``v`` in ``roi`` (for the outlier filter).

    Always summed by dask over ``chunks`` so an in-memory box gives the same floating-point sums (hence the
    same outlier range) as the chunked path.
    """
    if isinstance(v, np.ndarray):
        v, roi = da.from_array(v, chunks=chunks), da.from_array(roi, chunks=chunks)
    return dask.compute(roi.sum(), da.where(roi, v, 0).sum(), da.where(roi, v.astype(float) ** 2, 0).sum())


def _chunked_map(q: np.ndarray, chunks: Sequence[Sequence[int]], has_roi: np.ndarray, *, family: str,
                 radius: tuple[int, int, int], n_levels: int, planar: bool, sel: list[int],
                 settings: dict[str, Any], out_dtype: Any) -> da.Array:
    """The map of an in-memory levels + ROI-bit box as a dask array chunked as ``chunks``: one task per chunk.

    Each task reads its chunk with a halo of ``radius`` from the zero-padded box, which is what
    ``map_overlap(..., boundary=0)`` hands :func:`_block_features`, without the overlap layers
    (a small box's graph is a handful of tasks). Chunks without ROI voxels are NaN blocks.
    """
    qpad = np.pad(q, [(int(r), int(r)) for r in radius])
    name = "texture-map-" + tokenize(qpad, chunks, family, radius, n_levels, planar, sel, settings, str(out_dtype))
    n_out = len(sel)
    dsk: dict[Any, Any] = {}
    for idx, sl in _block_slices(chunks).items():
        if not has_roi[idx]:
            dsk[(name, 0) + idx] = (_nan_block, (n_out,) + tuple(b.stop - b.start for b in sl), np.dtype(out_dtype))
            continue
        halo = tuple(slice(b.start, b.stop + 2 * int(r)) for b, r in zip(sl, radius))
        dsk[(name, 0) + idx] = (_block_features, qpad[halo], family, radius, n_levels, planar, sel, settings, out_dtype)
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=())
    return da.Array(graph, name, ((n_out,),) + tuple(tuple(c) for c in chunks),
                    meta=np.empty((0, 0, 0, 0), dtype=out_dtype))


def _levels_roi_block(v: np.ndarray, keep: np.ndarray, roi: np.ndarray, method: str, n_levels: int, lo: float,
                      hi: float, width: float, anchor: float) -> np.ndarray:
    """:func:`_levels_block` with the ROI flag in bit ``_ROI_BIT`` (grey levels stay below it)."""
    q = _levels_block(v, keep, method, n_levels, lo, hi, width, anchor)
    q[roi] |= 1 << _ROI_BIT
    return q


def _block_features(q: np.ndarray, family: str, radius: tuple[int, int, int], n_levels: int,
                    planar: bool, sel: list[int], settings: dict[str, Any], out_dtype: Any,
                    has_roi: np.ndarray | None = None, block_id: tuple[int, ...] | None = None) -> np.ndarray:
    """One chunk's map from levels + ROI bit (:func:`_levels_roi_block`); a chunk without ROI voxels (per
    ``has_roi``, indexed by its block) is a NaN block without running the kernel."""
    if has_roi is not None and block_id is not None and not has_roi[tuple(block_id[-3:])]:
        shape = (len(sel),) + tuple(n - 2 * int(r) for n, r in zip(q.shape, radius))
        return _nan_block(shape, out_dtype)
    centres = (q >> _ROI_BIT).astype(bool)
    return map_features(q & ((1 << _ROI_BIT) - 1), centres, family, radius, n_levels, planar, sel, settings, out_dtype)


# ---------------------------------------------------------------------------------------------
# public
# ---------------------------------------------------------------------------------------------


def feature_map(
    image: xr.DataArray,
    mask: Any = None,
    family: str = "glcm",
    features: Sequence[str] | str | None = None,
    radius: int | Sequence[int] = 2,
    bins: int = 32,
    radius_mm: float | Sequence[float] | None = None,
    masked_kernel: bool = False,
    chunks: Any = None,
    dtype: Any = np.float32,
    aggregation: str | None = None,
    crop: bool = False,
    **settings: Any,
) -> xr.DataArray:
    """Per-voxel IBSI texture features in a sliding kernel, one ``c`` channel per feature.

    Parameters
    ----------
    image : xarray.DataArray
        2-D ``(y, x)`` or 3-D ``(z, y, x)`` spatial image (numpy- or dask-backed); singleton
        ``t``/``c`` dims are dropped.
    mask : xarray.DataArray or array, optional
        Region whose voxels get values (others are NaN); on the image grid. None: every finite voxel.
    family : str
        ``"glcm"``, ``"glrlm"``, ``"glszm"``, ``"gldzm"``, ``"ngtdm"`` or ``"ngldm"`` (IBSI prefixes
        ``cm``, ``rlm``, ... are accepted).
    features : sequence of str, optional
        Features to keep, by short name (``"joint_avg"``) or IBSI tag (``"cm_joint_avg"``,
        ``"cm_joint_avg_3D_comb"``); all by default.
    radius : int or sequence of int
        Kernel half-width in voxels (per spatial dim or one for all): the kernel is ``2r + 1`` wide.
    bins : int
        Fixed bin number over the ROI's intensity range (ignored when ``bin_width`` is given).
    radius_mm : float or sequence of float, optional
        Half-width in mm instead of voxels (``floor(radius_mm / spacing)`` voxels per dim).
    masked_kernel : bool
        Only mask voxels enter a kernel (else every finite voxel in it does).
    chunks : optional
        Dask chunks of the computation (default: the image's own, else 64 voxels per side).
    dtype : numpy dtype
        Output type (float32 by default, to halve the result's memory).
    aggregation : {"3D", "2D"}, optional
        ``"3D"`` (default for 3-D images): cubic kernels, 13 directions, 26-connectivity.
        ``"2D"``: in-plane ``(2r + 1)^2`` kernels on each slice (IBSI's 4 in-plane directions,
        8-connectivity), e.g. for thick-slice images; the only choice for 2-D images.
    crop : bool
        Return the map on the ROI's bounding box grown by the kernel radius (with its own
        coordinates) instead of the whole image grid.
    **settings
        IBSI settings or pyradiomics-style names, as for
        :func:`multiscale.analysis.texture.features`: ``bin_width``/``binWidth`` and ``min_anchor``
        (fixed bin size), ``resegment_range``, ``outlier_sigma``, ``glcm_distance``,
        ``glcm_symmetric``, ``ngtdm_distance``, ``ngldm_distance``, ``ngldm_alpha``, ``label``.

    Returns
    -------
    xarray.DataArray
        Lazy (dask-backed) image with dims ``("c",) + spatial dims``, the input's geometry and
        attrs, ``c`` coords = IBSI tags (aggregation ``3D_comb``/``3D`` for 3-D images,
        ``2D_comb``/``2D`` for 2-D ones), ``units`` ``""`` and ``provenance["texture_map"]``
        recording the settings (kernel radius, discretisation, grey-level range, n_levels).

    Raises
    ------
    RoiError
        Mask on another grid or of another shape.
    ValueError
        Unknown family or feature, a one-voxel kernel, or invalid settings.

    Warns
    -----
    TextureWarning
        Empty ROI (all NaN), NaN voxels inside the mask (left out of kernels; NaN there), a constant
        ROI (one grey level), or an ROI of one voxel.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> img = spatial_image(np.random.default_rng(0).random((8, 8, 8)), spacing=1.0)
    >>> m = feature_map(img, family="glcm", features=["joint_avg", "contrast"], radius=1, bins=8)
    >>> m.c.values.tolist(), m.shape
    (['cm_joint_avg_3D_comb', 'cm_contrast_3D_comb'], (2, 8, 8, 8))
    """
    family = _family_name(family)
    module = _MODULES[family]
    image = single_channel(image, "feature_map: image", error=RoiError)
    sdims = msi.spatial_dims(image)
    if len(sdims) not in (2, 3):
        raise RoiError(f"feature_map: image has spatial dims {sdims}; texture maps need a 2-D or 3-D image")
    is_2d = len(sdims) == 2
    s = _normalised_settings(bins, settings)
    kind = "2D" if is_2d else "3D"
    if aggregation is not None:
        kind = str(aggregation).replace("_comb", "").upper()
        if kind not in ("2D", "3D") or (is_2d and kind == "3D"):
            raise ValueError(
                f"feature_map: aggregation={aggregation!r}; use '3D' (cubic kernels) or '2D' (in-plane kernels"
                + ("" if not is_2d else "; a 2-D image has only '2D'") + ")"
            )
    planar = kind == "2D"
    rad = _kernel_radius(image, radius, radius_mm, is_2d)
    if planar and not is_2d:
        rad = (0,) + tuple(rad[1:])
        if rad == (0, 0, 0):
            raise ValueError(f"feature_map: the in-plane kernel is a single voxel (radius {radius!r}); give radius >= 1")
    agg = f"{kind}_comb" if module.AGGREGATIONS[0].endswith("avg") else kind
    sel = _feature_indices(family, features, agg)
    tags = [f"{module.PREFIX}_{module.FEATURES[i][0]}_{agg}" for i in sel]

    reach = rad[1:] if is_2d else rad
    m = _mask_data(image, mask, s.get("label"))
    grid = _chunks_at_least(_grid_chunks(image.data, chunks), reach)
    # the grid cost ends here: all below runs on the mask's bounding box grown by the kernel's reach
    full_chunks = (((1,),) + grid) if is_2d else grid
    pre = _reach_box(m, reach)
    if pre is not None and not crop:  # padded back to the grid later: keep the grid's chunk boundaries
        pre = _snapped(pre, grid)
    # a small box is prepared in memory (numpy): dask's graph building, optimisation and scheduling of the
    # preliminary reductions cost more than the arithmetic for a box of up to EAGER_VOXELS voxels
    eager = math.prod(b.stop - b.start for b in pre) <= EAGER_VOXELS if pre else image.size <= EAGER_VOXELS
    if eager:
        v = _numpy_box(image.data, pre)
        m = None if m is None else _numpy_box(m, pre).astype(bool, copy=False)
        chunks_now = _sliced_chunks(grid, pre) if pre else grid
    else:
        v = _as_dask(image.data, chunks).rechunk(grid)
        if pre is not None:
            if isinstance(image.data, np.ndarray):  # the graph embeds only the box (same chunk boundaries)
                v = da.from_array(image.data[pre], chunks=v[pre].chunks)
            else:
                v = v[pre]
            m = m[pre]
        chunks_now = v.chunks
    offset = (0,) * (len(full_chunks) - v.ndim) + (tuple(b.start for b in pre) if pre else (0,) * v.ndim)
    finite = np.isfinite(v)
    if m is None:
        inside = np.ones(v.shape, dtype=bool) if eager else da.ones(v.shape, dtype=bool, chunks=v.chunks)
    else:
        inside = m if eager else _as_dask(m, v.chunks).astype(bool)
    allowed = finite
    rng = s.get("resegment_range")
    if rng is not None:
        allowed = allowed & (v >= rng[0]) & (v <= rng[1])
    roi = inside & allowed
    notes: list[str] = []
    if s.get("outlier_sigma") is not None:
        n0, s1, s2 = _roi_moments(v, roi, chunks_now)
        if n0:
            mu = float(s1) / float(n0)
            sd = math.sqrt(max(float(s2) / float(n0) - mu * mu, 0.0))
            k = float(s["outlier_sigma"])
            allowed = allowed & (v >= mu - k * sd) & (v <= mu + k * sd)
            roi = inside & allowed
    if is_2d:
        v, roi, allowed, inside, finite = (a[None] for a in (v, roi, allowed, inside, finite))
        chunks_now = ((1,),) + tuple(chunks_now)
    n_roi, n_nan, *spans = dask.compute(
        roi.sum(), (inside & ~finite).sum(), roi.any(axis=(1, 2)), roi.any(axis=(0, 2)), roi.any(axis=(0, 1))
    )
    n_roi, n_nan = int(n_roi), int(n_nan)
    if n_nan:
        notes.append(f"{n_nan} NaN voxels inside the mask were left out of the kernels; the map is NaN there")
    method = s["discretisation"]
    width = float(s["bin_width"]) if method == "fbs" else 1.0
    anchor = float("nan")
    lo = hi = 0.0
    box = tuple(slice(0, n) for n in v.shape)
    if n_roi == 0:
        notes.append("the ROI is empty (no finite voxels inside the mask and range): every map value is NaN")
        n_levels = int(s["n_bins"] or 1)
    else:
        # everything below happens in the ROI's bounding box grown by the kernel's reach
        box = []
        for axis, span in enumerate(spans):
            hit = np.flatnonzero(span)
            box.append(slice(max(int(hit[0]) - rad[axis], 0), min(int(hit[-1]) + rad[axis] + 1, v.shape[axis])))
        box = tuple(box)
        if not crop:
            box = _snapped(box, chunks_now)
        v, roi, allowed = (a[box] for a in (v, roi, allowed))
        safe = _chunks_at_least(_sliced_chunks(chunks_now, box) if eager else v.chunks, rad)
        box = tuple(slice(b.start + o, b.stop + o) for b, o in zip(box, offset))  # on the image grid
        if eager:
            chunks_now = safe
            sample = roi if masked_kernel else allowed & _dilated_numpy(roi, rad)
            has_roi = _block_table(roi, safe, _any_block)
            kept = v[sample]  # the same extremes as the dask path's where(sample, v, +-big), without a float copy
            lo, hi = kept.min(), kept.max()
        else:
            v, roi, allowed = (a.rechunk(safe) for a in (v, roi, allowed))
            sample = roi if masked_kernel else allowed & _dilated(roi, rad)
            big = np.finfo(float).max
            has_roi = roi.map_blocks(_any_block, chunks=tuple((1,) * n for n in roi.numblocks), dtype=bool)
            lo, hi, has_roi = dask.compute(da.where(sample, v, big).min(), da.where(sample, v, -big).max(), has_roi)
        lo, hi = float(lo), float(hi)
        if hi <= lo:
            notes.append("the ROI has constant intensity: every voxel has grey level 1, dispersion features are NaN or 0")
        if n_roi == 1:
            notes.append("the ROI has one voxel: co-occurrence and run features of its kernel are undefined (NaN)")
        if method == "fbn":
            n_levels = int(s["n_bins"])
        else:
            anchor = s["min_anchor"]
            if anchor is None and rng is not None and np.isfinite(rng[0]):
                anchor = rng[0]
            if anchor is None:
                notes.append(
                    f"FBS anchored at the minimum intensity {lo:g} of the voxels kernels reach (no min_anchor or "
                    "re-segmentation range); IBSI anchors at the lower re-segmentation bound: pass "
                    "resegment_range=(lower, upper) or min_anchor="
                )
            anchor = float(lo if anchor is None else anchor)
            if lo < anchor:
                raise ValueError(
                    f"feature_map: intensities down to {lo:g} lie below the FBS anchor min_anchor={anchor:g}; "
                    "lower min_anchor or set resegment_range=(anchor, upper)"
                )
            n_levels = int(math.floor((hi - anchor) / width)) + 1
            if rng is not None and np.isfinite(rng[1]):
                n_levels = max(n_levels, fbs_range_levels(anchor, rng[1], width))
    if n_levels > 4096:
        raise ValueError(
            f"feature_map: {n_levels} grey levels (bin_width {width:g} over {lo:g}..{hi:g}); use a wider bin_width "
            "or bins= (fixed bin number) for maps"
        )
    if notes:
        warnings.warn("; ".join(notes), TextureWarning, stacklevel=2)

    out_dtype = np.dtype(dtype)
    if n_roi == 0:
        result = _nan_array(((len(sel),),) + full_chunks, out_dtype)
        box = tuple(slice(0, sum(c)) for c in full_chunks)
    else:
        kernel = dict(family=family, radius=rad, n_levels=n_levels, planar=planar, sel=sel,
                      settings=_family_settings(s), out_dtype=out_dtype)
        if eager:
            q = _levels_roi_block(v, sample, roi, method, n_levels, lo, hi, width, anchor)
            result = _chunked_map(q, chunks_now, np.asarray(has_roi, dtype=bool), **kernel)
        else:
            # grey levels and the ROI flag travel in one int32 array: one halo exchange instead of two
            q = da.map_blocks(_levels_roi_block, v, sample, roi, method, n_levels, lo, hi, width, anchor,
                              dtype=np.int32)
            result = da.map_overlap(
                _block_features, q,
                depth={0: rad[0], 1: rad[1], 2: rad[2]}, boundary=0, trim=False, align_arrays=False, new_axis=0,
                chunks=((len(sel),),) + tuple(q.chunks), dtype=out_dtype, meta=np.empty((0, 0, 0, 0), dtype=out_dtype),
                has_roi=np.asarray(has_roi, dtype=bool), **kernel,
            )
        if not crop:
            full = (image.sizes["z"],) if not is_2d else (1,)
            full = full + tuple(image.sizes[d] for d in ("y", "x"))
            pads = [(0, 0)] + [(b.start, n - b.stop) for b, n in zip(box, full)]
            if any(p != (0, 0) for p in pads):
                result = _nan_padded(result, pads, out_dtype, grid_chunks=((len(sel),),) + full_chunks)
    if crop:
        image = image.isel({d: b for d, b in zip(sdims, box[1:] if is_2d else box)})
    if is_2d:
        result = result[:, 0]
    provenance = dict(image.attrs.get("provenance", {}) or {})
    provenance["texture_map"] = {
        "family": family,
        "aggregation": agg,
        "cropped_to_roi_box": bool(crop),
        "radius_voxels": tuple(rad[1:] if is_2d else rad),
        "radius_mm": None if radius_mm is None else np.broadcast_to(np.asarray(radius_mm, float), (len(sdims),)).tolist(),
        "masked_kernel": bool(masked_kernel),
        "discretisation": method,
        "n_levels": n_levels,
        "bin_width": width if method == "fbs" else None,
        "min_anchor": None if method == "fbn" else anchor,
        "intensity_range": (lo, hi),
        "n_roi_voxels": n_roi,
        "settings": {k: s[k] for k in ("resegment_range", "outlier_sigma", "label")} | _family_settings(s),
    }
    out = msi.like(image, result, dims=("c",) + sdims, units="", provenance=provenance)
    return out.assign_coords(c=tags)


def _map_rows(fmap: xr.DataArray, mask: Any, units: str) -> list[dict[str, Any]]:
    m = np.asarray(mask.data if hasattr(mask, "data") else mask, dtype=bool)
    layers = [(str(c), fmap.sel(c=c)) for c in fmap.coords["c"].values] if "c" in fmap.dims else [
        (str(fmap.attrs.get("feature", fmap.name or "feature")), fmap)]
    rows = []
    for feat, layer in layers:
        v = np.asarray(layer.data, dtype=float)[m]
        v = v[np.isfinite(v)]
        if v.size:
            rows.append(dict(metric=f"{feat}.map_mean", value=float(v.mean()), units=feature_unit(feat, units),
                             detail="mean of the voxel-wise map in the region"))
    return rows


def feature_map_result(image: xr.DataArray, mask: Any, **params: Any) -> FamilyResult:
    """:func:`feature_map` computed once: its region means as rows and the map itself as an image to save.

    The map is computed into memory (the study pipeline saves it in the reference frame's OME-Zarr);
    for maps larger than memory call :func:`feature_map` and write it with ``to_zarr``.
    """
    fmap = feature_map(image, mask, **params)
    if hasattr(fmap.data, "compute"):
        fmap = fmap.copy(data=np.asarray(fmap.data.compute()))
    return FamilyResult(rows=_map_rows(fmap, mask, image_units(image)), images={"texture": fmap})


def feature_map_table(
    image: xr.DataArray,
    mask: Any,
    *,
    family: str = "glcm",
    features: Sequence[str] | str | None = None,
    radius: int | Sequence[int] = 2,
    bins: int = 32,
    radius_mm: float | Sequence[float] | None = None,
    masked_kernel: bool = False,
    aggregation: str | None = None,
    **settings: Any,
) -> list[dict[str, Any]]:
    """The region mean of every voxel-wise feature map (``<tag>.map_mean``, IBSI units); the study's ``texture_map``.

    The maps themselves are saved by the study pipeline (see :func:`feature_map_result`).

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> img = spatial_image(np.random.default_rng(0).random((6, 6, 6)), spacing=1.0)
    >>> rows = feature_map_table(img, np.ones((6, 6, 6), bool), features=["cm_joint_avg"], radius=1, bins=4)
    >>> rows[0]["metric"], rows[0]["units"]
    ('cm_joint_avg_3D_comb.map_mean', '1')
    """
    return feature_map_result(image, mask, family=family, features=features, radius=radius, bins=bins,
                              radius_mm=radius_mm, masked_kernel=masked_kernel, aggregation=aggregation,
                              **settings).rows


def _map_figures(result: FamilyResult, title: str = "", labels: Sequence[str] = ()) -> list[tuple[str, Any]]:
    fmap = result.images.get("texture")
    return [] if fmap is None else [("map", feature_map_figure(fmap, title=title))]


def _setting_names() -> list[str]:
    return sorted(set(DEFAULTS) | set(ALIASES) | {"chunks", "dtype", "crop"})


FAMILY = Family(
    name="texture_map",
    table=feature_map_table,
    inputs=("image", "mask"),
    evaluate_fn=feature_map_result,
    figure=_map_figures,
    settings=_setting_names,
    description="voxel-wise IBSI texture maps (GLCM, GLRLM, GLSZM, GLDZM, NGTDM, NGLDM) and their region means",
)
