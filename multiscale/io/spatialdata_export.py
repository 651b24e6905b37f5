"""Export maps to spatialdata (scverse) in millimetres: images as image elements, masks as labels.

spatialdata is an optional extra (``pip install 'multiscale[spatialdata]'``), imported only inside
:func:`to_spatialdata`. :func:`spatialdata_elements` is the part that decides what is exported and needs
no spatialdata: one image element per frame (the maps, channel names as ``c`` coordinates) and one labels
element per mask (``mask:<name>`` channels, integer), each with its affine from voxel indices to the
coordinate system ``"global"`` in mm (spacing as scale, the first voxel centre as translation, and the
direction cosines for oblique images).

A study's OME-Zarr maps (``maps/<frame>.ome.zarr``) already hold masks as NGFF labels; this export is for
tools that read spatialdata stores (``SpatialData.read``), whose coordinate transformations live in their
own metadata.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from multiscale import image as mi

__all__ = ["spatialdata_elements", "to_spatialdata", "write_spatialdata", "COORDINATE_SYSTEM"]

#: the coordinate system the elements are placed in (units: mm)
COORDINATE_SYSTEM = "global"


def _affine(image: xr.DataArray) -> np.ndarray:
    """Homogeneous (n+1)x(n+1) affine, spatial dims in the image's order: index -> world (mm)."""
    sp = np.asarray(mi.spacing(image), dtype=float)
    org = np.asarray(mi.origin(image), dtype=float)
    n = sp.size
    out = np.eye(n + 1)
    out[:n, :n] = np.asarray(mi.direction(image)) @ np.diag(sp)
    out[:n, n] = org
    return out


def _safe(name: str) -> str:
    out = "".join(ch if ch.isalnum() or ch in "_-." else "_" for ch in name).strip("_")
    return out or "element"


def spatialdata_elements(source: str | os.PathLike | xr.DataArray, name: str | None = None) -> dict[str, Any]:
    """What :func:`to_spatialdata` exports: ``{"images": {...}, "labels": {...}}``, each element a dict with
    ``data`` (dask or numpy), ``dims``, ``channels`` (images), ``affine`` (index -> mm), ``units``.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> img = spatial_image(np.zeros((3, 4, 5), np.float32), spacing=(0.5, 0.25), origin=(1.0, 2.0),
    ...                     dims=("c", "y", "x"), channels=["mri", "pet", "mask:tumour"])
    >>> el = spatialdata_elements(img, "mri")
    >>> list(el["images"]), el["images"]["mri"]["channels"], list(el["labels"])
    (['mri'], ['mri', 'pet'], ['mri_tumour'])
    >>> el["images"]["mri"]["affine"].tolist()
    [[0.5, 0.0, 1.0], [0.0, 0.25, 2.0], [0.0, 0.0, 1.0]]
    """
    if isinstance(source, xr.DataArray):
        image = source
        base = name or str(image.name or "maps")
    else:
        from multiscale import io

        image = io.load(Path(source))
        base = name or Path(source).name.split(".")[0]
    if "t" in image.dims:
        image = image.isel(t=0, drop=True)
    base = _safe(base)
    affine = _affine(image)
    sd = tuple(mi.spatial_dims(image))
    channels = [str(c.item() if hasattr(c, "item") else c) for c in image.coords["c"].values] if "c" in image.dims \
        else [base]
    masks = [i for i, c in enumerate(channels) if c.startswith("mask:") or image.attrs.get("aspect") == "mask"]
    maps = [i for i in range(len(channels)) if i not in masks]
    units = image.attrs.get("channel_units") or {}
    out: dict[str, Any] = {"images": {}, "labels": {}, "coordinate_system": COORDINATE_SYSTEM, "space_units": "mm"}
    if maps:
        data = image.isel(c=maps).data if "c" in image.dims else image.data[None]
        out["images"][base] = {"data": data, "dims": ("c",) + sd, "channels": [channels[i] for i in maps],
                               "affine": affine, "units": {channels[i]: units.get(channels[i],
                                                                                   image.attrs.get("units", ""))
                                                           for i in maps}}
    for i in masks:
        label = channels[i][len("mask:"):] if channels[i].startswith("mask:") else channels[i]
        data = image.isel(c=i, drop=True).data if "c" in image.dims else image.data
        if not np.issubdtype(data.dtype, np.integer):
            data = data.round().astype(np.uint16) if hasattr(data, "round") else np.rint(data).astype(np.uint16)
        out["labels"][f"{base}_{_safe(label)}"] = {"data": data, "dims": sd, "affine": affine, "channel": channels[i]}
    return out


def to_spatialdata(*sources: str | os.PathLike | xr.DataArray) -> Any:
    """A ``spatialdata.SpatialData`` of the maps of ``sources`` (OME-Zarr maps or images), in mm.

    Raises
    ------
    ImportError
        spatialdata is not installed: ``pip install 'multiscale[spatialdata]'``.

    Examples
    --------
    >>> sdata = to_spatialdata("demo_output/subjects/mouse01/maps/mri.ome.zarr")  # doctest: +SKIP
    >>> sdata["mri"].dims  # doctest: +SKIP
    ('c', 'z', 'y', 'x')
    """
    try:
        import spatialdata as sd
        from spatialdata.models import Image2DModel, Image3DModel, Labels2DModel, Labels3DModel
        from spatialdata.transformations import Affine
    except ImportError as exc:
        raise ImportError("spatialdata is not installed; install the extra: pip install 'multiscale[spatialdata]'") \
            from exc
    images, labels = {}, {}
    for src in sources:
        el = spatialdata_elements(src)
        for key, e in el["images"].items():
            model = Image3DModel if len(e["dims"]) == 4 else Image2DModel
            tr = Affine(e["affine"], input_axes=e["dims"][1:], output_axes=e["dims"][1:])
            images[key] = model.parse(e["data"], dims=e["dims"], c_coords=e["channels"],
                                      transformations={COORDINATE_SYSTEM: tr})
        for key, e in el["labels"].items():
            model = Labels3DModel if len(e["dims"]) == 3 else Labels2DModel
            tr = Affine(e["affine"], input_axes=e["dims"], output_axes=e["dims"])
            labels[key] = model.parse(e["data"], dims=e["dims"], transformations={COORDINATE_SYSTEM: tr})
    return sd.SpatialData(images=images, labels=labels)


def write_spatialdata(sources: Any, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write :func:`to_spatialdata` of ``sources`` (one or a list) as a spatialdata Zarr store at ``path``."""
    if isinstance(sources, (str, os.PathLike, xr.DataArray)):
        sources = [sources]
    sdata = to_spatialdata(*sources)
    sdata.write(str(path), overwrite=overwrite)
    return Path(path)
