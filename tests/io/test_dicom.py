"""DICOM series: discovery, ordering, rescale, geometry, laziness, multi-frame, bad input; STS_019 vs NIfTI."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from multiscale.image import direction, index_to_world, origin, spacing
from multiscale.io import load
from multiscale.io._common import LoadError
from multiscale.io.dicom import list_series, read_dicom

from . import _dicom_synth as syn


def _volume(nz=5, ny=4, nx=6):
    # each voxel encodes its own index, so ordering mistakes show
    z, y, x = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    return (100 * z + 10 * y + x).astype(np.int16)


def test_slices_ordered_by_position_not_file_name_or_instance(tmp_path):
    vol = _volume()
    syn.write_series(tmp_path, vol, spacing_z=2.5, origin=(-10, -20, 30))
    img = load(tmp_path)
    assert img.dims == ("z", "y", "x")
    np.testing.assert_array_equal(img.values, vol)
    assert spacing(img) == pytest.approx((2.5, 0.5, 0.75))
    assert origin(img) == pytest.approx((30.0, -20.0, -10.0))
    assert img.attrs["modality"] == "CT" and img.attrs["units"] == "HU"
    assert img.attrs["provenance"]["reader"] == "pydicom"


def test_lazy_one_block_per_slice(tmp_path):
    syn.write_series(tmp_path, _volume())
    img = read_dicom(tmp_path)
    assert isinstance(img.data, da.Array)
    assert img.data.numblocks == (5, 1, 1)


def test_per_slice_rescale_slope_and_intercept(tmp_path):
    vol = _volume()
    slopes = [1.0, 2.0, 0.5, 1.0, 3.0]
    inter = [-1024, -1000, 0, 7, -3]
    syn.write_series(tmp_path, vol, slopes=slopes, intercepts=inter)
    img = load(tmp_path)
    expected = vol * np.asarray(slopes)[:, None, None] + np.asarray(inter)[:, None, None]
    np.testing.assert_allclose(img.values, expected)
    assert img.dtype == np.float32


def test_oblique_orientation_matches_each_slice_position(tmp_path):
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    iop = (c, s, 0.0, 0.0, 0.0, -1.0)  # rows along (c, s, 0), columns along -z: a coronal-oblique stack
    vol = _volume(4, 3, 5)
    _, paths = syn.write_series(tmp_path, vol, orientation=iop, spacing_z=3.0, origin=(5.0, 6.0, 7.0))
    img = load(tmp_path)
    for p in paths:
        ds = pydicom.dcmread(p)
        k = [i for i in range(4) if np.array_equal(ds.pixel_array, vol[i])][0]
        # voxel (k, 0, 0) centre is the slice's ImagePositionPatient; (k, 1, 2) moves along col/row cosines
        np.testing.assert_allclose(index_to_world(img, [k, 0, 0], xyz=False)[::-1], ds.ImagePositionPatient,
                                   atol=1e-6)
        expect = (np.asarray(ds.ImagePositionPatient, float) + 2 * 0.75 * np.asarray(iop[:3]) + 1 * 0.5
                  * np.asarray(iop[3:]))
        np.testing.assert_allclose(index_to_world(img, [k, 1, 2])[::-1], expect, atol=1e-6)
    d = direction(img)
    np.testing.assert_allclose(d.T @ d, np.eye(3), atol=1e-9)


def test_two_series_error_lists_them_and_series_option_picks(tmp_path):
    u1, _ = syn.write_series(tmp_path / "a", _volume(3))
    u2, _ = syn.write_series(tmp_path / "b", _volume(4) + 1)
    with pytest.raises(LoadError) as err:
        load(tmp_path)
    msg = str(err.value)
    assert str(tmp_path) in msg and "SeriesInstanceUID" in msg and u1 in msg and u2 in msg and "series=" in msg
    img = load(tmp_path, series=u2)
    assert img.sizes["z"] == 4
    assert [s.uid for s in list_series(tmp_path)] == [u2, u1]
    with pytest.raises(LoadError, match="matches no series"):
        load(tmp_path, series="9.9.9")


def test_missing_slice_is_reported_and_can_be_filled(tmp_path):
    vol = _volume(6)
    syn.write_series(tmp_path, vol, skip=(3,))
    with pytest.raises(LoadError) as err:
        load(tmp_path)
    msg = str(err.value)
    assert "ImagePositionPatient" in msg and "1 missing slice" in msg and str(tmp_path) in msg
    with pytest.warns(UserWarning, match="missing"):
        img = load(tmp_path, allow_missing=True)
    assert img.sizes["z"] == 6
    assert np.isnan(img.values[3]).all()
    np.testing.assert_array_equal(img.values[4], vol[4])


def test_uneven_spacing_is_an_error(tmp_path):
    syn.write_series(tmp_path, _volume(4), z_offsets=[0.0, 2.0, 4.0, 7.0])
    with pytest.raises(LoadError, match="uneven slice spacing"):
        load(tmp_path)


def test_gantry_tilt_shear_is_an_error(tmp_path):
    vol = _volume(4)
    syn.write_series(tmp_path, vol, per_slice=lambda k: {"ImagePositionPatient": [0.0, 1.0 * k, 2.0 * k]})
    with pytest.raises(LoadError, match="not orthonormal|sheared"):
        load(tmp_path)


def test_truncated_slice_names_file_and_field(tmp_path):
    _, paths = syn.write_series(tmp_path, _volume(3))
    raw = paths[0].read_bytes()
    paths[0].write_bytes(raw[:-20])
    with pytest.raises(LoadError) as err:
        load(tmp_path)
    assert paths[0].name in str(err.value) and "PixelData" in str(err.value) and "truncated" in str(err.value)


def test_corrupt_header_names_file(tmp_path):
    _, paths = syn.write_series(tmp_path, _volume(3))
    raw = bytearray(paths[1].read_bytes())
    paths[1].write_bytes(bytes(raw[:200]))  # cut inside the header
    with pytest.raises(LoadError) as err:
        load(tmp_path)
    assert paths[1].name in str(err.value)


def test_zero_pixel_spacing_is_an_error(tmp_path):
    syn.write_series(tmp_path, _volume(3), pixel_spacing=(0.0, 0.5))
    with pytest.raises(LoadError, match=r"PixelSpacing \(0028,0030\)"):
        load(tmp_path)


def test_single_file_loads_its_series(tmp_path):
    vol = _volume(4)
    _, paths = syn.write_series(tmp_path, vol)
    img = load(paths[0])
    np.testing.assert_array_equal(img.values, vol)


def test_dynamic_series_gets_a_time_dim(tmp_path):
    vol = _volume(3)
    uid = generate_uid()
    syn.write_series(tmp_path / "f1", vol, series_uid=uid, modality="PT", FrameReferenceTime=1000.0)
    syn.write_series(tmp_path / "f2", vol + 1, series_uid=uid, modality="PT", FrameReferenceTime=5000.0)
    img = load(tmp_path)
    assert img.dims == ("t", "z", "y", "x")
    np.testing.assert_array_equal(img.values[0], vol)
    np.testing.assert_array_equal(img.values[1], vol + 1)


def test_enhanced_multiframe(tmp_path):
    vol = _volume(4, 3, 5)
    uid = generate_uid()
    ds = Dataset()
    ds.file_meta = syn._meta(syn.ENHANCED_CT, uid)
    ds.SOPClassUID, ds.SOPInstanceUID = syn.ENHANCED_CT, uid
    ds.Modality, ds.SeriesInstanceUID, ds.StudyInstanceUID = "CT", generate_uid(), "1.2.3"
    ds.FrameOfReferenceUID = "1.2.3.4"
    ds.NumberOfFrames = 4
    ds.Rows, ds.Columns = 3, 5
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    order = [2, 0, 3, 1]  # frames stored out of order
    ds.PixelData = np.stack([vol[k] for k in order]).astype(np.int16).tobytes()
    shared = Dataset()
    pm, po, pvt = Dataset(), Dataset(), Dataset()
    pm.PixelSpacing, pm.SliceThickness = [0.4, 0.6], 1.5
    po.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    pvt.RescaleSlope, pvt.RescaleIntercept, pvt.RescaleType = 2.0, -5.0, "HU"
    shared.PixelMeasuresSequence, shared.PlaneOrientationSequence = [pm], [po]
    shared.PixelValueTransformationSequence = [pvt]
    ds.SharedFunctionalGroupsSequence = [shared]
    per = []
    for k in order:
        f, pp = Dataset(), Dataset()
        pp.ImagePositionPatient = [1.0, 2.0, 10.0 + 1.5 * k]
        f.PlanePositionSequence = [pp]
        per.append(f)
    ds.PerFrameFunctionalGroupsSequence = per
    path = syn.save(ds, tmp_path / "enhanced.dcm")
    img = load(path)
    np.testing.assert_allclose(img.values, vol * 2.0 - 5.0)
    assert spacing(img) == pytest.approx((1.5, 0.4, 0.6))
    assert origin(img) == pytest.approx((10.0, 2.0, 1.0))


def test_suv_on_ct_is_an_error(tmp_path):
    syn.write_series(tmp_path, _volume(3))
    with pytest.raises(LoadError, match="Modality"):
        load(tmp_path, suv=True)


# --- reference data ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["CT", "MR_T1", "PET"])
def test_sts019_dicom_and_nifti_identical(reference_data, name):
    root = reference_data / "ibsi-sts019"
    dcm = load(root / "dicom" / "STS_019" / name / "image")
    nii = load(root / "nifti" / "STS_019" / f"{name}_image.nii.gz")
    assert dcm.shape == nii.shape and dcm.dims == nii.dims
    np.testing.assert_allclose(dcm.values.astype(np.float64), nii.values.astype(np.float64), rtol=1e-6, atol=1e-6)
    # world coordinates of every corner and of the voxel coords agree (NIfTI stores float32 headers)
    corners = np.array(np.meshgrid(*[[0, s - 1] for s in dcm.shape], indexing="ij")).reshape(3, -1).T
    np.testing.assert_allclose(index_to_world(dcm, corners), index_to_world(nii, corners), atol=1e-4)
    for d in ("z", "y", "x"):
        np.testing.assert_allclose(dcm.coords[d].values, nii.coords[d].values, atol=1e-4)
    np.testing.assert_allclose(direction(dcm), direction(nii), atol=1e-6)


def test_files_without_preamble_and_non_dicom_neighbours(tmp_path):
    vol = _volume(3)
    _, paths = syn.write_series(tmp_path, vol)
    ds = pydicom.dcmread(paths[0])
    ds.preamble = None
    raw = paths[0].read_bytes()
    assert raw[128:132] == b"DICM"
    # strip preamble and file meta: an old-style bare dataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, False
    write_dataset(buf, ds)
    paths[0].write_bytes(buf.getvalue())
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "README.dcm").write_bytes(b"hello")
    img = load(tmp_path)
    np.testing.assert_array_equal(img.values, vol)


def test_planar_rgb_secondary_capture(tmp_path):
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 1] = 120
    rgb[1, 2] = (255, 0, 7)
    ds = syn.image_slice(np.zeros((4, 5)), (0, 0, 0), series_uid=generate_uid(), modality="XC")
    for tag in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"):
        delattr(ds, tag)
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = rgb.tobytes()
    p = syn.save(ds, tmp_path / "photo.dcm")
    with pytest.warns(UserWarning, match="PixelSpacing"):
        img = load(p)
    assert img.dims == ("c", "y", "x") and list(img.coords["c"].values) == ["R", "G", "B"]
    np.testing.assert_array_equal(img.values, rgb.transpose(2, 0, 1))
    assert img.attrs["spacing_known"] is False
    assert spacing(load(p, spacing=(0.01, 0.01))) == (0.01, 0.01)


def test_jpeg_lossless_slices_decoded_through_gdcm(tmp_path):
    import imagecodecs
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGLosslessSV1

    vol = (np.arange(3 * 6 * 7).reshape(3, 6, 7) * 37 % 3000).astype(np.int16)
    _, paths = syn.write_series(tmp_path, vol, slopes=[2.0] * 3, intercepts=[-1024] * 3)
    for p in paths:
        ds = pydicom.dcmread(p)
        stored = ds.pixel_array.astype(np.uint16)
        ds.PixelRepresentation = 0
        ds.PixelData = encapsulate([imagecodecs.jpeg8_encode(stored, lossless=True, predictor=1,
                                                             bitspersample=16)])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = JPEGLosslessSV1
        ds.save_as(p, enforce_file_format=True)
    img = load(tmp_path)
    np.testing.assert_allclose(img.values, vol * 2.0 - 1024.0)


def test_duplicate_slice_is_reported(tmp_path):
    import shutil

    _, paths = syn.write_series(tmp_path, _volume(4))
    shutil.copy(paths[0], tmp_path / "copy_of_one.dcm")
    with pytest.raises(LoadError) as err:
        load(tmp_path)
    assert "ImagePositionPatient" in str(err.value) and "duplicate" in str(err.value)


def test_localiser_in_series_is_left_out_with_a_warning(tmp_path):
    vol = _volume(4)
    uid, _ = syn.write_series(tmp_path, vol)
    loc = syn.image_slice(np.ones((4, 6)), (0, 0, 0), orientation=(1, 0, 0, 0, 0, -1), series_uid=uid,
                          pixel_spacing=(0.5, 0.75))
    syn.save(loc, tmp_path / "localiser.dcm")
    with pytest.warns(UserWarning, match="localiser.dcm"):
        img = load(tmp_path)
    np.testing.assert_array_equal(img.values, vol)
