"""Grey level distance zone matrix (GLDZM) features, IBSI chapter 3.9.

Zones as in the GLSZM (26-/8-connectivity); a zone's distance is the smallest distance-to-border
of its voxels, where the distance map comes from repeated erosion of the *morphological* mask with
6- (3-D) or 4- (2-D) connectivity: edge voxels have distance 1. ``D[i, d]`` counts zones of level
``i`` at distance ``d``.

Examples
--------
>>> import numpy as np
>>> distance_map(np.ones((1, 3, 3), bool), planar=True)[0]
array([[1, 1, 1],
       [1, 2, 1],
       [1, 1, 1]], dtype=int32)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from multiscale.analysis.texture._aggregate import (
    ZONE_AGGREGATIONS,
    as_levels,
    border_distance,
    check_aggregations,
    count_features,
    face_offsets,
    label_zones,
    make_rows,
    morphological_mask,
    neighbourhood_offsets,
    slice_aggregates,
    zone_matrix,
)

FAMILY: str = "gldzm"
PREFIX: str = "dzm"
AGGREGATIONS: tuple[str, ...] = ZONE_AGGREGATIONS

#: (short name, IBSI id, name); the first 16 of the shared count-matrix features
FEATURES: tuple[tuple[str, str, str], ...] = (
    ("sde", "0GBI", "Small distance emphasis"),
    ("lde", "MB4I", "Large distance emphasis"),
    ("lgze", "S1RA", "Low grey level zone emphasis"),
    ("hgze", "K26C", "High grey level zone emphasis"),
    ("sdlge", "RUVG", "Small distance low grey level emphasis"),
    ("sdhge", "DKNJ", "Small distance high grey level emphasis"),
    ("ldlge", "A7WM", "Large distance low grey level emphasis"),
    ("ldhge", "KLTH", "Large distance high grey level emphasis"),
    ("glnu", "VFT7", "Grey level non-uniformity"),
    ("glnu_norm", "7HP3", "Normalised grey level non-uniformity"),
    ("zdnu", "V294", "Zone distance non-uniformity"),
    ("zdnu_norm", "IATH", "Normalised zone distance non-uniformity"),
    ("z_perc", "VIWW", "Zone percentage"),
    ("gl_var", "QK93", "Grey level variance"),
    ("zd_var", "7WT1", "Zone distance variance"),
    ("zd_entr", "GBDU", "Zone distance entropy"),
)
N_FEATURES = len(FEATURES)


def distance_map(morph_mask: np.ndarray, planar: bool = False) -> np.ndarray:
    """IBSI distance to the ROI border (1 on the edge, 0 outside), by 6-/4-connected erosion.

    With ``planar=True`` each z-slice is treated on its own (2-D distances).

    Examples
    --------
    >>> int(distance_map(np.ones((3, 3, 3), bool))[1, 1, 1])
    2
    """
    m = np.asarray(morph_mask, dtype=bool)
    if m.ndim == 2:
        m = m[None]
    if not planar:
        return border_distance(np.ascontiguousarray(m), face_offsets(False))
    faces = face_offsets(True)
    return np.concatenate([border_distance(np.ascontiguousarray(m[z : z + 1]), faces) for z in range(m.shape[0])])


def distance_zones(
    q: np.ndarray, n_levels: int, morph_mask: np.ndarray | None = None, planar: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Grey level and distance to the border of every zone of ``q``.

    Examples
    --------
    >>> distance_zones(np.ones((1, 3, 3), int), 1, planar=True)
    (array([1], dtype=int32), array([1], dtype=int32))
    """
    q = as_levels(q, n_levels, FAMILY)
    morph = morphological_mask(q, morph_mask)
    dist = distance_map(morph, planar)
    levels, _, dmin = label_zones(q, neighbourhood_offsets(1, planar), dist)
    return levels, dmin


def gldzm_matrix(
    q: np.ndarray, n_levels: int, morph_mask: np.ndarray | None = None, planar: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """The distance zone matrix and the distance of each of its columns (occupied distances only).

    Examples
    --------
    >>> m, d = gldzm_matrix(np.ones((1, 3, 3), int), 1, planar=True)
    >>> m.tolist(), d.tolist()
    ([[1.0]], [1.0])
    """
    levels, dmin = distance_zones(q, n_levels, morph_mask, planar)
    return zone_matrix(levels, dmin, n_levels)


def family_features(
    q: np.ndarray,
    n_levels: int,
    morph_mask: np.ndarray | None,
    spacing: Sequence[float],
    aggregations: Sequence[str] | None = None,
    settings: Mapping | None = None,
) -> list[dict]:
    """IBSI GLDZM features of a discretised ROI for "2D", "2_5D" and "3D".

    ``morph_mask`` (the mask before re-segmentation) defines the distances; ``None`` uses ``q > 0``.

    Examples
    --------
    >>> rows = family_features(np.ones((1, 3, 3), int), 1, None, (1, 1, 1), ["2D"])
    >>> rows[0]["tag"], rows[0]["value"]
    ('dzm_sde_2D', 1.0)
    """
    aggs = check_aggregations(aggregations, AGGREGATIONS, FAMILY)
    q = as_levels(q, n_levels, FAMILY)
    morph = morphological_mask(q, morph_mask)

    def per_part(part, morph_part, planar):
        levels, dmin = distance_zones(part, n_levels, morph_part, planar)
        return levels, dmin, int(np.count_nonzero(part))

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
