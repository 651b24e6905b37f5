"""DICOM image series: discovery in folders, ordering along the slice normal, lazy per-slice reading.

* :func:`list_series` scans a folder (recursively) and groups image files by SeriesInstanceUID.
* :func:`read_dicom` loads one series (choose with ``series=`` when a folder holds several; the
  error lists them) as a dask-backed image, one block per slice, with each slice's own
  RescaleSlope/RescaleIntercept applied (CT in HU). Slices are ordered by their position along
  the normal of ImageOrientationPatient; uneven spacing and missing slices are detected and
  reported. Series with several frames at each position (dynamic PET, multi-phase CT) get a ``t``
  dim. Enhanced (multi-frame) files are read from their functional groups.
* ``suv=True`` (or ``"lbm"``, ``"bsa"``, ``"ibw"``) converts PET to SUV with :mod:`multiscale.io.suv`.
"""

from __future__ import annotations

import functools
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from multiscale.image import ImageError, spatial_image, xyz_to_zyx

from . import suv as suv_mod
from ._common import CalibrationWarning, fail, provenance, warn
from ._geometry import direction_xyz_to_zyx
from ._time import assign_time, dicom_time_coords, frame_header
from .format import Format

__all__ = ["list_series", "find_rtstructs", "read_dicom", "is_dicom_file", "looks_like_dicom", "header_modality",
           "load_dicom", "DicomSeries", "NON_IMAGE_MODALITIES", "DICOM_OPTIONS", "FORMAT"]

_NON_IMAGE = {"RTSTRUCT", "RTPLAN", "RTRECORD", "SR", "PR", "KO", "REG", "RWV", "SEG", "FID", "DOC", "AU", "ECG"}
#: modalities of DICOM objects that hold no image (skipped in folders)
NON_IMAGE_MODALITIES = frozenset(_NON_IMAGE)
_PIXEL_TAG = 0x7FE00010
_POS_TOL = 1e-3  # relative tolerance on slice steps
_POS_ATOL = 0.01  # mm


