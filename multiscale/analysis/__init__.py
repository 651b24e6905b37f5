"""Heterogeneity analysis: plain functions over images and masks that return numbers, tables or images.

Submodules
----------
texture
    IBSI features (all chapter-1 families), voxel-wise feature maps on dask, many regions in one pass.
radial
    Periphery vs core: depth maps, radial profiles, gradients, rim/core ratio, penetration depth.
coloc
    Colocalisation with Fiji Coloc 2 conventions (and JACoP by name).
uptake
    PET uptake metrics: SUVmax, SUVmean, SUVpeak (PERCIST), MTV, TLG, %ID/g.
spatial
    Ratio maps, distribution statistics, Moran's I / Geary's C, joint criteria.
msi
    Mass-spectrometry normalisation, hotspot clipping, peak picking.
figures
    Figures made from the tidy tables.
family, families
    :class:`~multiscale.analysis.family.Family` (what makes an analysis callable from a study file,
    and the tidy result schema) and the ordered registry :data:`FAMILIES`.

Analysis never imports :mod:`multiscale.io`.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["texture", "radial", "coloc", "uptake", "spatial", "msi", "figures", "family", "families", "FAMILIES",
           "family_named", "Family", "AnalysisError", "AnalysisWarning"]


def __getattr__(name: str) -> Any:
    if name in ("AnalysisError", "AnalysisWarning"):
        return getattr(importlib.import_module("multiscale.errors"), name)
    if name in ("FAMILIES", "family_named"):
        return getattr(importlib.import_module("multiscale.analysis.families"), name)
    if name == "Family":
        return importlib.import_module("multiscale.analysis.family").Family
    if name in __all__:
        return importlib.import_module(f"multiscale.analysis.{name}")
    raise AttributeError(f"module 'multiscale.analysis' has no attribute {name!r}")
