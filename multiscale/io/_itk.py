"""NRRD and MetaImage (.nrrd, .nhdr, .mha, .mhd) through SimpleITK: the code both formats share.

The formats themselves are :mod:`multiscale.io.nrrd` and :mod:`multiscale.io.metaimage`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from multiscale._util import atomic_write
from multiscale.image import spatial_image, to_sitk

from ._common import (
    LoadError,
    attach_warnings,
    attrs_from_json,
    attrs_to_json,
    check_fits,
    check_voxels,
    fail,
    provenance,
    recording_warnings,
    restore_attrs,
    tempdir_for,
)
from ._geometry import direction_xyz_to_zyx

__all__ = ["read_itk", "write_itk", "ATTRS_KEY", "data_file_companion"]

#: key-value field holding our attrs as JSON (the same key as the NIfTI header extension)
ATTRS_KEY = "multiscale_attrs"


def data_file_companion(path: Path, keys: tuple[str, ...], local: tuple[str, ...]) -> list[Path]:
    """The data file a detached header names (``ElementDataFile`` of .mhd, ``data file`` of .nhdr), if it exists.

    ``keys`` are the header field names (lower case), ``local`` the values meaning "in this file".

    Examples
    --------
    >>> data_file_companion(Path("missing.mhd"), ("elementdatafile",), ("local",))
    []
    """
    try:
        with open(path, "rb") as fh:
            text = fh.read(4096).decode("latin-1")
    except OSError:
        return []
    for line in text.splitlines():
        if ":" in line and "=" not in line.split(":", 1)[0]:
            key, _, value = line.partition(":")
            value = value.lstrip("=")
        elif "=" in line:
            key, _, value = line.partition("=")
        else:
            continue
        if key.strip().lower() in keys:
            value = value.strip()
            if not value or value.lower() in local or value.upper().startswith("LIST") or "%" in value:
                return []
            cand = (path.parent / value.split()[0])
            return [cand] if cand.is_file() else []
    return []


_META_BYTES = {"MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4,
               "MET_LONG": 4, "MET_ULONG": 4, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4,
               "MET_DOUBLE": 8}
_NRRD_BYTES = {"char": 1, "uchar": 1, "int8": 1, "uint8": 1, "signed char": 1, "unsigned char": 1, "int8_t": 1,
               "uint8_t": 1, "short": 2, "ushort": 2, "int16": 2, "uint16": 2, "short int": 2, "signed short": 2,
               "unsigned short": 2, "int16_t": 2, "uint16_t": 2, "int": 4, "uint": 4, "int32": 4, "uint32": 4,
               "signed int": 4, "unsigned int": 4, "int32_t": 4, "uint32_t": 4, "longlong": 8, "ulonglong": 8,
               "int64": 8, "uint64": 8, "int64_t": 8, "uint64_t": 8, "float": 4, "double": 8}


def _text_header(path: Path) -> tuple[dict[str, str], int, str]:
    """``(fields with lower-case keys, header length in bytes, kind)`` of a MetaImage or NRRD text header.

    Decoded as latin-1 (never fails on non-UTF-8 bytes); ``kind`` is ``"nrrd"``, ``"meta"`` or ``""``.
    """
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    if head.startswith(b"NRRD"):
        end = head.find(b"\n\n")
        body = head[: end if end >= 0 else len(head)].decode("latin-1")
        fields = {}
        for line in body.splitlines()[1:]:
            if line.startswith("#") or ":" not in line:
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.lstrip("=").strip()
        return fields, (end + 2 if end >= 0 else -1), "nrrd"
    fields, pos = {}, 0
    for raw in head.splitlines(keepends=True):
        pos += len(raw)
        line = raw.decode("latin-1")
        if "=" not in line:
            continue
        key, _, value = line.partition("=")
        fields[key.strip().lower()] = value.strip()
        if key.strip().lower() == "elementdatafile":
            return fields, pos, "meta"
    return fields, -1, "meta" if fields else ""


def _ints(path: Path, field: str, text: str) -> list[int]:
    try:
        vals = [int(v) for v in text.split()]
    except ValueError:
        raise fail(path, field, f"{text!r} is not a list of whole numbers", "repair the header") from None
    if not vals:
        raise fail(path, field, "empty", "repair the header")
    bad = [v for v in vals if v <= 0]
    if bad:
        raise fail(path, field, f"{text.strip()}: sizes must be positive (got {bad[0]})",
                   "the header is corrupt; repair or re-export the file")
    return vals


def _precheck(path: Path) -> None:
    """Check a MetaImage/NRRD header's sizes against the cap and the bytes on disk before SimpleITK allocates.

    SimpleITK reads sizes as 32-bit integers (an absurd DimSize wraps around) and allocates the
    whole image first; this check uses our own parse.
    """
    try:
        fields, header_len, kind = _text_header(path)
    except OSError:
        return
    if kind == "meta":
        size_field, type_field, file_field = "DimSize", "elementtype", "elementdatafile"
        dims = _ints(path, size_field, fields["dimsize"]) if "dimsize" in fields else None
        nbytes = _META_BYTES.get(fields.get(type_field, "").upper(), 1)
        comps = fields.get("elementnumberofchannels", "1")
        compressed = fields.get("compresseddata", "false").lower() in ("true", "1")
        data = fields.get(file_field, "")
        local = data.upper() == "LOCAL"
    elif kind == "nrrd":
        size_field = "sizes"
        dims = _ints(path, size_field, fields["sizes"]) if "sizes" in fields else None
        nbytes = _NRRD_BYTES.get(fields.get("type", "").lower(), 1)
        comps = "1"
        enc = fields.get("encoding", "raw").lower()
        if enc not in ("raw", "gzip", "gz"):
            compressed = None  # text or bzip2: no cheap bound on the bytes
        else:
            compressed = enc in ("gzip", "gz")
        data = fields.get("data file", fields.get("datafile", ""))
        local = not data
        if fields.get("line skip", fields.get("lineskip", "0")) not in ("0", "") or \
                fields.get("byte skip", fields.get("byteskip", "0")) not in ("0", ""):
            compressed = None
    else:
        return
    if dims is None:
        return
    try:
        nc = max(1, int(comps))
    except ValueError:
        nc = 1
    shape = dims + ([nc] if nc > 1 else [])
    n = check_voxels(path, size_field, shape)
    need = n * nbytes
    if compressed is None:
        return
    if local:
        if header_len < 0:
            return
        have = path.stat().st_size - header_len
    else:
        if data.upper().startswith("LIST") or "%" in data:
            return
        target = path.parent / data.split()[0]
        if not target.is_file():
            raise fail(path, "ElementDataFile" if kind == "meta" else "data file",
                       f"names {data!r}, which does not exist next to the header",
                       f"copy {target.name} into {path.parent}")
        have = target.stat().st_size
    check_fits(path, f"{size_field} (voxel data)", need, have, compressed=bool(compressed))


def _sitk_reason(exc: BaseException) -> str:
    """SimpleITK's message without the 'Exception thrown in ...' location line: its reason and description."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    keep = [ln for ln in lines if not ln.startswith("Exception thrown in SimpleITK")]
    keep = [ln.split("): ", 1)[1] if ln.startswith("ITK ERROR:") and "): " in ln else ln for ln in keep]
    return " / ".join(keep or lines)[:400]


