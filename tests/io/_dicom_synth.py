"""Small synthetic DICOM files written with pydicom for the io tests (headers chosen per test)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
PET_STORAGE = "1.2.840.10008.5.1.4.1.1.128"
ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"
RTSTRUCT_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"


def _meta(sop_class: str, sop_uid: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return meta


def save(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(str(path), enforce_file_format=True)
    return path


def image_slice(
    pixels: np.ndarray,
    position: Any,
    *,
    orientation: Any = (1, 0, 0, 0, 1, 0),
    pixel_spacing: Any = (0.5, 0.75),
    modality: str = "CT",
    series_uid: str,
    frame_uid: str = "1.2.3.4",
    instance: int = 1,
    slope: float = 1.0,
    intercept: float = 0.0,
    **tags: Any,
) -> Dataset:
    """One single-frame slice (int16 pixels) with the given geometry and extra tags."""
    sop_class = PET_STORAGE if modality == "PT" else CT_STORAGE
    uid = generate_uid()
    ds = Dataset()
    ds.file_meta = _meta(sop_class, uid)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = uid
    ds.Modality = modality
    ds.SeriesInstanceUID = series_uid
    ds.StudyInstanceUID = "1.2.3"
    ds.FrameOfReferenceUID = frame_uid
    ds.SeriesDescription = f"synthetic {modality}"
    ds.SeriesNumber = 1
    ds.InstanceNumber = instance
    ds.PatientID = "P1"
    ds.ImagePositionPatient = [float(v) for v in position]
    ds.ImageOrientationPatient = [float(v) for v in orientation]
    ds.PixelSpacing = [float(v) for v in pixel_spacing]
    ds.SliceThickness = 2.0
    ds.RescaleSlope = slope
    ds.RescaleIntercept = intercept
    arr = np.asarray(pixels, dtype=np.int16)
    ds.Rows, ds.Columns = arr.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.PixelData = arr.tobytes()
    for k, v in tags.items():
        setattr(ds, k, v)
    return ds


def write_series(
    folder: Path,
    volume: np.ndarray,
    *,
    spacing_z: float = 2.0,
    origin: Any = (-10.0, -20.0, 30.0),
    orientation: Any = (1, 0, 0, 0, 1, 0),
    pixel_spacing: Any = (0.5, 0.75),
    modality: str = "CT",
    series_uid: str | None = None,
    slopes: Any = None,
    intercepts: Any = None,
    skip: Any = (),
    z_offsets: Any = None,
    per_slice: Any = None,
    **tags: Any,
) -> tuple[str, list[Path]]:
    """Write ``volume`` (z, y, x) as one file per slice, in shuffled file order, reversed instance numbers.

    ``per_slice`` is a callable ``k -> dict`` of extra tags per slice.
    """
    series_uid = series_uid or generate_uid()
    iop = np.asarray(orientation, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    nz = volume.shape[0]
    paths = []
    order = np.random.default_rng(0).permutation(nz)
    for k in order:
        if k in skip:
            continue
        off = k * spacing_z if z_offsets is None else z_offsets[k]
        pos = np.asarray(origin, dtype=float) + off * normal
        extra = dict(tags)
        if per_slice is not None:
            extra.update(per_slice(int(k)))
        ds = image_slice(
            volume[k], pos, orientation=orientation, pixel_spacing=pixel_spacing, modality=modality,
            series_uid=series_uid, instance=nz - int(k),
            slope=1.0 if slopes is None else float(slopes[k]),
            intercept=0.0 if intercepts is None else float(intercepts[k]), **extra,
        )
        paths.append(save(ds, folder / f"IM{int(k) * 7 % 97:04d}_{k}.dcm"))
    return series_uid, paths


def rtstruct(path: Path, rois: dict[str, list[np.ndarray]], frame_uid: str = "1.2.3.4") -> Path:
    """An RTSTRUCT with one ROI per name; each ROI a list of (N, 3) contour point arrays (x, y, z mm)."""
    uid = generate_uid()
    ds = Dataset()
    ds.file_meta = _meta(RTSTRUCT_STORAGE, uid)
    ds.SOPClassUID = RTSTRUCT_STORAGE
    ds.SOPInstanceUID = uid
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = generate_uid()
    ds.StudyInstanceUID = "1.2.3"
    ref = Dataset()
    ref.FrameOfReferenceUID = frame_uid
    ds.ReferencedFrameOfReferenceSequence = [ref]
    roi_seq, contour_seq = [], []
    for i, (name, contours) in enumerate(rois.items(), start=1):
        r = Dataset()
        r.ROINumber = i
        r.ROIName = name
        r.ReferencedFrameOfReferenceUID = frame_uid
        roi_seq.append(r)
        rc = Dataset()
        rc.ReferencedROINumber = i
        cs = []
        for pts in contours:
            c = Dataset()
            c.ContourGeometricType = "CLOSED_PLANAR"
            c.NumberOfContourPoints = len(pts)
            c.ContourData = [f"{v:.4f}" for v in np.asarray(pts, dtype=float).reshape(-1)]
            cs.append(c)
        rc.ContourSequence = cs
        contour_seq.append(rc)
    ds.StructureSetROISequence = roi_seq
    ds.ROIContourSequence = contour_seq
    return save(ds, path)


def read(path: Path) -> Dataset:
    return pydicom.dcmread(str(path))


SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"


def seg(path: Path, labels: dict[int, str], frames: list[tuple[int, Any, np.ndarray]], *,
        pixel_spacing: Any = (1.0, 1.0), orientation: Any = (1, 0, 0, 0, 1, 0), frame_uid: str = "1.2.3.4") -> Path:
    """A BINARY DICOM SEG; ``frames`` are (segment number, ImagePositionPatient, 0/1 plane)."""
    from pydicom.pixels import pack_bits

    uid = generate_uid()
    ds = Dataset()
    ds.file_meta = _meta(SEG_STORAGE, uid)
    ds.SOPClassUID, ds.SOPInstanceUID = SEG_STORAGE, uid
    ds.Modality, ds.SeriesInstanceUID, ds.StudyInstanceUID = "SEG", generate_uid(), "1.2.3"
    ds.FrameOfReferenceUID = frame_uid
    ds.SegmentationType = "BINARY"
    segs = []
    for num, label in labels.items():
        s = Dataset()
        s.SegmentNumber, s.SegmentLabel = num, label
        segs.append(s)
    ds.SegmentSequence = segs
    planes = np.stack([np.asarray(f[2], np.uint8) for f in frames])
    ds.NumberOfFrames = len(frames)
    ds.Rows, ds.Columns = planes.shape[1:]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 1, 1, 0, 0
    ds.PixelData = pack_bits(planes)
    shared, pm, po = Dataset(), Dataset(), Dataset()
    pm.PixelSpacing, pm.SliceThickness = [float(v) for v in pixel_spacing], 1.0
    po.ImageOrientationPatient = [float(v) for v in orientation]
    shared.PixelMeasuresSequence, shared.PlaneOrientationSequence = [pm], [po]
    ds.SharedFunctionalGroupsSequence = [shared]
    per = []
    for num, pos, _ in frames:
        f, pp, si = Dataset(), Dataset(), Dataset()
        pp.ImagePositionPatient = [float(v) for v in pos]
        si.ReferencedSegmentNumber = num
        f.PlanePositionSequence, f.SegmentIdentificationSequence = [pp], [si]
        per.append(f)
    ds.PerFrameFunctionalGroupsSequence = per
    return save(ds, path)
