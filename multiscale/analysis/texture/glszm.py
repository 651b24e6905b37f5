"""Grey level size zone matrix (GLSZM) features, IBSI chapter 3.8.

A zone is a connected group of ROI voxels of one grey level (26-connectivity in 3-D, 8 in 2-D);
``S[i, s]`` counts the zones of level ``i`` with ``s`` voxels.

Examples
--------
>>> import numpy as np
>>> m, sizes = glszm_matrix(np.array([[[1, 1, 2]]]), 2, planar=True)
>>> m.tolist(), sizes.tolist()
([[0.0, 1.0], [1.0, 0.0]], [1.0, 2.0])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from multiscale.analysis.texture._aggregate import (
    N_COUNT_FEATURES,
    ZONE_AGGREGATIONS,
    as_levels,
    check_aggregations,
    count_features,
    label_zones,
    make_rows,
    morphological_mask,
    neighbourhood_offsets,
    slice_aggregates,
    zone_matrix,
)

FAMILY: str = "glszm"
PREFIX: str = "szm"
AGGREGATIONS: tuple[str, ...] = ZONE_AGGREGATIONS

#: (short name, IBSI id, name); the first 16 of the shared count-matrix features
FEATURES: tuple[tuple[str, str, str], ...] = (
    ("sze", "5QRC", "Small zone emphasis"),
    ("lze", "48P8", "Large zone emphasis"),
    ("lgze", "XMSY", "Low grey level zone emphasis"),
    ("hgze", "5GN9", "High grey level zone emphasis"),
    ("szlge", "5RAI", "Small zone low grey level emphasis"),
    ("szhge", "HW1V", "Small zone high grey level emphasis"),
    ("lzlge", "YH51", "Large zone low grey level emphasis"),
    ("lzhge", "J17V", "Large zone high grey level emphasis"),
    ("glnu", "JNSA", "Grey level non-uniformity"),
    ("glnu_norm", "Y1RO", "Normalised grey level non-uniformity"),
    ("zsnu", "4JP3", "Zone size non-uniformity"),
    ("zsnu_norm", "VB3A", "Normalised zone size non-uniformity"),
    ("z_perc", "P30P", "Zone percentage"),
    ("gl_var", "BYLV", "Grey level variance"),
    ("zs_var", "3NSA", "Zone size variance"),
    ("zs_entr", "GU8N", "Zone size entropy"),
)
N_FEATURES = len(FEATURES)
assert N_FEATURES < N_COUNT_FEATURES


def size_zones(q: np.ndarray, n_levels: int, planar: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Grey level and voxel count of every zone of ``q``.

    Examples
    --------
    >>> size_zones(np.array([[[1, 0, 1]]]), 1)
    (array([1, 1], dtype=int32), array([1, 1]))
    """
    q = as_levels(q, n_levels, FAMILY)
    levels, sizes, _ = label_zones(q, neighbourhood_offsets(1, planar), None)
    return levels, sizes


def glszm_matrix(q: np.ndarray, n_levels: int, planar: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The size zone matrix of ``q`` and the zone size of each of its columns.

    Returns
    -------
    tuple
        ``(matrix, sizes)``: ``matrix[i - 1, c]`` counts zones of level ``i`` and size ``sizes[c]``;
        only occupied sizes get a column.

    Examples
    --------
    >>> glszm_matrix(np.array([[1, 1]]), 1, planar=True)[0].tolist()
    [[1.0]]
    """
    levels, sizes = size_zones(q, n_levels, planar)
    return zone_matrix(levels, sizes, n_levels)


def family_features(
    q: np.ndarray,
    n_levels: int,
    morph_mask: np.ndarray | None,
    spacing: Sequence[float],
    aggregations: Sequence[str] | None = None,
    settings: Mapping | None = None,
) -> list[dict]:
    """IBSI GLSZM features of a discretised ROI for "2D" (per slice, averaged), "2_5D" (slices
    merged) and "3D".

    Examples
    --------
    >>> rows = family_features(np.array([[[1, 1], [2, 1]]]), 2, None, (1, 1, 1), ["3D"])
    >>> rows[12]["tag"], rows[12]["value"]
    ('szm_z_perc_3D', 0.5)
    """
    aggs = check_aggregations(aggregations, AGGREGATIONS, FAMILY)
    q = as_levels(q, n_levels, FAMILY)
    morph = morphological_mask(q, morph_mask)

    def per_part(part, _morph, planar):
        levels, sizes = size_zones(part, n_levels, planar)
        return levels, sizes, int(np.count_nonzero(part))

    def combine(parts):
        return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), sum(p[2] for p in parts))

    def values(partial):
        m, cols = zone_matrix(partial[0], partial[1], n_levels)
        return count_features(m, cols, partial[2])[:N_FEATURES]

    vals = slice_aggregates(q, morph, per_part, combine, values, aggs, N_FEATURES)
    rows: list[dict] = []
    for agg in aggs:
        rows += make_rows(FAMILY, PREFIX, FEATURES, agg, vals[agg])
    return rows