def _sitk_read(path: Path):
    import SimpleITK as sitk

    if path.is_dir():
        raise fail(path, "path", "is a folder, not an image file", "point at the .nrrd/.nhdr/.mha/.mhd file")
    _precheck(path)
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise fail(path, "header/voxel data", f"SimpleITK cannot read it ({_sitk_reason(exc)})",
                   "check that the file (and its .raw/.zraw data file) is complete") from exc


def read_itk(path: str | os.PathLike, *, modality: str = "", spacing: Any = None, **attrs: Any) -> xr.DataArray:
    """Read NRRD, MHA/MHD (or any SimpleITK-readable volume) into the image object (LPS, mm).

    Vector pixels become a ``c`` dim; 4-D images become ``(t, z, y, x)``.

    Examples
    --------
    >>> img = read_itk("mask.nrrd")  # doctest: +SKIP
    """
    with recording_warnings() as recorded:
        img = _read_itk(Path(path), modality=modality, spacing=spacing, **attrs)
    return attach_warnings(img, recorded)


def _read_itk(path: Path, *, modality: str, spacing: Any, **attrs: Any) -> xr.DataArray:
    import SimpleITK as sitk

    s = _sitk_read(path)
    stored = {}
    if s.HasMetaDataKey(ATTRS_KEY):
        stored = attrs_from_json(s.GetMetaData(ATTRS_KEY))
    n = s.GetDimension()
    sp_xyz = np.asarray(s.GetSpacing(), dtype=float)
    org_xyz = np.asarray(s.GetOrigin(), dtype=float)
    d_xyz = np.asarray(s.GetDirection(), dtype=float).reshape(n, n)
    arr = sitk.GetArrayViewFromImage(s).copy()
    vector = s.GetNumberOfComponentsPerPixel() > 1
    if vector:
        arr = np.moveaxis(arr, -1, 0)
    if n == 4:
        if vector:
            raise fail(path, "dimension", "4-D vector images are not supported", "split the components first")
        sp_xyz, org_xyz, d_xyz = sp_xyz[:3], org_xyz[:3], d_xyz[:3, :3]
        dims: tuple[str, ...] = ("t", "z", "y", "x")
        n = 3
    elif n in (2, 3):
        dims = ("z", "y", "x")[3 - n:]
        if vector:
            dims = ("c",) + dims
    else:
        raise fail(path, "dimension", f"{n}-D images are not supported", "use 2-D to 4-D images")
    if np.any(sp_xyz <= 0):
        raise fail(path, "spacing", f"zero or negative voxel size {sp_xyz.tolist()}",
                   "fix the header or pass spacing=(dz, dy, dx)")
    if spacing is not None:
        sp_xyz = np.asarray(spacing, dtype=float).reshape(-1)[::-1]
    err = float(np.abs(d_xyz.T @ d_xyz - np.eye(n)).max())
    if err > 1e-4:
        raise fail(path, "direction (space directions / TransformMatrix)",
                   f"not orthonormal (|D^T D - I| = {err:.3g})", "resample onto an orthogonal grid first")
    out_attrs = restore_attrs(stored)
    out_attrs.pop("provenance", None)
    channels = out_attrs.pop("channels", None) if vector else None
    if channels is not None and len(channels) != arr.shape[0]:
        channels = None
    if modality:
        out_attrs["modality"] = modality
    out_attrs.update(attrs)
    out_attrs.setdefault("spacing_known", True)
    out_attrs["provenance"] = provenance(path, "SimpleITK", spacing=spacing)
    return spatial_image(arr, spacing=sp_xyz[::-1], origin=org_xyz[::-1], direction=direction_xyz_to_zyx(d_xyz),
                         dims=dims, channels=channels, **out_attrs)


