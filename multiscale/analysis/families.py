"""The ordered registry of analysis families a study file can name (``type:``).

Adding a study analysis is one module of :mod:`multiscale.analysis` that ends with
``FAMILY = Family(...)`` (see :mod:`multiscale.analysis.family`) plus one line here. The study
pipeline loops over :data:`FAMILIES` and never names a family.

Examples
--------
>>> [f.name for f in FAMILIES]
['uptake', 'radial', 'colocalisation', 'texture', 'texture_map', 'spatial', 'unmixing', 'ratiometric', 'spectral_ct', 'fluorescence_calibration', 'stains', 'cells', 'cell_patterns', 'hotspots', 'tracks', 'vessels', 'perivascular', 'penetration_comparison', 'dce', 'curves', 'relaxometry', 'extravasation', 'change', 'msi_colocalisation', 'msi_segmentation', 'msi_quantitation', 'msi_composition']
>>> family_named("radial").optional
('vessels',)
"""

from __future__ import annotations

from . import coloc, fluorescence, histology, radial, spatial, spectral_ct, texture, unmixing, uptake
from .family import Family
from .kinetics import change as kinetics_change
from .kinetics import curves as kinetics_curves
from .kinetics import dce as kinetics_dce
from .kinetics import extravasation as kinetics_extravasation
from .kinetics import relaxometry as kinetics_relaxometry
from .msi import colocalisation as msi_colocalisation
from .msi import composition as msi_composition
from .msi import quantitation as msi_quantitation
from .msi import segmentation as msi_segmentation
from .objects import cells as objects_cells
from .objects import tracks as objects_tracks
from .spatial import cell_patterns, hotspots
from .texture import maps as texture_maps
from .unmixing import ratiometric
from .vessels import comparison as penetration_comparison
from .vessels import network as vessel_network
from .vessels import perivascular

__all__ = ["FAMILIES", "family_named"]

FAMILIES: tuple[Family, ...] = (
    uptake.FAMILY,
    radial.FAMILY,
    coloc.FAMILY,
    texture.FAMILY,
    texture_maps.FAMILY,
    spatial.FAMILY,
    unmixing.FAMILY,
    ratiometric.FAMILY,
    spectral_ct.FAMILY,
    fluorescence.FAMILY,
    histology.FAMILY,
    objects_cells.FAMILY,
    cell_patterns.FAMILY,
    hotspots.FAMILY,
    objects_tracks.FAMILY,
    vessel_network.FAMILY,
    perivascular.FAMILY,
    penetration_comparison.FAMILY,
    kinetics_dce.FAMILY, kinetics_curves.FAMILY, kinetics_relaxometry.FAMILY, kinetics_extravasation.FAMILY,
    kinetics_change.FAMILY,
    msi_colocalisation.FAMILY,
    msi_segmentation.FAMILY,
    msi_quantitation.FAMILY,
    msi_composition.FAMILY,
)


def family_named(name: str) -> Family:
    """The family whose study ``type:`` is ``name``.

    Raises
    ------
    KeyError
        Naming the known families.
    """
    for f in FAMILIES:
        if f.name == name:
            return f
    raise KeyError(f"no analysis family {name!r}; families are {[f.name for f in FAMILIES]}")
