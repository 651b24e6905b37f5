"""Shared machinery of the six IBSI texture-matrix families.

* neighbour offsets (directions for GLCM/GLRLM, neighbourhoods for NGTDM/NGLDM, connectivity for
  zones), all in numpy ``(z, y, x)`` order;
* the IBSI aggregation methods (2D, 2.5D, 3D; averaged or merged), their tag suffixes and the
  wording of ``reference_values.csv``;
* the features shared by every "grey level x count" matrix (GLRLM, GLSZM, GLDZM, NGLDM): the
  emphases, non-uniformities, percentage, variances, entropy and energy of IBSI chapter 3;
* one pass over the 26-neighbourhood that fills the GLCM, GLRLM, NGTDM and NGLDM of a volume at once
  (:func:`neighbourhood_matrices`, used by ``features`` when several of them are asked for), and the
  connected-zone labelling of GLSZM and GLDZM.

Every kernel is compiled with numba and works on a 3-D int array ``q`` (z, y, x) whose values are
grey levels ``1..n_levels`` inside the region of interest and 0 outside. A 2-D computation is the
same kernel on one slice ``q[z:z + 1]`` with in-plane offsets only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
from numba import njit

#: aggregation methods of GLCM and GLRLM (features per matrix averaged, or matrices merged first)
MATRIX_AGGREGATIONS: tuple[str, ...] = ("2D_avg", "2D_comb", "2_5D_avg", "2_5D_comb", "3D_avg", "3D_comb")
#: aggregation methods of GLSZM, GLDZM, NGTDM and NGLDM (one matrix per slice or per volume)
ZONE_AGGREGATIONS: tuple[str, ...] = ("2D", "2_5D", "3D")

#: the wording of the ``aggregation`` column of IBSI's reference_values.csv
AGGREGATION_TEXT: dict[str, str] = {
    "2D_avg": "2D, averaged",
    "2D_comb": "2D, slice-merged",
    "2_5D_avg": "2.5D, direction-merged",
    "2_5D_comb": "2.5D, merged",
    "3D_avg": "3D, averaged",
    "3D_comb": "3D, merged",
    "2D": "2D",
    "2_5D": "2.5D",
    "3D": "3D",
}


def check_aggregations(aggregations: Sequence[str] | None, allowed: tuple[str, ...], family: str) -> tuple[str, ...]:
    """The requested aggregations, validated (``None`` means all of ``allowed``).

    Examples
    --------
    >>> check_aggregations(None, ZONE_AGGREGATIONS, "glszm")
    ('2D', '2_5D', '3D')
    """
    if aggregations is None:
        return allowed
    if isinstance(aggregations, str):
        aggregations = (aggregations,)
    bad = [a for a in aggregations if a not in allowed]
    if bad:
        raise ValueError(f"{family}: unknown aggregation(s) {bad}; choose from {list(allowed)}")
    return tuple(aggregations)


# ---------------------------------------------------------------------------------------------
# offsets (numpy z, y, x order)
# ---------------------------------------------------------------------------------------------


def neighbourhood_offsets(distance: int = 1, planar: bool = False) -> np.ndarray:
    """All offsets within Chebyshev ``distance`` of a voxel, the voxel itself excluded.

    Parameters
    ----------
    distance
        Chebyshev radius in voxels (IBSI's delta).
    planar
        Only in-plane offsets (dz = 0), for 2-D computations.

    Returns
    -------
    numpy.ndarray
        ``(k, 3)`` int64 array of ``(dz, dy, dx)``; 26 (3-D) or 8 (2-D) rows for distance 1.

    Examples
    --------
    >>> neighbourhood_offsets(1).shape, neighbourhood_offsets(1, planar=True).shape
    ((26, 3), (8, 3))
    """
    d = int(distance)
    if d < 1:
        raise ValueError(f"neighbourhood distance must be a positive integer, got {distance!r}")
    return _neighbourhood_offsets(d, bool(planar)).copy()


@cache
def _neighbourhood_offsets(d: int, planar: bool) -> np.ndarray:
    """The offsets of :func:`neighbourhood_offsets`, built once per setting (the 2-D aggregations ask for
    them once per slice and family); read-only, the public functions hand out copies."""
    rz = 0 if planar else d
    grid = np.mgrid[-rz : rz + 1, -d : d + 1, -d : d + 1].reshape(3, -1).T
    keep = np.any(grid != 0, axis=1)
    out = np.ascontiguousarray(grid[keep], dtype=np.int64)
    out.setflags(write=False)
    return out


def direction_offsets(distance: int = 1, planar: bool = False) -> np.ndarray:
    """One offset of each +/- pair of IBSI directions, scaled to Chebyshev ``distance``.

    13 directions in 3-D, 4 in-plane directions in 2-D: the lexicographically positive half of the
    26 (8) neighbours.

    Examples
    --------
    >>> direction_offsets(1, planar=True).tolist()
    [[0, 0, 1], [0, 1, -1], [0, 1, 0], [0, 1, 1]]
    """
    unit = _neighbourhood_offsets(1, bool(planar))
    positive = unit[[tuple(o) > (0, 0, 0) for o in unit]]
    return np.ascontiguousarray(positive * int(distance), dtype=np.int64)


def face_offsets(planar: bool = False) -> np.ndarray:
    """Face neighbours (6 in 3-D, 4 in 2-D): the connectivity of IBSI's distance-to-border erosion.

    Examples
    --------
    >>> face_offsets().shape
    (6, 3)
    """
    unit = neighbourhood_offsets(1, planar)
    return np.ascontiguousarray(unit[np.abs(unit).sum(axis=1) == 1])


def roi_slices(q: np.ndarray) -> Iterator[np.ndarray]:
    """The z-slices of ``q`` holding at least one ROI voxel, each as a ``(1, y, x)`` array.

    Examples
    --------
    >>> q = np.zeros((3, 2, 2), int); q[1, 0, 0] = 1
    >>> [s.shape for s in roi_slices(q)]
    [(1, 2, 2)]
    """
    for z in range(q.shape[0]):
        if np.any(q[z] > 0):
            yield np.ascontiguousarray(q[z : z + 1])


def as_levels(q: np.ndarray, n_levels: int, family: str) -> np.ndarray:
    """``q`` as a C-contiguous 3-D int32 array, checked against ``n_levels``."""
    arr = np.asarray(q)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"{family}: q must be a 3-D (z, y, x) grey-level array, got {arr.ndim} dims")
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{family}: q must hold integer grey levels (discretise first), got {arr.dtype}")
    n_levels = int(n_levels)
    if n_levels < 1:
        raise ValueError(f"{family}: n_levels must be >= 1, got {n_levels}")
    if arr.size and (arr.min() < 0 or arr.max() > n_levels):
        raise ValueError(
            f"{family}: grey levels must lie in 1..{n_levels} inside the ROI and be 0 outside; "
            f"found {arr.min()}..{arr.max()}"
        )
    return np.ascontiguousarray(arr, dtype=np.int32)


def compact_levels(q: np.ndarray, n_levels: int) -> np.ndarray:
    """``q`` in the narrowest signed integer type that holds ``0..n_levels`` (int8 for up to 127 levels).

    The neighbourhood kernels read three z-planes at once and walk runs across planes: with one byte
    per voxel those planes stay in the CPU cache (a 195 x 195 plane is 38 kB instead of 152 kB).
    """
    for dtype in (np.int8, np.int16):
        if int(n_levels) <= np.iinfo(dtype).max:
            return np.ascontiguousarray(q, dtype=dtype)
    return np.ascontiguousarray(q, dtype=np.int32)


# ---------------------------------------------------------------------------------------------
# rows of the result table
# ---------------------------------------------------------------------------------------------


def make_rows(
    family: str, prefix: str, specs: Sequence[tuple[str, str, str]], aggregation: str, values: np.ndarray
) -> list[dict]:
    """Rows ``{tag, ibsi_id, aggregation, family, feature, value}`` for one aggregation.

    ``specs`` is the family's ``(short name, IBSI id, human name)`` table, in the order of ``values``.

    Examples
    --------
    >>> make_rows("ngtdm", "ngt", [("strength", "1X9X", "Strength")], "3D", np.array([0.5]))[0]["tag"]
    'ngt_strength_3D'
    """
    return [
        {
            "tag": f"{prefix}_{short}_{aggregation}",
            "ibsi_id": ibsi_id,
            "aggregation": AGGREGATION_TEXT[aggregation],
            "family": family,
            "feature": name,
            "value": float(v),
        }
        for (short, ibsi_id, name), v in zip(specs, values, strict=True)
    ]


def mean_of_features(rows: list[np.ndarray], n_features: int) -> np.ndarray:
    """Average feature vectors, ignoring NaN entries (empty matrices); all-NaN stays NaN."""
    if not rows:
        return np.full(n_features, np.nan)
    stack = np.vstack(rows)
    good = np.isfinite(stack)
    count = good.sum(axis=0)
    total = np.where(good, stack, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


# ---------------------------------------------------------------------------------------------
# features of a grey level x count matrix (GLRLM, GLSZM, GLDZM, NGLDM)
# ---------------------------------------------------------------------------------------------

#: number of values :func:`count_matrix_features` returns
N_COUNT_FEATURES = 17


@njit(cache=True)
def count_matrix_features(m: np.ndarray, counts: np.ndarray, n_voxels: float, out: np.ndarray) -> None:
    """IBSI features of a grey level (rows, level = row + 1) x count (columns) matrix.

    ``counts[j]`` is the run length, zone size, distance or dependence of column ``j``; ``n_voxels``
    the number of voxels behind the matrix (for the percentage). ``out`` (17 values) receives, in
    order: short/low-count emphasis, long/high-count emphasis, low grey level emphasis, high grey
    level emphasis, short-low, short-high, long-low, long-high, grey level non-uniformity and its
    normalised form, count non-uniformity and its normalised form, percentage, grey level variance,
    count variance, count entropy (log2) and count energy. All NaN when the matrix is empty.
    """
    ng, nc = m.shape
    total = 0.0
    for i in range(ng):
        for j in range(nc):
            total += m[i, j]
    if total <= 0.0:
        for k in range(out.shape[0]):
            out[k] = np.nan
        return
    rows = np.zeros(ng)
    cols = np.zeros(nc)
    se = le = lg = hg = sl = sh = ll = lh = 0.0
    mu_i = mu_j = entr = energy = 0.0
    for i in range(ng):
        g = i + 1.0
        g2 = g * g
        for j in range(nc):
            v = m[i, j]
            if v == 0.0:
                continue
            c = counts[j]
            c2 = c * c
            se += v / c2
            le += v * c2
            lg += v / g2
            hg += v * g2
            sl += v / (g2 * c2)
            sh += v * g2 / c2
            ll += v * c2 / g2
            lh += v * g2 * c2
            rows[i] += v
            cols[j] += v
            p = v / total
            mu_i += g * p
            mu_j += c * p
            entr -= p * np.log2(p)
            energy += p * p
    var_i = var_j = 0.0
    for i in range(ng):
        g = i + 1.0
        for j in range(nc):
            v = m[i, j]
            if v == 0.0:
                continue
            p = v / total
            var_i += (g - mu_i) ** 2 * p
            var_j += (counts[j] - mu_j) ** 2 * p
    glnu = 0.0
    for i in range(ng):
        glnu += rows[i] * rows[i]
    cnu = 0.0
    for j in range(nc):
        cnu += cols[j] * cols[j]
    out[0] = se / total
    out[1] = le / total
    out[2] = lg / total
    out[3] = hg / total
    out[4] = sl / total
    out[5] = sh / total
    out[6] = ll / total
    out[7] = lh / total
    out[8] = glnu / total
    out[9] = glnu / (total * total)
    out[10] = cnu / total
    out[11] = cnu / (total * total)
    out[12] = total / n_voxels if n_voxels > 0 else np.nan
    out[13] = var_i
    out[14] = var_j
    out[15] = entr
    out[16] = energy


def count_features(m: np.ndarray, counts: np.ndarray, n_voxels: float) -> np.ndarray:
    """Python-side wrapper of :func:`count_matrix_features` returning the 17 values.

    Examples
    --------
    >>> float(count_features(np.array([[2.0, 0.0], [0.0, 1.0]]), np.array([1.0, 2.0]), 4)[12])
    0.75
    """
    out = np.empty(N_COUNT_FEATURES)
    count_matrix_features(
        np.ascontiguousarray(m, dtype=np.float64), np.ascontiguousarray(counts, dtype=np.float64), float(n_voxels), out
    )
    return out


# ---------------------------------------------------------------------------------------------
# one pass over the 26-neighbourhood for GLCM, GLRLM, NGTDM and NGLDM (distance 1)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NeighbourhoodMatrices:
    """The distance-1 matrices of GLCM, GLRLM, NGTDM and NGLDM of one grey-level array, from one pass.

    Built by :func:`neighbourhood_matrices`; a family uses them only when its own settings match
    (``symmetric`` for the GLCM, ``alpha`` for the NGLDM, ``width`` columns for the GLRLM, distance 1).
    """

    glcm: np.ndarray  # (directions, Ng, Ng)
    glrlm: np.ndarray  # (directions, Ng, width)
    ngtdm_s: np.ndarray  # (Ng,)
    ngtdm_n: np.ndarray  # (Ng,)
    ngldm: np.ndarray  # (Ng, neighbours + 1)
    n_voxels: int
    planar: bool
    symmetric: bool
    alpha: float


@njit(cache=True)
def _neighbourhood_pass(q: np.ndarray, fwd: np.ndarray, alpha: float, cm: np.ndarray, rl: np.ndarray,
                        ngt_s: np.ndarray, ngt_n: np.ndarray, ngl: np.ndarray) -> int:
    """Accumulate the four families' matrices in one raster pass over the padded, flattened ``q``.

    The 26 (8) neighbours are the ``fwd`` direction steps and their negatives; each is read once per
    voxel and serves every family (the separate kernels read each neighbour up to four times in four
    passes). The per-neighbour work has no data-dependent branch (texture makes such branches
    unpredictable): the forward neighbour's level indexes ``cm`` (``(k, Ng + 1, Ng + 1)``, level 0 =
    outside, counted one way; the caller drops row/column 0 and adds the transpose), and both
    neighbours enter the NGTDM sum and the NGLDM dependence as 0/1 terms. Runs: a voxel starts a run
    along ``k`` when its backward neighbour differs; only runs of two or more voxels are walked and
    counted in ``rl`` (``(k, Ng, width)``); the caller derives the single-voxel runs from the run
    totals (:func:`neighbourhood_matrices`), which saves a branch and a write per voxel and direction.
    Returns the number of ROI voxels.
    """
    n_roi = 0
    for v in range(q.size):
        g = np.int64(q[v])
        if g <= 0:
            continue
        n_roi += 1
        total = 0
        count = 0
        dep = 1
        for k in range(fwd.shape[0]):
            step = fwd[k]
            w = np.int64(q[v + step])
            u = np.int64(q[v - step])
            cm[k, g, w] += 1.0
            total += w + u  # outside voxels are 0
            count += (w > 0) + (u > 0)
            dep += ((w > 0) & (abs(w - g) <= alpha)) + ((u > 0) & (abs(u - g) <= alpha))
            if (u != g) & (w == g):  # first voxel of a run of at least two voxels along this direction
                length = 2
                x = v + 2 * step
                while q[x] == g:
                    length += 1
                    x += step
                rl[k, g - 1, length - 1] += 1.0
        if count > 0:  # integer sum: the float sum of the separate kernel is exact, so the mean is identical
            ngt_s[g - 1] += abs(g - float(total) / count)
            ngt_n[g - 1] += 1.0
        ngl[g - 1, dep - 1] += 1.0
    return n_roi


def neighbourhood_matrices(q: np.ndarray, n_levels: int, planar: bool = False, symmetric: bool = True,
                           alpha: float = 0.0, width: int | None = None) -> NeighbourhoodMatrices:
    """GLCM, GLRLM, NGTDM and NGLDM matrices of ``q`` at distance 1, from one pass over the neighbours.

    Identical to ``glcm_matrices(q, Ng, 1, symmetric, planar)``, ``glrlm_matrices(q, Ng, planar, width)``,
    ``ngtdm_matrix(q, Ng, 1, planar)`` and ``ngldm_matrix(q, Ng, 1, alpha, planar)`` (all counts are
    integers, so the order of accumulation does not matter).

    Examples
    --------
    >>> m = neighbourhood_matrices(np.array([[[1, 1, 2]]], np.int32), 2, planar=True)
    >>> m.glcm[0].tolist(), m.glrlm[0].tolist(), m.n_voxels
    ([[2.0, 1.0], [1.0, 0.0]], [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], 3)
    >>> from multiscale.analysis.texture import glcm, glrlm, ngldm, ngtdm
    >>> q = np.random.default_rng(0).integers(0, 4, (5, 6, 7))
    >>> m = neighbourhood_matrices(q, 3, alpha=1)
    >>> same = [np.array_equal(m.glcm, glcm.glcm_matrices(q, 3)), np.array_equal(m.glrlm, glrlm.glrlm_matrices(q, 3)),
    ...         np.array_equal(m.ngtdm_s, ngtdm.ngtdm_matrix(q, 3)[0]), np.array_equal(m.ngldm, ngldm.ngldm_matrix(q, 3, 1, 1))]
    >>> same
    [True, True, True, True]
    """
    q = compact_levels(as_levels(q, n_levels, "neighbourhood"), n_levels)
    ng = int(n_levels)
    fwd = direction_offsets(1, planar)
    width = int(width or max(q.shape))
    pairs = np.zeros((len(fwd), ng + 1, ng + 1))
    rl = np.zeros((len(fwd), ng, width))
    ngt_s = np.zeros(ng)
    ngt_n = np.zeros(ng)
    ngl = np.zeros((ng, 2 * len(fwd) + 1))
    flat, steps = padded_flat(q, fwd)
    n_roi = _neighbourhood_pass(flat, steps, float(alpha), pairs, rl, ngt_s, ngt_n, ngl)
    cm = np.ascontiguousarray(pairs[:, 1:, 1:])
    # runs of level g along k: one per voxel of level g whose backward neighbour is not g, i.e. the
    # voxels of level g minus the (g, g) pairs along k; the single-voxel runs are the runs not walked
    same = np.diagonal(cm, axis1=1, axis2=2)  # (k, Ng): pairs of equal level, counted one way
    rl[:, :, 0] = ngl.sum(axis=1)[None, :] - same - rl[:, :, 1:].sum(axis=2)
    if symmetric:
        cm += cm.transpose(0, 2, 1)
    return NeighbourhoodMatrices(cm, rl, ngt_s, ngt_n, ngl, int(n_roi), bool(planar), bool(symmetric), float(alpha))


# ---------------------------------------------------------------------------------------------
# connected zones and distance to the ROI border (GLSZM, GLDZM)
# ---------------------------------------------------------------------------------------------


def padded_flat(arr: np.ndarray, offsets: np.ndarray, pad: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``arr`` zero-padded by ``pad`` and flattened, with ``offsets`` as flat index steps.

    Neighbour look-ups from any voxel of the original array then need no bounds checks.

    Examples
    --------
    >>> flat, steps = padded_flat(np.ones((1, 2, 2), np.int32), np.array([[0, 0, 1], [1, 0, 0]]))
    >>> flat.shape, steps.tolist()
    ((48,), [1, 16])
    """
    arr = np.asarray(arr)
    # zeros + one slice assignment: what np.pad(arr, pad) gives, without its per-call overhead (which
    # dominated for the 2-D aggregations' many small slices)
    p = np.zeros(tuple(n + 2 * pad for n in arr.shape), dtype=arr.dtype)
    p[tuple(slice(pad, pad + n) for n in arr.shape)] = arr
    nz, ny, nx = p.shape
    steps = (offsets[:, 0] * ny + offsets[:, 1]) * nx + offsets[:, 2]
    return p.ravel(), np.ascontiguousarray(steps, dtype=np.int64)


