"""Vessels and perivascular transport: segmentation, vessel graphs, distance to vessels, penetration, ULM.

Submodules
----------
segment
    Multi-scale vesselness (Frangi, Sato, Meijering on the Hessian in mm; scales in mm), thresholds (Otsu,
    hysteresis), growth to half contrast, clean-up by size, radius map; dask images chunk by chunk.
graph
    Skeleton to graph (skan): segments with length, diameter, tortuosity, orientation; branch and end points.
distance
    Distance to the nearest vessel (exact Euclidean, physical spacing): to the wall, voxel centres or centreline.
perivascular
    A map against distance from the vessels: profile with CIs, penetration depth, band and intra/extravascular
    fractions, vessel-density tiles, two formulations compared; the study family ``perivascular``.
network
    The study family ``vessels``: segmentation (or a given mask), graph and region metrics.
comparison
    The study family ``penetration_comparison``: two maps' penetration from the same vessels.
ulm
    Ultrasound localisation microscopy: localisations or tracks to density and velocity maps.
synthetic
    Vessel trees with known centrelines, radii and branch points (tests, benchmarks, demos).

Examples
--------
>>> import numpy as np
>>> from multiscale.image import spatial_image
>>> m = np.zeros((40, 40), np.uint8); m[19:22, 5:35] = 1; m[5:20, 19:22] = 1
>>> g = vessel_graph(spatial_image(m, spacing=0.01))
>>> g.metric("n_branch_points"), round(g.metric("total_length_mm"), 2)
(1.0, 0.44)
"""

from __future__ import annotations

from .distance import distance_to_vessels
from .graph import VesselGraph, vessel_graph
from .segment import radius_map, segment_vessels, vesselness

__all__ = ["segment_vessels", "vesselness", "radius_map", "vessel_graph", "VesselGraph", "distance_to_vessels"]
