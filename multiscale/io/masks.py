"""Masks: label images (NIfTI/NRRD/MHA), DICOM RTSTRUCT contours and DICOM SEG frames on a reference grid.

A mask is an image with ``attrs["aspect"] = "mask"`` and integer labels (0 = background).
A mask must sit on its image's grid: :func:`match_grid` refuses a different grid unless
``resample=True``, which resamples with nearest neighbour (SimpleITK) so labels stay labels.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from multiscale.image import grid_of, like, spatial_dims, to_sitk, world_to_index

from ._common import LoadError, fail, provenance, warn
from ._geometry import direction_zyx_to_xyz

__all__ = ["read_label_image", "as_label_image", "read_rtstruct", "read_dicom_seg", "list_rois", "rasterize_contours", "match_grid"]


def _grids_match(a: xr.DataArray, b: xr.DataArray) -> bool:
    """Same voxel centres to within float32 header precision: 1e-5 relative spacing, 1e-3 voxel origin."""
    ga, gb = grid_of(a), grid_of(b)
    if ga["dims"] != gb["dims"] or ga["shape"] != gb["shape"]:
        return False
    sa, sb = np.asarray(ga["spacing"]), np.asarray(gb["spacing"])
    return bool(
        np.allclose(sa, sb, rtol=1e-5, atol=0)
        and np.all(np.abs(np.asarray(ga["origin"]) - np.asarray(gb["origin"])) <= 1e-3 * sb.min())
        and np.allclose(ga["direction"], gb["direction"], atol=1e-5)
    )


def match_grid(mask: xr.DataArray, reference: xr.DataArray, resample: bool = False, source: Any = "") -> xr.DataArray:
    """Return ``mask`` on ``reference``'s grid: unchanged when the grids agree, else an error or a resample.

    Parameters
    ----------
    mask, reference : xarray.DataArray
    resample : bool
        Resample with nearest neighbour (labels stay labels) instead of raising.
    source : str
        File name for error messages.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> img = spatial_image(np.zeros((2, 4, 4)), spacing=1.0)
    >>> m = spatial_image(np.ones((2, 2, 2), np.uint8), spacing=2.0)
    >>> match_grid(m, img, resample=True).shape
    (2, 4, 4)
    """
    if _grids_match(mask, reference):
        out = mask.assign_coords({d: reference.coords[d].values for d in spatial_dims(reference)})
        out.attrs["direction"] = reference.attrs.get("direction")
        out.attrs["spacing"] = reference.attrs.get("spacing")
        return out
    if not resample:
        gm, gr = grid_of(mask), grid_of(reference)
        raise LoadError(
            f"{source or 'mask'}: grid: the mask's grid (shape {gm['shape']}, spacing "
            f"{tuple(round(v, 4) for v in gm['spacing'])}, origin {tuple(round(v, 3) for v in gm['origin'])}) differs "
            f"from the image's (shape {gr['shape']}, spacing {tuple(round(v, 4) for v in gr['spacing'])}, origin "
            f"{tuple(round(v, 3) for v in gr['origin'])}); pass resample=True to resample it (nearest neighbour)"
        )
    import SimpleITK as sitk

    g = grid_of(reference)
    if len(g["shape"]) != len(spatial_dims(mask)):
        raise LoadError(f"{source or 'mask'}: dims: mask {mask.dims} and image {reference.dims} differ in spatial dims")
    f = sitk.ResampleImageFilter()
    f.SetSize([int(v) for v in g["shape"][::-1]])
    f.SetOutputSpacing([float(v) for v in g["spacing"][::-1]])
    f.SetOutputOrigin([float(v) for v in g["origin"][::-1]])
    f.SetOutputDirection([float(v) for v in direction_zyx_to_xyz(g["direction"]).reshape(-1)])
    f.SetInterpolator(sitk.sitkNearestNeighbor)
    f.SetDefaultPixelValue(0)
    chans = [mask.isel(c=i) for i in range(mask.sizes["c"])] if "c" in mask.dims else [mask]
    out = [sitk.GetArrayFromImage(f.Execute(to_sitk(m))) for m in chans]
    arr = np.stack(out) if "c" in mask.dims else out[0]
    if mask.dtype == bool:
        arr = arr.astype(bool)
    template = reference
    for d in ("t", "c"):
        if d in template.dims:
            template = template.isel({d: 0}, drop=True)
    res = like(template, arr, dims=(("c",) if "c" in mask.dims else ()) + spatial_dims(reference))
    if "c" in mask.dims and "c" in mask.coords:
        res = res.assign_coords(c=mask.coords["c"].values)
    res.attrs = {**reference.attrs, **{k: v for k, v in mask.attrs.items() if k not in ("direction", "spacing")}}
    res.attrs["direction"] = reference.attrs.get("direction")
    res.attrs["spacing"] = reference.attrs.get("spacing")
    prov = dict(mask.attrs.get("provenance") or {})
    prov["resampled"] = "nearest neighbour onto the reference grid (SimpleITK)"
    res.attrs["provenance"] = prov
    return res


def read_label_image(
    path: str | os.PathLike,
    *,
    reference: xr.DataArray | None = None,
    resample: bool = False,
    **options: Any,
) -> xr.DataArray:
    """Read a label image (NIfTI, NRRD, MHA/MHD) as an integer mask, checked against ``reference``'s grid.

    Examples
    --------
    >>> mask = read_label_image("CT_mask.nii.gz", reference=ct)  # doctest: +SKIP
    >>> mask.attrs["aspect"]  # doctest: +SKIP
    'mask'
    """
    from .dispatch import load

    img = load(path, **options)
    return as_label_image(img, path, reference=reference, resample=resample)


def as_label_image(img: xr.DataArray, source: Any = "", reference: xr.DataArray | None = None,
                   resample: bool = False) -> xr.DataArray:
    """Turn a loaded volume into an integer label mask (``aspect="mask"``), on ``reference``'s grid if given.

    Float volumes are accepted when every value is integral (0/1 masks saved as float);
    a probability map is refused.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> m = as_label_image(spatial_image(np.array([[0.0, 1.0], [2.0, 0.0]]), spacing=1.0))
    >>> m.dtype.name, m.attrs["aspect"]
    ('uint8', 'mask')
    """
    data = img.data
    if np.issubdtype(img.dtype, np.floating):
        vals = np.asarray(data.compute() if hasattr(data, "compute") else data)
        finite = vals[np.isfinite(vals)]
        if finite.size and np.any(finite != np.round(finite)):
            raise fail(source, "voxel values", "non-integer values in a label image",
                       "threshold the probability map first (e.g. mask = image > 0.5)")
        big = finite.size and (np.abs(finite).max() > 255 or finite.min() < 0)
        img = img.copy(data=np.nan_to_num(vals).astype(np.int32 if big else np.uint8))
    elif img.dtype == bool:
        img = img.copy(data=(img.data.astype(np.uint8)))
    img.attrs["aspect"] = "mask"
    img.attrs["units"] = "label"
    if reference is not None:
        img = match_grid(img, reference, resample=resample, source=source)
        img.attrs["aspect"] = "mask"
        img.attrs["units"] = "label"
        if reference.attrs.get("modality"):
            img.attrs["modality"] = reference.attrs["modality"]
    return img


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
