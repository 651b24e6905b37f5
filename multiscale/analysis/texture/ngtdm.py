"""Neighbourhood grey tone difference matrix (NGTDM) features, IBSI chapter 3.10.

For each ROI voxel of level ``i`` with at least one ROI neighbour within Chebyshev distance
``delta`` (the voxel itself excluded), ``s_i`` adds ``|i - mean of the neighbours' levels|`` and
``n_i`` counts the voxel. 2-D neighbourhoods stay in the slice.

Examples
--------
>>> import numpy as np
>>> s, n = ngtdm_matrix(np.array([[[1, 2]]]), 2, planar=True)
>>> s.tolist(), n.tolist()
([1.0, 1.0], [1.0, 1.0])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numba import njit

from multiscale.analysis.texture._aggregate import (
    ZONE_AGGREGATIONS,
    NeighbourhoodMatrices,
    as_levels,
    check_aggregations,
    make_rows,
    morphological_mask,
    neighbourhood_offsets,
    padded_flat,
    slice_aggregates,
)

FAMILY: str = "ngtdm"
PREFIX: str = "ngt"
AGGREGATIONS: tuple[str, ...] = ZONE_AGGREGATIONS

#: (short name, IBSI id, name), in the order of :func:`ngtdm_feature_values`
FEATURES: tuple[tuple[str, str, str], ...] = (
    ("coarseness", "QCDE", "Coarseness"),
    ("contrast", "65HE", "Contrast"),
    ("busyness", "NQ30", "Busyness"),
    ("complexity", "HDEZ", "Complexity"),
    ("strength", "1X9X", "Strength"),
)
N_FEATURES = len(FEATURES)


@njit(cache=True)
def accumulate(q: np.ndarray, steps: np.ndarray, s: np.ndarray, n: np.ndarray) -> None:
    """Add each ROI voxel's grey tone difference to ``s`` and count it in ``n`` (level ``i`` at ``i - 1``).

    ``q`` is the zero-padded, flattened grey-level array and ``steps`` the neighbourhood's flat
    offsets (:func:`~multiscale.analysis.texture._aggregate.padded_flat`).
    """
    for v in range(q.size):
        g = q[v]
        if g <= 0:
            continue
        total = 0.0
        count = 0
        for k in range(steps.shape[0]):
            w = q[v + steps[k]]
            if w > 0:
                total += w
                count += 1
        if count > 0:
            s[g - 1] += abs(g - total / count)
            n[g - 1] += 1.0


@njit(cache=True)
def feature_kernel(s: np.ndarray, n: np.ndarray, out: np.ndarray) -> None:
    """Coarseness, contrast, busyness, complexity and strength (IBSI) into ``out``.

    Values whose IBSI formula divides by zero (e.g. a constant region) are NaN.
    """
    ng = s.shape[0]
    nvc = 0.0
    for i in range(ng):
        nvc += n[i]
    if nvc <= 0.0:
        for k in range(out.shape[0]):
            out[k] = np.nan
        return
    ngp = 0
    ps = 0.0
    ssum = 0.0
    for i in range(ng):
        if n[i] > 0.0:
            ngp += 1
            ps += n[i] / nvc * s[i]
            ssum += s[i]
    c2 = busy_den = compl = stren = 0.0
    for i in range(ng):
        if n[i] <= 0.0:
            continue
        pi = n[i] / nvc
        gi = i + 1.0
        for j in range(ng):
            if n[j] <= 0.0:
                continue
            pj = n[j] / nvc
            gj = j + 1.0
            d = gi - gj
            c2 += pi * pj * d * d
            busy_den += abs(gi * pi - gj * pj)
            compl += abs(d) * (pi * s[i] + pj * s[j]) / (pi + pj)
            stren += (pi + pj) * d * d
    out[0] = 1.0 / ps if ps > 0.0 else np.nan
    out[1] = c2 / (ngp * (ngp - 1)) * ssum / nvc if ngp > 1 else np.nan
    out[2] = ps / busy_den if busy_den > 0.0 else np.nan
    out[3] = compl / nvc
    out[4] = stren / ssum if ssum > 0.0 else np.nan


def ngtdm_matrix(q: np.ndarray, n_levels: int, distance: int = 1, planar: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The NGTDM of ``q``: ``(s, n)``, each of length ``n_levels`` (level ``i`` at ``i - 1``).

    Examples
    --------
    >>> ngtdm_matrix(np.ones((1, 2, 2), int), 1, planar=True)
    (array([0.]), array([4.]))
    """
    q = as_levels(q, n_levels, FAMILY)
    s = np.zeros(int(n_levels))
    n = np.zeros(int(n_levels))
    flat, steps = padded_flat(q, neighbourhood_offsets(distance, planar), int(distance))
    accumulate(flat, steps, s, n)
    return s, n


def ngtdm_feature_values(s: np.ndarray, n: np.ndarray) -> np.ndarray:
    """The 5 IBSI NGTDM features (order of :data:`FEATURES`).

    Examples
    --------
    >>> float(ngtdm_feature_values(np.array([1.0, 1.0]), np.array([1.0, 1.0]))[0])
    1.0
    """
    out = np.empty(N_FEATURES)
    feature_kernel(np.asarray(s, dtype=np.float64), np.asarray(n, dtype=np.float64), out)
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
    """IBSI NGTDM features for "2D", "2_5D" and "3D"; setting ``ngtdm_distance`` (default 1).

    ``shared``: the distance-1 3-D matrices of :func:`~multiscale.analysis.texture._aggregate.neighbourhood_matrices`
    (computed once for several families), used for the 3-D aggregations when they match this family's settings.

    Examples
    --------
    >>> rows = family_features(np.array([[[1, 2], [2, 1]]]), 2, None, (1, 1, 1), ["2D"])
    >>> rows[0]["tag"]
    'ngt_coarseness_2D'
    """
    settings = settings or {}
    aggs = check_aggregations(aggregations, AGGREGATIONS, FAMILY)
    q = as_levels(q, n_levels, FAMILY)
    distance = int(settings.get("ngtdm_distance", 1) or 1)

    use_shared = shared is not None and distance == 1 and not shared.planar

    def per_part(part, _morph, planar):
        if use_shared and not planar:
            return shared.ngtdm_s, shared.ngtdm_n
        return ngtdm_matrix(part, n_levels, distance, planar)

    def combine(parts):
        return sum(p[0] for p in parts), sum(p[1] for p in parts)

    vals = slice_aggregates(
        q, morphological_mask(q, morph_mask), per_part, combine, lambda p: ngtdm_feature_values(*p), aggs, N_FEATURES
    )
    rows: list[dict] = []
    for agg in aggs:
        rows += make_rows(FAMILY, PREFIX, FEATURES, agg, vals[agg])
    return rows
