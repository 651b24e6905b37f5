"""The ordered registry of analysis families a study file can name (``type:``).

Adding a study analysis is one module of :mod:`multiscale.analysis` that ends with
``FAMILY = Family(...)`` (see :mod:`multiscale.analysis.family`) plus one line here. The study
pipeline loops over :data:`FAMILIES` and never names a family.

Examples
--------
>>> [f.name for f in FAMILIES]
['uptake', 'radial', 'colocalisation', 'texture', 'texture_map', 'spatial']
>>> family_named("radial").optional
('vessels',)
"""

from __future__ import annotations

from . import coloc, radial, spatial, texture, uptake
from .family import Family
from .texture import maps as texture_maps

__all__ = ["FAMILIES", "family_named"]

FAMILIES: tuple[Family, ...] = (
    uptake.FAMILY,
    radial.FAMILY,
    coloc.FAMILY,
    texture.FAMILY,
    texture_maps.FAMILY,
    spatial.FAMILY,
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
