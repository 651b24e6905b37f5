"""DICOM Segmentation (SEG): binary or fractional frames placed onto a reference image's grid."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from multiscale.image import like, spatial_dims, world_to_index

from ._common import fail, provenance
from .dicom import header_modality, looks_like_dicom
from .format import Format

__all__ = ["read_dicom_seg", "FORMAT"]


def read_dicom_seg(
    path: str | os.PathLike,
    *,
    reference: xr.DataArray | None = None,
    segment: str | int | list[Any] | None = None,
    check_frame_of_reference: bool = True,
) -> xr.DataArray:
    """Place the frames of a DICOM Segmentation (SEG) object onto ``reference``'s grid.

    Binary and fractional (threshold 0.5) segmentations are read; each frame must lie on a
    slice of the reference with the same in-plane grid (the usual case for a SEG drawn on that
    series), otherwise the error says so.

    Parameters
    ----------
    path : path-like
    reference : xarray.DataArray
        The image the segmentation was drawn on.
    segment : str, int or list, optional
        SegmentLabel(s) or SegmentNumber(s); default all (a ``c`` dim when there are several).
    check_frame_of_reference : bool
        Refuse a SEG whose FrameOfReferenceUID differs from the reference image's.

    Returns
    -------
    xarray.DataArray
        uint8 mask(s), ``attrs["aspect"] = "mask"``, ``attrs["roi"]`` the segment label(s).

    Examples
    --------
    >>> seg = read_dicom_seg("seg.dcm", reference=ct)  # doctest: +SKIP
    """
    import pydicom

    path = Path(path)
    try:
        ds = pydicom.dcmread(str(path))
    except Exception as exc:
        raise fail(path, "header", f"cannot be parsed ({type(exc).__name__}: {exc})", "the file is corrupt") from exc
    if str(ds.get("Modality", "")).upper() != "SEG":
        raise fail(path, "Modality (0008,0060)", f"{ds.get('Modality', 'missing')}, not SEG", "pass a DICOM SEG file")
    if reference is None:
        raise fail(path, "reference=", "a SEG is placed on the grid of the image it was drawn on",
                   "pass reference=<image>, e.g. load(seg, reference=ct)")
    ref_for = str(reference.attrs.get("frame_of_reference_uid", "") or "")
    seg_for = str(ds.get("FrameOfReferenceUID", "") or "")
    if check_frame_of_reference and ref_for and seg_for and ref_for != seg_for:
        raise fail(path, "FrameOfReferenceUID (0020,0052)", f"{seg_for} differs from the reference image's {ref_for}",
                   "pass the image the segmentation was drawn on, or check_frame_of_reference=False")
    labels = {int(s.SegmentNumber): str(s.get("SegmentLabel", s.SegmentNumber)) for s in ds.get("SegmentSequence") or []}
    if not labels:
        raise fail(path, "SegmentSequence (0062,0002)", "empty", "the file defines no segment")
    if segment is None:
        wanted = list(labels)
    else:
        items = segment if isinstance(segment, (list, tuple)) else [segment]
        wanted = []
        for it in items:
            num = next((n for n, lb in labels.items() if lb == it or n == it or str(n) == str(it)), None)
            if num is None:
                raise fail(path, "SegmentLabel (0062,0005)", f"no segment {it!r}", f"the file holds {list(labels.values())}")
            wanted.append(num)
    template = reference
    for d in ("t", "c"):
        if d in template.dims:
            template = template.isel({d: 0}, drop=True)
    if spatial_dims(template) != ("z", "y", "x"):
        raise fail(path, "reference=", f"a 3-D (z, y, x) image is needed, got dims {reference.dims}")
    shape = tuple(int(template.sizes[d]) for d in ("z", "y", "x"))
    try:
        frames = ds.pixel_array
    except Exception as exc:
        raise fail(path, "PixelData (7FE0,0010)", f"cannot be decoded ({type(exc).__name__}: {exc})",
                   "the file is corrupt") from exc
    n = int(ds.get("NumberOfFrames", 1) or 1)
    frames = frames.reshape((n,) + tuple(frames.shape[-2:]))
    fractional = str(ds.get("SegmentationType", "BINARY")).upper() == "FRACTIONAL"
    max_frac = float(ds.get("MaximumFractionalValue", 255) or 255)
    per = ds.get("PerFrameFunctionalGroupsSequence") or []
    shared = (ds.get("SharedFunctionalGroupsSequence") or [None])[0]

    def group(f: int, seq: str, item: str) -> Any:
        if f < len(per) and seq in per[f]:
            return getattr(per[f][seq][0], item, None)
        if shared is not None and seq in shared:
            return getattr(shared[seq][0], item, None)
        return None

    masks = {num: np.zeros(shape, np.uint8) for num in wanted}
    for f in range(n):
        num = group(f, "SegmentIdentificationSequence", "ReferencedSegmentNumber")
        if num is None or int(num) not in masks:
            continue
        pos = group(f, "PlanePositionSequence", "ImagePositionPatient")
        iop = group(f, "PlaneOrientationSequence", "ImageOrientationPatient")
        ps = group(f, "PixelMeasuresSequence", "PixelSpacing")
        if pos is None or iop is None or ps is None:
            raise fail(path, "Per-frame Functional Groups (5200,9230)", f"frame {f + 1} lacks its plane geometry",
                       "the file is incomplete")
        iop = np.asarray(iop, dtype=float)
        origin_idx = world_to_index(template, np.asarray(pos, dtype=float), xyz=True)  # (i_x, i_y, i_z)
        step_x = world_to_index(template, np.asarray(pos, float) + iop[:3] * float(ps[1]), xyz=True) - origin_idx
        step_y = world_to_index(template, np.asarray(pos, float) + iop[3:] * float(ps[0]), xyz=True) - origin_idx
        k = int(np.round(origin_idx[2]))
        aligned = (np.allclose(step_x, [1, 0, 0], atol=1e-3) and np.allclose(step_y, [0, 1, 0], atol=1e-3)
                   and np.allclose(origin_idx, np.round(origin_idx), atol=1e-2))
        if not aligned:
            raise fail(path, "PlanePosition/PlaneOrientation/PixelMeasures",
                       f"frame {f + 1} does not lie on the reference grid",
                       "resample the segmentation (or load it on the image it was drawn on)")
        if not 0 <= k < shape[0]:
            continue
        r0, c0 = int(np.round(origin_idx[1])), int(np.round(origin_idx[0]))
        plane = frames[f] >= 0.5 * max_frac if fractional else frames[f] > 0
        rows = slice(max(r0, 0), min(r0 + plane.shape[0], shape[1]))
        cols = slice(max(c0, 0), min(c0 + plane.shape[1], shape[2]))
        sub = plane[rows.start - r0:rows.stop - r0, cols.start - c0:cols.stop - c0]
        masks[int(num)][k, rows, cols] |= sub.astype(np.uint8)
    names = [labels[num] for num in wanted]
    attrs = {
        "aspect": "mask",
        "units": "label",
        "modality": reference.attrs.get("modality", ""),
        "roi": names[0] if len(names) == 1 else names,
        "frame_of_reference_uid": ref_for or seg_for,
        "provenance": provenance(path, "pydicom SEG", segment=segment, reference=reference),
    }
    if len(wanted) == 1:
        out = like(template, masks[wanted[0]], dims=spatial_dims(template))
    else:
        out = like(template, np.stack([masks[w] for w in wanted]), dims=("c",) + spatial_dims(template))
        out = out.assign_coords(c=names)
    out.attrs = {**{k: v for k, v in template.attrs.items() if k in ("direction", "spacing")}, **attrs}
    return out


def _sniff(head: bytes, path: Path) -> bool:
    return not path.is_dir() and looks_like_dicom(head, path) and header_modality(path)[0] == "SEG"


def _load(
    path: str | os.PathLike,
    *,
    reference: xr.DataArray | None = None,
    resample: bool | None = None,
    segment: str | int | list[Any] | None = None,
    check_frame_of_reference: bool = True,
) -> xr.DataArray:
    """:func:`read_dicom_seg` for ``load``; ``resample`` has no effect (frames are placed on the reference grid)."""
    return read_dicom_seg(path, reference=reference, segment=segment,
                          check_frame_of_reference=check_frame_of_reference)


FORMAT = Format(
    name="seg",
    sniff=_sniff,
    read=_load,
    options=frozenset({"reference", "resample", "segment", "check_frame_of_reference"}),
    suffixes=(".dcm",),
    description="DICOM Segmentation (frames placed on the grid given with reference=)",
)
