"""Shared input checks for the analysis functions: one image, its mask, NaNs, constant values.

Masks are small next to the intensity maps they select (one byte per voxel, and usually a tumour
inside a larger field of view), so every analysis function *computes the mask into memory* and keeps
the intensities lazy: values inside the mask are gathered with a dask boolean selection, chunk by
chunk, so memory holds the region of interest, never the whole map.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import xarray as xr

from multiscale.errors import AnalysisError, AnalysisWarning
from multiscale.image import ImageError, same_grid, spatial_dims, validate

__all__ = [
    "AnalysisError",
    "AnalysisWarning",
    "single_channel",
    "mask_array",
    "check_mask",
    "masked_values",
    "to_numpy",
    "is_dask",
    "bounding_slices",
]






def _label(image: xr.DataArray, what: str) -> str:
    name = image.name if isinstance(image, xr.DataArray) and image.name else None
    src = None
    if isinstance(image, xr.DataArray):
        prov = image.attrs.get("provenance") or {}
        if isinstance(prov, dict):
            src = prov.get("source") or prov.get("path")
    parts = [what]
    if name:
        parts.append(repr(str(name)))
    if src:
        parts.append(f"from {src}")
    return " ".join(parts)


def is_dask(image: Any) -> bool:
    """True when the image's data is a dask array."""
    data = image.data if isinstance(image, xr.DataArray) else image
    return hasattr(data, "dask") and hasattr(data, "compute")


def to_numpy(x: Any) -> np.ndarray:
    """Compute a dask array (or take a numpy/DataArray's values) as numpy."""
    data = x.data if isinstance(x, xr.DataArray) else x
    if hasattr(data, "compute"):
        data = data.compute()
    return np.asarray(data)


def single_channel(image: xr.DataArray, what: str = "image", error: type[Exception] = AnalysisError) -> xr.DataArray:
    """Validate ``image`` and drop singleton ``t``/``c`` dims; refuse several channels or times.

    ``error`` is the exception class raised (texture raises its :class:`RoiError`).
    """
    if not isinstance(image, xr.DataArray):
        raise error(
            f"{what} must be a spatial image (xarray.DataArray built with multiscale.image.spatial_image), "
            f"got {type(image).__name__}; wrap arrays with spatial_image(array, spacing=...)"
        )
    try:
        validate(image)
    except ImageError as exc:
        raise error(f"{_label(image, what)}: {exc}") from exc
    for d in ("t", "c"):
        if d in image.dims:
            if image.sizes[d] != 1:
                raise error(
                    f"{_label(image, what)} has {image.sizes[d]} entries along {d!r}; select one with image.isel({d}=0) "
                    f"or image.sel(c='name')"
                )
            image = image.isel({d: 0})
    return image


def mask_array(mask: xr.DataArray | None, image: xr.DataArray, what: str = "mask") -> np.ndarray:
    """The mask as a numpy bool array on ``image``'s grid (all True when ``mask`` is None).

    Raises
    ------
    AnalysisError
        The mask is not an image, lies on another grid, or selects no voxel.
    """
    if mask is None:
        return np.ones(tuple(image.sizes[d] for d in spatial_dims(image)), dtype=bool)
    mask = single_channel(mask, what)
    if not same_grid(mask, image):
        raise AnalysisError(
            f"{_label(mask, what)} is not on the image's grid (shape {tuple(mask.shape)} vs "
            f"{tuple(image.shape)}, or different spacing/origin/direction); resample the mask onto "
            "the image grid first (nearest neighbour), e.g. with multiscale.registration"
        )
    arr = to_numpy(mask)
    if arr.dtype != bool:
        if np.issubdtype(arr.dtype, np.floating) and np.isnan(arr).any():
            raise AnalysisError(f"{_label(mask, what)} contains NaN; a mask holds 0/1 (or labels)")
        arr = arr != 0
    if not arr.any():
        raise AnalysisError(f"{_label(mask, what)} is empty (no voxel selected); check the label value or the ROI")
    return arr


def check_mask(image: xr.DataArray, mask: xr.DataArray | None, what: str = "image") -> tuple[xr.DataArray, np.ndarray]:
    """Validate an (image, mask) pair: one channel, same grid, non-empty mask.

    Returns
    -------
    image : xarray.DataArray
        The image with singleton ``t``/``c`` dims dropped (data untouched, still lazy).
    mask : numpy.ndarray of bool
        The mask on the image grid.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> img = spatial_image(np.arange(12.0).reshape(3, 4), spacing=1.0)
    >>> m = spatial_image(np.ones((3, 4), bool), spacing=1.0)
    >>> int(check_mask(img, m)[1].sum())
    12
    """
    image = single_channel(image, what)
    return image, mask_array(mask, image)


def masked_values(image: xr.DataArray, mask: np.ndarray, what: str = "image", drop_nan: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The float64 values of ``image`` inside ``mask`` (in C order) and a bool array of which were kept.

    NaN voxels are dropped with an :class:`AnalysisWarning` naming how many. Dask images are
    reduced chunk by chunk (memory holds only the selected voxels).

    Returns
    -------
    values : numpy.ndarray
        Finite values, in C order of the mask's True voxels.
    kept : numpy.ndarray of bool
        Same length as ``mask.sum()``: which of the mask's voxels have a finite value.
    """
    data = image.data
    if is_dask(image):
        import dask.array as da

        m = da.from_array(mask, chunks=data.chunks)
        vals = np.asarray(data[m].compute(), dtype=np.float64)
    else:
        vals = np.asarray(data, dtype=np.float64)[mask]
    kept = np.isfinite(vals)
    if drop_nan and not kept.all():
        n_bad = int((~kept).sum())
        warnings.warn(
            f"{_label(image, what)}: {n_bad} of {kept.size} voxels in the mask are NaN or infinite and were ignored",
            AnalysisWarning,
            stacklevel=3,
        )
        vals = vals[kept]
        if vals.size == 0:
            raise AnalysisError(f"{_label(image, what)} has no finite value inside the mask")
    return vals, kept


def bounding_slices(mask: np.ndarray, margin: Any = 0) -> tuple[slice, ...]:
    """Slices of the smallest box holding the mask's True voxels, grown by ``margin`` voxels per axis."""
    margin = np.broadcast_to(np.asarray(margin, dtype=int), (mask.ndim,))
    out = []
    for ax in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != ax)
        idx = np.flatnonzero(mask.any(axis=other))
        lo = max(int(idx[0]) - int(margin[ax]), 0)
        hi = min(int(idx[-1]) + 1 + int(margin[ax]), mask.shape[ax])
        out.append(slice(lo, hi))
    return tuple(out)


def warn_nan(message: str) -> float:
    """Warn with an :class:`AnalysisWarning` and return NaN."""
    warnings.warn(message, AnalysisWarning, stacklevel=3)
    return float("nan")
