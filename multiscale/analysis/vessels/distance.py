"""Distance from every voxel to the nearest vessel, in millimetres (exact Euclidean, anisotropic spacing).

Three references (``reference=``):

* ``"wall"`` (default): distance from the voxel centre to the vessel wall: the exact Euclidean distance
  transform of the complement (:func:`scipy.ndimage.distance_transform_edt` with ``sampling=spacing``)
  to the nearest vessel voxel centre, less half the longest voxel side (the wall lies between the last
  vessel voxel centre and the first tissue voxel centre), floored at 0. The distance to the nearest vessel
  voxel centre overestimates the distance to a tube's true surface by 0 to one voxel; less half a voxel,
  it matches the analytic distance within half a voxel (its longest side; tested on tubes with
  anisotropic voxels). 0 on vessel voxels.
* ``"centre"``: distance to the nearest vessel voxel centre (0 on vessel voxels); the convention of
  :func:`multiscale.analysis.radial.radial_profile` with ``vessels=``.
* ``"centreline"``: distance to the nearest voxel of the vessels' skeleton (also inside vessels).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import xarray as xr

from multiscale.errors import AnalysisError
from multiscale.image import like, same_grid, spacing, spatial_dims

from .._depth import distance_to_mask_mm
from .._masks import single_channel, to_numpy

__all__ = ["distance_to_vessels", "distance_array", "vessel_mask_on"]

REFERENCES = ("wall", "centre", "centreline")


def vessel_mask_on(vessels: xr.DataArray, image: xr.DataArray | None = None, what: str = "vessel mask") -> np.ndarray:
    """The vessel mask as numpy bool, checked to be 2-D/3-D and on ``image``'s grid (if given).

    Unlike a region mask, an empty vessel mask is allowed (metrics become NaN with a warning).
    """
    vessels = single_channel(vessels, what)
    sd = spatial_dims(vessels)
    if image is not None:
        image = single_channel(image, "image")
        isd = spatial_dims(image)
        if len(sd) != len(isd):
            raise AnalysisError(
                f"{what} is {len(sd)}-D {sd} but the image is {len(isd)}-D {isd}; give a vessel mask of the "
                "image's plane or volume (a 3-D mask must be resampled onto a 2-D section first)")
        if not same_grid(vessels, image):
            raise AnalysisError(
                f"{what} is not on the image's grid (shape {tuple(vessels.shape)} vs {tuple(image.shape)}, "
                "or different spacing/origin/direction); resample it onto the image grid first (nearest neighbour)")
    arr = to_numpy(vessels)
    if np.issubdtype(arr.dtype, np.floating) and np.isnan(arr).any():
        raise AnalysisError(f"{what} contains NaN; a mask holds 0/1")
    return arr != 0


def distance_array(vessel: np.ndarray, sp, reference: str = "wall") -> np.ndarray:
    """Distance (mm) on a numpy boolean vessel mask with spacing ``sp``; all-NaN for an empty mask."""
    vessel = np.asarray(vessel, bool)
    sp = np.asarray(sp, float)
    if reference not in REFERENCES:
        raise AnalysisError(f"reference={reference!r}: use one of {REFERENCES}")
    if not vessel.any():
        return np.full(vessel.shape, np.nan)
    if reference == "centre":
        return distance_to_mask_mm(vessel, sp)
    if reference == "centreline":
        from .graph import skeleton_image

        return distance_to_mask_mm(skeleton_image(vessel), sp)
    return np.maximum(distance_to_mask_mm(vessel, sp) - 0.5 * float(sp.max()), 0.0)


def distance_to_vessels(mask: xr.DataArray, *, reference: Literal["wall", "centre", "centreline"] = "wall"
                        ) -> xr.DataArray:
    """Distance (mm) from every voxel centre to the nearest vessel, as an image on the mask's grid.

    Parameters
    ----------
    mask : xarray.DataArray
        Vessel mask (non-zero = vessel), 2-D or 3-D; anisotropic spacing is honoured.
    reference : {"wall", "centre", "centreline"}
        To the vessel wall (vessel voxels' outer faces; 0 inside vessels), to the nearest vessel voxel
        centre, or to the vessels' centreline (skeleton). See the module docstring.

    Returns
    -------
    xarray.DataArray
        float64, ``units="mm"``; all NaN (with no error) when the mask is empty.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> m = np.zeros((1, 7), np.uint8); m[0, 3] = 1
    >>> d = distance_to_vessels(spatial_image(m, spacing=(1.0, 0.5)))
    >>> d.values[0].tolist()
    [1.0, 0.5, 0.0, 0.0, 0.0, 0.5, 1.0]
    """
    v = vessel_mask_on(mask)
    if v.ndim not in (2, 3):
        raise AnalysisError(f"vessel mask must be 2-D or 3-D, got {v.ndim}-D")
    d = distance_array(v, spacing(single_channel(mask, "vessel mask")), reference)
    return like(single_channel(mask, "vessel mask"), d, units="mm", aspect=f"distance to vessels ({reference})")
