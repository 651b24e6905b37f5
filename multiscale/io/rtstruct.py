"""DICOM RTSTRUCT: closed planar contours rasterised onto a reference image's grid.

An RTSTRUCT has no grid of its own: ``load(rs, reference=ct)`` gives a ``uint8`` mask
(``attrs["aspect"] = "mask"``); a folder that holds RTSTRUCT files and no image series is read
the same way (one RTSTRUCT in it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from multiscale.image import like, spatial_dims, world_to_index

from ._common import LoadError, fail, provenance, warn
from .dicom import NON_IMAGE_MODALITIES, find_rtstructs, header_modality, is_dicom_file, looks_like_dicom
from .format import Format

__all__ = ["read_rtstruct", "list_rois", "rasterize_contours", "summary", "FORMAT"]


def _read_rtstruct(path: Path) -> Any:
    import pydicom

    try:
        ds = pydicom.dcmread(str(path))
    except Exception as exc:
        raise fail(path, "header", f"cannot be parsed ({type(exc).__name__}: {exc})",
                   "the file is truncated or corrupt") from exc
    if str(ds.get("Modality", "")).upper() != "RTSTRUCT":
        raise fail(path, "Modality (0008,0060)", f"{ds.get('Modality', 'missing')}, not RTSTRUCT",
                   "pass an RT Structure Set file")
    return ds


def list_rois(path: str | os.PathLike) -> list[str]:
    """Names of the ROIs in an RTSTRUCT file, in file order.

    Examples
    --------
    >>> list_rois("STS_019/CT/mask/RS.dcm")  # doctest: +SKIP
    ['GTV_Mass_CT']
    """
    ds = _read_rtstruct(Path(path))
    return [str(r.ROIName) for r in ds.get("StructureSetROISequence") or []]


def rasterize_contours(contours: list[np.ndarray], reference: xr.DataArray, source: Any = "") -> np.ndarray:
    """Fill closed planar contours (world LPS points, mm, rows ``(x, y, z)``) on ``reference``'s grid.

    Contours on the same slice are combined with exclusive-or, so an inner contour is a hole
    (the even-odd rule used by DICOM viewers). A voxel is inside when its centre is.

    Returns
    -------
    numpy.ndarray of bool, shape of the reference's spatial dims ``(z, y, x)``

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> ref = spatial_image(np.zeros((1, 10, 10)), spacing=1.0)
    >>> sq = np.array([[1.5, 1.5, 0], [5.5, 1.5, 0], [5.5, 5.5, 0], [1.5, 5.5, 0]])
    >>> int(rasterize_contours([sq], ref).sum())
    16
    """
    from skimage.draw import polygon

    sd = spatial_dims(reference)
    if sd != ("z", "y", "x"):
        raise LoadError(f"{source or 'contours'}: reference: a 3-D (z, y, x) image is needed, got dims {reference.dims}")
    shape = tuple(int(reference.sizes[d]) for d in sd)
    out = np.zeros(shape, dtype=bool)
    skipped = 0
    for pts in contours:
        pts = np.asarray(pts, dtype=float).reshape(-1, 3)
        if len(pts) < 3:
            continue
        idx = world_to_index(reference, pts, xyz=True)  # (i_x, i_y, i_z)
        kz = idx[:, 2]
        k = int(np.round(np.median(kz)))
        if np.abs(kz - k).max() > 0.5 or k < 0 or k >= shape[0]:
            skipped += 1
            continue
        rr, cc = polygon(idx[:, 1], idx[:, 0], shape=shape[1:])
        plane = np.zeros(shape[1:], dtype=bool)
        plane[rr, cc] = True
        out[k] ^= plane
    if skipped:
        warn(f"{source or 'contours'}: {skipped} contour(s) lie outside the reference grid or across slices; "
             "they were left out")
    return out


def read_rtstruct(
    path: str | os.PathLike,
    *,
    reference: xr.DataArray | None = None,
    roi: str | list[str] | None = None,
    check_frame_of_reference: bool = True,
) -> xr.DataArray:
    """Rasterise the contours of a DICOM RTSTRUCT onto ``reference``'s grid.

    Parameters
    ----------
    path : path-like
        The RT Structure Set file.
    reference : xarray.DataArray
        The image the contours belong to (its grid is used; its FrameOfReferenceUID is checked
        when known).
    roi : str or list of str, optional
        ROI name(s). One name gives a ``(z, y, x)`` mask; several (or all, the default when the
        file has more than one ROI) give a ``(c, z, y, x)`` mask named by ROI.
    check_frame_of_reference : bool
        Refuse contours whose FrameOfReferenceUID differs from the reference image's.

    Returns
    -------
    xarray.DataArray
        uint8 mask (1 inside), ``attrs["aspect"] = "mask"``, ``attrs["roi"]`` the name(s).

    Examples
    --------
    >>> ct = load("STS_019/CT/image")  # doctest: +SKIP
    >>> gtv = read_rtstruct("STS_019/CT/mask/RS.dcm", reference=ct)  # doctest: +SKIP
    """
    path = Path(path)
    ds = _read_rtstruct(path)
    if reference is None:
        raise fail(path, "reference=", "an RTSTRUCT holds contours, not a grid",
                   "pass reference=<image> (the series the contours were drawn on), e.g. load(rs, reference=ct)")
    names = {str(r.ROINumber): str(r.ROIName) for r in ds.get("StructureSetROISequence") or []}
    frames = {str(r.ROINumber): str(r.get("ReferencedFrameOfReferenceUID", "") or "")
              for r in ds.get("StructureSetROISequence") or []}
    if not names:
        raise fail(path, "StructureSetROISequence (3006,0020)", "empty", "the file defines no ROI")
    wanted: list[str]
    if roi is None:
        wanted = list(names.values())
    elif isinstance(roi, str):
        wanted = [roi]
    else:
        wanted = list(roi)
    unknown = [w for w in wanted if w not in names.values()]
    if unknown:
        raise fail(path, "ROIName (3006,0026)", f"no ROI named {unknown}", f"the file holds {list(names.values())}")
    ref_for = str(reference.attrs.get("frame_of_reference_uid", "") or "")
    contours_by_name: dict[str, list[np.ndarray]] = {w: [] for w in wanted}
    for rc in ds.get("ROIContourSequence") or []:
        num = str(rc.ReferencedROINumber)
        name = names.get(num)
        if name not in contours_by_name:
            continue
        if check_frame_of_reference and ref_for and frames.get(num) and frames[num] != ref_for:
            raise fail(path, "ReferencedFrameOfReferenceUID (3006,0024)",
                       f"ROI {name!r} is in frame {frames[num]} but the reference image is in {ref_for}",
                       "pass the image the contours were drawn on, or check_frame_of_reference=False")
        for c in rc.get("ContourSequence") or []:
            geom = str(c.get("ContourGeometricType", "CLOSED_PLANAR")).upper()
            if geom not in ("CLOSED_PLANAR", "CLOSEDPLANAR"):
                continue
            data = np.asarray([float(v) for v in c.ContourData], dtype=float)
            if data.size % 3:
                raise fail(path, "ContourData (3006,0050)", f"{data.size} numbers is not a list of (x, y, z) points",
                           "the file is corrupt")
            contours_by_name[name].append(data.reshape(-1, 3))
    template = reference
    for d in ("t", "c"):
        if d in template.dims:
            template = template.isel({d: 0}, drop=True)
    masks = [rasterize_contours(contours_by_name[w], template, source=path).astype(np.uint8) for w in wanted]
    attrs = {
        "aspect": "mask",
        "units": "label",
        "modality": reference.attrs.get("modality", ""),
        "roi": wanted[0] if len(wanted) == 1 else list(wanted),
        "spacing_known": reference.attrs.get("spacing_known", True),
        "frame_of_reference_uid": ref_for,
        "provenance": provenance(path, "pydicom RTSTRUCT rasteriser (even-odd fill of voxel centres)", roi=roi,
                                 reference=reference),
    }
    if len(wanted) == 1:
        out = like(template, masks[0], dims=spatial_dims(template))
    else:
        out = like(template, np.stack(masks), dims=("c",) + spatial_dims(template)).assign_coords(c=wanted)
    out.attrs = {**{k: v for k, v in template.attrs.items() if k in ("direction", "spacing")}, **attrs}
    return out


def _only_rtstructs(folder: Path) -> bool:
    """True when ``folder`` holds RTSTRUCT file(s) and no DICOM image (stops at the first image)."""
    found = False
    for p in sorted(folder.rglob("*")):
        if not p.is_file() or p.name.startswith("."):
            continue
        if not (is_dicom_file(p) or p.suffix.lower() == ".dcm"):
            continue
        try:
            modality, is_image = header_modality(p)
        except LoadError:
            return False  # let the DICOM folder reader report the broken file
        if modality == "RTSTRUCT":
            found = True
        elif is_image and modality not in NON_IMAGE_MODALITIES:
            return False
    return found


def _sniff(head: bytes, path: Path) -> bool:
    if path.is_dir():
        return _only_rtstructs(path)
    return looks_like_dicom(head, path) and header_modality(path)[0] == "RTSTRUCT"


def _the_file(path: Path) -> Path:
    if not path.is_dir():
        return path
    structs = find_rtstructs(path)
    if len(structs) > 1:
        raise fail(path, "files", f"{len(structs)} RTSTRUCT files: {[s.name for s in structs]}",
                   "point load() at one of them")
    return structs[0]


def _load(
    path: str | os.PathLike,
    *,
    reference: xr.DataArray | None = None,
    resample: bool | None = None,
    roi: str | list[str] | None = None,
    check_frame_of_reference: bool = True,
) -> xr.DataArray:
    """:func:`read_rtstruct` for ``load``: a folder holding one RTSTRUCT is that file; ``resample`` has no
    effect (the contours are rasterised on the reference grid)."""
    return read_rtstruct(_the_file(Path(path)), reference=reference, roi=roi,
                         check_frame_of_reference=check_frame_of_reference)


def summary(path: str | os.PathLike) -> dict[str, Any]:
    """An RTSTRUCT has no grid of its own: its ROIs (with contour counts) and frame of reference.

    Examples
    --------
    >>> summary("STS_019/CT/mask/RS.dcm")["rois"]  # doctest: +SKIP
    ['GTV_Mass_CT (31 contours)']
    """
    ds = _read_rtstruct(_the_file(Path(path)))
    names = {str(r.ROINumber): str(r.ROIName) for r in ds.get("StructureSetROISequence") or []}
    counts = {str(rc.ReferencedROINumber): len(rc.get("ContourSequence") or []) for rc in
              ds.get("ROIContourSequence") or []}
    frames = sorted({str(r.get("ReferencedFrameOfReferenceUID", "")) for r in ds.get("StructureSetROISequence") or []}
                    - {""})
    return {
        "modality": "RTSTRUCT",
        "rois": [f"{name} ({counts.get(num, 0)} contours)" for num, name in names.items()],
        "frame_of_reference_uid": ", ".join(frames),
        "warnings": ["contours only: load it with reference=<image> to rasterise them on that image's grid"],
    }


FORMAT = Format(
    name="rtstruct",
    sniff=_sniff,
    read=_load,
    options=frozenset({"reference", "resample", "roi", "check_frame_of_reference"}),
    suffixes=(".dcm",),
    description="DICOM RT Structure Set (contours rasterised with reference=; a folder of RTSTRUCTs only)",
    summary=summary,
)
