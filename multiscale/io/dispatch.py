"""One entry point: ``load(path, **options)`` reads any supported file or folder; ``save(image, path)`` writes.

``load`` decides by content (magic bytes, headers, the DICOM Modality), not by suffix alone, by
asking each entry of :data:`multiscale.io.formats.FORMATS` in turn (first match wins). The formats,
their options and suffixes are listed by :func:`multiscale.io.formats.formats_table` (also printed
in :func:`load`'s docstring); nothing here names a format.

Options every format takes:

* ``channels=[...]``: the channels to read, by name (or by index when the image has no channel
  names). A format with :attr:`~multiscale.io.format.Format.channel_option` (imzML: ``mz``)
  receives them under that name; for the others the image is read and the channels are selected
  from its ``c`` coord.
* ``reference=<image>`` (and ``resample=True``): read the file as a label mask
  (``attrs["aspect"] = "mask"``) on the reference's grid (``resample=True`` resamples it with
  nearest neighbour). RTSTRUCT and SEG take ``reference`` themselves; imzML refuses it.
* ``suv=``: only DICOM takes it; any other file refuses ``suv=True`` with a :class:`LoadError`.
* ``max_voxels=N``: the cap on voxels a reader may allocate for this call (default
  ``multiscale.io.MAX_VOXELS``, else ``$MULTISCALE_MAX_VOXELS``, else 2**31); a header declaring more
  raises a :class:`LoadError` before anything is allocated.

Every warning a reader issues through :func:`multiscale.io._common.warn` while ``load`` runs is also
appended, as its message text, to the image's ``attrs["warnings"]`` (a list of str, present only
when there is at least one), so it can travel to the results table and the report.
Exceptions of third-party libraries escaping a reader (corrupt content) become a :class:`LoadError`
naming the file and the format, chained with ``from``.

Any other option must be one of the format's ``options``; otherwise ``TypeError`` names the file,
the format and the accepted set.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from multiscale.errors import MultiscaleError

from ._common import CalibrationWarning, LoadError, attach_warnings, fail, recording_warnings, voxel_cap
from ._labels import as_label_image
from .format import HEAD_BYTES, Format
from .formats import FORMATS, format_named, formats_table

__all__ = ["load", "save", "sniff", "sniff_format", "companions", "select_channels", "accepted_options", "LoadError",
           "CalibrationWarning", "SAVE_SUFFIXES", "FORMATS", "format_named", "formats_table"]

#: suffixes ``save`` understands (the ``write_suffixes`` of :data:`FORMATS`)
SAVE_SUFFIXES = tuple(s for fmt in FORMATS for s in fmt.write_suffixes)

#: options ``load`` handles itself for every format
_GENERIC_OPTIONS = frozenset({"channels", "reference", "resample", "max_voxels"})

#: third-party exceptions a reader may let escape on bad content; ``load`` turns them into a LoadError naming the file
_RAW_ERRORS = (ValueError, ArithmeticError, EOFError, KeyError, IndexError, RuntimeError, MemoryError, zlib.error,
               struct.error, OSError)
#: ... except these, which keep their type (the fix is about the path, not the content)
_KEEP_ERRORS = (FileNotFoundError, PermissionError, MultiscaleError)


def sniff_format(path: str | os.PathLike) -> Format:
    """The entry of :data:`FORMATS` that ``path`` holds, decided from its content (first match wins).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    LoadError
        Empty, unreadable or unrecognised content.

    Examples
    --------
    >>> sniff_format("CT_image.nii.gz").name  # doctest: +SKIP
    'nifti'
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or folder")
    if p.is_dir():
        head = b""
    else:
        with open(p, "rb") as fh:
            head = fh.read(HEAD_BYTES)
        if not head:
            raise fail(p, "content", "the file is empty", "copy it again")
    for fmt in FORMATS:
        if fmt.sniff(head, p):
            return fmt
    raise fail(p, "content", f"unrecognised file type (first bytes {head[:16]!r})",
               "supported: " + ", ".join(fmt.name for fmt in FORMATS) + " (see multiscale.io.formats_table())")


