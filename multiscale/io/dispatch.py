"""One entry point: ``load(path, **options)`` reads any supported file or folder; ``save(image, path)`` writes.

``load`` decides by content (magic bytes, headers, the DICOM Modality), not by suffix alone:

============================  =====================================================
content                       reader
============================  =====================================================
folder of DICOM files         :func:`multiscale.io.dicom.read_dicom` (``series=``, ``suv=``)
DICOM RTSTRUCT                :func:`multiscale.io.masks.read_rtstruct` (``reference=``, ``roi=``)
DICOM SEG                     :func:`multiscale.io.masks.read_dicom_seg` (``reference=``, ``segment=``)
NIfTI-1/2 (.nii, .nii.gz)     :func:`multiscale.io.medical.read_nifti`
NRRD, MetaImage (.mha, .mhd)  :func:`multiscale.io.medical.read_itk`
TIFF, OME-TIFF, ImageJ        :func:`multiscale.io.microscopy.read_tiff` (``level=``, ``resolution=``)
PNG, JPEG                     :func:`multiscale.io.microscopy.read_plain_image` (``spacing=``)
OME-Zarr folder               :func:`multiscale.io.omezarr.read_omezarr` (``level=``)
imzML                         :func:`multiscale.io.imzml.read_imzml` (``mz=``, ``tol=``, ``tol_unit=``)
============================  =====================================================

With ``reference=`` a volume is treated as a label mask (``attrs["aspect"] = "mask"``) and checked
against the reference's grid (``resample=True`` resamples it with nearest neighbour); a DICOM folder
holding only an RTSTRUCT is rasterised onto the reference.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path
from typing import Any

import xarray as xr

from ._common import CalibrationWarning, LoadError, fail

__all__ = ["load", "save", "sniff", "LoadError", "CalibrationWarning", "SAVE_SUFFIXES"]

#: suffixes ``save`` understands
SAVE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".ome.tif", ".ome.tiff", ".tif", ".tiff",
                 ".ome.zarr", ".zarr")

_IMZML_SUFFIXES = (".imzml",)


def _nifti_magic(head: bytes) -> bool:
    if len(head) < 348:
        return False
    for fmt in ("<i", ">i"):
        size = struct.unpack(fmt, head[:4])[0]
        if size == 348 and head[344:347] in (b"n+1", b"ni1"):
            return True
        if size == 540 and head[4:7] in (b"n+2", b"ni2"):
            return True
    return False


def sniff(path: str | os.PathLike) -> str:
    """The kind of file or folder ``path`` holds, decided from its content.

    Returns one of ``"dicom"``, ``"dicom-folder"``, ``"rtstruct"``, ``"seg"``, ``"nifti"``, ``"nrrd"``,
    ``"metaimage"``, ``"tiff"``, ``"png"``, ``"jpeg"``, ``"omezarr"``, ``"imzml"``.

    Raises
    ------
    LoadError
        Empty, unreadable or unrecognised content.

    Examples
    --------
    >>> sniff("CT_image.nii.gz")  # doctest: +SKIP
    'nifti'
    """
    from .omezarr import is_omezarr

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or folder")
    if p.is_dir():
        if is_omezarr(p):
            return "omezarr"
        if (p / "zarr.json").exists() or (p / ".zgroup").exists() or (p / ".zattrs").exists():
            raise fail(p, "multiscales", "a zarr group without OME-NGFF metadata", "point load() at the image group")
        return "dicom-folder"
    with open(p, "rb") as fh:
        head = fh.read(4096)
    if not head:
        raise fail(p, "content", "the file is empty", "copy it again")
    name = p.name.lower()
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.open(p, "rb") as gz:
                inner = gz.read(600)
        except (OSError, EOFError) as exc:
            raise fail(p, "gzip stream", f"cannot be decompressed ({exc})", "the file is truncated or corrupt") from exc
        if _nifti_magic(inner):
            return "nifti"
        raise fail(p, "content", "a gzip file that does not hold a NIfTI header",
                   "decompress it and load the file inside")
    if _nifti_magic(head):
        return "nifti"
    if len(head) >= 132 and head[128:132] == b"DICM":
        return _dicom_kind(p)
    if head.startswith(b"NRRD"):
        return "nrrd"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    text = head.decode("latin-1")
    if "<mzML" in text or "<indexedmzML" in text:
        if 'id="IMS"' in text or "IMS:" in text or name.endswith(_IMZML_SUFFIXES):
            return "imzml"
        raise fail(p, "cvList", "an mzML file without imaging (IMS) terms: a spectrum list, not an image",
                   "load the imzML file of the imaging run")
    if ("ObjectType" in text or "NDims" in text) and ("ElementType" in text or "DimSize" in text):
        return "metaimage"
    if name.endswith(".dcm"):
        return _dicom_kind(p)
    if name.endswith(_IMZML_SUFFIXES):
        return "imzml"
    raise fail(p, "content", f"unrecognised file type (first bytes {head[:16]!r})",
               "supported: DICOM, NIfTI, NRRD, MHA/MHD, TIFF/OME-TIFF, PNG, JPEG, OME-Zarr, imzML")


def _dicom_kind(p: Path) -> str:
    import pydicom

    try:
        ds = pydicom.dcmread(str(p), stop_before_pixels=True, force=True,
                             specific_tags=["Modality", "NumberOfFrames"])
    except Exception as exc:
        raise fail(p, "header", f"cannot be parsed ({type(exc).__name__}: {exc})", "the file is corrupt") from exc
    modality = str(ds.get("Modality", "")).upper()
    if modality == "RTSTRUCT":
        return "rtstruct"
    if modality == "SEG":
        return "seg"
    return "dicom"


def _only(kind: str, path: Any, options: dict[str, Any], allowed: set[str]) -> None:
    extra = sorted(k for k, v in options.items() if k not in allowed and v is not None)
    if extra:
        raise TypeError(f"load({str(path)!r}): option(s) {extra} do not apply to {kind} files; "
                        f"accepted: {sorted(allowed)}")


def load(path: str | os.PathLike, **options: Any) -> Any:
    """Load a file or folder into the image object (or an imzML ion image), deciding by content.

    Parameters
    ----------
    path : path-like
        File or folder.
    **options
        ``suv`` (PET DICOM: True/"bw", "lbm", "bsa", "ibw"), ``series`` (DICOM folders with several
        series), ``reference`` (an image: rasterise an RTSTRUCT on it, or check a mask's grid
        against it), ``resample`` (nearest-neighbour resampling of a mask onto ``reference``),
        ``roi`` (RTSTRUCT ROI name(s)), ``level`` / ``resolution`` (pyramids), ``spacing``
        (override for files without calibration, mm), ``modality``, ``allow_missing`` (DICOM),
        ``mz``/``tol``/``tol_unit`` (imzML ion images) and reader-specific options.

    Returns
    -------
    xarray.DataArray
        The image object (:mod:`multiscale.image`).

    Raises
    ------
    LoadError
        Unrecognised, truncated or inconsistent input; the message names file, field and fix.

    Examples
    --------
    >>> from multiscale.io import load
    >>> pet = load("STS_019/PET/image", suv=True)  # doctest: +SKIP
    >>> pet.attrs["units"]  # doctest: +SKIP
    'SUVbw'
    """
    kind = sniff(path)
    opts = dict(options)
    reference = opts.pop("reference", None)
    resample = bool(opts.pop("resample", False))
    if kind == "dicom-folder" and reference is not None:
        from .dicom import find_rtstructs, list_series

        structs = find_rtstructs(path)
        if structs and not list_series(path):
            if len(structs) > 1:
                raise fail(path, "files", f"{len(structs)} RTSTRUCT files: {[s.name for s in structs]}",
                           "point load() at one of them")
            path, kind = structs[0], "rtstruct"
    if kind in ("dicom", "dicom-folder"):
        from .dicom import read_dicom

        _only("DICOM", path, opts, {"series", "suv", "spacing", "allow_missing", "modality", "aspect", "agent",
                                    "scale"})
        modality = opts.pop("modality", None)
        img = read_dicom(path, **opts)
        if modality:
            img.attrs["modality"] = modality
    elif kind == "rtstruct":
        from .masks import read_rtstruct

        _only("RTSTRUCT", path, opts, {"roi", "check_frame_of_reference"})
        return read_rtstruct(path, reference=reference, **opts)
    elif kind == "seg":
        from .masks import read_dicom_seg

        _only("DICOM SEG", path, opts, {"segment", "check_frame_of_reference"})
        return read_dicom_seg(path, reference=reference, **opts)
    elif kind == "nifti":
        from .medical import read_nifti

        _no_suv(path, opts)
        _only("NIfTI", path, opts, {"spacing", "modality", "lazy", "units", "aspect", "agent", "scale"})
        img = read_nifti(path, **opts)
    elif kind in ("nrrd", "metaimage"):
        from .medical import read_itk

        _no_suv(path, opts)
        _only(kind, path, opts, {"spacing", "modality", "units", "aspect", "agent", "scale"})
        img = read_itk(path, **opts)
    elif kind == "tiff":
        from .microscopy import read_tiff

        _only("TIFF", path, opts, {"level", "resolution", "spacing", "series", "modality", "units", "aspect",
                                   "agent", "scale"})
        img = read_tiff(path, **opts)
    elif kind in ("png", "jpeg"):
        from .microscopy import read_plain_image

        _only(kind.upper(), path, opts, {"spacing", "modality", "aspect", "agent", "scale"})
        img = read_plain_image(path, **opts)
    elif kind == "omezarr":
        from .omezarr import read_omezarr

        _only("OME-Zarr", path, opts, {"level", "resolution", "series", "modality", "units", "aspect", "agent",
                                       "scale"})
        img = read_omezarr(path, **opts)
    elif kind == "imzml":
        from .imzml import read_imzml

        if reference is not None or resample:
            raise TypeError(f"load({str(path)!r}): reference=/resample= do not apply to imzML; register the ion "
                            "images with multiscale.registration instead")
        mz = opts.pop("mz", None)
        ion_opts = {k: opts.pop(k) for k in ("tol", "tol_unit", "reduce") if k in opts}
        fill = {k: opts.pop(k) for k in ("fill_value",) if k in opts}
        extra = {k: opts.pop(k) for k in ("modality", "units", "aspect", "agent", "scale") if opts.get(k)}
        ds = read_imzml(path, **opts)
        if mz is None:
            if ion_opts:
                raise TypeError(f"load({str(path)!r}): {sorted(ion_opts)} need mz=[...]")
            out = ds.tic(**fill)
        else:
            out = ds.ion_images(mz, **ion_opts, **fill)
        out.attrs.update(extra)
        return out
    else:  # pragma: no cover - sniff returns only the kinds above
        raise fail(path, "content", f"no reader for {kind}")
    if reference is not None:
        from .masks import as_label_image

        img = as_label_image(img, path, reference=reference, resample=resample)
    elif resample:
        raise TypeError(f"load({str(path)!r}): resample=True needs reference=<image>")
    return img


def _no_suv(path: Any, opts: dict[str, Any]) -> None:
    if opts.get("suv"):
        raise fail(path, "suv=", "SUV needs the DICOM PET headers (weight, dose, times), which this file lacks",
                   "load the DICOM series instead, or drop suv=")
    opts.pop("suv", None)


def save(image: xr.DataArray, path: str | os.PathLike, **options: Any) -> Path:
    """Write ``image`` by suffix, atomically: NIfTI, NRRD, MHA/MHD, OME-TIFF or OME-Zarr.

    Our attrs (modality, units, agent, provenance, ...) are stored where the format allows:
    a NIfTI header extension, NRRD/MetaImage key-value fields, a private TIFF tag, zarr attributes.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> from multiscale.io import save
    >>> save(spatial_image(np.zeros((2, 3, 4)), spacing=1.0), "x.nii.gz")  # doctest: +SKIP
    """
    name = Path(path).name.lower()
    if not isinstance(image, xr.DataArray):
        raise TypeError(f"save: expected the image object (xarray.DataArray), got {type(image).__name__}")
    if name.endswith((".nii", ".nii.gz")):
        from .medical import write_nifti

        return write_nifti(image, path, **options)
    if name.endswith((".nrrd", ".nhdr", ".mha", ".mhd")):
        from .medical import write_itk

        return write_itk(image, path, **options)
    if name.endswith((".ome.tif", ".ome.tiff", ".tif", ".tiff")):
        from .microscopy import write_ome_tiff

        return write_ome_tiff(image, path, **options)
    if name.endswith((".ome.zarr", ".zarr")):
        from .omezarr import write_omezarr

        return write_omezarr(image, path, **options)
    raise LoadError(f"{path}: suffix: cannot tell the format to write; use one of {', '.join(SAVE_SUFFIXES)}")
