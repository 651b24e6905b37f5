"""Neighbouring grey level dependence matrix (NGLDM) features, IBSI chapter 3.11.

A voxel's dependence is 1 (itself) plus the number of ROI neighbours within Chebyshev distance
``delta`` whose level differs from its own by at most the coarseness ``alpha``; ``S[i, k]`` counts
voxels of level ``i`` with dependence ``k``. 2-D neighbourhoods stay in the slice.

Examples
--------
>>> import numpy as np
>>> ngldm_matrix(np.array([[[1, 1, 2]]]), 2, planar=True)[:, :3]
array([[0., 2., 0.],
       [1., 0., 0.]])
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
    count_features,
    make_rows,
    morphological_mask,
    neighbourhood_offsets,
    padded_flat,
    slice_aggregates,
)

FAMILY: str = "ngldm"
PREFIX: str = "ngl"
AGGREGATIONS: tuple[str, ...] = ZONE_AGGREGATIONS

#: (short name, IBSI id, name); all 17 shared count-matrix features
FEATURES: tuple[tuple[str, str, str], ...] = (
    ("lde", "SODN", "Low dependence emphasis"),
    ("hde", "IMOQ", "High dependence emphasis"),
    ("lgce", "TL9H", "Low grey level count emphasis"),
    ("hgce", "OAE7", "High grey level count emphasis"),
    ("ldlge", "EQ3F", "Low dependence low grey level emphasis"),
    ("ldhge", "JA6D", "Low dependence high grey level emphasis"),
    ("hdlge", "NBZI", "High dependence low grey level emphasis"),
    ("hdhge", "9QMG", "High dependence high grey level emphasis"),
    ("glnu", "FP8K", "Grey level non-uniformity"),
    ("glnu_norm", "5SPA", "Normalised grey level non-uniformity"),
    ("dcnu", "Z87G", "Dependence count non-uniformity"),
    ("dcnu_norm", "OKJI", "Normalised dependence count non-uniformity"),
    ("dc_perc", "6XV8", "Dependence count percentage"),
    ("gl_var", "1PFV", "Grey level variance"),
    ("dc_var", "DNX2", "Dependence count variance"),
    ("dc_entr", "FCBV", "Dependence count entropy"),
    ("dc_energy", "CAS9", "Dependence count energy"),
)
N_FEATURES = len(FEATURES)


@njit(cache=True)
def accumulate(q: np.ndarray, steps: np.ndarray, alpha: float, out: np.ndarray) -> None:
    """Add each ROI voxel's dependence to ``out`` (``(Ng, len(steps) + 1)``).

    ``q`` is the zero-padded, flattened grey-level array and ``steps`` the neighbourhood's flat
    offsets (:func:`~multiscale.analysis.texture._aggregate.padded_flat`).
    """
    for v in range(q.size):
        g = q[v]
        if g <= 0:
            continue
        k = 1
        for o in range(steps.shape[0]):
            w = q[v + steps[o]]
            if w > 0 and abs(w - g) <= alpha:
                k += 1
        out[g - 1, k - 1] += 1.0


def ngldm_matrix(
    q: np.ndarray, n_levels: int, distance: int = 1, alpha: float = 0, planar: bool = False
) -> np.ndarray:
    """The NGLDM of ``q``: ``(Ng, K)`` counts, column ``k - 1`` for dependence ``k``.

    ``K`` is the neighbourhood size plus one (27 in 3-D, 9 in 2-D for distance 1).

    Examples
    --------
    >>> ngldm_matrix(np.ones((1, 2, 2), int), 1, planar=True)[0, :5].tolist()
    [0.0, 0.0, 0.0, 4.0, 0.0]
    """
    q = as_levels(q, n_levels, FAMILY)
    offsets = neighbourhood_offsets(distance, planar)
    out = np.zeros((int(n_levels), len(offsets) + 1))
    flat, steps = padded_flat(q, offsets, int(distance))
    accumulate(flat, steps, float(alpha), out)
    return out


def ngldm_feature_values(matrix: np.ndarray, n_voxels: float) -> np.ndarray:
    """The 17 IBSI NGLDM features (order of :data:`FEATURES`) of one dependence count matrix.

    Examples
    --------
    >>> float(ngldm_feature_values(np.array([[0.0, 2.0]]), 2)[1])   # high dependence emphasis
    4.0
    """
    m = np.asarray(matrix, dtype=np.float64)
    return count_features(m, np.arange(1, m.shape[1] + 1, dtype=np.float64), n_voxels)


def family_features(
    q: np.ndarray,
    n_levels: int,
    morph_mask: np.ndarray | None,
    spacing: Sequence[float],
    aggregations: Sequence[str] | None = None,
    settings: Mapping | None = None,
    shared: NeighbourhoodMatrices | None = None,
) -> list[dict]:
    """IBSI NGLDM features for "2D", "2_5D" and "3D".

    Settings: ``ngldm_distance`` (Chebyshev delta, default 1), ``ngldm_alpha`` (coarseness, 0).

    ``shared``: the distance-1 3-D matrices of :func:`~multiscale.analysis.texture._aggregate.neighbourhood_matrices`
    (computed once for several families), used for the 3-D aggregations when they match this family's settings.

    Examples
    --------
    >>> rows = family_features(np.ones((1, 2, 2), int), 1, None, (1, 1, 1), ["2D"])
    >>> rows[1]["tag"], rows[1]["value"]
    ('ngl_hde_2D', 16.0)
    """
    settings = settings or {}
    aggs = check_aggregations(aggregations, AGGREGATIONS, FAMILY)
    q = as_levels(q, n_levels, FAMILY)
    distance = int(settings.get("ngldm_distance", 1) or 1)
    alpha = float(settings.get("ngldm_alpha", 0) or 0)
    width = len(neighbourhood_offsets(distance, False)) + 1

    use_shared = shared is not None and distance == 1 and shared.alpha == alpha and not shared.planar

    def per_part(part, _morph, planar):
        if use_shared and not planar:
            return shared.ngldm, shared.n_voxels
        m = ngldm_matrix(part, n_levels, distance, alpha, planar)
        full = np.zeros((int(n_levels), width))
        full[:, : m.shape[1]] = m
        return full, int(np.count_nonzero(part))

    def combine(parts):
        return sum(p[0] for p in parts), sum(p[1] for p in parts)

    vals = slice_aggregates(
        q, morphological_mask(q, morph_mask), per_part, combine, lambda p: ngldm_feature_values(*p), aggs, N_FEATURES
    )
    rows: list[dict] = []
    for agg in aggs:
        rows += make_rows(FAMILY, PREFIX, FEATURES, agg, vals[agg])
    return rows