def sniff(path: str | os.PathLike) -> str:
    """The name of the format ``path`` holds, decided from its content.

    One of the names in :data:`FORMATS`: ``"omezarr"``, ``"nifti"``, ``"rtstruct"``, ``"seg"``,
    ``"dicom"``, ``"dicom-folder"``, ``"nrrd"``, ``"tiff"``, ``"png"``, ``"jpeg"``, ``"imzml"``,
    ``"metaimage"``.

    Raises
    ------
    LoadError
        Empty, unreadable or unrecognised content.

    Examples
    --------
    >>> sniff("CT_image.nii.gz")  # doctest: +SKIP
    'nifti'
    """
    return sniff_format(path).name


def companions(path: str | os.PathLike) -> list[Path]:
    """The existing files that belong with ``path`` and are read with it (an imzML's ``.ibd``, a
    ``.mhd``/``.nhdr`` header's data file); empty for self-contained files and folders.

    Use it to checksum or copy every input of a load. A missing or unrecognised file has none
    (loading it is what reports why).

    Examples
    --------
    >>> companions("msi.imzML")  # doctest: +SKIP
    [PosixPath('msi.ibd')]
    """
    p = Path(path)
    try:
        fmt = sniff_format(p)
    except (OSError, LoadError):
        return []
    return [c for c in fmt.companions(p) if c.exists()]


def accepted_options(fmt: Format) -> frozenset[str]:
    """Every option ``load`` accepts for ``fmt``: its own plus ``channels`` (and ``reference``/``resample``
    for formats that can be masks).

    Examples
    --------
    >>> sorted(accepted_options(format_named("png")))
    ['agent', 'aspect', 'channels', 'max_voxels', 'modality', 'reference', 'resample', 'scale', 'spacing']
    """
    out = set(fmt.options) | {"channels", "max_voxels"}
    if fmt.masks:
        out |= {"reference", "resample"}
    return frozenset(out)


def select_channels(image: xr.DataArray, channels: Any, source: Any = "") -> xr.DataArray:
    """The channels ``channels`` (names or values of the ``c`` coord, or indices without one), in that order.

    Raises
    ------
    LoadError
        The image has no ``c`` dim, or a channel is missing (the message lists the available ones).

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> img = spatial_image(np.zeros((3, 2, 2)), spacing=1.0, dims=("c", "y", "x"), channels=["R", "G", "B"])
    >>> select_channels(img, ["B", "R"]).coords["c"].values.tolist()
    ['B', 'R']
    """
    wanted = list(channels) if isinstance(channels, (list, tuple, np.ndarray)) else [channels]
    if "c" not in image.dims:
        raise fail(source, "channels", f"the image has no channel dim (dims {tuple(image.dims)})", "drop channels=")
    if "c" in image.coords:
        available = [v.item() if hasattr(v, "item") else v for v in image.coords["c"].values]
    else:
        available = list(range(image.sizes["c"]))
    if not wanted:
        raise fail(source, "channels", "an empty list selects nothing", f"choose from {available}")
    index, missing = [], []
    for w in wanted:
        w = w.item() if hasattr(w, "item") else w
        hit = next((i for i, a in enumerate(available) if a == w or str(a) == str(w)), None)
        if hit is None:
            missing.append(w)
        else:
            index.append(hit)
    if missing:
        raise fail(source, "channels", f"no channel(s) {missing}", f"the image holds {available}")
    return image.isel(c=index)