def write_itk(image: xr.DataArray, path: str | os.PathLike, compress: bool = True) -> Path:
    """Write NRRD or MHA/MHD (by suffix) through SimpleITK, atomically; attrs in a key-value field.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> write_itk(spatial_image(np.zeros((2, 3, 4)), spacing=1.0), "x.nrrd")  # doctest: +SKIP
    """
    import SimpleITK as sitk

    if "t" in image.dims and image.sizes["t"] != 1:
        raise LoadError(f"{path}: {Path(path).suffix}: time series cannot be written by this writer; "
                        "select one time point (image.isel(t=0)) or save as NIfTI/OME-Zarr")
    s = to_sitk(image)
    keep = dict(image.attrs)
    if "c" in image.dims and "c" in image.coords:
        keep["channels"] = list(image.coords["c"].values)
    s.SetMetaData(ATTRS_KEY, attrs_to_json(keep))
    target = Path(path)
    if target.suffix.lower() in (".mhd", ".nhdr"):
        # header + data pair: write both under their final names in a scratch folder next to the
        # target, then move the data file first and the header last (each move atomic), so a
        # reader never finds a header without its data
        scratch = tempdir_for(target)
        try:
            sitk.WriteImage(s, str(scratch / target.name), compress)
            written = sorted(scratch.iterdir(), key=lambda f: f.name == target.name)
            for f in written:
                os.replace(f, target.parent / f.name)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return target
    return atomic_write(target, lambda tmp: sitk.WriteImage(s, str(tmp), compress), suffix=target.suffix)