def is_dicom_file(path: str | os.PathLike) -> bool:
    """True when the file has the DICOM preamble magic ``DICM`` at byte 128.

    Examples
    --------
    >>> is_dicom_file(__file__)
    False
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def looks_like_dicom(head: bytes, path: Path) -> bool:
    """DICOM by content: ``DICM`` at byte 128, or a ``.dcm`` file without preamble that starts with a
    group 0002/0008 element (old ACR-NEMA style exports).

    Examples
    --------
    >>> looks_like_dicom(bytes(128) + b"DICM", Path("IM0001"))
    True
    >>> looks_like_dicom(b"NRRD0004", Path("x.dcm"))
    False
    """
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    return Path(path).suffix.lower() == ".dcm" and head[:2] in (b"\x02\x00", b"\x08\x00", b"\x00\x02", b"\x00\x08")


@functools.lru_cache(maxsize=256)
def _modality_cached(path: str, mtime_ns: int, size: int) -> tuple[str, bool]:
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True,
                             specific_tags=["Modality", "NumberOfFrames", "Rows"])
    except Exception as exc:
        raise fail(path, "header", f"cannot be parsed ({type(exc).__name__}: {exc})", "the file is corrupt") from exc
    return str(ds.get("Modality", "") or "").upper(), "Rows" in ds


def header_modality(path: str | os.PathLike) -> tuple[str, bool]:
    """``(Modality upper case, has Rows)`` of a DICOM file, read once per file version (cached).

    Raises
    ------
    LoadError
        The header cannot be parsed.

    Examples
    --------
    >>> header_modality("RS.dcm")  # doctest: +SKIP
    ('RTSTRUCT', False)
    """
    st = os.stat(path)
    return _modality_cached(str(path), st.st_mtime_ns, st.st_size)


@dataclass
class _Slice:
    path: Path
    frame: int | None
    header: Any
    position: np.ndarray
    row_cos: np.ndarray
    col_cos: np.ndarray
    pixel_spacing: tuple[float, float]
    slope: float
    intercept: float
    rows: int
    cols: int
    raw: tuple[int, str] | None = None  # (byte offset, numpy dtype) when the pixels can be read directly


def _raw_layout(path: Path, ds: Any) -> tuple[int, str] | None:
    """Offset and dtype of uncompressed little-endian single-frame pixels that need no bit masking."""
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

    try:
        ts = ds.file_meta.TransferSyntaxUID
        raw = ds.get_item(_PIXEL_TAG, keep_deferred=True)
        tell = getattr(raw, "value_tell", None)
        bits = int(ds.BitsAllocated)
        stored = int(ds.get("BitsStored", bits))
        signed = int(ds.get("PixelRepresentation", 0)) == 1
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
    if ts not in (ExplicitVRLittleEndian, ImplicitVRLittleEndian) or tell is None or bits not in (8, 16, 32):
        return None
    if int(ds.get("SamplesPerPixel", 1)) != 1 or int(ds.get("NumberOfFrames", 1) or 1) != 1:
        return None
    if signed and stored != bits:
        return None  # needs sign extension: leave it to pydicom
    if not signed and stored != bits:
        return None  # may need masking of overlay bits
    return int(tell), f"<{'i' if signed else 'u'}{bits // 8}"


@dataclass
class DicomSeries:
    """One series found in a folder: its UID, modality, description and files."""

    uid: str
    modality: str
    description: str
    number: str
    files: list[Path] = field(default_factory=list)
    headers: list[Any] = field(default_factory=list)

    def summary(self) -> str:
        return (f"series={self.uid!r} ({self.modality}, #{self.number or '?'} "
                f"'{self.description}', {len(self.files)} files)")


def _dcmread_forced(path: Path | str, **kw: Any) -> Any:
    """Read a DICOM file without preamble/file meta, recording the transfer syntax it was read with."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    ds = pydicom.dcmread(str(path), force=True, **kw)
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        implicit, little = ds.original_encoding
        ds.file_meta = meta if meta is not None else FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = (ImplicitVRLittleEndian if implicit else
                                          ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
    return ds


def _read_header(path: Path) -> Any:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(str(path), defer_size=256, force=False)
    except InvalidDicomError:
        if path.suffix.lower() not in (".dcm", ".ima", ".dicom"):
            return None
        try:  # no preamble (old ACR-NEMA style files): accept only if it looks like an image header
            ds = _dcmread_forced(path, defer_size=256)
        except Exception:  # noqa: BLE001 - an unreadable forced read means not DICOM
            return None
        return ds if ("Rows" in ds and "Modality" in ds and "SeriesInstanceUID" in ds) else None
    except Exception as exc:  # truncated/corrupt header
        raise fail(path, "header", f"cannot be parsed ({type(exc).__name__}: {exc})",
                   "the file is truncated or corrupt; copy it again or remove it from the folder") from exc


def _check_pixel_length(path: Path, ds: Any) -> None:
    if _PIXEL_TAG not in ds:
        raise fail(path, "PixelData (7FE0,0010)", "missing", "this file holds no image; remove it from the folder")
    raw = ds.get_item(_PIXEL_TAG, keep_deferred=True)
    length = getattr(raw, "length", None)
    tell = getattr(raw, "value_tell", None)
    if length is None or tell is None or length == 0xFFFFFFFF:
        return
    size = path.stat().st_size
    if tell + length > size:
        raise fail(path, "PixelData (7FE0,0010)", f"truncated: the element needs {length} bytes from offset {tell} "
                   f"but the file ends at {size}", "copy the file again")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    need = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1)) * frames * int(ds.BitsAllocated) // 8
    if not ds.file_meta.TransferSyntaxUID.is_compressed and length < need:
        raise fail(path, "PixelData (7FE0,0010)", f"holds {length} bytes but Rows x Columns x BitsAllocated "
                   f"x frames needs {need}", "the file is truncated or its header is wrong")