def load(path: str | os.PathLike, **options: Any) -> Any:
    """Load a file or folder into the image object (or an imzML ion image), deciding by content.

    Parameters
    ----------
    path : path-like
        File or folder.
    **options
        ``channels`` (channel names/values to read, every format), ``reference`` (an image:
        rasterise an RTSTRUCT/SEG on it, or read a label mask checked against its grid),
        ``resample`` (nearest-neighbour resampling of a mask onto ``reference``), ``suv`` (PET
        DICOM: True/"bw", "lbm", "bsa", "ibw"), and the format's own options (see the table
        below), e.g. ``series`` (DICOM folders with several series), ``roi`` (RTSTRUCT ROI
        name(s)), ``level`` / ``resolution`` (pyramids), ``spacing`` (override for files without
        calibration, mm), ``modality``, ``allow_missing`` (DICOM), ``mz``/``tol``/``tol_unit``
        (imzML ion images).

    Returns
    -------
    xarray.DataArray
        The image object (:mod:`multiscale.image`).

    Raises
    ------
    LoadError
        Unrecognised, truncated or inconsistent input; the message names file, field and fix.
    TypeError
        An option the format does not take; the message names the accepted ones.

    Examples
    --------
    >>> from multiscale.io import load
    >>> pet = load("STS_019/PET/image", suv=True)  # doctest: +SKIP
    >>> pet.attrs["units"]  # doctest: +SKIP
    'SUVbw'
    >>> ions = load("msi.imzML", channels=[544.18], tol=5, tol_unit="ppm")  # doctest: +SKIP

    Formats (:data:`multiscale.io.formats.FORMATS`, tried in this order):

    {formats}
    """
    fmt = sniff_format(path)
    opts = dict(options)
    cap = opts.pop("max_voxels", None) if "max_voxels" not in fmt.options else None
    channels = opts.pop("channels", None)
    reference = resample = None
    if "reference" not in fmt.options:
        reference = opts.pop("reference", None)
        resample = opts.pop("resample", None)
        if (reference is not None or resample) and not fmt.masks:
            raise TypeError(f"load({str(path)!r}): reference=/resample= do not apply to {fmt.name} files "
                            f"({fmt.description}); register the images with multiscale.registration instead")
        if resample and reference is None:
            raise TypeError(f"load({str(path)!r}): resample=True needs reference=<image>")
    if "suv" not in fmt.options and "suv" in opts:
        if opts.pop("suv"):
            raise fail(path, "suv=", "SUV needs the DICOM PET headers (weight, dose, times), which this file lacks",
                       "load the DICOM series instead, or drop suv=")
    if channels is not None and fmt.channel_option is not None:
        if opts.get(fmt.channel_option) is not None:
            raise TypeError(f"load({str(path)!r}): pass channels= or {fmt.channel_option}=, not both")
        opts[fmt.channel_option] = channels
        channels = None
    extra = sorted(k for k, v in opts.items() if k not in fmt.options and v is not None)
    if extra:
        raise TypeError(f"load({str(path)!r}): option(s) {extra} do not apply to {fmt.name} files "
                        f"({fmt.description}); accepted: {sorted(accepted_options(fmt))}")
    with recording_warnings() as recorded, voxel_cap(cap):
        try:
            img = fmt.read(path, **{k: v for k, v in opts.items() if k in fmt.options})
        except _KEEP_ERRORS:
            raise
        except _RAW_ERRORS as exc:
            raise fail(path, "content", f"the {fmt.name} reader failed ({type(exc).__name__}: {exc})",
                       f"the file is corrupt or not a valid {fmt.name} file ({fmt.description})") from exc
        if channels is not None:
            img = select_channels(img, channels, path)
        if reference is not None:
            img = as_label_image(img, path, reference=reference, resample=bool(resample))
    return attach_warnings(img, recorded)


load.__doc__ = (load.__doc__ or "").replace("{formats}", formats_table().replace("\n", "\n    "))


def save(image: xr.DataArray, path: str | os.PathLike, **options: Any) -> Path:
    """Write ``image`` by suffix, atomically: the format whose ``write_suffixes`` match (longest match wins).

    Our attrs (modality, units, agent, provenance, ...) are stored where the format allows:
    a NIfTI header extension, NRRD/MetaImage key-value fields, a private TIFF tag, zarr attributes.
    ``options`` go to the writer (e.g. ``levels=`` for OME-Zarr, ``compress=`` for NRRD/MetaImage).

    Raises
    ------
    LoadError
        No format writes this suffix; the message lists the suffixes.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> from multiscale.io import save
    >>> save(spatial_image(np.zeros((2, 3, 4)), spacing=1.0), "x.nii.gz")  # doctest: +SKIP
    """
    if not isinstance(image, xr.DataArray):
        raise TypeError(f"save: expected the image object (xarray.DataArray), got {type(image).__name__}")
    best: tuple[Format, str] | None = None
    for fmt in FORMATS:
        sfx = fmt.write_suffix_of(path)
        if sfx is not None and (best is None or len(sfx) > len(best[1])):
            best = (fmt, sfx)
    if best is None or best[0].write is None:
        raise LoadError(f"{path}: suffix: cannot tell the format to write; use one of {', '.join(SAVE_SUFFIXES)}")
    return best[0].write(image, path, **options)
