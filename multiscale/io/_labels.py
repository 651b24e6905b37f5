"""Label images: a loaded volume as an integer mask (``aspect="mask"``) on a reference image's grid.

A mask must sit on its image's grid: :func:`match_grid` refuses a different grid unless
``resample=True``, which resamples with nearest neighbour (SimpleITK) so labels stay labels.
:func:`multiscale.io.load` uses :func:`as_label_image` for every format read with ``reference=``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from multiscale.image import grid_of, like, spatial_dims, to_sitk

from ._common import LoadError, fail
from ._geometry import direction_zyx_to_xyz

__all__ = ["match_grid", "as_label_image"]


def _grids_match(a: xr.DataArray, b: xr.DataArray) -> bool:
    """Same voxel centres to within float32 header precision: 1e-5 relative spacing, 1e-3 voxel origin."""
    ga, gb = grid_of(a), grid_of(b)
    if ga["dims"] != gb["dims"] or ga["shape"] != gb["shape"]:
        return False
    sa, sb = np.asarray(ga["spacing"]), np.asarray(gb["spacing"])
    return bool(
        np.allclose(sa, sb, rtol=1e-5, atol=0)
        and np.all(np.abs(np.asarray(ga["origin"]) - np.asarray(gb["origin"])) <= 1e-3 * sb.min())
        and np.allclose(ga["direction"], gb["direction"], atol=1e-5)
    )


def match_grid(mask: xr.DataArray, reference: xr.DataArray, resample: bool = False, source: Any = "") -> xr.DataArray:
    """Return ``mask`` on ``reference``'s grid: unchanged when the grids agree, else an error or a resample.

    Parameters
    ----------
    mask, reference : xarray.DataArray
    resample : bool
        Resample with nearest neighbour (labels stay labels) instead of raising.
    source : str
        File name for error messages.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> img = spatial_image(np.zeros((2, 4, 4)), spacing=1.0)
    >>> m = spatial_image(np.ones((2, 2, 2), np.uint8), spacing=2.0)
    >>> match_grid(m, img, resample=True).shape
    (2, 4, 4)
    """
    if _grids_match(mask, reference):
        out = mask.assign_coords({d: reference.coords[d].values for d in spatial_dims(reference)})
        out.attrs["direction"] = reference.attrs.get("direction")
        out.attrs["spacing"] = reference.attrs.get("spacing")
        return out
    if not resample:
        gm, gr = grid_of(mask), grid_of(reference)
        raise LoadError(
            f"{source or 'mask'}: grid: the mask's grid (shape {gm['shape']}, spacing "
            f"{tuple(round(v, 4) for v in gm['spacing'])}, origin {tuple(round(v, 3) for v in gm['origin'])}) differs "
            f"from the image's (shape {gr['shape']}, spacing {tuple(round(v, 4) for v in gr['spacing'])}, origin "
            f"{tuple(round(v, 3) for v in gr['origin'])}); pass resample=True to resample it (nearest neighbour)"
        )
    import SimpleITK as sitk

    g = grid_of(reference)
    if len(g["shape"]) != len(spatial_dims(mask)):
        raise LoadError(f"{source or 'mask'}: dims: mask {mask.dims} and image {reference.dims} differ in spatial dims")
    f = sitk.ResampleImageFilter()
    f.SetSize([int(v) for v in g["shape"][::-1]])
    f.SetOutputSpacing([float(v) for v in g["spacing"][::-1]])
    f.SetOutputOrigin([float(v) for v in g["origin"][::-1]])
    f.SetOutputDirection([float(v) for v in direction_zyx_to_xyz(g["direction"]).reshape(-1)])
    f.SetInterpolator(sitk.sitkNearestNeighbor)
    f.SetDefaultPixelValue(0)
    chans = [mask.isel(c=i) for i in range(mask.sizes["c"])] if "c" in mask.dims else [mask]
    out = [sitk.GetArrayFromImage(f.Execute(to_sitk(m))) for m in chans]
    arr = np.stack(out) if "c" in mask.dims else out[0]
    if mask.dtype == bool:
        arr = arr.astype(bool)
    template = reference
    for d in ("t", "c"):
        if d in template.dims:
            template = template.isel({d: 0}, drop=True)
    res = like(template, arr, dims=(("c",) if "c" in mask.dims else ()) + spatial_dims(reference))
    if "c" in mask.dims and "c" in mask.coords:
        res = res.assign_coords(c=mask.coords["c"].values)
    res.attrs = {**reference.attrs, **{k: v for k, v in mask.attrs.items() if k not in ("direction", "spacing")}}
    res.attrs["direction"] = reference.attrs.get("direction")
    res.attrs["spacing"] = reference.attrs.get("spacing")
    prov = dict(mask.attrs.get("provenance") or {})
    prov["resampled"] = "nearest neighbour onto the reference grid (SimpleITK)"
    res.attrs["provenance"] = prov
    return res


def as_label_image(img: xr.DataArray, source: Any = "", reference: xr.DataArray | None = None,
                   resample: bool = False) -> xr.DataArray:
    """Turn a loaded volume into an integer label mask (``aspect="mask"``), on ``reference``'s grid if given.

    Float volumes are accepted when every value is integral (0/1 masks saved as float);
    a probability map is refused.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> m = as_label_image(spatial_image(np.array([[0.0, 1.0], [2.0, 0.0]]), spacing=1.0))
    >>> m.dtype.name, m.attrs["aspect"]
    ('uint8', 'mask')
    """
    data = img.data
    if np.issubdtype(img.dtype, np.floating):
        vals = np.asarray(data.compute() if hasattr(data, "compute") else data)
        finite = vals[np.isfinite(vals)]
        if finite.size and np.any(finite != np.round(finite)):
            raise fail(source, "voxel values", "non-integer values in a label image",
                       "threshold the probability map first (e.g. mask = image > 0.5)")
        big = finite.size and (np.abs(finite).max() > 255 or finite.min() < 0)
        img = img.copy(data=np.nan_to_num(vals).astype(np.int32 if big else np.uint8))
    elif img.dtype == bool:
        img = img.copy(data=(img.data.astype(np.uint8)))
    img.attrs["aspect"] = "mask"
    img.attrs["units"] = "label"
    if reference is not None:
        img = match_grid(img, reference, resample=resample, source=source)
        img.attrs["aspect"] = "mask"
        img.attrs["units"] = "label"
        if reference.attrs.get("modality"):
            img.attrs["modality"] = reference.attrs["modality"]
    return img
