"""Whole-slide images (Aperio SVS, Hamamatsu NDPI, Leica SCN, pyramidal TIFF) read lazily at any pyramid level.

tifffile parses the slide's pyramid (``TiffFile(...).series[0].levels``); the chosen level is read through its
zarr store (``aszarr``) as a dask array whose chunks are whole TIFF tiles (grouped up to about 2048 px), so a
40,000 x 40,000 px slide opens in well under a second and is read tile by tile when computed.

The pixel size is the slide's own: Aperio's ``MPP`` in the ImageDescription, else the TIFF resolution tags in
centimetres or inches (NDPI, generic pyramids). Coordinates are in mm (``y``, ``x``), level ``k`` having the base
pixel size times the level's downsampling, with pixel centres placed so that every level covers the same area.
A slide without a pixel size is refused (:class:`~multiscale.errors.LoadError` naming ``pixel_size_um=``): a
histology map in unknown units would silently break every physical comparison.

RGB slides get ``c`` = ``R, G, B``; ``modality`` defaults to ``HISTO``. OME-TIFF pyramids are left to the
``tiff`` format (which reads their OME physical sizes); this format takes the TIFF slides that carry no OME.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from multiscale.image import spatial_image

from ._common import attach_warnings, fail, provenance, recording_warnings
from .format import Format
from .tiff import TiffLevel

__all__ = ["read_slide", "slide_levels", "is_slide", "FORMAT"]

_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_MPP = re.compile(r"\|\s*MPP\s*=\s*([0-9.eE+-]+)")
_SCREEN_DPI = {1.0, 72.0, 96.0}


def _open(path: Path):
    import tifffile

    return tifffile.TiffFile(str(path))


def _kind(tif: Any) -> str | None:
    if tif.is_ome or tif.is_imagej:
        return None
    for flag, name in (("is_svs", "svs"), ("is_ndpi", "ndpi"), ("is_scn", "scn"), ("is_philips", "philips"),
                       ("is_bif", "bif")):
        if getattr(tif, flag, False):
            return name
    try:
        if len(tif.series) and len(tif.series[0].levels) > 1:
            return "pyramidal tiff"
    except Exception:  # noqa: BLE001 - an unparsable file is not a slide
        return None
    return None


def is_slide(path: str | Path) -> bool:
    """True for a TIFF whole-slide image this format reads (SVS, NDPI, SCN, a non-OME pyramid).

    Examples
    --------
    >>> is_slide("not-a-file.svs")
    False
    """
    try:
        with _open(Path(path)) as tif:
            return _kind(tif) is not None
    except Exception:  # noqa: BLE001 - sniffing never raises for a file that is not ours
        return False


def _pixel_size_um(tif: Any) -> tuple[float | None, str]:
    page = tif.pages[0]
    desc = page.description or ""
    m = _MPP.search(desc)
    if m:
        v = float(m.group(1))
        if v > 0:
            return v, "Aperio MPP"
    tags = page.tags
    if "XResolution" in tags and "ResolutionUnit" in tags:
        num, den = tags["XResolution"].value
        per_unit = num / den if den else 0.0
        unit = int(tags["ResolutionUnit"].value)
        if per_unit > 0:
            if unit == 3:  # centimetre
                return 1e4 / per_unit, "TIFF resolution (cm)"
            if unit == 2 and per_unit not in _SCREEN_DPI:  # inch; 72/96 dpi are screen defaults, not a calibration
                return 25400.0 / per_unit, "TIFF resolution (inch)"
    return None, "none"


def slide_levels(path: str | Path) -> list[dict[str, Any]]:
    """Every pyramid level of a slide: ``level``, ``shape`` (``(y, x)``) and ``pixel_size_um`` (None if unknown).

    Examples
    --------
    >>> slide_levels("slide.svs")  # doctest: +SKIP
    [{'level': 0, 'shape': (40000, 40000), 'pixel_size_um': 0.25}, {'level': 1, ...}]
    """
    with _open(Path(path)) as tif:
        s = tif.series[0]
        um, _ = _pixel_size_um(tif)
        yi, xi = s.axes.index("Y"), s.axes.index("X")
        base = s.levels[0].shape
        return [{"level": k, "shape": (lv.shape[yi], lv.shape[xi]),
                 "pixel_size_um": None if um is None else um * base[xi] / lv.shape[xi]} for k, lv in enumerate(s.levels)]


def read_slide(path: str | Path, level: int | None = None, resolution: float | None = None,
               pixel_size_um: float | None = None, modality: str | None = None, **attrs: Any) -> xr.DataArray:
    """Read one pyramid level of a whole-slide image lazily, with coordinates in mm.

    Parameters
    ----------
    path : path-like
        An SVS, NDPI, SCN or pyramidal (non-OME) TIFF.
    level : int, optional
        Pyramid level (0 = full resolution; default 0).
    resolution : float, optional
        Wanted pixel size in mm: the coarsest level whose pixels are not larger (instead of ``level``).
    pixel_size_um : float, optional
        The base level's pixel size in micrometres, for a slide that does not record it (or to override it).
    modality : str, optional
        ``attrs["modality"]`` (default ``HISTO``).

    Returns
    -------
    xarray.DataArray
        ``(c, y, x)`` (RGB: ``c`` = R, G, B) or ``(y, x)``, dask-backed, one chunk per group of TIFF tiles.
        ``attrs``: ``level``, ``pyramid_levels``, ``pixel_size_um`` (of this level), ``base_pixel_size_um`` (of
        level 0: what QuPath annotation coordinates refer to), ``slide_kind``.

    Raises
    ------
    LoadError
        No pixel size in the file and none given, a level out of range, a truncated file.

    Examples
    --------
    >>> img = read_slide("slide.svs", level=2)  # doctest: +SKIP
    >>> img.dims, img.attrs["pixel_size_um"]    # doctest: +SKIP
    (('c', 'y', 'x'), 1.0)
    """
    with recording_warnings() as recorded:
        img = _read(Path(path), level, resolution, pixel_size_um, modality, **attrs)
    return attach_warnings(img, recorded)


def _read(path: Path, level: int | None, resolution: float | None, pixel_size_um: float | None,
          modality: str | None, **attrs: Any) -> xr.DataArray:
    import dask.array as da
    from dask.base import tokenize

    try:
        tif = _open(path)
    except Exception as exc:
        raise fail(path, "TIFF header", f"cannot be read ({type(exc).__name__}: {exc})",
                   "the file is truncated or not a TIFF") from exc
    with tif:
        kind = _kind(tif) or "tiff"
        s = tif.series[0]
        axes = s.axes
        levels = list(s.levels)
        um, source = _pixel_size_um(tif)
        if pixel_size_um is not None:
            if not pixel_size_um > 0:
                raise fail(path, "pixel_size_um=", f"{pixel_size_um!r} is not a positive size", "pass micrometres > 0")
            um, source = float(pixel_size_um), "pixel_size_um= option"
        if um is None:
            raise fail(path, "pixel size", "the slide records no physical pixel size (no MPP in its "
                       "ImageDescription, no resolution tags in cm or inch)",
                       "pass the scanner's pixel size, e.g. load(path, pixel_size_um=0.25) or in a study "
                       "'options: {pixel_size_um: 0.25}'")
        yi, xi = axes.index("Y"), axes.index("X")
        base = levels[0].shape
        sizes_mm = [um / 1000.0 * base[xi] / lv.shape[xi] for lv in levels]
        if level is not None and resolution is not None:
            raise fail(path, "level=/resolution=", "both given", "give one of them")
        if resolution is not None:
            ok = [k for k, sz in enumerate(sizes_mm) if sz <= resolution * (1 + 1e-9)]
            lvl = max(ok) if ok else 0
        else:
            lvl = 0 if level is None else int(level)
        if not 0 <= lvl < len(levels):
            raise fail(path, "level=", f"{lvl} out of range: the slide has {len(levels)} levels (0-{len(levels) - 1})",
                       "pass a level in range")
        lv_shape = levels[lvl].shape
        end = max((int(np.max(np.add(p.dataoffsets, p.databytecounts))) for p in levels[lvl].pages
                   if p is not None and getattr(p, "dataoffsets", None)), default=0)
        if end > path.stat().st_size:
            raise fail(path, "image data", f"truncated: level {lvl} needs {end} bytes, the file has "
                       f"{path.stat().st_size}", "copy the slide again")
    src = TiffLevel(path, 0, lvl)  # the slide is series 0 of its TIFF
    try:
        z = src.array()
    except Exception as exc:
        raise fail(path, "image data", f"cannot be opened ({type(exc).__name__}: {exc})",
                   "the slide is truncated or uses an unsupported compression") from exc
    src.shape, src.dtype, src.ndim = tuple(z.shape), np.dtype(z.dtype), len(z.shape)
    chunks = tuple(z.chunks)
    src.close()
    st = path.stat()
    # chunks: whole TIFF tiles, grouped up to ~2048 px along y and x
    grouped = tuple(max(c, (2048 // c) * c) if a in "YX" else c for a, c in zip(axes, chunks))
    arr = da.from_array(src, chunks=grouped, asarray=True, fancy=False, lock=False,
                        name="slide-" + tokenize(str(path.resolve()), st.st_mtime_ns, st.st_size, lvl))
    dims: list[str] = []
    for a, n in zip(axes, arr.shape):
        if a in ("Z", "I") and n == 1:
            dims.append("drop")
        elif a in ("S", "C"):
            dims.append("c")
        elif a in "YX":
            dims.append(a.lower())
        else:
            raise fail(path, "axes", f"axis {a!r} of {axes!r} is not supported for a slide",
                       "read one focal plane with the tiff format (series=, level=)")
    index = tuple(0 if d == "drop" else slice(None) for d in dims)
    arr = arr[index]
    dims = [d for d in dims if d != "drop"]
    order = sorted(range(len(dims)), key=lambda i: "cyx".index(dims[i]))
    arr = arr.transpose(order)
    dims = [dims[i] for i in order]
    fy, fx = base[yi] / lv_shape[yi], base[xi] / lv_shape[xi]
    base_mm = um / 1000.0
    sp = (base_mm * fy, base_mm * fx)
    org = ((fy - 1.0) / 2.0 * base_mm, (fx - 1.0) / 2.0 * base_mm)
    channels = None
    if "c" in dims:
        nc = arr.shape[dims.index("c")]
        channels = ["R", "G", "B", "A"][:nc] if nc in (3, 4) else [f"channel{k}" for k in range(nc)]
    out = dict(modality=modality or "HISTO", units="a.u.")
    out.update(attrs)
    out.update(level=lvl, pyramid_levels=len(levels), pixel_size_um=um * fx, base_pixel_size_um=um, slide_kind=kind,
               spacing_known=True,
               provenance=provenance(path, "tifffile", level=lvl, resolution=resolution, pixel_size_um=pixel_size_um,
                                     calibration=source))
    return spatial_image(arr, spacing=sp, origin=org, dims=tuple(dims), channels=channels, **out)


def _sniff(head: bytes, path: Path) -> bool:
    if head[:4] not in _MAGIC:
        return False
    return is_slide(path)


FORMAT = Format(
    name="slide",
    sniff=_sniff,
    read=read_slide,
    options=frozenset({"level", "resolution", "pixel_size_um", "modality", "units", "aspect", "agent", "scale"}),
    suffixes=(".svs", ".ndpi", ".scn", ".tif", ".tiff"),
    description="whole-slide image (Aperio SVS, Hamamatsu NDPI, Leica SCN, non-OME pyramidal TIFF; tifffile, lazy, "
                "any level with its um pixel size)",
)
