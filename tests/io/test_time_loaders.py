"""Frame times, echo times and b-values on the t dim: NIfTI + BIDS sidecar/.bval, DICOM, OME-TIFF."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydicom.uid import generate_uid

from multiscale.errors import LoadError
from multiscale.image import spatial_image
from multiscale.io.nifti import read_nifti, write_nifti
from multiscale.io.tiff import read_tiff, write_ome_tiff

from ._dicom_synth import image_slice, save


def _series(nt: int = 4):
    return spatial_image(
        np.arange(nt * 2 * 3 * 3, dtype=np.float32).reshape(nt, 2, 3, 3),
        spacing=(2.0, 1.0, 1.0),
        dims=("t", "z", "y", "x"),
    )


def test_nifti_bids_sidecar_frame_times(tmp_path):
    img = _series()
    write_nifti(img, tmp_path / "sub-1_pet.nii.gz")
    (tmp_path / "sub-1_pet.json").write_text(
        json.dumps({"FrameTimesStart": [0, 10, 30, 60], "FrameDuration": [10, 20, 30, 60], "ImageDecayCorrected": True})
    )
    out = read_nifti(tmp_path / "sub-1_pet.nii.gz")
    assert out["t"].values.tolist() == [5.0, 20.0, 45.0, 90.0]
    assert out["frame_duration"].values.tolist() == [10.0, 20.0, 30.0, 60.0]
    assert out.attrs["bids_ImageDecayCorrected"] is True
    # written back: the times travel
    write_nifti(out, tmp_path / "copy.nii.gz")
    assert read_nifti(tmp_path / "copy.nii.gz")["t"].values.tolist() == [5.0, 20.0, 45.0, 90.0]


def test_nifti_repetition_time_bval_and_bad_sidecars(tmp_path):
    img = _series(3)
    write_nifti(img, tmp_path / "dce.nii")
    (tmp_path / "dce.json").write_text(json.dumps({"RepetitionTime": 4.0}))
    assert read_nifti(tmp_path / "dce.nii")["t"].values.tolist() == [2.0, 6.0, 10.0]
    write_nifti(img, tmp_path / "dwi.nii")
    (tmp_path / "dwi.bval").write_text("0 500 1000\n")
    dwi = read_nifti(tmp_path / "dwi.nii")
    assert dwi["b_value"].values.tolist() == [0, 500, 1000] and "t" not in dwi.coords
    (tmp_path / "dwi.bval").write_text("0 500\n")
    with pytest.raises(LoadError, match="2 values for 3 frames"):
        read_nifti(tmp_path / "dwi.nii")
    (tmp_path / "dce.json").write_text(json.dumps({"FrameTimesStart": [0, 10, 5], "FrameDuration": [1, 1, 1]}))
    with pytest.raises(LoadError, match="do not increase"):
        read_nifti(tmp_path / "dce.nii")
    (tmp_path / "dce.json").write_text("{broken")
    with pytest.raises(LoadError, match="cannot be parsed"):
        read_nifti(tmp_path / "dce.nii")
    write_nifti(img, tmp_path / "bare.nii")
    with pytest.warns(UserWarning, match="no frame times"):
        bare = read_nifti(tmp_path / "bare.nii")
    assert "t" not in bare.coords and bare.attrs["warnings"]


def test_ome_tiff_delta_t_round_trip(tmp_path):
    img = _series().assign_coords(t=[0.0, 2.5, 5.0, 12.0])
    write_ome_tiff(img, tmp_path / "lapse.ome.tif")
    assert read_tiff(tmp_path / "lapse.ome.tif")["t"].values.tolist() == [0.0, 2.5, 5.0, 12.0]


def _dynamic_pet(folder, frames):
    uid = generate_uid()
    inst = 1
    for k, (start, dur) in enumerate(frames):
        for z in range(2):
            minutes, seconds = divmod(int(start), 60)
            ds = image_slice(
                np.full((4, 4), 10 * k + z, np.int16),
                (0.0, 0.0, 2.0 * z),
                modality="PT",
                series_uid=uid,
                instance=inst,
                AcquisitionTime=f"10{minutes:02d}{seconds:02d}",
                ActualFrameDuration=int(dur * 1000),
                FrameReferenceTime=(start + dur / 2) * 1000,
                DecayCorrection="START",
                DecayFactor=1.0 + 0.01 * k,
            )
            save(ds, folder / f"f{inst:03d}.dcm")
            inst += 1


def test_dynamic_pet_dicom_frame_times(tmp_path):
    from multiscale.io.dicom import read_dicom

    _dynamic_pet(tmp_path, [(0, 30), (30, 30), (60, 60), (120, 120)])
    img = read_dicom(tmp_path)
    assert img.dims == ("t", "z", "y", "x")
    assert img["t"].values.tolist() == [15.0, 45.0, 90.0, 180.0]
    assert img["frame_duration"].values.tolist() == [30.0, 30.0, 60.0, 120.0]
    assert img["decay_factor"].values.tolist() == pytest.approx([1.0, 1.01, 1.02, 1.03])
    assert img.attrs["decay_correction"] == "START"
    assert float(img.isel(t=2, z=1)[0, 0]) == 21


def test_multi_echo_dicom_echo_times(tmp_path):
    from multiscale.io.dicom import read_dicom

    uid = generate_uid()
    for k, te in enumerate([2.0, 4.0, 8.0]):
        for z in range(2):
            ds = image_slice(
                np.full((4, 4), 100 - 10 * k, np.int16),
                (0.0, 0.0, 2.0 * z),
                modality="CT",
                series_uid=uid,
                instance=1 + 2 * k + z,
                EchoTime=te,
                AcquisitionTime="101010",
            )
            ds.Modality = "MR"
            save(ds, tmp_path / f"e{k}{z}.dcm")
    img = read_dicom(tmp_path)
    assert img["echo_time"].values.tolist() == pytest.approx([0.002, 0.004, 0.008])


def test_enhanced_multiframe_per_frame_times_and_echoes(tmp_path):
    """Enhanced MR: two slices x three echoes in one file; echo times from the per-frame MREchoSequence."""
    from pydicom.dataset import Dataset

    from multiscale.io.dicom import read_dicom

    from . import _dicom_synth as syn

    uid = generate_uid()
    ds = Dataset()
    ds.file_meta = syn._meta("1.2.840.10008.5.1.4.1.1.4.1", uid)
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.4.1", uid
    ds.Modality, ds.SeriesInstanceUID, ds.StudyInstanceUID = "MR", generate_uid(), "1.2.3"
    ds.FrameOfReferenceUID = "1.2.3.4"
    ds.NumberOfFrames, ds.Rows, ds.Columns = 6, 3, 4
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    tes = (2.0, 5.0, 9.0)
    frames, per = [], []
    for e, te in enumerate(tes):
        for z in range(2):
            frames.append(np.full((3, 4), 100 * (e + 1) + z, np.int16))
            f, pp, echo = Dataset(), Dataset(), Dataset()
            pp.ImagePositionPatient = [0.0, 0.0, 2.0 * z]
            echo.EffectiveEchoTime = te
            f.PlanePositionSequence, f.MREchoSequence = [pp], [echo]
            per.append(f)
    ds.PixelData = np.stack(frames).tobytes()
    shared, pm, po = Dataset(), Dataset(), Dataset()
    pm.PixelSpacing, pm.SliceThickness = [0.5, 0.5], 2.0
    po.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    shared.PixelMeasuresSequence, shared.PlaneOrientationSequence = [pm], [po]
    ds.SharedFunctionalGroupsSequence = [shared]
    ds.PerFrameFunctionalGroupsSequence = per
    img = read_dicom(syn.save(ds, tmp_path / "me.dcm"))
    assert img.dims == ("t", "z", "y", "x")
    assert img["echo_time"].values.tolist() == pytest.approx([0.002, 0.005, 0.009])
    assert float(img.isel(t=2, z=1)[0, 0]) == 301
