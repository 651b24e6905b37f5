"""TIFF, OME-TIFF and ImageJ hyperstacks through tifffile, lazily (its zarr store).

Axes are reordered to ``(t, c, z, y, x)``; physical pixel sizes come from OME ``PhysicalSize*``
(with their units), ImageJ calibration, or TIFF resolution tags, converted to mm. Without a
calibration the spacing is 1 with ``attrs["spacing_known"] = False`` and a
:class:`~multiscale.errors.CalibrationWarning`: never a silent guess. Pyramid levels are
chosen with ``level=`` or ``resolution=`` (target pixel size in mm).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from multiscale._util import atomic_write
from multiscale.image import ImageError, direction, origin, spacing, spatial_dims, spatial_image

from ._common import (
    DEFLATE_MAX_RATIO,
    CalibrationWarning,
    LoadError,
    attach_warnings,
    attrs_from_json,
    attrs_to_json,
    fail,
    length_unit_to_mm,
    max_voxels,
    provenance,
    recording_warnings,
    restore_attrs,
    warn,
)
from ._time import assign_time, ome_time_coords
from .format import Format

__all__ = ["read_tiff", "write_ome_tiff", "ATTRS_TAG", "TIFF_MAGIC", "FORMAT"]

#: the four TIFF / BigTIFF byte-order marks
TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")

#: private TIFF tag (ASCII) holding our attrs as JSON in files we write
ATTRS_TAG = 65000

_AXIS_MAP = {"T": "t", "C": "c", "S": "c", "E": "c", "Z": "z", "Y": "y", "X": "x"}
_SCREEN_DPI = {1.0, 72.0, 96.0}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _ome_pixels(xml: str, index: int) -> tuple[dict[str, str], list[str | None]]:
    root = ET.fromstring(xml)
    images = [el for el in root if _local(el.tag) == "Image"]
    if not images:
        return {}, []
    image = images[min(index, len(images) - 1)]
    pixels = next((el for el in image if _local(el.tag) == "Pixels"), None)
    if pixels is None:
        return {}, []
    names = [ch.get("Name") for ch in pixels if _local(ch.tag) == "Channel"]
    return dict(pixels.attrib), names


def _ome_delta_t(xml: str, index: int) -> list[float | None]:
    """``DeltaT`` in seconds (from each Plane's ``DeltaTUnit``, s by default) of the first plane of each T index."""
    root = ET.fromstring(xml)
    images = [el for el in root if _local(el.tag) == "Image"]
    if not images:
        return []
    pixels = next((el for el in images[min(index, len(images) - 1)] if _local(el.tag) == "Pixels"), None)
    if pixels is None:
        return []
    scale = {"s": 1.0, "ms": 1e-3, "min": 60.0, "h": 3600.0}
    found: dict[int, float] = {}
    for pl in pixels:
        if _local(pl.tag) != "Plane" or pl.get("DeltaT") is None:
            continue
        t = int(pl.get("TheT", 0))
        if t not in found:
            found[t] = float(pl.get("DeltaT")) * scale.get(pl.get("DeltaTUnit", "s"), 1.0)
    nt = int(pixels.get("SizeT", 1))
    return [found.get(i) for i in range(nt)]


def _resolution_spacing(page: Any) -> tuple[float | None, float | None]:
    """(dy, dx) in mm from TIFF XResolution/YResolution/ResolutionUnit, or None when uncalibrated."""
    tags = page.tags
    if "XResolution" not in tags or "YResolution" not in tags:
        return None, None
    unit = int(getattr(tags.get("ResolutionUnit"), "value", 2) or 2)
    per = {2: 25.4, 3: 10.0}.get(unit)
    if per is None:
        return None, None
    out = []
    for name in ("YResolution", "XResolution"):
        num, den = tags[name].value
        if not num or not den:
            out.append(None)
            continue
        ppu = num / den
        if unit == 2 and round(ppu, 6) in _SCREEN_DPI:
            out.append(None)
            continue
        out.append(per / ppu)
    return out[0], out[1]


def _imagej_spacing(tif: Any, page: Any) -> dict[str, float]:
    meta = tif.imagej_metadata or {}
    unit = meta.get("unit")
    try:
        to_mm = length_unit_to_mm(unit, tif.filehandle.path, "ImageJ unit")
    except LoadError:
        to_mm = None
    if to_mm is None:
        return {}
    out = {}
    tags = page.tags
    for name, dim in (("YResolution", "y"), ("XResolution", "x")):
        if name in tags:
            num, den = tags[name].value
            if num and den:
                out[dim] = den / num * to_mm
    if meta.get("spacing"):
        out["z"] = float(meta["spacing"]) * to_mm
    return out


class TiffLevel:
    """Array-like over one level of a tifffile series, opened on first access.

    It pickles without its open file (dask.distributed workers reopen the file), which the
    zarr store of tifffile cannot do.
    """

    def __init__(self, path: Path, series: int, level: int) -> None:
        self.path, self.series, self.level = str(path), int(series), int(level)
        self.shape: tuple[int, ...] = ()
        self.dtype = np.dtype("u1")
        self.ndim = 0
        self._z: Any = None
        self._store: Any = None
        self._lock = threading.Lock()

    def array(self) -> Any:
        with self._lock:  # dask threads may ask at once: open the file only once
            return self._open()

    def _open(self) -> Any:
        if self._z is None:
            import tifffile
            import zarr

            tif = tifffile.TiffFile(self.path)
            store = tif.aszarr(series=self.series, level=self.level)
            self._store = (store, tif)
            z = zarr.open(store, mode="r")
            if not hasattr(z, "shape"):
                z = z[str(self.level)] if str(self.level) in z else z["0"]
            self._z = z
        return self._z

    def __getitem__(self, key: Any) -> np.ndarray:
        try:
            return np.asarray(self.array()[key])
        except LoadError:
            raise
        except Exception as exc:
            raise fail(self.path, "image data", f"cannot be read ({type(exc).__name__}: {exc})",
                       "the file is truncated or corrupt") from exc

    def close(self) -> None:
        opened, self._store, self._z = getattr(self, "_store", None), None, None
        for obj in opened or ():
            try:
                obj.close()
            except Exception:  # noqa: BLE001  # pragma: no cover - closing is best effort
                pass

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_z"] = None
        state["_store"] = None
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __del__(self) -> None:
        self.close()


class _TagsPastEnd(logging.Handler):
    """Collects tifffile's "invalid value offset N" errors: a tag value that does not fit in the file (truncation).

    tifffile logs such tags and drops them (an OME-XML description cut off becomes a plain TIFF
    read with the wrong axes and no calibration); this turns them into a :class:`LoadError`.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(logging.ERROR)
        self.size = path.stat().st_size
        self.past: list[int] = []

    def emit(self, record: logging.LogRecord) -> None:
        m = re.search(r"invalid value offset (\d+)", record.getMessage())
        if m:
            self.past.append(int(m.group(1)))

    def problem(self) -> str | None:
        if self.past:
            return f"the file holds {self.size} bytes but a tag's value at byte {min(self.past)} does not fit in it"
        return None

    def __enter__(self) -> _TagsPastEnd:
        logging.getLogger("tifffile").addHandler(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        logging.getLogger("tifffile").removeHandler(self)


def _truncated(level: Any, size: int) -> str | None:
    """Why the strips/tiles of a pyramid level do not fit in a file of ``size`` bytes, or None.

    tifffile reads past the end of a truncated file as zeros; this check makes it an error.
    """
    need = 0
    for pg in level.pages:
        if pg is None:
            continue
        offsets = getattr(pg, "dataoffsets", None)
        counts = getattr(pg, "databytecounts", None)
        if offsets and counts:
            need = max(need, max(int(o) + int(c) for o, c in zip(offsets, counts)))
    if need > size:
        return f"the file holds {size} bytes but its strips/tiles end at byte {need}"
    return None


#: the most a TIFF codec can expand its bytes (none 1, PackBits 64, LZW 12-bit codes about 2730, deflate 1032)
_CODEC_MAX_RATIO = {1: 1, 32773: 64, 5: 2800, 8: DEFLATE_MAX_RATIO, 32946: DEFLATE_MAX_RATIO}
#: codecs without such a bound (JPEG, zstd, ...): a declared size above the voxel cap that needs more than this
#: expansion is refused
_UNBOUNDED_RATIO = 2000


def _declared_too_big(level: Any, path: Path) -> str | None:
    """Why the pages of a level declare more pixels than their strips/tiles can decode to, or None.

    A 200-byte file may claim 100000 x 100000 pixels; tifffile opens it lazily and fills the rest
    with zeros (or fails on first access). Checked page by page before any pixel is read.
    """
    for pg in level.pages:
        if pg is None:
            continue
        kf = getattr(pg, "keyframe", None) or pg  # a TiffFrame shares its key page's shape and codec
        counts = getattr(pg, "databytecounts", None) or ()
        stored = sum(int(c) for c in counts)
        shape = getattr(kf, "shape", ()) or ()
        n = 1
        for v in shape:
            n *= int(v)
        need = n * np.dtype(getattr(kf, "dtype", None) or np.uint8).itemsize
        comp = int(getattr(kf, "compression", 1) or 1)
        ratio = _CODEC_MAX_RATIO.get(comp)
        if ratio == 1 and int(getattr(kf, "bitspersample", 8) or 8) % 8:
            continue  # bit-packed: fewer bytes than need
        if ratio is not None and need > stored * ratio:
            return (f"page {getattr(pg, 'index', '?')} declares {' x '.join(map(str, shape))} pixels ({need} bytes) "
                    f"but its strips/tiles hold {stored} bytes{'' if ratio == 1 else ' (compression ' + str(comp) + ')'}")
        if ratio is None and n > max_voxels() and need > stored * _UNBOUNDED_RATIO:
            return (f"page {getattr(pg, 'index', '?')} declares {' x '.join(map(str, shape))} pixels ({need} bytes), "
                    f"more than the cap (multiscale.io.MAX_VOXELS) from only {stored} compressed bytes")
    return None


def _choose_level(levels: list[Any], base_yx: tuple[float, float], level: int | None, resolution: float | None,
                  path: Path) -> int:
    n = len(levels)
    if level is not None:
        if not (-n <= int(level) < n):
            raise fail(path, "level=", f"{level} is out of range: the pyramid has {n} level(s)",
                       f"pass level=0..{n - 1}")
        return int(level) % n
    if resolution is None:
        return 0
    yi, xi = levels[0].axes.index("Y"), levels[0].axes.index("X")
    best = 0
    for k, lv in enumerate(levels):
        dy = base_yx[0] * levels[0].shape[yi] / lv.shape[yi]
        dx = base_yx[1] * levels[0].shape[xi] / lv.shape[xi]
        if max(dy, dx) <= float(resolution) * (1 + 1e-6):
            best = k  # levels get coarser: keep the last one that is still fine enough
    return best


def read_tiff(
    path: str | os.PathLike,
    *,
    level: int | None = None,
    resolution: float | None = None,
    spacing: Any = None,
    series: int = 0,
    modality: str | None = None,
    **attrs: Any,
) -> xr.DataArray:
    """Read a TIFF / OME-TIFF / ImageJ TIFF lazily (dask over tifffile's zarr store).

    Parameters
    ----------
    path : path-like
    level : int, optional
        Pyramid level (0 = full resolution).
    resolution : float, optional
        Target pixel size in mm: the coarsest level whose pixels are not larger is chosen.
    spacing : float or sequence of float, optional
        Override in mm, one per spatial dim (``(dz, dy, dx)`` or ``(dy, dx)``), for uncalibrated files.
    series : int
        Which image series of the file (OME ``Image``).
    modality : str, optional
        ``attrs["modality"]``; default ``"FLUO"`` for grey/multichannel, ``"HISTO"`` for RGB.

    Returns
    -------
    xarray.DataArray
        Dims a subset of ``(t, c, z, y, x)``, coords in mm.

    Examples
    --------
    >>> img = read_tiff("2010-06_18x24y5z5t2c8b-text.ome.tiff")  # doctest: +SKIP
    >>> img.dims  # doctest: +SKIP
    ('t', 'c', 'z', 'y', 'x')
    """
    with recording_warnings() as recorded:
        img = _read_tiff(Path(path), level=level, resolution=resolution, spacing=spacing, series=series,
                         modality=modality, **attrs)
    return attach_warnings(img, recorded)


def _read_tiff(path: Path, *, level: int | None, resolution: float | None, spacing: Any, series: int,
               modality: str | None, **attrs: Any) -> xr.DataArray:
    import dask.array as da
    import tifffile
    from dask.base import tokenize

    with _TagsPastEnd(path) as watch:
        try:
            tif = tifffile.TiffFile(str(path))
        except Exception as exc:
            raise fail(path, "TIFF header", f"cannot be read ({type(exc).__name__}: {exc})",
                       "the file is truncated or not a TIFF") from exc
        with tif:
            if series >= len(tif.series):
                raise fail(path, "series=", f"{series} out of range ({len(tif.series)} series)", "pass a smaller index")
            s = tif.series[series]
            axes0 = s.axes
            base_shape = s.shape
            levels = list(s.levels)
            page = s.pages[0] if s.pages else tif.pages[0]
            cal: dict[str, float] = {}
            units_src = "none"
            names: list[str | None] = []
            pix: dict[str, str] = {}
            deltas: list[float | None] = []
            if tif.is_ome and tif.ome_metadata:
                pix, names = _ome_pixels(tif.ome_metadata, series)
                deltas = _ome_delta_t(tif.ome_metadata, series)
                for dim, key in (("x", "PhysicalSizeX"), ("y", "PhysicalSizeY"), ("z", "PhysicalSizeZ")):
                    v = pix.get(key)
                    if v is None:
                        continue
                    val = float(v)
                    if val <= 0:
                        continue
                    unit = pix.get(key + "Unit", "µm")
                    to_mm = length_unit_to_mm(unit, path, key + "Unit")
                    if to_mm is not None:
                        cal[dim] = val * to_mm
                units_src = "OME PhysicalSize"
            elif tif.is_imagej:
                cal = _imagej_spacing(tif, page)
                units_src = "ImageJ calibration"
                finterval = (tif.imagej_metadata or {}).get("finterval")
                if finterval:
                    pix = {"TimeIncrement": str(finterval), "TimeIncrementUnit": "s"}
            else:
                dy, dx = _resolution_spacing(page)
                if dy is not None and dx is not None:
                    cal = {"y": dy, "x": dx}
                    units_src = "TIFF resolution tags"
            stored = {}
            if ATTRS_TAG in page.tags:
                stored = attrs_from_json(page.tags[ATTRS_TAG].value)
            lvl = _choose_level(levels, (cal.get("y", 1.0), cal.get("x", 1.0)), level, resolution, path)
            lv_shape = levels[lvl].shape
            problem = _truncated(levels[lvl], path.stat().st_size) or watch.problem()
            if problem:
                raise fail(path, "image data", f"truncated: {problem}", "copy the file again")
            problem = _declared_too_big(levels[lvl], path)
            if problem:
                raise fail(path, "ImageWidth/ImageLength (256/257)", f"truncated or corrupt: {problem}",
                           "copy the file again; only if the cap (multiscale.io.MAX_VOXELS) was exceeded and the "
                           "file is genuine, pass max_voxels=")
    src = TiffLevel(path, series, lvl)
    try:
        z = src.array()
    except Exception as exc:
        raise fail(path, "image data", f"cannot be opened ({type(exc).__name__}: {exc})",
                   "the file is truncated or uses an unsupported compression") from exc
    src.shape, src.dtype, src.ndim = tuple(z.shape), np.dtype(z.dtype), len(z.shape)
    stat = path.stat()
    arr = da.from_array(src, chunks=z.chunks, asarray=True, fancy=False, lock=False,
                        name="tiff-" + tokenize(str(path.resolve()), stat.st_mtime_ns, stat.st_size, series, lvl))
    src.close()
    axes = axes0
    if len(axes) != arr.ndim:
        raise fail(path, "axes", f"{axes} does not match the data's {arr.ndim} dims", "report this file")

    # map tifffile axes to ours
    mapped: list[str] = []
    for a, n in zip(axes, arr.shape):
        d = _AXIS_MAP.get(a)
        if d is None:
            if a in "IQ" and "Z" not in axes and "z" not in mapped:
                warn(f"{path}: axis {a!r} ({n} planes) has no meaning in the file; read as z")
                d = "z"
            else:
                raise fail(path, "axes", f"axis {a!r} of {axes!r} is not supported",
                           "convert the file to OME-TIFF with T, C, Z, Y, X axes")
        if d in mapped:
            raise fail(path, "axes", f"{axes!r} maps two axes to {d!r}", "convert the file to OME-TIFF")
        mapped.append(d)
    order = sorted(range(len(mapped)), key=lambda i: "tczyx".index(mapped[i]))
    arr = arr.transpose(order)
    dims = tuple(mapped[i] for i in order)
    # whole planes per chunk (bounded for huge planes)
    chunks = tuple(min(arr.shape[i], max(arr.chunksize[i], 2048)) if d in "yx" else 1 for i, d in enumerate(dims))
    arr = arr.rechunk(chunks)

    sdims = [d for d in dims if d in "zyx"]
    # level scaling (y, x from the level's shape relative to the base)
    yi = axes0.index("Y")
    xi = axes0.index("X")
    fy = base_shape[yi] / lv_shape[yi]
    fx = base_shape[xi] / lv_shape[xi]
    factor = {"y": fy, "x": fx, "z": 1.0}
    known = spacing is not None or all(d in cal for d in sdims)
    if spacing is not None:
        sp = np.asarray(spacing, dtype=float).reshape(-1)
        if sp.size == 1:
            sp = np.repeat(sp, len(sdims))
        if sp.size != len(sdims) or np.any(sp <= 0):
            raise fail(path, "spacing=", f"{spacing!r} does not give {len(sdims)} positive sizes for dims {sdims}",
                       f"pass spacing=({', '.join('d' + d for d in sdims)}) in mm")
        base_sp = {d: float(v) for d, v in zip(sdims, sp)}
        units_src = "spacing= option"
    else:
        missing = [d for d in sdims if d not in cal]
        if missing:
            warn(f"{path}: no physical pixel size for dim(s) {missing} ({units_src}); using spacing 1 with "
                 "attrs['spacing_known'] = False; pass spacing= in mm", CalibrationWarning)
        base_sp = {d: cal.get(d, 1.0) for d in sdims}
    sp_level = [base_sp[d] * factor[d] for d in sdims]
    org = [(factor[d] - 1.0) / 2.0 * base_sp[d] for d in sdims]
    is_rgb = "S" in axes0
    channels = None
    if "c" in dims:
        nc = arr.shape[dims.index("c")]
        if is_rgb:
            channels = ["R", "G", "B", "A"][:nc] if nc <= 4 else None
        elif isinstance(stored.get("channels"), list) and len(stored["channels"]) == nc:
            channels = stored["channels"]  # our own file: the exact values (m/z as numbers)
        elif names and len(names) == nc and all(names):
            channels = list(names)
    out_attrs = restore_attrs(stored)
    out_attrs.pop("provenance", None)
    out_attrs.pop("channels", None)
    st_origin = out_attrs.pop("origin", None)
    st_dir = stored.get("direction")
    if st_origin is not None and len(st_origin) == len(sdims) and lvl == 0:
        org = [float(v) for v in st_origin]
    out_attrs.setdefault("modality", modality or ("HISTO" if is_rgb else "FLUO"))
    if modality:
        out_attrs["modality"] = modality
    out_attrs.setdefault("units", "a.u.")
    out_attrs.update(attrs)
    out_attrs["spacing_known"] = bool(known)
    out_attrs["pyramid_levels"] = len(levels)
    out_attrs["level"] = lvl
    out_attrs["provenance"] = provenance(path, "tifffile", level=lvl, resolution=resolution, spacing=spacing,
                                         series=series, calibration=units_src)
    try:
        image = spatial_image(arr, spacing=sp_level, origin=org,
                              direction=st_dir if (st_dir is not None and lvl == 0) else None,
                              dims=dims, channels=channels, **out_attrs)
        if "t" in dims:   # time-lapse: OME DeltaT / TimeIncrement, ImageJ finterval
            image = assign_time(image, *ome_time_coords(pix, deltas, int(arr.shape[0]), path))
        return image
    except ImageError as exc:
        raise fail(path, "geometry", str(exc)) from exc


def write_ome_tiff(image: xr.DataArray, path: str | os.PathLike) -> Path:
    """Write ``image`` as OME-TIFF (physical sizes in µm, channel names), atomically; attrs in a private tag.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> img = spatial_image(np.zeros((2, 8, 8), np.uint16), spacing=(0.0005, 0.0005), dims=("c", "y", "x"))
    >>> write_ome_tiff(img, "x.ome.tif")  # doctest: +SKIP
    """
    import tifffile

    data = image.data
    arr = np.asarray(data.compute() if hasattr(data, "compute") else data)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    axes = "".join(d.upper() for d in image.dims)
    meta: dict[str, Any] = {"axes": axes}
    sd = spatial_dims(image)
    for d, v in zip(sd, spacing(image)):
        meta[f"PhysicalSize{d.upper()}"] = float(v) * 1000.0
        meta[f"PhysicalSize{d.upper()}Unit"] = "µm"
    keep = dict(image.attrs)
    keep["origin"] = list(origin(image))
    keep["direction"] = [list(r) for r in direction(image)]
    if "c" in image.dims and "c" in image.coords:
        vals = list(image.coords["c"].values)
        meta["Channel"] = {"Name": [str(v) for v in vals]}
        keep["channels"] = [v.item() if hasattr(v, "item") else v for v in vals]
    if "t" in image.dims and "t" in image.coords:   # frame times as OME Plane DeltaT (s), T outermost
        per_t = int(np.prod([image.sizes[d] for d in image.dims if d not in ("t", "y", "x")] or [1]))
        meta["Plane"] = {"DeltaT": np.repeat(np.asarray(image["t"].values, float), per_t).tolist(),
                         "DeltaTUnit": ["s"] * (per_t * image.sizes["t"])}
    text = attrs_to_json(keep)

    def _write(tmp: Path) -> None:
        tifffile.imwrite(str(tmp), arr, ome=True, metadata=meta, photometric="minisblack",
                         extratags=[(ATTRS_TAG, "s", 0, text, True)])

    target = Path(path)
    sfx = ".ome.tiff" if target.name.lower().endswith(".tiff") else ".ome.tif"
    return atomic_write(target, _write, suffix=sfx)


def _sniff(head: bytes, path: Path) -> bool:
    return head[:4] in TIFF_MAGIC


FORMAT = Format(
    name="tiff",
    sniff=_sniff,
    read=read_tiff,
    options=frozenset({"level", "resolution", "spacing", "series", "modality", "units", "aspect", "agent", "scale"}),
    suffixes=(".tif", ".tiff", ".ome.tif", ".ome.tiff"),
    description="TIFF, OME-TIFF, ImageJ hyperstack (tifffile, lazy; pyramids by level=/resolution=)",
    write=write_ome_tiff,
    write_suffixes=(".ome.tif", ".ome.tiff", ".tif", ".tiff"),
)
