"""Vessels and perivascular transport: segmentation, vessel graphs, distance to vessels, penetration, ULM.

Submodules
----------
segment
    Multi-scale vesselness (Frangi, Sato, Meijering; scales in mm), thresholds, clean-up, radius map.
graph
    Skeleton to graph (skan): segments with length, diameter, tortuosity, orientation; branch points.
distance
    Distance to the nearest vessel (exact Euclidean, physical spacing): to the wall, voxel centres or centreline.
"""

from __future__ import annotations

from .distance import distance_to_vessels
from .graph import VesselGraph, vessel_graph
from .segment import radius_map, segment_vessels, vesselness

__all__ = ["segment_vessels", "vesselness", "radius_map", "vessel_graph", "VesselGraph", "distance_to_vessels"]
