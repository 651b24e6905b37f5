"""Private helpers of :mod:`multiscale.analysis.objects`: channel selection, pixel sizes in µm, label images."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from multiscale.errors import AnalysisError
from multiscale.image import like, spacing, spatial_dims, validate

#: micrometres per millimetre
UM_PER_MM = 1000.0


def channel_names(image: xr.DataArray) -> list[str]:
    """The ``c`` coords of ``image`` as text (``[]`` without a channel dim)."""
    if "c" not in image.dims:
        return []
    if "c" not in image.coords:
        return [str(i) for i in range(image.sizes["c"])]
    return [str(v) for v in image.coords["c"].values]


def name_of(image: xr.DataArray, default: str = "image") -> str:
    """What a single-channel image shows: its ``channel`` attr, its one ``c`` coord, its name, or ``default``."""
    ch = image.attrs.get("channel")
    if ch not in (None, ""):
        return str(ch)
    names = channel_names(image)
    if len(names) == 1:
        return names[0]
    return str(image.name) if image.name else default


def pick_channel(image: xr.DataArray, channel: str | None, what: str = "image") -> xr.DataArray:
    """One channel of ``image`` (no ``c`` dim left), refusing unknown names with the list of channels.

    ``channel=None`` takes a single-channel image as it is and refuses a multichannel one.
    """
    if not isinstance(image, xr.DataArray):
        raise AnalysisError(f"{what} must be a spatial image (multiscale.image.spatial_image), got {type(image).__name__}")
    validate(image)
    if "t" in image.dims:
        if image.sizes["t"] != 1:
            raise AnalysisError(f"{what} has {image.sizes['t']} time frames; select one with image.isel(t=k), or "
                                "use multiscale.analysis.objects.tracking for time-lapse data")
        image = image.isel(t=0, drop=True)
    names = channel_names(image)
    if "c" not in image.dims:
        if channel is not None and channel != name_of(image):
            raise AnalysisError(f"{what}: no channel {channel!r}; the image has one channel, {name_of(image)!r}")
        return image
    if channel is None:
        if image.sizes["c"] == 1:
            out = image.isel(c=0, drop=True)
            out.attrs = dict(image.attrs, channel=names[0])
            return out
        raise AnalysisError(f"{what} has {image.sizes['c']} channels {names}; name the one to use (channel=...)")
    if str(channel) not in names:
        raise AnalysisError(f"{what}: no channel {channel!r}; channels are {names}")
    out = image.isel(c=names.index(str(channel)), drop=True)
    out.attrs = dict(image.attrs, channel=str(channel))
    return out


def pixel_um(image: xr.DataArray) -> np.ndarray:
    """Pixel size in µm along each spatial dim."""
    return np.asarray(spacing(image), dtype=float) * UM_PER_MM


def as_float(image: xr.DataArray) -> np.ndarray:
    """The voxels as a float64 numpy array (dask computed)."""
    data = image.data
    if hasattr(data, "compute"):
        data = data.compute()
    return np.asarray(data, dtype=np.float64)


def region_array(mask: xr.DataArray | None, image: xr.DataArray) -> np.ndarray | None:
    """The region as a bool array on ``image``'s spatial grid (None for the whole image)."""
    if mask is None:
        return None
    m = mask
    for d in ("t", "c"):
        if d in m.dims:
            m = m.isel({d: 0}, drop=True)
    shape = tuple(image.sizes[d] for d in spatial_dims(image))
    if tuple(m.shape) != shape:
        raise AnalysisError(f"the mask's shape {tuple(m.shape)} differs from the image's {shape}; resample the mask "
                            "onto the image grid first")
    return as_float(m) != 0


def label_image(template: xr.DataArray, labels: np.ndarray, what: str) -> xr.DataArray:
    """``labels`` (int32) as a spatial image on ``template``'s grid, marked as a label image of ``what``."""
    sd = spatial_dims(template)
    base = template
    for d in ("t", "c"):
        if d in base.dims:
            base = base.isel({d: 0}, drop=True)
    out = like(base, labels.astype(np.int32, copy=False), dims=sd, units="label", aspect="mask")
    out.attrs["objects"] = what
    out.attrs.pop("channel", None)
    out.name = what
    return out


def as_list(value: Any) -> list[Any]:
    """``None`` -> [], a scalar -> [scalar], a sequence -> list."""
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Sequence):
        return [value]
    return list(value)
