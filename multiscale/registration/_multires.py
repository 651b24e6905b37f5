"""Working images for the optimiser (private): channel choice, working resolution, masks.

The optimiser never sees a whole slide at full resolution: each image is smoothed (Gaussian,
sigma in mm) and resampled onto a grid no finer than the *coarser* of the two images (and capped in
voxel count) before registration. Multi-resolution schedules then shrink from there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from multiscale import image as mi
from multiscale.errors import RegistrationError

from ._grids import sitk_geometry

MAX_VOXELS = {2: 1 << 20, 3: 1 << 21}




def channel_image(image: xr.DataArray, channel: Any = None, *, name: str = "image") -> xr.DataArray:
    """One channel (or a combination) of ``image`` to drive a registration.

    Parameters
    ----------
    image : xarray.DataArray
        With or without a ``c`` dim; a ``t`` dim must have length 1.
    channel : None, str, number, mapping or sequence of float
        ``None`` or ``"sum"``/``"tic"``: the sum over channels (an MSI total ion count);
        ``"mean"``/``"max"``; a channel coordinate value (a stain name, an m/z) or, failing that,
        a position; a mapping ``{channel: weight}`` or one weight per channel: a weighted sum.
    name : str
        Used in error messages (``"fixed"``, ``"moving"``).

    Returns
    -------
    xarray.DataArray
        Spatial dims only; still lazy for dask-backed images.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> img = spatial_image(np.ones((3, 4, 4)), spacing=(1, 1), dims=("c", "y", "x"), channels=["a", "b", "c"])
    >>> float(channel_image(img, {"a": 2.0, "c": 1.0})[0, 0])
    3.0
    """
    mi.validate(image)
    if "t" in image.dims:
        if image.sizes["t"] != 1:
            raise RegistrationError(f"{name} has {image.sizes['t']} time points; select one, e.g. image.isel(t=0)")
        image = image.isel(t=0)
    if "c" not in image.dims:
        if channel not in (None, "sum", "tic", "mean", "max"):
            raise RegistrationError(f"{name} has no 'c' dim, so {name}_channel={channel!r} cannot be chosen")
        return image
    labels = list(image.coords["c"].values) if "c" in image.coords else list(range(image.sizes["c"]))
    nc = image.sizes["c"]
    if channel is None or (isinstance(channel, str) and channel.lower() in ("sum", "tic")):
        return image.sum("c", keep_attrs=True) if nc > 1 else image.isel(c=0)
    if isinstance(channel, str) and channel.lower() == "mean":
        return image.mean("c", keep_attrs=True)
    if isinstance(channel, str) and channel.lower() == "max":
        return image.max("c", keep_attrs=True)
    if isinstance(channel, Mapping):
        w = np.zeros(nc)
        for key, weight in channel.items():
            w[_channel_index(labels, key, name)] = float(weight)
        return _weighted(image, w)
    if isinstance(channel, (Sequence, np.ndarray)) and not isinstance(channel, str):
        w = np.asarray(channel, dtype=float).reshape(-1)
        if w.size != nc:
            raise RegistrationError(f"{name}_channel has {w.size} weights but {name} has {nc} channels")
        return _weighted(image, w)
    return image.isel(c=_channel_index(labels, channel, name))


def _weighted(image: xr.DataArray, w: np.ndarray) -> xr.DataArray:
    weights = xr.DataArray(w, dims=("c",))
    return (image * weights).sum("c", keep_attrs=True)


def _channel_index(labels: list[Any], key: Any, name: str) -> int:
    for i, lab in enumerate(labels):
        try:
            if lab == key or (isinstance(lab, (float, np.floating)) and np.isclose(float(lab), float(key))):
                return i
        except (TypeError, ValueError):
            continue
    if isinstance(key, (int, np.integer)) and 0 <= int(key) < len(labels):
        return int(key)
    shown = labels[:5] + (["..."] if len(labels) > 5 else [])
    raise RegistrationError(f"{name}_channel {key!r} is not among the channels {shown}")


def working_spacing(fixed: xr.DataArray, moving: xr.DataArray, factor: float = 1.0) -> float:
    """Finest spacing (mm) worth registering at: the coarser image's finest pixel, times ``factor``."""
    return float(max(min(mi.spacing(fixed)), min(mi.spacing(moving))) * factor)