def _unpad(flat: np.ndarray, shape: tuple[int, ...], pad: int = 1) -> np.ndarray:
    full = flat.reshape(tuple(n + 2 * pad for n in shape))
    return np.ascontiguousarray(full[pad:-pad, pad:-pad, pad:-pad])


@njit(cache=True)
def _border_distance_flat(mask: np.ndarray, steps: np.ndarray) -> np.ndarray:
    dist = np.zeros(mask.size, dtype=np.int32)
    queue = np.empty(mask.size, dtype=np.int64)
    tail = 0
    for v in range(mask.size):
        if not mask[v]:
            continue
        for k in range(steps.shape[0]):
            if not mask[v + steps[k]]:
                dist[v] = 1
                queue[tail] = v
                tail += 1
                break
    head = 0
    while head < tail:
        v = queue[head]
        head += 1
        for k in range(steps.shape[0]):
            n = v + steps[k]
            if mask[n] and dist[n] == 0:
                dist[n] = dist[v] + 1
                queue[tail] = n
                tail += 1
    return dist


def border_distance(mask: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """IBSI distance to the ROI border: 1 on edge voxels, repeated-erosion count inside, 0 outside.

    Equal to the city-block distance to the nearest voxel outside ``mask`` (the array border counts
    as outside), computed by a breadth-first search along ``faces`` (6 or 4 face neighbours).

    Examples
    --------
    >>> border_distance(np.ones((1, 1, 5), bool), face_offsets(True))[0, 0].tolist()
    [1, 1, 1, 1, 1]
    """
    mask = np.asarray(mask, dtype=bool)
    flat, steps = padded_flat(mask, faces)
    return _unpad(_border_distance_flat(flat, steps), mask.shape)


@njit(cache=True)
def _find(parent: np.ndarray, a: int) -> int:
    root = a
    while parent[root] != root:
        root = parent[root]
    while parent[a] != root:  # path compression
        nxt = parent[a]
        parent[a] = root
        a = nxt
    return root


@njit(cache=True)
def _label_zones_flat(q: np.ndarray, back: np.ndarray, dist: np.ndarray, use_dist: bool):
    """Zones by one raster pass of union-find over the ``back`` (already visited) neighbours.

    Most voxels either start a zone or join neighbours that all carry one label; both cases are
    decided from the smallest and largest label among the equal-level neighbours, gathered without a
    branch per neighbour (texture makes those branches unpredictable). Only a voxel whose neighbours
    carry different labels takes the union-find path. ``parent[x] < x`` holds for every non-root label,
    so one increasing pass maps every label to its root before zones are counted.
    """
    labels = np.zeros(q.size, dtype=np.int64)
    parent = np.empty(1024, dtype=np.int64)
    parent[0] = 0
    n_labels = 0
    none = np.iinfo(np.int64).max
    for v in range(q.size):
        g = q[v]
        if g <= 0:
            continue
        lo = none
        hi = 0
        for k in range(back.shape[0]):
            w = v + back[k]
            lw = labels[w]
            same = q[w] == g
            hi = max(hi, lw if same else 0)
            lo = min(lo, lw if same else none)
        if hi == 0:
            n_labels += 1
            if n_labels >= parent.shape[0]:
                grown = np.empty(parent.shape[0] * 2, dtype=np.int64)
                grown[: parent.shape[0]] = parent
                parent = grown
            parent[n_labels] = n_labels
            labels[v] = n_labels
            continue
        if lo == hi:
            labels[v] = hi
            continue
        lab = 0
        for k in range(back.shape[0]):
            w = v + back[k]
            if q[w] == g:
                other = _find(parent, labels[w])
                if lab == 0:
                    lab = other
                elif other != lab:
                    if other < lab:
                        parent[lab] = other
                        lab = other
                    else:
                        parent[other] = lab
        labels[v] = lab
    for x in range(1, n_labels + 1):
        parent[x] = parent[parent[x]]
    index = np.full(n_labels + 1, -1, dtype=np.int64)
    levels = np.empty(n_labels, dtype=np.int32)
    sizes = np.zeros(n_labels, dtype=np.int64)
    mind = np.zeros(n_labels, dtype=np.int32)
    n = 0
    for v in range(q.size):  # zones numbered in the raster order of their first voxel
        lab = labels[v]
        if lab == 0:
            continue
        root = parent[lab]
        z = index[root]
        if z < 0:
            z = n
            index[root] = n
            levels[n] = q[v]
            if use_dist:
                mind[n] = dist[v]
            n += 1
        sizes[z] += 1
        if use_dist and dist[v] < mind[z]:
            mind[z] = dist[v]
    return levels[:n].copy(), sizes[:n].copy(), mind[:n].copy()


def label_zones(q: np.ndarray, neighbours: np.ndarray, dist: np.ndarray | None):
    """Connected zones of equal grey level (connectivity given by ``neighbours``).

    Returns ``(levels, sizes, min_distances)``, one entry per zone; ``min_distances`` is the smallest
    ``dist`` over the zone's voxels (zeros when ``dist`` is None: pass None when it is not needed).

    Examples
    --------
    >>> q = np.array([[[1, 1, 0, 1]]], np.int32)
    >>> levels, sizes, _ = label_zones(q, neighbourhood_offsets(1), None)
    >>> sizes.tolist()
    [2, 1]
    """
    q = np.asarray(q)
    flat, steps = padded_flat(compact_levels(q, max(int(q.max(initial=0)), 1)), neighbours)
    if dist is None:
        dflat, use_dist = np.zeros(1, dtype=np.int32), False
    else:
        dflat, use_dist = padded_flat(np.asarray(dist, dtype=np.int32), neighbours)[0], True
    back = np.ascontiguousarray(steps[steps < 0])  # neighbours met earlier in raster order
    return _label_zones_flat(flat, back, dflat, use_dist)


def zone_matrix(levels: np.ndarray, counts: np.ndarray, n_levels: int) -> tuple[np.ndarray, np.ndarray]:
    """A grey level x count matrix from one ``(level, count)`` pair per zone.

    Returns ``(matrix, count_values)``: only occupied counts get a column, so a 1-million-voxel zone
    does not need a million columns.

    Examples
    --------
    >>> m, c = zone_matrix(np.array([1, 1, 2]), np.array([3, 1, 3]), 2)
    >>> m.tolist(), c.tolist()
    ([[1.0, 1.0], [0.0, 1.0]], [1.0, 3.0])
    """
    counts = np.asarray(counts).reshape(-1)
    levels = np.asarray(levels, dtype=np.int64).reshape(-1)
    if len(levels) and np.issubdtype(counts.dtype, np.integer) and counts.min() >= 0 \
            and counts.max() <= max(8 * len(counts), 1 << 16):
        # zone sizes and distances are small non-negative integers: bincounts instead of a sort
        # (np.unique) and np.add.at; the same matrix (integer counts)
        occupied = np.bincount(counts) > 0
        values = np.flatnonzero(occupied)
        col = np.cumsum(occupied)[counts] - 1
        m = np.bincount((levels - 1) * len(values) + col, minlength=int(n_levels) * len(values))
        return m.reshape(int(n_levels), len(values)).astype(np.float64), values.astype(np.float64)
    values, col = np.unique(counts, return_inverse=True)
    m = np.zeros((int(n_levels), max(len(values), 1)))
    if len(levels):
        np.add.at(m, (levels - 1, col.reshape(-1)), 1.0)
    else:
        values = np.ones(1)
    return m, values.astype(np.float64)


# ---------------------------------------------------------------------------------------------
# the six aggregation methods of the directional families (GLCM, GLRLM)
# ---------------------------------------------------------------------------------------------


def directional_aggregates(q, build, feature_values, aggregations: Sequence[str], n_features: int) -> dict:
    """Feature vectors of a directional family for each requested IBSI aggregation.

    Parameters
    ----------
    q
        3-D grey-level array (0 outside the ROI).
    build
        ``build(part, planar) -> (matrices, n_voxels)``: one matrix per direction (stacked on the
        first axis, all of the same shape) for a ``(z, y, x)`` part of ``q``, and the number of ROI
        voxels in the part.
    feature_values
        ``feature_values(matrix, n_voxels) -> np.ndarray`` of ``n_features`` values (NaN when empty).
    aggregations
        Any of :data:`MATRIX_AGGREGATIONS`.

    Returns
    -------
    dict
        aggregation -> feature vector. "avg" averages features over matrices, "comb" merges the
        matrices first (and sums their voxel counts, IBSI's rule for percentages).
    """
    out: dict[str, np.ndarray] = {}
    wants_2d = any(a.startswith("2") for a in aggregations)
    if wants_2d:
        per_slice = [build(s, True) for s in roi_slices(q)]
        if per_slice:
            mats = np.stack([m for m, _ in per_slice])  # (slices, directions, ...)
            nv = np.array([n for _, n in per_slice], dtype=float)
            n_dir = mats.shape[1]
        if "2D_avg" in aggregations:
            rows = [feature_values(m[k], n) for m, n in per_slice for k in range(m.shape[0])]
            out["2D_avg"] = mean_of_features(rows, n_features)
        if "2D_comb" in aggregations:
            rows = [feature_values(m.sum(axis=0), n * m.shape[0]) for m, n in per_slice]
            out["2D_comb"] = mean_of_features(rows, n_features)
        if "2_5D_avg" in aggregations:
            rows = [feature_values(mats[:, k].sum(axis=0), nv.sum()) for k in range(n_dir)] if per_slice else []
            out["2_5D_avg"] = mean_of_features(rows, n_features)
        if "2_5D_comb" in aggregations:
            rows = [feature_values(mats.sum(axis=(0, 1)), nv.sum() * n_dir)] if per_slice else []
            out["2_5D_comb"] = mean_of_features(rows, n_features)
    if "3D_avg" in aggregations or "3D_comb" in aggregations:
        mats, n = build(q, False)
        if "3D_avg" in aggregations:
            out["3D_avg"] = mean_of_features([feature_values(m, n) for m in mats], n_features)
        if "3D_comb" in aggregations:
            out["3D_comb"] = feature_values(mats.sum(axis=0), n * mats.shape[0])
    return out


# ---------------------------------------------------------------------------------------------
# the three aggregation methods of the slice/volume families (GLSZM, GLDZM, NGTDM, NGLDM)
# ---------------------------------------------------------------------------------------------


def slice_aggregates(q, morph, per_part, combine, feature_values, aggregations: Sequence[str], n_features: int) -> dict:
    """Feature vectors of a slice/volume family for each of "2D", "2_5D", "3D".

    Parameters
    ----------
    q, morph
        3-D grey levels (0 outside the intensity mask) and the morphological mask.
    per_part
        ``per_part(q_part, morph_part, planar) -> partial``: the family's raw result (matrix, zone
        list, ...) for one slice (``planar=True``) or the whole volume.
    combine
        ``combine(list of partials) -> partial``: IBSI's merging of the slices' matrices (2.5D).
    feature_values
        ``feature_values(partial) -> np.ndarray`` of ``n_features`` values.

    Returns
    -------
    dict
        aggregation -> feature vector: "2D" averages the per-slice features, "2_5D" merges the
        slices' matrices, "3D" uses the volumetric matrix.
    """
    out: dict[str, np.ndarray] = {}
    if "2D" in aggregations or "2_5D" in aggregations:
        parts = [
            per_part(np.ascontiguousarray(q[z : z + 1]), np.ascontiguousarray(morph[z : z + 1]), True)
            for z in range(q.shape[0])
            if np.any(q[z] > 0)
        ]
        if "2D" in aggregations:
            out["2D"] = mean_of_features([feature_values(p) for p in parts], n_features)
        if "2_5D" in aggregations:
            out["2_5D"] = feature_values(combine(parts)) if parts else np.full(n_features, np.nan)
    if "3D" in aggregations:
        out["3D"] = feature_values(per_part(q, morph, False))
    return out


def morphological_mask(q: np.ndarray, morph_mask: np.ndarray | None) -> np.ndarray:
    """``morph_mask`` as a C-contiguous bool array of q's shape (the intensity mask when None)."""
    if morph_mask is None:
        return np.ascontiguousarray(q > 0)
    m = np.asarray(morph_mask, dtype=bool)
    if m.ndim == 2:
        m = m[None]
    if m.shape != q.shape:
        raise ValueError(f"morph_mask has shape {m.shape} but q has shape {q.shape}; give both on one grid")
    return np.ascontiguousarray(m)
