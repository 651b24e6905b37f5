"""Grey level run length matrix (GLRLM) features, IBSI chapter 3.7.

A run is a maximal line of consecutive ROI voxels of one grey level along a direction (13 in 3-D,
4 in-plane in 2-D); ``R[i, r]`` counts the runs of level ``i`` and length ``r``.

Examples
--------
>>> import numpy as np
>>> glrlm_matrices(np.array([[[1, 1, 2]]]), 2, planar=True)[0]   # along x
array([[0., 1., 0.],
       [1., 0., 0.]])
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
    count_features,
    direction_offsets,
    directional_aggregates,
    make_rows,
    padded_flat,
)

FAMILY: str = "glrlm"
PREFIX: str = "rlm"
AGGREGATIONS: tuple[str, ...] = MATRIX_AGGREGATIONS

#: (short name, IBSI id, name); the first 16 of the shared count-matrix features
FEATURES: tuple[tuple[str, str, str], ...] = (
    ("sre", "22OV", "Short runs emphasis"),
    ("lre", "W4KF", "Long runs emphasis"),
    ("lgre", "V3SW", "Low grey level run emphasis"),
    ("hgre", "G3QZ", "High grey level run emphasis"),
    ("srlge", "HTZT", "Short run low grey level emphasis"),
    ("srhge", "GD3A", "Short run high grey level emphasis"),
    ("lrlge", "IVPO", "Long run low grey level emphasis"),
    ("lrhge", "3KUM", "Long run high grey level emphasis"),
    ("glnu", "R5YN", "Grey level non-uniformity"),
    ("glnu_norm", "OVBL", "Normalised grey level non-uniformity"),
    ("rlnu", "W92Y", "Run length non-uniformity"),
    ("rlnu_norm", "IC23", "Normalised run length non-uniformity"),
    ("r_perc", "9ZK5", "Run percentage"),
    ("gl_var", "8CE5", "Grey level variance"),
    ("rl_var", "SXLW", "Run length variance"),
    ("rl_entr", "HJ9O", "Run entropy"),
)
N_FEATURES = len(FEATURES)


@njit(cache=True)
def accumulate(q: np.ndarray, steps: np.ndarray, out: np.ndarray) -> None:
    """Add the runs along each direction to ``out`` (``(k, Ng, max run length)``).

    ``q`` is the zero-padded, flattened grey-level array and ``steps`` the directions' flat offsets
    (:func:`~multiscale.analysis.texture._aggregate.padded_flat`).
    """
    for k in range(steps.shape[0]):
        step = steps[k]
        for v in range(q.size):
            g = q[v]
            if g <= 0 or q[v - step] == g:
                continue  # outside, or not the first voxel of its run
            length = 1
            w = v + step
            while q[w] == g:
                length += 1
                w += step
            out[k, g - 1, length - 1] += 1.0


def glrlm_matrices(q: np.ndarray, n_levels: int, planar: bool = False, max_length: int | None = None) -> np.ndarray:
    """One run length matrix per IBSI direction.

    Parameters
    ----------
    q
        Grey levels ``1..n_levels`` in the ROI, 0 outside; ``(z, y, x)``.
    n_levels
        Number of grey levels (rows).
    planar
        Only the 4 in-plane directions (2-D), else 13 (3-D).
    max_length
        Number of columns (run lengths ``1..max_length``); default the longest side of ``q``.

    Returns
    -------
    numpy.ndarray
        ``(n_directions, Ng, max_length)`` run counts (column ``r - 1`` holds length ``r``).

    Examples
    --------
    >>> glrlm_matrices(np.array([[1, 1]]), 1, planar=True)[:, 0].tolist()
    [[0.0, 1.0], [2.0, 0.0], [2.0, 0.0], [2.0, 0.0]]
    """
    q = as_levels(q, n_levels, FAMILY)
    offsets = direction_offsets(1, planar)
    width = int(max_length or max(q.shape))
    out = np.zeros((len(offsets), int(n_levels), width))
    flat, steps = padded_flat(q, offsets)
    accumulate(flat, steps, out)
    return out


def glrlm_feature_values(matrix: np.ndarray, n_voxels: float) -> np.ndarray:
    """The 16 IBSI GLRLM features (order of :data:`FEATURES`) of one run count matrix.

    ``n_voxels`` is the number of ROI voxels behind the matrix (summed over merged matrices).

    Examples
    --------
    >>> float(glrlm_feature_values(np.array([[2.0, 1.0]]), 4)[12])   # run percentage: 3 runs / 4 voxels
    0.75
    """
    m = np.asarray(matrix, dtype=np.float64)
    return count_features(m, np.arange(1, m.shape[1] + 1, dtype=np.float64), n_voxels)[:N_FEATURES]


def family_features(
    q: np.ndarray,
    n_levels: int,
    morph_mask: np.ndarray | None,
    spacing: Sequence[float],
    aggregations: Sequence[str] | None = None,
    settings: Mapping | None = None,
    shared: NeighbourhoodMatrices | None = None,
) -> list[dict]:
    """IBSI GLRLM features of a discretised ROI for each aggregation.

    ``shared``: the distance-1 3-D matrices of :func:`~multiscale.analysis.texture._aggregate.neighbourhood_matrices`
    (computed once for several families), used for the 3-D aggregations when they match this family's settings.

    Examples
    --------
    >>> rows = family_features(np.array([[[1, 1], [2, 1]]]), 2, None, (1, 1, 1), ["2D_avg"])
    >>> rows[12]["tag"]
    'rlm_r_perc_2D_avg'
    """
    aggs = check_aggregations(aggregations, AGGREGATIONS, FAMILY)
    q = as_levels(q, n_levels, FAMILY)
    width = max(q.shape)

    use_shared = shared is not None and shared.glrlm.shape[2] == width and not shared.planar

    def build(part: np.ndarray, planar: bool):
        if use_shared and not planar:
            return shared.glrlm, shared.n_voxels
        return glrlm_matrices(part, n_levels, planar, width), int(np.count_nonzero(part))

    values = directional_aggregates(q, build, glrlm_feature_values, aggs, N_FEATURES)
    rows: list[dict] = []
    for agg in aggs:
        rows += make_rows(FAMILY, PREFIX, FEATURES, agg, values[agg])
    return rows