def to_working(
    image: xr.DataArray,
    target: float,
    *,
    max_voxels: int | None = None,
    normalise: bool = True,
    nearest: bool = False,
) -> Any:
    """A float32 SimpleITK image of ``image`` on a grid no finer than ``target`` mm.

    Axes finer than ``target`` are Gaussian-smoothed (sigma in mm) and resampled; coarser axes are
    kept. Intensities are scaled to [0, 1] between the 0.1 and 99.9 percentiles (clipped) so that
    histogram metrics do not waste their bins on outliers. ``nearest`` is for masks (no smoothing).
    """
    import SimpleITK as sitk

    n = len(mi.spatial_dims(image))
    sp = np.asarray(mi.spacing(image), float)
    shape = np.asarray(mi.shape(image), float)
    new_sp = np.maximum(sp, target)
    cap = max_voxels or MAX_VOXELS[n]
    while np.prod(np.ceil(shape * sp / new_sp)) > cap:
        new_sp = new_sp * 1.25
    if not nearest:
        # block means first (lazy for dask: a whole slide is never loaded at full resolution),
        # then the Gaussian below only makes up the rest of the anti-aliasing
        factors = {d: int(np.floor(new_sp[i] / sp[i] + 1e-9)) for i, d in enumerate(mi.spatial_dims(image))}
        factors = {d: f for d, f in factors.items() if f >= 2 and image.sizes[d] >= 2 * f}
        if factors:
            image = image.coarsen(factors, boundary="trim").mean(keep_attrs=True)
            sp = np.asarray(mi.spacing(image), float)
            shape = np.asarray(mi.shape(image), float)
            new_sp = np.maximum(new_sp, sp)
    arr = np.asarray(image.data.compute() if hasattr(image.data, "compute") else image.data)
    if nearest:
        arr = (arr > 0).astype(np.uint8)
    else:
        arr = arr.astype(np.float32, copy=False)
        arr = np.where(np.isfinite(arr), arr, 0).astype(np.float32, copy=False)
    s = sitk.GetImageFromArray(np.ascontiguousarray(arr))
    g = sitk_geometry(image)
    s.SetSpacing(g[0])
    s.SetOrigin(g[1])
    s.SetDirection(g[2])
    if np.any(new_sp > sp * (1 + 1e-9)):
        sigma = 0.5 * np.sqrt(np.maximum(new_sp**2 - sp**2, 0.0))  # anti-alias, mm, zyx
        if not nearest and np.any(sigma > 0):
            s = sitk.SmoothingRecursiveGaussian(s, tuple(float(v) for v in np.maximum(sigma, 1e-6)[::-1]))
        new_shape = np.maximum(np.round(shape * sp / new_sp), 1).astype(int)
        # keep the grid's outer edges: first centre moves by half the change of spacing
        org0 = np.asarray(mi.origin(image), float)
        shift = 0.5 * (new_sp - sp)
        d = mi.direction(image)
        new_org = org0 + d @ shift
        f = sitk.ResampleImageFilter()
        f.SetSize(tuple(int(v) for v in new_shape[::-1]))
        f.SetOutputSpacing(tuple(float(v) for v in new_sp[::-1]))
        f.SetOutputOrigin(tuple(float(v) for v in new_org[::-1]))
        f.SetOutputDirection(g[2])
        f.SetInterpolator(sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear)
        f.SetDefaultPixelValue(0)
        s = f.Execute(s)
    if nearest:
        return s
    if normalise:
        a = sitk.GetArrayViewFromImage(s)
        lo, hi = np.percentile(a, [0.1, 99.9])
        if hi <= lo:
            lo, hi = float(a.min()), float(a.max())
        if hi > lo:
            s = sitk.Clamp((s - float(lo)) / float(hi - lo), sitk.sitkFloat32, 0.0, 1.0)
        else:
            s = sitk.Cast(s * 0.0, sitk.sitkFloat32)
    return sitk.Cast(s, sitk.sitkFloat32)


def embed_section(s2: Any, thickness: float) -> Any:
    """A 2-D SimpleITK image as a one-slice 3-D image at z = 0 (slice-to-volume)."""
    import SimpleITK as sitk

    arr = sitk.GetArrayFromImage(s2)[None]
    s3 = sitk.GetImageFromArray(arr)
    s3.SetSpacing(tuple(s2.GetSpacing()) + (float(thickness),))
    s3.SetOrigin(tuple(s2.GetOrigin()) + (0.0,))
    d2 = np.asarray(s2.GetDirection(), float).reshape(2, 2)
    d3 = np.eye(3)
    d3[:2, :2] = d2
    s3.SetDirection(tuple(d3.reshape(-1)))
    return s3
