"""NIfTI-1/2 (.nii, .nii.gz) through nibabel; RAS+ is converted to LPS+ once, here.

Readers return the image object of :mod:`multiscale.image` with coords in mm in the LPS patient
frame; the writer is atomic and keeps our attrs in a header extension.

Laziness (the default, as for DICOM): the voxels are a dask array whose blocks are whole planes of the file's
slowest axis (z of a volume, t of a series), grouped up to :data:`BLOCK_BYTES`; each block is one task with
plain arguments (path, offset, dtype, slope, intercept, block) that reads only its own bytes
(:func:`nibabel.fileslice.fileslice`) and applies ``scl_slope``/``scl_inter`` exactly as nibabel does, so the
values equal an eager read bit for bit. Nothing is read at load beyond the header.

* ``.nii`` (uncompressed): computing one slice reads that block's bytes, not the file.
* ``.nii.gz``: gzip streams cannot be entered in the middle, so a block at the end of the file costs
  decompressing everything before it. Blocks are therefore large (:data:`GZIP_BLOCK_BYTES`, one block for
  most medical volumes, i.e. one decompression as an eager read); a file of ``n`` blocks read whole costs about
  ``(n + 1) / 2`` decompressions. Pass ``lazy=False`` (one pass) when the whole of a very large ``.nii.gz``
  is needed anyway, or decompress it to ``.nii`` for random access. At load a ``.nii.gz`` is checked against
  its gzip trailer (ISIZE), so a truncated file is refused at once, not when its last block is computed.
* The ``max_voxels`` cap (:func:`multiscale.io.load`) applies to eager reads and to ``.nii.gz`` (compressed
  bytes cannot vouch for the size the header declares); an uncompressed file is checked to hold every
  voxel it declares, and a lazy read of it allocates one block at a time, so it is not capped.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from multiscale._util import atomic_write
from multiscale.image import ImageError, direction, origin, spacing, spatial_dims, spatial_image

from ._common import (
    CalibrationWarning,
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
    warn,
)
from ._geometry import direction_xyz_to_zyx, direction_zyx_to_xyz, split_affine_xyz
from ._time import assign_time, nifti_time_coords, write_time_sidecar
from .format import Format

__all__ = ["read_nifti", "write_nifti", "nifti_magic", "LPS_FROM_RAS", "ATTRS_KEY", "BLOCK_BYTES", "GZIP_BLOCK_BYTES",
           "FORMAT"]

#: NIfTI world (RAS+) to DICOM/ITK world (LPS+): negate x and y
LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0])

_NIFTI_SPACE_TO_MM = {"meter": 1000.0, "mm": 1.0, "micron": 1e-3, "unknown": 1.0}
#: key of the header extension (and of NRRD/MetaImage fields) that holds our attrs as JSON
ATTRS_KEY = "multiscale_attrs"
_ECODE_COMMENT = 6

#: target bytes of one dask block of an uncompressed file (whole planes of the slowest axis; at least one plane)
BLOCK_BYTES = 4 << 20
#: target bytes of one dask block of a gzip-compressed file (large: each block decompresses from the start)
GZIP_BLOCK_BYTES = 256 << 20


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _raw_header(path: Path) -> bytes:
    """The first 544 bytes of the (decompressed) file: the header as written, before nibabel normalises it."""
    if _is_gzip(path):
        try:
            with gzip.open(path, "rb") as fh:
                return fh.read(544)
        except (OSError, EOFError, zlib.error) as exc:
            raise fail(path, "gzip stream", f"cannot be decompressed ({exc})", "the file is truncated or corrupt") from exc
    with open(path, "rb") as fh:
        return fh.read(544)


def _header_fields(raw: bytes) -> dict[str, Any] | None:
    """``vox_offset``, ``pixdim`` (raw, signs kept), ``dim``, ``single_file`` and the minimum offset, read from
    the header bytes; None when the bytes are not a NIfTI-1/2 header (left to nibabel to report)."""
    for end in ("<", ">"):
        if len(raw) >= 348 and struct.unpack(end + "i", raw[:4])[0] == 348:
            return {
                "vox_offset": float(struct.unpack(end + "f", raw[108:112])[0]),
                "pixdim": struct.unpack(end + "8f", raw[76:108]),
                "dim": struct.unpack(end + "8h", raw[40:56]),
                "single_file": raw[344:347] == b"n+1",
                "min_offset": 352,
                "offset_field": "vox_offset (bytes 108-111)",
            }
        if len(raw) >= 540 and struct.unpack(end + "i", raw[:4])[0] == 540:
            return {
                "vox_offset": float(struct.unpack(end + "q", raw[168:176])[0]),
                "pixdim": struct.unpack(end + "8d", raw[104:168]),
                "dim": struct.unpack(end + "8q", raw[16:80]),
                "single_file": raw[4:7] == b"n+2",
                "min_offset": 544,
                "offset_field": "vox_offset (bytes 168-175)",
            }
    return None


def _check_raw_header(path: Path, fields: dict[str, Any] | None) -> None:
    """Refuse a single-file NIfTI whose real vox_offset points into the header, and negative dims."""
    if fields is None:
        return
    off = fields["vox_offset"]
    if fields["single_file"] and (not np.isfinite(off) or off < fields["min_offset"]):
        raise fail(path, fields["offset_field"],
                   f"{off:g}, but a single-file NIfTI's voxels start at byte {fields['min_offset']} or later: "
                   "the header would be read as voxels",
                   f"repair the header (vox_offset = {fields['min_offset']} when there are no extensions), "
                   "e.g. by re-saving the file with the tool that wrote it")
    ndim = int(fields["dim"][0])
    if not 1 <= ndim <= 7:
        raise fail(path, "dim[0]", f"{ndim} dimensions (must be 1-7)", "the header is corrupt; re-export the file")
    bad = [k for k in range(1, ndim + 1) if int(fields["dim"][k]) < 0]
    if bad:
        raise fail(path, f"dim[{bad[0]}]", f"negative size {int(fields['dim'][bad[0]])} "
                   f"(dim = {list(fields['dim'][: ndim + 1])})", "the header is corrupt; re-export the file")


def _nifti_is_truncated(path: Path, img: Any, fields: dict[str, Any] | None) -> None:
    """Refuse a file too small for the voxels its header declares, with the header's real vox_offset
    (nibabel resets it on load); for .nii.gz, against what the compressed bytes can hold."""
    hdr = img.header
    n = int(np.prod([int(v) for v in img.shape], dtype=object)) * hdr.get_data_dtype().itemsize
    minimum = 352 if hdr.sizeof_hdr == 348 else 544
    real = fields["vox_offset"] if fields is not None and np.isfinite(fields["vox_offset"]) else 0
    if fields is not None and not fields["single_file"]:
        return  # a .hdr/.img pair: the voxels are in the .img file, nibabel checks it
    offset = max(int(real), minimum)
    size = path.stat().st_size
    if _is_gzip(path):
        check_fits(path, "dim/datatype (voxel data)", offset + n, size, compressed=True)
        return
    if size < offset + n:
        raise fail(path, "voxel data", f"truncated: file holds {size} bytes but the header's vox_offset "
                   f"({offset}), dim and datatype need {offset + n}", "copy the file again")


def _check_pixdim(path: Path, fields: dict[str, Any] | None, ndim: int) -> None:
    """Zero, negative or NaN voxel sizes of the spatial axes (pixdim[1..3]) that give the geometry."""
    if fields is None:
        return
    for k in range(1, min(ndim, 3) + 1):
        v = float(fields["pixdim"][k])
        if not np.isfinite(v) or v <= 0:
            raise fail(path, f"pixdim[{k}]", f"voxel size {v:g} along array axis {'ijk'[k - 1]} is not a positive "
                       "number", "repair the header's voxel size, or pass spacing=(dz, dy, dx) in mm")


def _compare_forms(path: Path, hdr: Any, to_mm: float) -> None:
    """Warn when the qform and the sform are both set (codes > 0) but disagree; the sform is used (nibabel's rule)."""
    try:
        q = np.asarray(hdr.get_qform(), dtype=float)
        s_ = np.asarray(hdr.get_sform(), dtype=float)
    except Exception:  # noqa: BLE001 - a qform nibabel cannot build is reported by the geometry checks
        return
    if not (np.all(np.isfinite(q)) and np.all(np.isfinite(s_))):
        return
    d_origin = float(np.linalg.norm(q[:3, 3] - s_[:3, 3])) * to_mm
    qn, sn = np.linalg.norm(q[:3, :3], axis=0), np.linalg.norm(s_[:3, :3], axis=0)
    if np.any(qn <= 0) or np.any(sn <= 0):
        return
    d_spacing = float(np.max(np.abs(qn - sn) / sn))
    rq, rs = q[:3, :3] / qn, s_[:3, :3] / sn
    cos = np.clip(np.sum(rq * rs, axis=0), -1.0, 1.0)
    d_angle = float(np.degrees(np.max(np.arccos(cos))))
    if d_origin > 1e-3 or d_angle > 0.01 or d_spacing > 1e-4:
        warn(f"{path}: qform and sform (codes {int(hdr['qform_code'])} and {int(hdr['sform_code'])}) disagree: "
             f"origin by {d_origin:.4g} mm, axes by up to {d_angle:.4g} deg, voxel size by up to "
             f"{100 * d_spacing:.3g}%; using the sform (sform_code > 0, the NIfTI/nibabel rule); check which one "
             "the writer meant, or pass the image through a tool that sets both")


def _nib_load(path: Path) -> Any:
    """nibabel.load, also for files whose suffix is not .nii/.nii.gz (content was sniffed already)."""
    import nibabel as nib

    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz", ".hdr", ".img", ".img.gz", ".hdr.gz")):
        return nib.load(str(path))
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head[:2] == b"\x1f\x8b":
        with gzip.open(path, "rb") as fh:
            raw = fh.read()
    else:
        raw = path.read_bytes()
    size_le = int.from_bytes(raw[:4], "little")
    size_be = int.from_bytes(raw[:4], "big")
    cls = nib.Nifti2Image if 540 in (size_le, size_be) else nib.Nifti1Image
    return cls.from_bytes(raw)


def read_nifti(
    path: str | os.PathLike,
    *,
    modality: str = "",
    spacing: Any = None,
    lazy: bool | None = None,
    **attrs: Any,
) -> xr.DataArray:
    """Read a NIfTI-1/2 file (.nii, .nii.gz) into an LPS image in mm.

    The sform is used when its code is set, else the qform, else the pixdims (with a warning);
    RAS+ is converted to LPS+ once (x and y negated), the array is never flipped: a
    RAS-stored image gets a direction with -1 on x instead. ``scl_slope``/``scl_inter`` are applied,
    big-endian files are read natively, spatial units (m, µm) are converted to mm. 3-D files give
    ``(z, y, x)``, 4-D files ``(t, z, y, x)``, 5-D vector files ``(c, z, y, x)``.

    Parameters
    ----------
    path : path-like
    modality : str
        Stored in ``attrs["modality"]`` (NIfTI does not record it).
    spacing : sequence of float, optional
        Override (dz, dy, dx) in mm, for files whose header holds no usable voxel size.
    lazy : bool, optional
        Return a dask-backed array that reads only the blocks computed (default; see the module notes for
        ``.nii.gz``). ``False`` reads every voxel now.
    **attrs
        Extra attrs (units, agent, ...).

    Returns
    -------
    xarray.DataArray

    Examples
    --------
    >>> img = read_nifti("CT_image.nii.gz", modality="CT")  # doctest: +SKIP
    >>> img.dims  # doctest: +SKIP
    ('z', 'y', 'x')
    """
    with recording_warnings() as recorded:
        img = _read_nifti(Path(path), modality=modality, spacing=spacing, lazy=lazy, **attrs)
    return attach_warnings(img, recorded)


def _eager_voxels(path: Path, img: Any) -> tuple[np.ndarray, tuple[str, ...]]:
    """All voxels now (nibabel's scaled ``dataobj``), reordered to ``(..., z, y, x)``."""
    try:
        data = np.asarray(img.dataobj)
    except (EOFError, OSError, zlib.error, gzip.BadGzipFile, ValueError) as exc:
        raise fail(path, "voxel data", f"cannot be decompressed or is truncated ({exc})",
                   "copy the file again") from exc
    ndim = data.ndim
    if ndim == 4 and data.shape[3] == 1:  # a single volume stored as 4-D
        data = data[:, :, :, 0]
        ndim = 3
    if not data.dtype.isnative:
        data = data.astype(data.dtype.newbyteorder("="))
    # array (i, j, k, ...) -> (..., k, j, i)
    if ndim == 2:
        data = data[:, :, None]
    if ndim <= 3:
        return data.transpose(2, 1, 0), ("z", "y", "x")
    if ndim == 4:
        return data.transpose(3, 2, 1, 0), ("t", "z", "y", "x")
    return data[:, :, :, 0, :].transpose(3, 2, 1, 0), ("c", "z", "y", "x")


def _layout(raw_shape: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[str, ...], bool]:
    """``(shape, dims, squeezed)`` of the image a file of ``raw_shape`` (i, j, k, ...) becomes; ``squeezed``:
    the file's 4th axis has size 1 and is dropped (a single volume stored as 4-D, or a 5-D vector file)."""
    rs = tuple(int(v) for v in raw_shape)
    if len(rs) == 2:
        return (1, rs[1], rs[0]), ("z", "y", "x"), False
    if len(rs) == 3:
        return rs[::-1], ("z", "y", "x"), False
    if len(rs) == 4 and rs[3] == 1:
        return rs[2::-1], ("z", "y", "x"), True
    if len(rs) == 4:
        return rs[::-1], ("t", "z", "y", "x"), False
    return (rs[4],) + rs[2::-1], ("c", "z", "y", "x"), True


def _block_chunks(shape: tuple[int, ...], itemsize: int, target: int) -> tuple[tuple[int, ...], ...]:
    """Dask chunks of ``shape`` (slowest axis first): whole trailing axes, the first axis that does not fit in
    ``target`` bytes split into groups of planes, the axes before it one by one (never fewer than one plane).

    Examples
    --------
    >>> _block_chunks((10, 4, 4), 2, 64)  # 32-byte planes, two per block
    ((2, 2, 2, 2, 2), (4,), (4,))
    """
    sizes = [int(v) for v in shape]
    out: list[int] = []
    for a, n in enumerate(sizes):
        inner = int(np.prod(sizes[a + 1:], dtype=object)) * itemsize  # bytes of one plane along axis a
        if inner * n <= target or inner <= target:
            out.append(n if inner * n <= target else max(1, target // inner))
            out += sizes[a + 1:]
            break
        out.append(1)
    return tuple(((0,) if n == 0 else tuple([c] * (n // c) + ([n % c] if n % c else []))) for c, n in zip(out, sizes))


def _open_voxels(path: str, gz: bool) -> Any:
    """The voxel file opened for reading (decompressing when ``gz``): the one place blocks read bytes."""
    return gzip.open(path, "rb") if gz else open(path, "rb")  # noqa: SIM115 - closed by the caller


def _read_block(path: str, gz: bool, raw_shape: tuple[int, ...], raw_dtype: str, offset: int, slope: Any,
                inter: Any, out_dtype: str, squeezed: bool, block: tuple[tuple[int, int], ...]) -> np.ndarray:
    """One dask block: the voxels of ``block`` (``(start, stop)`` per image axis, slowest first) read from the
    file's Fortran-ordered array with nibabel's slicing and read scaling, in native byte order."""
    from nibabel.fileslice import fileslice
    from nibabel.volumeutils import apply_read_scaling

    rev = [slice(a, b) for a, b in block[::-1]]  # image (..., z, y, x) -> file (x, y, z, ...)
    if len(raw_shape) == 2:
        rev = rev[:2]
    if squeezed:
        rev.insert(3, 0)  # type: ignore[arg-type]
    try:
        with _open_voxels(path, gz) as fh:
            raw = fileslice(fh, tuple(rev), raw_shape, np.dtype(raw_dtype), offset, order="F")
    except (EOFError, OSError, zlib.error, gzip.BadGzipFile, ValueError) as exc:
        raise fail(path, "voxel data", f"cannot be decompressed or is truncated ({exc})",
                   "copy the file again") from exc
    scaled = apply_read_scaling(raw, np.asanyarray(slope), np.asanyarray(inter))
    out = np.asarray(scaled).astype(out_dtype, copy=False).transpose()
    return out.reshape(tuple(b - a for a, b in block))


def _gzip_total(path: Path) -> int:
    """Decompressed length of a gzip file, read through once (raises on a truncated or corrupt stream)."""
    total = 0
    with gzip.open(path, "rb") as fh:
        while chunk := fh.read(16 << 20):
            total += len(chunk)
    return total


def _check_gzip_length(path: Path, need: int) -> None:
    """Refuse a ``.nii.gz`` whose stream ends before ``need`` decompressed bytes, without decompressing it when
    the gzip trailer (ISIZE: length mod 2**32) agrees; otherwise the stream is decompressed once to decide."""
    with open(path, "rb") as fh:
        fh.seek(-4, os.SEEK_END)
        isize = struct.unpack("<I", fh.read(4))[0]
    if isize == need % (1 << 32):
        return
    try:
        total = _gzip_total(path)
    except (EOFError, OSError, zlib.error, gzip.BadGzipFile) as exc:
        raise fail(path, "voxel data", f"cannot be decompressed or is truncated ({exc})",
                   "copy the file again") from exc
    if total < need:
        raise fail(path, "voxel data", f"truncated: the stream holds {total} bytes but the header's vox_offset, "
                   f"dim and datatype need {need}", "copy the file again")


def _lazy_voxels(path: Path, img: Any) -> tuple[Any, tuple[str, ...]]:
    """The voxels as a dask array in image order, one task per block of whole planes (see the module notes)."""
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph
    from nibabel.volumeutils import apply_read_scaling

    proxy = img.dataobj
    raw_shape = tuple(int(v) for v in proxy.shape)
    raw_dtype = np.dtype(proxy.dtype)
    offset = int(proxy.offset)
    file_like = getattr(proxy, "file_like", None)
    source = Path(file_like) if isinstance(file_like, (str, os.PathLike)) else path  # .img of a .hdr/.img pair
    gz = _is_gzip(source)
    if gz:
        _check_gzip_length(source, offset + int(np.prod(raw_shape, dtype=object)) * raw_dtype.itemsize)
    slope, inter = proxy.slope, proxy.inter
    out_dtype = apply_read_scaling(np.zeros(1, raw_dtype), np.asanyarray(slope), np.asanyarray(inter)).dtype
    out_dtype = out_dtype.newbyteorder("=")
    shape, dims, squeezed = _layout(raw_shape)
    chunks = _block_chunks(shape, max(out_dtype.itemsize, raw_dtype.itemsize),
                           GZIP_BLOCK_BYTES if gz else BLOCK_BYTES)
    st = source.stat()
    args = (str(source), gz, raw_shape, raw_dtype.str, offset, slope, inter, out_dtype.str, squeezed)
    name = "nifti-" + tokenize(args, st.st_size, st.st_mtime_ns, chunks)
    starts = [np.concatenate([[0], np.cumsum(c)]).astype(int) for c in chunks]
    dsk = {}
    for key in np.ndindex(*[len(c) for c in chunks]):
        block = tuple((int(starts[a][i]), int(starts[a][i + 1])) for a, i in enumerate(key))
        dsk[(name, *key)] = (_read_block, *args, block)
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[])
    return da.Array(graph, name, chunks=chunks, dtype=out_dtype), dims


def _read_nifti(path: Path, *, modality: str, spacing: Any, lazy: bool | None, **attrs: Any) -> xr.DataArray:
    if path.is_dir():
        raise fail(path, "path", "is a folder, not a NIfTI file", "point at the .nii/.nii.gz file inside it")
    fields = _header_fields(_raw_header(path))
    _check_raw_header(path, fields)
    try:
        img = _nib_load(path)
    except FileNotFoundError:
        raise
    except Exception as exc:  # nibabel raises several types for bad headers
        raise fail(path, "header", f"not a readable NIfTI file ({exc})", "check that the file is complete") from exc
    hdr = img.header
    _nifti_is_truncated(path, img, fields)

    shape = img.shape
    ndim = len(shape)
    if ndim not in (2, 3, 4, 5):
        raise fail(path, "dim[0]", f"{ndim}-D NIfTI is not supported", "use 2-D to 5-D images")
    if ndim == 5 and shape[3] != 1:
        raise fail(path, "dim[4]", f"5-D NIfTI with {shape[3]} time points and {shape[4]} components",
                   "split the file into one file per time point")

    if lazy is None:
        lazy = True
    if not lazy or _is_gzip(path):
        # the cap guards what is allocated now (eager) and what compressed bytes cannot vouch for (a gzip
        # stream of N bytes may declare ~1000 N): an uncompressed file was checked to hold its voxels above
        check_voxels(path, "dim[1..]", shape)
    if lazy:
        data, dims = _lazy_voxels(path, img)
    else:
        data, dims = _eager_voxels(path, img)
    if ndim == 4 and shape[3] == 1:  # a single volume stored as 4-D
        ndim = 3

    space_unit = hdr.get_xyzt_units()[0]
    to_mm = _NIFTI_SPACE_TO_MM.get(space_unit, 1.0)
    sform_code = int(hdr["sform_code"]) if "sform_code" in hdr else 0
    qform_code = int(hdr["qform_code"]) if "qform_code" in hdr else 0
    field = "sform (srow_x/srow_y/srow_z)" if sform_code > 0 else ("qform (quatern_b/c/d, pixdim)" if qform_code > 0 else "pixdim")
    spacing_known = True
    if spacing is not None:
        sp_zyx = np.asarray(spacing, dtype=float).reshape(-1)
        if sp_zyx.size != 3 or np.any(sp_zyx <= 0):
            raise fail(path, "spacing=", f"{spacing!r} is not three positive sizes", "pass spacing=(dz, dy, dx) in mm")
        aff = img.affine
        lin = LPS_FROM_RAS @ aff[:3, :3] * to_mm
        norms = np.linalg.norm(lin, axis=0)
        d_xyz = lin / np.where(norms > 0, norms, 1.0) if np.all(norms > 0) else np.eye(3)
        _, d_xyz = split_affine_xyz(d_xyz, path, field)
        org_xyz = LPS_FROM_RAS @ aff[:3, 3] * to_mm
        sp_xyz = sp_zyx[::-1]
    else:
        if sform_code == 0 and qform_code == 0:
            warn(f"{path}: sform_code and qform_code are 0 (no orientation); using pixdim as spacing with "
                 "identity direction (NIfTI 'method 1')", CalibrationWarning)
        if sform_code == 0:
            _check_pixdim(path, fields, ndim)
        else:
            if qform_code > 0:
                _compare_forms(path, hdr, to_mm)
        pixdim = np.asarray(hdr["pixdim"][1:4], dtype=float)
        if np.any(pixdim[: min(ndim, 3)] == 0):
            raise fail(path, "pixdim", f"zero voxel size {pixdim.tolist()}",
                       "write the voxel size into the header or pass spacing=(dz, dy, dx)")
        aff = img.affine
        lin = LPS_FROM_RAS @ aff[:3, :3] * to_mm
        sp_xyz, d_xyz = split_affine_xyz(lin, path, field)
        org_xyz = LPS_FROM_RAS @ aff[:3, 3] * to_mm

    stored = {}
    for ext in hdr.extensions:
        if ext.get_code() == _ECODE_COMMENT:
            content = ext.get_content()
            text = content.decode("utf-8", "replace") if isinstance(content, bytes) else str(content)
            if text.startswith(ATTRS_KEY + "="):
                stored = attrs_from_json(text[len(ATTRS_KEY) + 1:])
    out_attrs = restore_attrs(stored)
    out_attrs.pop("provenance", None)
    if modality:
        out_attrs["modality"] = modality
    out_attrs.update(attrs)
    out_attrs["spacing_known"] = spacing_known
    out_attrs["provenance"] = provenance(path, "nibabel", spacing=spacing, lazy=lazy,
                                         sform_code=sform_code, qform_code=qform_code,
                                         nibabel_space_units=space_unit)
    channels = stored.get("channels") if dims[0] == "c" else None
    out_attrs.pop("channels", None)
    if channels is not None and len(channels) != data.shape[0]:
        channels = None
    try:
        image = spatial_image(
            data,
            spacing=np.asarray(sp_xyz)[::-1],
            origin=np.asarray(org_xyz)[::-1],
            direction=direction_xyz_to_zyx(d_xyz),
            dims=dims,
            channels=channels,
            **out_attrs,
        )
    except ImageError as exc:
        raise fail(path, field, str(exc)) from exc
    if dims[0] == "t":  # frame times from the BIDS sidecar, b-values from the .bval
        image = assign_time(image, *nifti_time_coords(path, int(data.shape[0])))
    return image


def _image_affine_ras(image: xr.DataArray) -> np.ndarray:
    sp_xyz = np.asarray(spacing(image), dtype=float)[::-1]
    org_xyz = np.asarray(origin(image), dtype=float)[::-1]
    d_xyz = direction_zyx_to_xyz(direction(image))
    aff = np.eye(4)
    aff[:3, :3] = LPS_FROM_RAS @ (d_xyz * sp_xyz)
    aff[:3, 3] = LPS_FROM_RAS @ org_xyz
    return aff


def write_nifti(image: xr.DataArray, path: str | os.PathLike) -> Path:
    """Write ``image`` to NIfTI-1 (.nii or .nii.gz) atomically; attrs go into a header extension.

    The LPS geometry is converted back to a RAS+ sform and qform (code 1, scanner).
    Accepts ``(z, y, x)``, ``(y, x)``, ``(t, z, y, x)`` and ``(c, z, y, x)``.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> write_nifti(spatial_image(np.zeros((2, 3, 4)), spacing=1.0), "x.nii.gz")  # doctest: +SKIP
    """
    import nibabel as nib

    if "t" in image.dims and "c" in image.dims:
        raise LoadError(f"{path}: NIfTI: an image with both t and c dims cannot be written; select one first")
    sd = spatial_dims(image)
    arr = image.data
    arr = np.asarray(arr.compute() if hasattr(arr, "compute") else arr)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    if len(sd) == 2:
        arr = arr[..., None, :, :]
    lead = [d for d in image.dims if d in ("t", "c")]
    if not lead:
        data = arr.transpose(2, 1, 0)
    elif lead == ["t"]:
        data = arr.transpose(3, 2, 1, 0)
    else:
        data = arr.transpose(3, 2, 1, 0)[:, :, :, None, :]
    if len(sd) == 2:
        sp = (1.0,) + spacing(image)
        org = (0.0,) + origin(image)
        d = np.eye(3)
        d[1:, 1:] = direction(image)
        aff = np.eye(4)
        aff[:3, :3] = LPS_FROM_RAS @ (direction_zyx_to_xyz(d) * np.asarray(sp)[::-1])
        aff[:3, 3] = LPS_FROM_RAS @ np.asarray(org)[::-1]
    else:
        aff = _image_affine_ras(image)
    nimg = nib.Nifti1Image(data, aff)
    nimg.header.set_xyzt_units("mm", "sec")
    nimg.set_sform(aff, code=1)
    nimg.set_qform(aff, code=1)
    if lead == ["c"]:
        nimg.header.set_intent("vector")
    keep = {k: v for k, v in image.attrs.items()}
    if "c" in image.dims and "c" in image.coords:
        keep["channels"] = list(image.coords["c"].values)
    nimg.header.extensions.append(
        nib.nifti1.Nifti1Extension(_ECODE_COMMENT, (ATTRS_KEY + "=" + attrs_to_json(keep)).encode())
    )
    target = Path(path)
    suffix = ".nii.gz" if target.name.lower().endswith(".gz") else ".nii"
    out = atomic_write(target, lambda tmp: nib.save(nimg, str(tmp)), suffix=suffix)
    if lead == ["t"]:
        write_time_sidecar(image, out)
    return out


def nifti_magic(head: bytes) -> bool:
    """True when ``head`` (uncompressed bytes) starts with a NIfTI-1 or NIfTI-2 header, either byte order.

    Examples
    --------
    >>> nifti_magic(b"\\x00" * 400)
    False
    """
    if len(head) < 348:
        return False
    for fmt in ("<i", ">i"):
        size = struct.unpack(fmt, head[:4])[0]
        if size == 348 and head[344:347] in (b"n+1", b"ni1"):
            return True
        if size == 540 and head[4:7] in (b"n+2", b"ni2"):
            return True
    return False


def _sniff(head: bytes, path: Path) -> bool:
    """NIfTI magic, also inside a gzip stream; NIfTI is the gzip-compressed format we read, so a gzip
    stream that is corrupt or holds something else is reported here."""
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as gz:
                inner = gz.read(600)
        except (OSError, EOFError) as exc:
            raise fail(path, "gzip stream", f"cannot be decompressed ({exc})",
                       "the file is truncated or corrupt") from exc
        if nifti_magic(inner):
            return True
        raise fail(path, "content", "a gzip file that does not hold a NIfTI header",
                   "decompress it and load the file inside")
    return nifti_magic(head)


FORMAT = Format(
    name="nifti",
    sniff=_sniff,
    read=read_nifti,
    options=frozenset({"spacing", "modality", "lazy", "units", "aspect", "agent", "scale"}),
    suffixes=(".nii", ".nii.gz"),
    description="NIfTI-1/2 volume (nibabel; RAS converted to LPS)",
    write=write_nifti,
    write_suffixes=(".nii", ".nii.gz"),
)
