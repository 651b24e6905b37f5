"""Spatial statistics of maps and of objects (cells, particles) in physical space.

Modules
-------
distribution
    Ratio maps, distribution statistics (CV, Gini, entropy, ...), Moran's I / Geary's C, joint
    criteria; the study family ``spatial``.
points
    Point patterns: Ripley's K, Besag's L and the pair-correlation g (univariate and cross-type,
    translation edge correction on the real window), envelopes from CSR or random labelling,
    nearest-neighbour distances between types, over-dispersion of counts per tile; the study family
    ``cell_patterns``.
cell_patterns
    The study family ``cell_patterns``: K/L/g, neighbours and dispersion of segmented objects.
hotspots
    Maps: Getis-Ord Gi* hotspots, local Moran's I, the semivariogram and its range (patch size),
    patch statistics of a thresholded map; the study family ``hotspots``.

Everything :mod:`multiscale.analysis.spatial` exported as a single module is still here, under the
same names (``FAMILY`` is the ``spatial`` family).
"""

from __future__ import annotations

from .distribution import (
    FAMILY,
    STATISTICS,
    distribution_stats,
    fraction_meeting_criteria,
    ratio_map,
    spatial_autocorrelation,
    spatial_table,
)
from .hotspots import getis_ord_gi_star, local_moran, patch_statistics, semivariogram, variogram_range
from .points import Window, nearest_neighbour_distances, nearest_neighbour_table, quadrat_dispersion, ripley

__all__ = [
    "ratio_map",
    "distribution_stats",
    "spatial_autocorrelation",
    "fraction_meeting_criteria",
    "spatial_table",
    "STATISTICS",
    "FAMILY",
    "ripley",
    "Window",
    "nearest_neighbour_distances",
    "nearest_neighbour_table",
    "quadrat_dispersion",
    "getis_ord_gi_star",
    "local_moran",
    "semivariogram",
    "variogram_range",
    "patch_statistics",
]
