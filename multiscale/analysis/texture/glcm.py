"""Grey level co-occurrence matrix (GLCM) features, IBSI chapter 3.6.

A GLCM counts how often grey level ``i`` has a neighbour of grey level ``j`` at Chebyshev distance
``delta`` along one direction; both voxels must lie in the ROI. IBSI's matrices are symmetric (each
pair counted both ways). Directions: 13 in 3-D, 4 in-plane in 2-D.

Examples
--------
>>> import numpy as np
>>> q = np.array([[[1, 1, 2], [2, 2, 1]]])
>>> glcm_matrices(q, 2, planar=True)[0]          # direction (0, 0, 1): along x
array([[2., 2.],
       [2., 2.]])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numba import njit

from multiscale.analysis.texture._aggregate import (
    MATRIX_AGGREGATIONS,
    NeighbourhoodMatrices,
    as_levels,
    check_aggregations,
    direction_offsets,
    directional_aggregates,
    make_rows,
)

FAMILY: str = "glcm"
PREFIX: str = "cm"
AGGREGATIONS: tuple[str, ...] = MATRIX_AGGREGATIONS

#: (short name, IBSI id, name), in the order of :func:`glcm_feature_values`
FEATURES: tuple[tuple[str, str, str], ...] = (
    ("joint_max", "GYBY", "Joint maximum"),
    ("joint_avg", "60VM", "Joint average"),
    ("joint_var", "UR99", "Joint variance"),
    ("joint_entr", "TU9B", "Joint entropy"),
    ("diff_avg", "TF7R", "Difference average"),
    ("diff_var", "D3YU", "Difference variance"),
    ("diff_entr", "NTRS", "Difference entropy"),
    ("sum_avg", "ZGXS", "Sum average"),
    ("sum_var", "OEEB", "Sum variance"),
    ("sum_entr", "P6QZ", "Sum entropy"),
    ("energy", "8ZQL", "Angular second moment"),
    ("contrast", "ACUI", "Contrast"),
    ("dissimilarity", "8S9J", "Dissimilarity"),
    ("inv_diff", "IB1Z", "Inverse difference"),
    ("inv_diff_norm", "NDRX", "Normalised inverse difference"),
    ("inv_diff_mom", "WF0Z", "Inverse difference moment"),
    ("inv_diff_mom_norm", "1QCO", "Normalised inverse difference moment"),
    ("inv_var", "E8JP", "Inverse variance"),
    ("corr", "NI2N", "Correlation"),
    ("auto_corr", "QWB0", "Autocorrelation"),
    ("clust_tend", "DG8W", "Cluster tendency"),
    ("clust_shade", "7NFM", "Cluster shade"),
    ("clust_prom", "AE86", "Cluster prominence"),
    ("info_corr1", "R8DG", "Information correlation 1"),
    ("info_corr2", "JN9H", "Information correlation 2"),
)
N_FEATURES = len(FEATURES)
#: ``c * log2(c)`` for integer counts below ``_CLOG_N`` (a kernel's co-occurrence counts are small integers)
_CLOG_N = 8192
_CLOG = np.concatenate([[0.0], np.arange(1, _CLOG_N) * np.log2(np.arange(1, _CLOG_N))])


@njit(cache=True)
def accumulate(q: np.ndarray, offsets: np.ndarray, symmetric: bool, merge: bool, out: np.ndarray) -> None:
    """Add the co-occurrences of ``q`` along each offset to ``out`` (``(k or 1, Ng, Ng)``)."""
    nz, ny, nx = q.shape
    for k in range(offsets.shape[0]):
        dz = offsets[k, 0]
        dy = offsets[k, 1]
        dx = offsets[k, 2]
        m = 0 if merge else k
        for z in range(max(0, -dz), min(nz, nz - dz)):
            for y in range(max(0, -dy), min(ny, ny - dy)):
                for x in range(max(0, -dx), min(nx, nx - dx)):
                    a = q[z, y, x]
                    if a <= 0:
                        continue
                    b = q[z + dz, y + dy, x + dx]
                    if b <= 0:
                        continue
                    out[m, a - 1, b - 1] += 1.0
                    if symmetric:
                        out[m, b - 1, a - 1] += 1.0


@njit(cache=True)
def feature_kernel(counts: np.ndarray, n_levels: int, out: np.ndarray) -> None:
    """The 25 IBSI GLCM features of one (unnormalised) matrix into ``out``; NaN when empty."""
    ng = counts.shape[0]
    present = np.empty(ng, dtype=np.int64)
    n_present = 0
    for i in range(ng):
        occupied = False
        for j in range(ng):
            if counts[i, j] != 0.0 or counts[j, i] != 0.0:
                occupied = True
                break
        if occupied:
            present[n_present] = i
            n_present += 1
    feature_kernel_sparse(counts, n_levels, present[:n_present], out)


@njit(cache=True)
def feature_kernel_sparse(counts: np.ndarray, n_levels: int, present: np.ndarray, out: np.ndarray) -> None:
    """:func:`feature_kernel` visiting only the rows/columns listed in ``present`` (the occupied levels).

    The information correlations use HXY1 = HXY2 = HX + HY, which holds exactly for marginals of
    the matrix itself (IBSI's two sums reduce to it), so no per-pair logarithm is needed.
    """
    ng = counts.shape[0]
    feature_kernel_sparse_into(counts, n_levels, present, out, np.zeros(ng), np.zeros(ng), np.zeros(ng),
                               np.zeros(2 * ng + 1))


@njit(nogil=True, cache=True)
def _count_log(v: float) -> float:
    """``v * log2(v)`` for a count; integer counts below :data:`_CLOG_N` from a table."""
    iv = int(v)
    if iv == v and iv < _CLOG_N:
        return _CLOG[iv]
    return v * np.log2(v)


@njit(nogil=True, cache=True)
def feature_kernel_sparse_into(counts: np.ndarray, n_levels: int, present: np.ndarray, out: np.ndarray,
                               pi: np.ndarray, pj: np.ndarray, pdiff: np.ndarray, psum: np.ndarray) -> None:
    """:func:`feature_kernel_sparse` with caller-owned work arrays (all zero on entry, zero again on return).

    One pass over the matrix's non-zero cells gathers counts only: the marginals ``pi``/``pj``, the
    diagonal and cross-diagonal marginals, the maximum, the sum of squares, ``sum c log2 c`` and the
    autocorrelation sum. Every other feature is a moment of a marginal (IBSI defines the difference,
    sum and cluster features that way: cluster tendency/shade/prominence are moments of the
    cross-diagonal marginal about ``mu_i + mu_j``), so the per-cell work has no division and, for
    integer counts, no logarithm (``p log2 p = (c log2 c) / T - (c / T) log2 T``). Voxel-wise maps
    call it once per voxel without allocating.
    """
    ng = counts.shape[0]
    n_p = present.shape[0]
    total = 0.0
    top = 0.0
    sq = 0.0
    clog = 0.0
    auto = 0.0
    for a in range(n_p):
        i = present[a]
        gi = i + 1.0
        for b in range(n_p):
            j = present[b]
            v = counts[i, j]
            if v == 0.0:
                continue
            total += v
            if v > top:
                top = v
            sq += v * v
            clog += _count_log(v)
            auto += gi * (j + 1.0) * v
            pi[i] += v
            pj[j] += v
            pdiff[abs(i - j)] += v
            psum[i + j + 2] += v
    if total <= 0.0:
        for k in range(out.shape[0]):
            out[k] = np.nan
        return
    inv = 1.0 / total
    log_t = np.log2(total)
    nl = float(n_levels)
    mu_i = mu_j = 0.0
    hx = hy = 0.0
    for a in range(n_p):
        i = present[a]
        mu_i += (i + 1.0) * pi[i]
        mu_j += (i + 1.0) * pj[i]
        if pi[i] > 0.0:
            hx += _count_log(pi[i])
        if pj[i] > 0.0:
            hy += _count_log(pj[i])
    mu_i *= inv
    mu_j *= inv
    hx = log_t - hx * inv
    hy = log_t - hy * inv
    var_i = var_j = 0.0
    for a in range(n_p):
        i = present[a]
        var_i += (i + 1.0 - mu_i) ** 2 * pi[i]
        var_j += (i + 1.0 - mu_j) ** 2 * pj[i]
        pi[i] = 0.0
        pj[i] = 0.0
    var_i *= inv
    var_j *= inv
    davg = contrast = idiff = idiffn = idm = idmn = inv_var = dentr = 0.0
    for k in range(ng):
        if pdiff[k] > 0.0:
            pd = pdiff[k] * inv
            davg += k * pd
            contrast += k * k * pd
            idiff += pd / (1.0 + k)
            idiffn += pd / (1.0 + k / nl)
            idm += pd / (1.0 + k * k)
            idmn += pd / (1.0 + k * k / (nl * nl))
            if k > 0:
                inv_var += pd / (k * k)
            dentr += _count_log(pdiff[k])
    dvar = 0.0
    for k in range(ng):
        if pdiff[k] > 0.0:
            dvar += (k - davg) ** 2 * pdiff[k] * inv
            pdiff[k] = 0.0
    dentr = log_t - dentr * inv
    savg = sentr = 0.0
    for k in range(2 * ng + 1):
        if psum[k] > 0.0:
            savg += k * psum[k] * inv
            sentr += _count_log(psum[k])
    sentr = log_t - sentr * inv
    svar = ct = cs = cp = 0.0
    m = mu_i + mu_j
    for k in range(2 * ng + 1):
        if psum[k] > 0.0:
            ps = psum[k] * inv
            svar += (k - savg) ** 2 * ps
            s = k - m
            s2 = s * s * ps
            ct += s2
            cs += s2 * s
            cp += s2 * s * s
            psum[k] = 0.0
    entr = log_t - clog * inv
    autoc = auto * inv
    cov = autoc - mu_i * mu_j
    hxy1 = hx + hy  # -sum p_ij log2(p_i p_j)
    hxy2 = hx + hy  # -sum p_i p_j log2(p_i p_j)
    out[0] = top * inv
    out[1] = mu_i
    out[2] = var_i
    out[3] = entr
    out[4] = davg
    out[5] = dvar
    out[6] = dentr
    out[7] = savg
    out[8] = svar
    out[9] = sentr
    out[10] = sq * inv * inv
    out[11] = contrast
    out[12] = davg
    out[13] = idiff
    out[14] = idiffn
    out[15] = idm
    out[16] = idmn
    out[17] = inv_var
    out[18] = cov / np.sqrt(var_i * var_j) if var_i > 0.0 and var_j > 0.0 else np.nan
    out[19] = autoc
    out[20] = ct
    out[21] = cs
    out[22] = cp
    out[23] = (entr - hxy1) / hx if hx > 0.0 else np.nan
    arg = 1.0 - np.exp(-2.0 * (hxy2 - entr))
    out[24] = np.sqrt(arg) if arg > 0.0 else 0.0


def glcm_matrices(
    q: np.ndarray, n_levels: int, distance: int = 1, symmetric: bool = True, planar: bool = False
) -> np.ndarray:
    """One co-occurrence count matrix per IBSI direction.

    Parameters
    ----------
    q
        Grey levels ``1..n_levels`` in the ROI, 0 outside; ``(z, y, x)`` (a 2-D array is one slice).
    n_levels
        Number of grey levels ``Ng``: the matrices are ``Ng x Ng`` (level ``i`` at row ``i - 1``).
    distance
        Chebyshev distance ``delta`` between the voxels of a pair.
    symmetric
        Count each pair both ways (IBSI).
    planar
        Only the 4 in-plane directions (2-D), else all 13 (3-D).

    Returns
    -------
    numpy.ndarray
        ``(n_directions, Ng, Ng)`` float counts, in the order of
        :func:`~multiscale.analysis.texture._aggregate.direction_offsets`.

    Examples
    --------
    >>> glcm_matrices(np.array([[1, 2]]), 2, planar=True)[0].tolist()
    [[0.0, 1.0], [1.0, 0.0]]
    """
    q = as_levels(q, n_levels, FAMILY)
    offsets = direction_offsets(distance, planar)
    out = np.zeros((len(offsets), int(n_levels), int(n_levels)))
    accumulate(q, offsets, bool(symmetric), False, out)
    return out


def glcm_feature_values(matrix: np.ndarray, n_levels: int | None = None) -> np.ndarray:
    """The 25 IBSI GLCM feature values (order of :data:`FEATURES`) of one count matrix.

    Examples
    --------
    >>> v = glcm_feature_values(np.array([[2.0, 1.0], [1.0, 2.0]]))
    >>> round(float(v[11]), 3)   # contrast
    0.333
    """
    m = np.ascontiguousarray(matrix, dtype=np.float64)
    out = np.empty(N_FEATURES)
    feature_kernel(m, int(n_levels or m.shape[0]), out)
    return out


def family_features(
    q: np.ndarray,
    n_levels: int,
    morph_mask: np.ndarray | None,
    spacing: Sequence[float],
    aggregations: Sequence[str] | None = None,
    settings: Mapping | None = None,
    shared: NeighbourhoodMatrices | None = None,
) -> list[dict]:
    """IBSI GLCM features of a discretised ROI for each aggregation.

    Settings used: ``glcm_distance`` (Chebyshev delta, default 1) and ``glcm_symmetric`` (True).
    ``morph_mask`` and ``spacing`` are not needed by the GLCM (kept for the family contract).

    ``shared``: the distance-1 3-D matrices of :func:`~multiscale.analysis.texture._aggregate.neighbourhood_matrices`
    (computed once for several families), used for the 3-D aggregations when they match this family's settings.

    Examples
    --------
    >>> rows = family_features(np.array([[[1, 2], [2, 1]]]), 2, None, (1, 1, 1), ["3D_comb"])
    >>> rows[0]["tag"], rows[0]["aggregation"]
    ('cm_joint_max_3D_comb', '3D, merged')
    """
    settings = settings or {}
    aggs = check_aggregations(aggregations, AGGREGATIONS, FAMILY)
    q = as_levels(q, n_levels, FAMILY)
    distance = int(settings.get("glcm_distance", 1) or 1)
    symmetric = bool(settings.get("glcm_symmetric", True))

    use_shared = shared is not None and distance == 1 and shared.symmetric == symmetric and not shared.planar

    def build(part: np.ndarray, planar: bool):
        if use_shared and not planar:
            return shared.glcm, shared.n_voxels
        return glcm_matrices(part, n_levels, distance, symmetric, planar), int(np.count_nonzero(part))

    values = directional_aggregates(q, build, lambda m, n: glcm_feature_values(m, n_levels), aggs, N_FEATURES)
    rows: list[dict] = []
    for agg in aggs:
        rows += make_rows(FAMILY, PREFIX, FEATURES, agg, values[agg])
    return rows