def list_series(folder: str | os.PathLike) -> list[DicomSeries]:
    """DICOM image series in ``folder`` (searched recursively), largest first.

    Non-image objects (RTSTRUCT, SR, ...) and non-DICOM files are skipped.

    Examples
    --------
    >>> [s.modality for s in list_series("STS_019/CT/image")]  # doctest: +SKIP
    ['CT']
    """
    folder = Path(folder)
    groups: dict[str, DicomSeries] = {}
    for p in sorted(folder.rglob("*")):
        if not p.is_file() or p.name.startswith("."):
            continue
        if not is_dicom_file(p) and p.suffix.lower() not in (".dcm", ".ima", ".dicom"):
            continue
        ds = _read_header(p)
        if ds is None:
            continue
        modality = str(ds.get("Modality", "") or "")
        sop_class = str(getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", "") or "")
        if sop_class == "1.2.840.10008.1.3.10":  # DICOMDIR
            continue
        if "SOPClassUID" not in ds and "Modality" not in ds and "Rows" not in ds:
            raise fail(p, "header", "incomplete: no SOPClassUID, Modality or Rows (the file is truncated)",
                       "copy the file again or remove it from the folder")
        if modality.upper() in _NON_IMAGE or "Rows" not in ds:
            continue
        uid = str(ds.get("SeriesInstanceUID", "") or "")
        if not uid:
            raise fail(p, "SeriesInstanceUID (0020,000E)", "missing", "every image file needs its series UID")
        s = groups.get(uid)
        if s is None:
            s = groups[uid] = DicomSeries(uid, modality, str(ds.get("SeriesDescription", "") or ""),
                                          str(ds.get("SeriesNumber", "") or ""))
        s.files.append(p)
        s.headers.append(ds)
    return sorted(groups.values(), key=lambda s: -len(s.files))


def find_rtstructs(folder: str | os.PathLike) -> list[Path]:
    """RTSTRUCT files in ``folder`` (searched recursively).

    Examples
    --------
    >>> find_rtstructs("STS_019/CT/mask")  # doctest: +SKIP
    [PosixPath('STS_019/CT/mask/RS.dcm')]
    """
    import pydicom

    out = []
    for p in sorted(Path(folder).rglob("*")):
        if not p.is_file() or not (is_dicom_file(p) or p.suffix.lower() == ".dcm"):
            continue
        try:
            ds = pydicom.dcmread(str(p), stop_before_pixels=True, specific_tags=["Modality"], force=True)
        except Exception:  # noqa: BLE001 - unreadable files are not RT structure sets
            continue
        if str(ds.get("Modality", "")).upper() == "RTSTRUCT":
            out.append(p)
    return out


def _choose_series(folder: Path, found: list[DicomSeries], series: Any) -> DicomSeries:
    if not found:
        raise fail(folder, "files", "no DICOM image series found", "point load() at the folder holding the slices")
    if series is None:
        if len(found) > 1:
            listing = "; ".join(s.summary() for s in found)
            raise fail(folder, "SeriesInstanceUID (0020,000E)", f"the folder holds {len(found)} image series",
                       f"choose one with series=: {listing}")
        return found[0]
    key = str(series)
    for s in found:
        if s.uid == key or (s.number and s.number == key) or (s.description and s.description == key):
            return s
    prefix = [s for s in found if s.uid.startswith(key)]
    if len(prefix) == 1:
        return prefix[0]
    listing = "; ".join(s.summary() for s in found)
    raise fail(folder, "series=", f"{series!r} matches no series (by UID, SeriesNumber or description)",
               f"the folder holds: {listing}")


def _vec(ds: Any, keyword: str, n: int, path: Path) -> np.ndarray:
    v = ds.get(keyword)
    if v is None or len(v) != n:
        raise fail(path, keyword, f"missing or not {n} numbers ({v!r})",
                   "this is not a volume slice with a position; load it as a 2-D image instead")
    return np.asarray([float(x) for x in v], dtype=float)


def _slices_from_single_frames(series: DicomSeries) -> list[_Slice]:
    out = []
    for p, ds in zip(series.files, series.headers):
        _check_pixel_length(p, ds)
        iop = _vec(ds, "ImageOrientationPatient", 6, p)
        ps = _vec(ds, "PixelSpacing", 2, p) if "PixelSpacing" in ds else (
            _vec(ds, "ImagerPixelSpacing", 2, p) if "ImagerPixelSpacing" in ds else None)
        if ps is None:
            raise fail(p, "PixelSpacing (0028,0030)", "missing", "pass spacing=(dz, dy, dx) in mm")
        if np.any(ps <= 0):
            raise fail(p, "PixelSpacing (0028,0030)", f"zero or negative spacing {ps.tolist()}",
                       "fix the header or pass spacing=(dz, dy, dx) in mm")
        out.append(_Slice(
            path=p, frame=None, header=ds, position=_vec(ds, "ImagePositionPatient", 3, p),
            row_cos=iop[:3], col_cos=iop[3:], pixel_spacing=(float(ps[0]), float(ps[1])),
            slope=float(ds.get("RescaleSlope", 1.0) or 1.0), intercept=float(ds.get("RescaleIntercept", 0.0) or 0.0),
            rows=int(ds.Rows), cols=int(ds.Columns), raw=_raw_layout(p, ds),
        ))
    return out


def _fg(ds: Any, frame: int, seq: str, item: str) -> Any:
    per = ds.get("PerFrameFunctionalGroupsSequence")
    if per is not None and frame < len(per) and seq in per[frame]:
        return getattr(per[frame][seq][0], item, None)
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared and seq in shared[0]:
        return getattr(shared[0][seq][0], item, None)
    return None


def _slices_from_multiframe(path: Path, ds: Any) -> list[_Slice]:
    _check_pixel_length(path, ds)
    n = int(ds.NumberOfFrames)
    out = []
    if "PerFrameFunctionalGroupsSequence" in ds:
        for f in range(n):
            pos = _fg(ds, f, "PlanePositionSequence", "ImagePositionPatient")
            iop = _fg(ds, f, "PlaneOrientationSequence", "ImageOrientationPatient")
            ps = _fg(ds, f, "PixelMeasuresSequence", "PixelSpacing")
            if pos is None or iop is None or ps is None:
                raise fail(path, "Per-frame Functional Groups (5200,9230)",
                           f"frame {f + 1} lacks PlanePosition/PlaneOrientation/PixelMeasures",
                           "this enhanced file has no usable geometry")
            slope = _fg(ds, f, "PixelValueTransformationSequence", "RescaleSlope")
            inter = _fg(ds, f, "PixelValueTransformationSequence", "RescaleIntercept")
            out.append(_Slice(path, f, ds, np.asarray(pos, float), np.asarray(iop[:3], float),
                              np.asarray(iop[3:], float), (float(ps[0]), float(ps[1])),
                              float(slope if slope is not None else 1.0), float(inter if inter is not None else 0.0),
                              int(ds.Rows), int(ds.Columns)))
        return out
    # classic multi-frame (NM, some MR): one position, frames stacked along the normal
    iop = _vec(ds, "ImageOrientationPatient", 6, path)
    pos0 = _vec(ds, "ImagePositionPatient", 3, path)
    ps = _vec(ds, "PixelSpacing", 2, path)
    step = float(ds.get("SpacingBetweenSlices", 0) or ds.get("SliceThickness", 0) or 0)
    if step <= 0:
        raise fail(path, "SpacingBetweenSlices (0018,0088)", "missing or zero in a multi-frame file",
                   "pass spacing=(dz, dy, dx) in mm")
    normal = np.cross(iop[:3], iop[3:])
    for f in range(n):
        out.append(_Slice(path, f, ds, pos0 + f * step * normal, iop[:3], iop[3:], (float(ps[0]), float(ps[1])),
                          float(ds.get("RescaleSlope", 1.0) or 1.0), float(ds.get("RescaleIntercept", 0.0) or 0.0),
                          int(ds.Rows), int(ds.Columns)))
    return out


def _main_stack(slices: list[_Slice], where: Path) -> list[_Slice]:
    """The largest stack of one orientation and image size; localisers mixed into a series are left out.

    Leaving files out is reported with a warning; two stacks of equal size are an error.
    """
    stacks: dict[tuple, list[_Slice]] = defaultdict(list)
    for s in slices:
        key = (tuple(np.round(np.concatenate([s.row_cos, s.col_cos]), 3)), s.rows, s.cols,
               tuple(np.round(s.pixel_spacing, 4)))
        stacks[key].append(s)
    if len(stacks) == 1:
        return slices
    ordered = sorted(stacks.values(), key=len, reverse=True)
    if len(ordered[0]) == len(ordered[1]) or len(ordered[0]) < 2:
        desc = "; ".join(f"{len(st)} x {st[0].rows}x{st[0].cols} along {st[0].row_cos.round(3).tolist()}/"
                         f"{st[0].col_cos.round(3).tolist()}" for st in ordered)
        raise fail(where, "ImageOrientationPatient (0020,0037)", f"the series holds stacks of equal size: {desc}",
                   "put the files of one stack in their own folder")
    left = [s.path.name for st in ordered[1:] for s in st]
    warn(f"{where}: the series mixes orientations or image sizes; read the {len(ordered[0])}-slice stack and "
         f"left out {len(left)} file(s) (localisers?): {', '.join(left[:5])}{' ...' if len(left) > 5 else ''}")
    return ordered[0]


def _time_key(s: _Slice) -> tuple:
    h = s.header
    t = str(h.get("AcquisitionDateTime", "") or (str(h.get("AcquisitionDate", "")) + str(h.get("AcquisitionTime", ""))))
    return (float(h.get("FrameReferenceTime", 0) or 0), t, int(h.get("InstanceNumber", 0) or 0), s.frame or 0)


def _order(slices: list[_Slice], where: Path, allow_missing: bool) -> tuple[list[list[_Slice | None]], dict]:
    """Sort slices along the normal; return [t][z] slices (None for filled gaps) and the geometry."""
    s0 = slices[0]
    for s in slices:
        if np.abs(s.row_cos - s0.row_cos).max() > 1e-4 or np.abs(s.col_cos - s0.col_cos).max() > 1e-4:
            raise fail(s.path, "ImageOrientationPatient (0020,0037)",
                       f"{s.row_cos.tolist() + s.col_cos.tolist()} differs from {s0.path.name}'s "
                       f"{s0.row_cos.tolist() + s0.col_cos.tolist()}",
                       "the series mixes orientations (e.g. a localiser); choose the files of one stack")
        if (s.rows, s.cols) != (s0.rows, s0.cols):
            raise fail(s.path, "Rows/Columns (0028,0010/0011)", f"{s.rows}x{s.cols} differs from "
                       f"{s0.path.name}'s {s0.rows}x{s0.cols}", "the series mixes image sizes; choose one stack")
        if np.abs(np.subtract(s.pixel_spacing, s0.pixel_spacing)).max() > 1e-6:
            raise fail(s.path, "PixelSpacing (0028,0030)", f"{list(s.pixel_spacing)} differs from "
                       f"{s0.path.name}'s {list(s0.pixel_spacing)}", "the series mixes pixel sizes")
    normal = np.cross(s0.row_cos, s0.col_cos)
    nn = np.linalg.norm(normal)
    if nn < 1e-6:
        raise fail(s0.path, "ImageOrientationPatient (0020,0037)", "row and column cosines are parallel",
                   "the header is corrupt")
    normal /= nn
    by_pos: dict[float, list[_Slice]] = defaultdict(list)
    keys: list[float] = []
    proj = sorted(((float(np.dot(s.position, normal)), i) for i, s in enumerate(slices)))
    for d, i in proj:  # sorted along the normal: equal positions are neighbours
        if not keys or d - keys[-1] >= _POS_ATOL:
            keys.append(d)
        by_pos[keys[-1]].append(slices[i])
    counts = {len(by_pos[k]) for k in keys}
    if len(counts) != 1:
        k_bad = [k for k in keys if len(by_pos[k]) != max(counts)]
        raise fail(where, "ImagePositionPatient (0020,0032)",
                   f"positions hold different numbers of slices ({sorted(counts)}); e.g. {len(by_pos[k_bad[0]])} "
                   f"at {k_bad[0]:.3f} mm along the normal", "duplicate or missing files; check the folder")
    nt = counts.pop()
    stacks = [sorted(by_pos[k], key=_time_key) for k in keys]
    pos = np.asarray(keys)
    if len(pos) > 1:
        steps = np.diff(pos)
        dz = float(np.median(steps))
        ratio = steps / dz
        near_int = np.abs(ratio - np.round(ratio)) < max(_POS_TOL, _POS_ATOL / dz)
        if not np.all(near_int):
            bad = int(np.flatnonzero(~near_int)[0])
            raise fail(where, "ImagePositionPatient (0020,0032)",
                       f"uneven slice spacing: step {steps[bad]:.4f} mm between slices at {pos[bad]:.3f} and "
                       f"{pos[bad + 1]:.3f} mm along the normal (typical step {dz:.4f} mm)",
                       "resample the series onto even slices before loading")
        gaps = np.round(ratio).astype(int)
        if np.any(gaps > 1):
            missing = int((gaps - 1).sum())
            first = int(np.flatnonzero(gaps > 1)[0])
            msg = (f"{missing} missing slice(s): the step from {pos[first]:.3f} to {pos[first + 1]:.3f} mm "
                   f"along the normal is {gaps[first]} x {dz:.4f} mm")
            if not allow_missing:
                raise fail(where, "ImagePositionPatient (0020,0032)", msg,
                           "add the missing files, or pass allow_missing=True to fill them with NaN")
            warn(f"{where}: {msg}; filled with NaN")
        filled: list[list[_Slice] | None] = []
        for i, st in enumerate(stacks):
            filled.append(st)
            if i < len(gaps):
                filled.extend([None] * (int(gaps[i]) - 1))
        dir_z = stacks[-1][0].position - stacks[0][0].position
        dir_z = dir_z / np.linalg.norm(dir_z)
        if abs(float(np.dot(dir_z, normal))) < 1 - 1e-4:
            tilt = np.degrees(np.arccos(min(1.0, abs(float(np.dot(dir_z, normal))))))
            raise fail(where, "ImagePositionPatient (0020,0032) / GantryDetectorTilt (0018,1120)",
                       f"slices are offset across the normal (tilt {tilt:.2f} deg): the grid is sheared, "
                       "its direction is not orthonormal", "resample the series onto an orthogonal grid first")
    else:
        filled = list(stacks)
        h = s0.header
        dz = float(h.get("SpacingBetweenSlices", 0) or h.get("SliceThickness", 0) or 0)
        if dz <= 0:
            dz = 1.0
        dir_z = normal
    grid: list[list[_Slice | None]] = [[st[t] if st is not None else None for st in filled] for t in range(nt)]
    geometry = {
        "spacing_zyx": (dz, s0.pixel_spacing[0], s0.pixel_spacing[1]),
        "origin_xyz": stacks[0][0].position,
        "direction_xyz": np.column_stack([s0.row_cos, s0.col_cos, dir_z]),
    }
    return grid, geometry


def _decode_with_gdcm(path: str) -> np.ndarray | None:
    """Frames of a DICOM file decoded by SimpleITK's GDCM, rescale applied; None when GDCM cannot either."""
    try:
        import SimpleITK as sitk

        reader = sitk.ImageFileReader()
        reader.SetImageIO("GDCMImageIO")
        reader.SetFileName(str(path))
        img = reader.Execute()
        arr = sitk.GetArrayFromImage(img)
    except Exception:  # noqa: BLE001 - GDCM failure means no fallback pixels
        return None
    return arr if img.GetDimension() == 3 else arr[None]  # frames first, then (rows, cols[, samples])


def _read_slice(path: str | None, frame: int | None, slope: float, intercept: float, factor: float, dtype: str,
                rescale: bool, shape: tuple[int, int], raw: tuple[int, str] | None = None) -> np.ndarray:
    """One dask block: a slice's pixels with its rescale (and SUV factor) applied, shape (1, 1, rows, cols)."""
    import pydicom

    if path is None:  # a missing slice filled on request
        return np.full((1, 1) + tuple(shape), np.nan, dtype=dtype)
    if raw is not None:
        n = int(shape[0]) * int(shape[1])
        arr = np.fromfile(path, dtype=raw[1], count=n, offset=raw[0])
        if arr.size != n:
            raise fail(path, "PixelData (7FE0,0010)", f"truncated: {arr.size} of {n} pixels", "copy the file again")
        arr = arr.reshape(shape)
    else:
        try:
            try:
                ds = pydicom.dcmread(path)
            except pydicom.errors.InvalidDicomError:
                ds = _dcmread_forced(path)
            arr = ds.pixel_array
        except Exception as exc:
            # compressed syntaxes pydicom cannot decode without plug-ins (JPEG Lossless, JPEG-LS, ...):
            # SimpleITK's GDCM decodes them and applies the rescale itself
            decoded = _decode_with_gdcm(path)
            if decoded is None:
                raise fail(path, "PixelData (7FE0,0010)", f"cannot be decoded ({type(exc).__name__}: {exc})",
                           "the file is corrupt or needs a codec plug-in (pylibjpeg, gdcm)") from exc
            arr = decoded[frame if frame is not None else 0]
            if tuple(arr.shape) != tuple(shape):
                raise fail(path, "Rows/Columns (0028,0010/0011)", f"pixel data has shape {arr.shape}, "
                           f"expected {shape}", "the file is corrupt") from exc
            return (arr.astype(np.float64) * factor).astype(dtype)[None, None]
        if frame is not None and int(ds.get("NumberOfFrames", 1) or 1) > 1:
            arr = arr[frame]
    if tuple(arr.shape) != tuple(shape):
        raise fail(path, "Rows/Columns (0028,0010/0011)", f"pixel data has shape {arr.shape}, expected {shape}",
                   "the file is corrupt")
    if not rescale:
        return arr.astype(dtype, copy=False)[None, None]
    if slope == 1.0 and factor == 1.0:
        out = arr.astype(dtype)
        if intercept:
            out += np.asarray(intercept, dtype=dtype)
        return out[None, None]
    out = arr.astype(np.float64) * (slope * factor) + intercept * factor
    return out.astype(dtype)[None, None]


def _read_planar(path: Path, header: Any, spacing: Any, attrs: dict[str, Any]) -> xr.DataArray:
    """A single 2-D DICOM image (secondary capture, radiograph, photo, microscopy): ``(y, x)`` or RGB ``(c, y, x)``."""
    import pydicom

    _check_pixel_length(path, header)
    ds = header
    rescaled = False
    try:
        ds = pydicom.dcmread(str(path))
        arr = ds.pixel_array
    except Exception as exc:
        decoded = _decode_with_gdcm(str(path))
        if decoded is None:
            raise fail(path, "PixelData (7FE0,0010)", f"cannot be decoded ({type(exc).__name__}: {exc})",
                       "the file is corrupt or needs a codec plug-in (pylibjpeg, gdcm)") from exc
        arr, rescaled = decoded[0], True
    samples = int(ds.get("SamplesPerPixel", 1))
    slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
    if samples == 1 and not rescaled and (slope != 1.0 or intercept != 0.0):
        arr = (arr.astype(np.float64) * slope + intercept).astype(np.float32)
    dims: tuple[str, ...] = ("y", "x")
    channels = None
    if samples > 1:
        arr = np.moveaxis(arr, -1, 0)
        dims = ("c", "y", "x")
        channels = ["R", "G", "B", "A"][:samples] if samples <= 4 else None
    known = True
    if spacing is not None:
        sp = np.asarray(spacing, dtype=float).reshape(-1)
        sp = np.repeat(sp, 2) if sp.size == 1 else sp[-2:]
    elif "PixelSpacing" in ds or "ImagerPixelSpacing" in ds:
        sp = np.asarray([float(v) for v in (ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing"))], dtype=float)
    else:
        warn(f"{path}: PixelSpacing (0028,0030): missing; using spacing 1 with attrs['spacing_known'] = False; "
             "pass spacing=(dy, dx) in mm", CalibrationWarning)
        sp = np.ones(2)
        known = False
    if sp.size != 2 or np.any(sp <= 0):
        raise fail(path, "PixelSpacing (0028,0030)", f"{sp.tolist()} is not two positive sizes",
                   "pass spacing=(dy, dx) in mm")
    modality = str(ds.get("Modality", "") or "").upper()
    out = {"modality": modality, "units": _units_for(modality, ds), "spacing_known": known,
           "series_uid": str(ds.get("SeriesInstanceUID", "") or "")}
    out.update(attrs)
    out["provenance"] = provenance(path, "pydicom (planar)", spacing=spacing)
    return spatial_image(arr, spacing=sp, dims=dims, channels=channels, **out)


def _units_for(modality: str, header: Any) -> str:
    m = modality.upper()
    if m == "CT":
        rt = str(header.get("RescaleType", "") or "HU").upper()
        return "HU" if rt in ("HU", "") else rt
    if m in ("PT", "NM"):
        u = str(header.get("Units", "") or "").upper()
        return {"BQML": "Bq/ml", "GML": "g/ml", "CNTS": "counts", "CPS": "counts/s", "CM2ML": "cm2/ml"}.get(u, u)
    return ""


def read_dicom(
    path: str | os.PathLike,
    *,
    series: Any = None,
    suv: Any = False,
    spacing: Any = None,
    allow_missing: bool = False,
    **attrs: Any,
) -> xr.DataArray:
    """Read a DICOM series (a folder, one file of a series, or an enhanced multi-frame file).

    Parameters
    ----------
    path : path-like
        A folder (searched recursively) or a file. For a single-frame file, the series it
        belongs to is read from the file's folder.
    series : str, optional
        SeriesInstanceUID (or a unique prefix), SeriesNumber or SeriesDescription when the folder holds
        several series.
    suv : bool or {"bw", "lbm", "lbm_james", "bsa", "ibw"}
        PET only: convert to SUV (``attrs["units"]`` becomes e.g. ``"SUVbw"``).
    spacing : sequence of float, optional
        Override (dz, dy, dx) in mm.
    allow_missing : bool
        Fill missing slices with NaN (with a warning) instead of raising.
    **attrs
        Extra attrs (aspect, agent, ...).

    Returns
    -------
    xarray.DataArray
        ``(z, y, x)`` (or ``(t, z, y, x)`` for dynamic series), one dask block per slice, in LPS mm.

    Examples
    --------
    >>> ct = read_dicom("STS_019/CT/image")  # doctest: +SKIP
    >>> ct.attrs["units"]  # doctest: +SKIP
    'HU'
    """
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    path = Path(path)
    if path.is_dir():
        found = list_series(path)
        chosen = _choose_series(path, found, series)
        where = path
    else:
        ds = _read_header(path)
        if ds is None:
            raise fail(path, "preamble", "not a DICOM file (no DICM magic)", "check the file type")
        if str(ds.get("Modality", "")).upper() in _NON_IMAGE or "Rows" not in ds:
            raise fail(path, "Modality (0008,0060)", f"{ds.get('Modality', '?')} object holds no image",
                       "load RTSTRUCT files with reference=<image>")
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            chosen = DicomSeries(str(ds.get("SeriesInstanceUID", "")), str(ds.get("Modality", "")),
                                 str(ds.get("SeriesDescription", "")), str(ds.get("SeriesNumber", "")), [path], [ds])
        else:
            found = list_series(path.parent)
            uid = str(ds.get("SeriesInstanceUID", ""))
            chosen = next((s for s in found if s.uid == uid), None) or DicomSeries(
                uid, str(ds.get("Modality", "")), "", "", [path], [ds])
        where = path
    h0 = chosen.headers[0]
    if len(chosen.files) == 1 and int(h0.get("NumberOfFrames", 1) or 1) == 1 and (
            "ImagePositionPatient" not in h0 or "ImageOrientationPatient" not in h0
            or int(h0.get("SamplesPerPixel", 1)) > 1):
        if suv:
            raise fail(chosen.files[0], "ImagePositionPatient (0020,0032)", "a planar image cannot give SUV",
                       "load the PET volume series")
        return _read_planar(chosen.files[0], h0, spacing, attrs)
    multi = [(p, h) for p, h in zip(chosen.files, chosen.headers) if int(h.get("NumberOfFrames", 1) or 1) > 1]
    if multi:
        if len(chosen.files) > 1:
            raise fail(where, "NumberOfFrames (0028,0008)", "the series mixes multi-frame and single-frame files",
                       "load one multi-frame file at a time")
        slices = _slices_from_multiframe(*multi[0])
    else:
        slices = _main_stack(_slices_from_single_frames(chosen), where)
    grid, geo = _order(slices, where, allow_missing)

    modality = chosen.modality.upper()
    first = next(s for s in grid[0] if s is not None)
    units = _units_for(modality, first.header)
    factors: dict[int, float] = {}
    if suv:
        if modality not in ("PT", "NM"):
            raise fail(where, "Modality (0008,0060)", f"suv= was given but the series is {modality}",
                       "SUV applies to PET series only")
        present = [s for row in grid for s in row if s is not None]
        f = suv_mod.suv_factors([s.header for s in present], kind=suv)
        factors = {id(s): float(v) for s, v in zip(present, f)}
        units = suv_mod.suv_units(suv)
    rescale = any(s.slope != 1.0 or s.intercept != 0.0 for row in grid for s in row if s is not None) or bool(factors)
    if rescale or allow_missing:
        dtype = np.dtype(np.float32)
    else:
        bits = int(first.header.BitsAllocated)
        signed = int(first.header.get("PixelRepresentation", 0)) == 1
        dtype = np.dtype(f"{'i' if signed else 'u'}{max(1, bits // 8)}")
    shape2 = (first.rows, first.cols)
    if int(first.header.get("SamplesPerPixel", 1)) != 1:
        raise fail(first.path, "SamplesPerPixel (0028,0002)", "colour DICOM volumes are not supported",
                   "convert to grey levels first")

    if multi:
        # one decode of the whole file, then the frames in sorted order
        import pydicom

        p = multi[0][0]
        try:
            arr = pydicom.dcmread(str(p)).pixel_array
        except Exception as exc:
            raise fail(p, "PixelData (7FE0,0010)", f"cannot be decoded ({exc})", "the file is corrupt") from exc
        vols = []
        for row in grid:
            planes = []
            for s in row:
                if s is None:
                    planes.append(np.full(shape2, np.nan, dtype))
                    continue
                v = arr[s.frame].astype(np.float64) * s.slope + s.intercept if rescale else arr[s.frame]
                planes.append((v * factors.get(id(s), 1.0)).astype(dtype) if rescale else v.astype(dtype))
            vols.append(np.stack(planes))
        data = np.stack(vols)
    else:
        # one task per slice, plain arguments only (cheap to tokenize and to ship to workers)
        name = "dicom-" + tokenize(chosen.uid, [
            (str(s.path), s.frame, s.slope, s.intercept, factors.get(id(s), 1.0)) if s is not None else None
            for row in grid for s in row], str(dtype), rescale)
        dsk = {}
        for ti, row in enumerate(grid):
            for zi, s in enumerate(row):
                args = ((str(s.path), s.frame, s.slope, s.intercept, factors.get(id(s), 1.0)) if s is not None
                        else (None, None, 1.0, 0.0, 1.0))
                dsk[(name, ti, zi, 0, 0)] = (_read_slice, *args, dtype.str, rescale, shape2,
                                             s.raw if s is not None else None)
        graph = HighLevelGraph.from_collections(name, dsk, dependencies=[])
        data = da.Array(graph, name, chunks=((1,) * len(grid), (1,) * len(grid[0]), (shape2[0],), (shape2[1],)),
                        dtype=dtype)
    dims: tuple[str, ...] = ("t", "z", "y", "x")
    if data.shape[0] == 1:
        data = data[0]
        dims = ("z", "y", "x")
        t_coords: tuple[dict, dict] = ({}, {})
    else:  # frame times (dynamic PET/DCE), echo times or b-values, from each frame's first slice
        firsts = [next(s for s in row if s is not None) for row in grid]
        t_coords = dicom_time_coords([frame_header(s.header, s.frame) for s in firsts], where)

    sp = np.asarray(geo["spacing_zyx"], dtype=float)
    if spacing is not None:
        sp = np.asarray(spacing, dtype=float).reshape(-1)
        if sp.size != 3 or np.any(sp <= 0):
            raise fail(where, "spacing=", f"{spacing!r} is not three positive sizes", "pass spacing=(dz, dy, dx)")
    h = first.header
    out_attrs = {
        "modality": modality,
        "units": units,
        "spacing_known": True,
        "series_uid": chosen.uid,
        "frame_of_reference_uid": str(h.get("FrameOfReferenceUID", "") or ""),
        "study_uid": str(h.get("StudyInstanceUID", "") or ""),
        "patient_id": str(h.get("PatientID", "") or ""),
        "series_description": chosen.description,
    }
    out_attrs.update(attrs)
    out_attrs["provenance"] = provenance(where, "pydicom", series=chosen.uid, suv=suv, spacing=spacing,
                                         allow_missing=allow_missing or None, files=len(chosen.files))
    try:
        image = spatial_image(data, spacing=sp, origin=xyz_to_zyx(geo["origin_xyz"]),
                              direction=direction_xyz_to_zyx(geo["direction_xyz"]), dims=dims, **out_attrs)
    except ImageError as exc:
        raise fail(where, "ImageOrientationPatient/ImagePositionPatient", str(exc)) from exc
    return assign_time(image, *t_coords)


#: options of :func:`load_dicom` (files and folders)
DICOM_OPTIONS = frozenset({"series", "suv", "spacing", "allow_missing", "modality", "aspect", "agent", "scale"})


def load_dicom(path: str | os.PathLike, *, modality: str | None = None, **options: Any) -> xr.DataArray:
    """:func:`read_dicom` for ``load``: ``modality=`` overrides the header's Modality in ``attrs``.

    Examples
    --------
    >>> load_dicom("STS_019/CT/image", modality="CT").attrs["modality"]  # doctest: +SKIP
    'CT'
    """
    img = read_dicom(path, **options)
    if modality:
        img.attrs["modality"] = modality
    return img


def _sniff(head: bytes, path: Path) -> bool:
    return not path.is_dir() and looks_like_dicom(head, path)


FORMAT = Format(
    name="dicom",
    sniff=_sniff,
    read=load_dicom,
    options=DICOM_OPTIONS,
    suffixes=(".dcm",),
    description="DICOM image file: its series is read from its folder; enhanced multi-frame files alone "
                "(suv= for PET)",
)
