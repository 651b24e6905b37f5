"""Objects: segmentation (nuclei, cells, spots), per-object tables, tiled segmentation of large images, tracking.

* :func:`segment_nuclei`: smoothing, Otsu threshold and distance-transform watershed (or a
  deep-learning segmenter when installed); :func:`segment_cells`: nuclei expanded, or watershed on a
  membrane channel; :func:`detect_spots`: Laplacian of Gaussian for single particles.
* :func:`object_table`: one row per object (area/volume in µm, centroid in mm, shape, mean and
  integrated intensity of every channel); :func:`gate_objects`, :func:`ratio_populations`,
  :func:`compartment_table`.
* :func:`segment_tiled`: the same segmentation and table tile by tile on dask, labels made unique
  across tiles, memory bounded by the tile size.
* :func:`link_tracks`, :func:`track_table`, :func:`msd_table`, :func:`diffusion_fit`: objects linked
  across frames (trackpy), speed, displacement, straightness, mean squared displacement.
* The study families ``cells`` (:mod:`multiscale.analysis.objects.cells`: per-object quantification, gating,
  per-type uptake, compartments, ratio sub-populations) and ``tracks`` (:mod:`multiscale.analysis.objects.tracks`:
  time-lapse spots linked and summarised); ``cell_patterns`` (the objects' point patterns) lives in
  :mod:`multiscale.analysis.spatial.cell_patterns`.
"""

from __future__ import annotations

from .cells import FAMILY, cell_objects, cells_table
from .segment import SEGMENTERS, detect_spots, foreground_threshold, segment_cells, segment_nuclei
from .tables import (
    OTHER,
    channel_columns,
    compartment_table,
    gate_objects,
    object_table,
    ratio_populations,
    threshold_compartments,
)
from .tiled import segment_tiled, tile_grid
from .tracking import diffusion_fit, link_tracks, msd_table, spots_over_time, track_table

__all__ = [
    "segment_nuclei",
    "segment_cells",
    "detect_spots",
    "foreground_threshold",
    "SEGMENTERS",
    "object_table",
    "channel_columns",
    "gate_objects",
    "ratio_populations",
    "compartment_table",
    "threshold_compartments",
    "OTHER",
    "segment_tiled",
    "tile_grid",
    "spots_over_time",
    "link_tracks",
    "track_table",
    "msd_table",
    "diffusion_fit",
    "cell_objects",
    "cells_table",
    "FAMILY",
]
