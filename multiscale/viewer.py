"""Optional napari viewing of study outputs (extra ``[viewer]``): OME-Zarr maps as layers in physical scale.

napari (and Qt) are imported only inside :func:`view`; :func:`napari_layers` builds napari's
layer-data tuples without importing napari, so the core never needs Qt.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from multiscale import image as mi

__all__ = ["napari_layers", "view"]

_COLORMAPS = ("gray", "magma", "green", "cyan", "yellow", "magenta", "red", "blue")


def napari_layers(source: str | Path | xr.DataArray) -> list[tuple[Any, dict[str, Any], str]]:
    """napari layer-data tuples ``(data, kwargs, layer_type)``, one per channel, in millimetres.

    Parameters
    ----------
    source : path or image
        An OME-Zarr written by ``multiscale run`` (``maps/<frame>.ome.zarr``), any file
        :func:`multiscale.io.load` reads, or an image.

    Returns
    -------
    list of tuple
        ``scale`` is the voxel spacing (mm) and ``translate`` the first voxel centre (mm), so
        layers from different frames and resolutions overlay in physical space. Channels named
        ``mask:...`` become labels layers, the first channel a grey base layer, the others
        additive colour layers. Oblique images carry their direction as ``rotate``.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> img = spatial_image(np.zeros((2, 4, 5)), spacing=(0.5, 0.5), dims=("c", "y", "x"),
    ...                     channels=["mri", "mask:tumour"])
    >>> [(kw["name"], kind, kw["scale"]) for _, kw, kind in napari_layers(img)]
    [('mri', 'image', (0.5, 0.5)), ('mask:tumour', 'labels', (0.5, 0.5))]
    """
    if isinstance(source, xr.DataArray):
        image = source
    else:
        from multiscale import io

        image = io.load(Path(source))
    mi.validate(image)
    if "t" in image.dims:
        image = image.isel(t=0, drop=True)
    scale = tuple(float(v) for v in mi.spacing(image))
    translate = tuple(float(v) for v in mi.origin(image))
    direction = mi.direction(image)
    units = image.attrs.get("channel_units") or {}
    channels = [str(c) for c in image.coords["c"].values] if "c" in image.dims else [str(image.name or "image")]
    layers = []
    for i, name in enumerate(channels):
        data = image.isel(c=i, drop=True).data if "c" in image.dims else image.data
        kwargs: dict[str, Any] = {
            "name": name, "scale": scale, "translate": translate,
            "metadata": {"units": units.get(name, image.attrs.get("units", "")), "space_units": "mm",
                         "modality": image.attrs.get("modality", "")},
        }
        if not np.allclose(direction, np.eye(len(scale))):
            kwargs["rotate"] = direction.tolist()
        if name.startswith("mask:"):
            layers.append((data.astype(np.uint8) if hasattr(data, "astype") else data, kwargs, "labels"))
            continue
        kwargs["colormap"] = _COLORMAPS[min(i, len(_COLORMAPS) - 1)] if i else "gray"
        kwargs["blending"] = "translucent" if i == 0 else "additive"
        if i:
            kwargs["opacity"] = 0.7
        layers.append((data, kwargs, "image"))
    return layers


def view(*sources: str | Path | xr.DataArray, block: bool = True) -> Any:
    """Open study outputs in napari, all in physical space (mm).

    Raises
    ------
    ImportError
        When napari is not installed: ``pip install 'multiscale[viewer]'``.

    Examples
    --------
    >>> view("demo_output/subjects/mouse01/maps/mri.ome.zarr")  # doctest: +SKIP
    """
    try:
        import napari
    except ImportError as exc:  # pragma: no cover - depends on the optional extra
        raise ImportError("napari is not installed; install the viewer extra: pip install 'multiscale[viewer]'") from exc
    viewer = napari.Viewer()
    for src in sources:
        for data, kwargs, kind in napari_layers(src):
            getattr(viewer, f"add_{kind}")(data, **kwargs)
    viewer.scale_bar.visible = True
    viewer.scale_bar.unit = "mm"
    if block:
        napari.run()
    return viewer
