"""multiscale: multiscale spatial imaging of nanomedicine.

Every image (PET, MRI, CT, microscopy, MSI) becomes one object, an ``xarray.DataArray`` that
knows its physical space in millimetres (:mod:`multiscale.image`). Loaders live in
:mod:`multiscale.io`, co-registration in :mod:`multiscale.registration`, heterogeneity
analysis in :mod:`multiscale.analysis` and cohort studies in :mod:`multiscale.pipeline`.
"""

from __future__ import annotations

from . import errors
from .errors import MultiscaleError, MultiscaleWarning
from .image import (
    ImageError,
    bounding_box,
    direction,
    from_sitk,
    index_to_world,
    like,
    origin,
    spacing,
    spatial_image,
    to_sitk,
    world_to_index,
)

__version__ = "0.1.0"

__all__ = [
    "errors",
    "MultiscaleError",
    "MultiscaleWarning",
    "ImageError",
    "bounding_box",
    "direction",
    "from_sitk",
    "index_to_world",
    "like",
    "origin",
    "spacing",
    "spatial_image",
    "to_sitk",
    "world_to_index",
    "__version__",
]
