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

__all__ = ["napari_layers", "view", "add_layers", "robust_limits", "map_sources"]

#: colormaps of the image layers after the first (grey); napari's built-in names
_COLORMAPS = ("magma", "green", "cyan", "yellow", "magenta", "red", "blue", "bop orange")


def _omero_windows(path: Path) -> dict[str, tuple[float, float]]:
    """``{channel label: (start, end)}`` from an OME-Zarr's ``omero`` rendering metadata (empty if none)."""
    import json

    meta = path / "zarr.json"
    if not meta.is_file():
        return {}
    try:
        attrs = json.loads(meta.read_text()).get("attributes", {})
    except ValueError:
        return {}
    chans = (attrs.get("ome", {}).get("omero") or attrs.get("omero") or {}).get("channels", [])
    out = {}
    for ch in chans:
        w = ch.get("window") or {}
        if "label" in ch and "start" in w and "end" in w:
            out[str(ch["label"])] = (float(w["start"]), float(w["end"]))
    return out


def robust_limits(data: Any, n_samples: int = 200_000) -> tuple[float, float]:
    """Contrast limits of a map: its 0.5 and 99.5 percentiles over finite values (subsampled), so one hot voxel
    does not turn the rest black (and MRI is not saturated).

    Examples
    --------
    >>> import numpy as np
    >>> v = np.arange(1000.0); v[0] = 1e9
    >>> [round(x, 1) for x in robust_limits(v)]
    [6.0, 995.0]
    """
    arr = np.asarray(data)
    step = max(1, int(arr.size // max(1, n_samples)))
    v = arr.ravel()[::step].astype(np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = (float(x) for x in np.percentile(v, [0.5, 99.5]))
    if not hi > lo:
        lo, hi = float(v.min()), float(v.max())
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


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
        layers from different frames and resolutions overlay in physical space. Masks (channels
        ``mask:...``, the OME-Zarr's NGFF labels) become labels layers; the first map a grey base
        layer, the others additive colour layers. Each map's ``contrast_limits`` are its own: the
        OME-Zarr's ``omero`` window, else its 0.5-99.5 percentiles (:func:`robust_limits`). Oblique
        images carry their direction as ``rotate``.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> img = spatial_image(np.zeros((2, 4, 5)), spacing=(0.5, 0.5), dims=("c", "y", "x"),
    ...                     channels=["mri", "mask:tumour"])
    >>> [(kw["name"], kind, kw["scale"]) for _, kw, kind in napari_layers(img)]
    [('mri', 'image', (0.5, 0.5)), ('mask:tumour', 'labels', (0.5, 0.5))]
    """
    windows: dict[str, tuple[float, float]] = {}
    if isinstance(source, xr.DataArray):
        image = source
    else:
        from multiscale import io

        image = io.load(Path(source))
        windows = _omero_windows(Path(source))
    mi.validate(image)
    if "t" in image.dims:
        image = image.isel(t=0, drop=True)
    scale = tuple(float(v) for v in mi.spacing(image))
    translate = tuple(float(v) for v in mi.origin(image))
    direction = mi.direction(image)
    units = image.attrs.get("channel_units") or {}
    channels = [str(c) for c in image.coords["c"].values] if "c" in image.dims else [str(image.name or "image")]
    layers = []
    k = 0
    for i, name in enumerate(channels):
        data = image.isel(c=i, drop=True).data if "c" in image.dims else image.data
        kwargs: dict[str, Any] = {
            "name": name, "scale": scale, "translate": translate,
            "metadata": {"units": units.get(name, image.attrs.get("units", "")), "space_units": "mm",
                         "modality": image.attrs.get("modality", "")},
        }
        if not np.allclose(direction, np.eye(len(scale))):
            kwargs["rotate"] = direction.tolist()
        if name.startswith("mask:") or image.attrs.get("aspect") == "mask":
            layers.append((data.astype(np.uint8) if hasattr(data, "astype") else data, kwargs, "labels"))
            continue
        kwargs["colormap"] = _COLORMAPS[(k - 1) % len(_COLORMAPS)] if k else "gray"
        kwargs["blending"] = "translucent" if k == 0 else "additive"
        kwargs["contrast_limits"] = windows.get(name) or robust_limits(data)
        if k:
            kwargs["opacity"] = 0.7
        k += 1
        layers.append((data, kwargs, "image"))
    return layers


def map_sources(source: str | Path | xr.DataArray) -> list[str | Path | xr.DataArray]:
    """What to show for ``source``: an image or a file as it is; a study's output folder (or one subject's
    folder, or its ``maps``) as every ``*.ome.zarr`` map inside it, so ``multiscale view demo_output`` works.

    Raises
    ------
    FileNotFoundError
        ``source`` does not exist, or is a folder that holds no OME-Zarr map (the message says where to look).

    Examples
    --------
    >>> map_sources("demo_output")  # doctest: +SKIP
    [PosixPath('demo_output/subjects/mouse01/maps/fluorescence.ome.zarr'), ...]
    """
    if isinstance(source, xr.DataArray):
        return [source]
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder; give an output map (maps/<frame>.ome.zarr), a "
                                "subject's folder or a study's output folder")
    if not path.is_dir() or path.name.endswith(".zarr") or (path / "zarr.json").is_file() or (path / ".zattrs").is_file():
        return [path]
    found = sorted({p for pattern in ("*.ome.zarr", "maps/*.ome.zarr", "*/maps/*.ome.zarr", "subjects/*/maps/*.ome.zarr")
                    for p in path.glob(pattern) if p.is_dir()})
    if not found:
        raise FileNotFoundError(f"{path}: the folder holds no OME-Zarr map (*.ome.zarr); a study's maps are in "
                                "<output>/subjects/<subject>/maps/")
    return list(found)


def view(*sources: str | Path | xr.DataArray, block: bool = True) -> Any:
    """Open study outputs in napari, all in physical space (mm).

    Each source is a map (``maps/<frame>.ome.zarr``), any file :func:`multiscale.io.load` reads, an image, or
    a folder (a study's output or a subject's): every map inside it (:func:`map_sources`).

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
    add_layers(viewer, *sources)
    if block:
        napari.run()
    return viewer


def add_layers(viewer: Any, *sources: str | Path | xr.DataArray) -> list[Any]:
    """Add the layers of ``sources`` (:func:`napari_layers`) to a napari viewer (or ``ViewerModel``), in mm.

    The layers' physical units are mm (``Layer.units``, napari >= 0.6; older napari: the scale bar's
    ``unit``), so the scale bar reads mm, not pixels; the axes are labelled z, y, x.
    """
    layers = []
    for src in [s for source in sources for s in map_sources(source)]:
        for data, kwargs, kind in napari_layers(src):
            layer = getattr(viewer, f"add_{kind}")(data, **kwargs)
            if hasattr(type(layer), "units"):
                layer.units = ("mm",) * layer.ndim
            layers.append(layer)
    overlays = getattr(getattr(viewer, "canvas", None), "overlays", None)  # napari >= 0.9
    bar = getattr(overlays, "scale_bar", None) if overlays is not None else None
    bar = bar if bar is not None else viewer.scale_bar
    bar.visible = True
    if layers and not hasattr(type(layers[0]), "units"):  # napari < 0.6: the unit lives on the scale bar
        bar.unit = "mm"
    viewer.dims.axis_labels = tuple(("t", "z", "y", "x")[-viewer.dims.ndim:])
    return layers


