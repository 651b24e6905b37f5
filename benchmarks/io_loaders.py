"""Loader speed against the usual anchors, measured side by side in one run.

Workloads (generated once under benchmarks/data/io/, git-ignored):
  * a CT DICOM series, N slices of 512 x 512 int16 with RescaleIntercept -1024, files shuffled;
  * the same volume as an uncompressed NIfTI.

Anchors: SimpleITK's ImageSeriesReader (GDCM) for the series, nibabel's
``np.array(img.dataobj)`` for NIfTI. Ours: ``multiscale.io.load(...)`` (lazy, then computed with
dask's threaded scheduler). Printed: medians over repeats and the ratio ours / anchor (lower is better).

Run:  .venv/bin/python benchmarks/io_loaders.py [--slices 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
DATA = ROOT / "data" / "io"


def _make(n: int) -> tuple[Path, Path]:
    import nibabel as nib
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    folder = DATA / f"ct_{n}"
    nii = DATA / f"ct_{n}.nii"
    if folder.is_dir() and len(list(folder.glob("*.dcm"))) == n and nii.is_file():
        return folder, nii
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    vol = rng.integers(0, 3000, size=(n, 512, 512), dtype=np.int16)
    series = generate_uid()
    for k in rng.permutation(n):
        uid = generate_uid()
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.2", uid
        ds.Modality, ds.SeriesInstanceUID, ds.StudyInstanceUID = "CT", series, "1.2.3"
        ds.FrameOfReferenceUID = "1.2.3.4"
        ds.InstanceNumber = int(k) + 1
        ds.ImagePositionPatient = [-250.0, -250.0, float(k) * 1.25]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [0.977, 0.977]
        ds.SliceThickness = 1.25
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.Rows, ds.Columns = 512, 512
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.PixelData = vol[k].tobytes()
        ds.save_as(str(folder / f"{uid}.dcm"), enforce_file_format=True)
    aff = np.diag([-0.977, -0.977, 1.25, 1.0])
    nib.save(nib.Nifti1Image(vol.transpose(2, 1, 0), aff), str(nii))
    return folder, nii


def _median(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)

    import nibabel as nib
    import SimpleITK as sitk

    from multiscale.io import load

    folder, nii = _make(args.slices)

    def sitk_series():
        r = sitk.ImageSeriesReader()
        r.SetFileNames(r.GetGDCMSeriesFileNames(str(folder)))
        return sitk.GetArrayFromImage(r.Execute())

    def ours_series():
        return load(folder).values

    def ours_series_lazy():
        return load(folder)

    def nib_nifti():
        return np.array(nib.load(str(nii)).dataobj)  # a real read (asarray would return a memmap)

    def ours_nifti():
        return load(nii).values

    rows = []
    t_anchor, a = _median(sitk_series, args.repeats)
    t_ours, b = _median(ours_series, args.repeats)
    assert np.array_equal(np.asarray(a, np.float32), b), "DICOM volumes differ"
    t_lazy, _ = _median(ours_series_lazy, args.repeats)
    rows.append((f"DICOM series {args.slices} x 512 x 512 (HU)", "SimpleITK ImageSeriesReader", t_anchor, t_ours))
    rows.append(("DICOM series headers only (lazy load)", "SimpleITK ImageSeriesReader", t_anchor, t_lazy))
    t_anchor, a = _median(nib_nifti, args.repeats)
    t_ours, b = _median(ours_nifti, args.repeats)
    assert np.array_equal(a.transpose(2, 1, 0), b), "NIfTI volumes differ"
    rows.append((f"NIfTI {args.slices} x 512 x 512 int16", "nibabel dataobj", t_anchor, t_ours))

    print(f"{'workload':48s} {'anchor':30s} {'anchor s':>9s} {'ours s':>8s} {'ratio':>6s}")
    for name, anchor, ta, to in rows:
        print(f"{name:48s} {anchor:30s} {ta:9.3f} {to:8.3f} {to / ta:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
