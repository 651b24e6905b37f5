"""load/save: dispatch by content (not by suffix), option checks, imzML routing, clear errors."""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pytest
import tifffile

from multiscale.image import spatial_image
from multiscale.io import load, save
from multiscale.io._common import LoadError
from multiscale.io.dispatch import sniff

from . import _dicom_synth as syn


def test_content_wins_over_suffix(tmp_path):
    nib.save(nib.Nifti1Image(np.ones((3, 4, 5), np.int16), np.eye(4)), str(tmp_path / "v.nii"))
    shutil.copy(tmp_path / "v.nii", tmp_path / "volume.dat")
    assert sniff(tmp_path / "volume.dat") == "nifti"
    assert load(tmp_path / "volume.dat").shape == (5, 4, 3)
    tifffile.imwrite(tmp_path / "img.bin", np.zeros((4, 4), np.uint8), resolution=(10.0, 10.0),
                     resolutionunit="CENTIMETER")
    assert sniff(tmp_path / "img.bin") == "tiff"
    _, paths = syn.write_series(tmp_path / "ct", np.zeros((2, 3, 3), np.int16))
    renamed = tmp_path / "ct" / "IMAGE0001"
    paths[0].rename(renamed)
    assert sniff(renamed) == "dicom"
    assert sniff(tmp_path / "ct") == "dicom-folder"
    assert load(tmp_path / "ct").sizes["z"] == 2


def test_rtstruct_detected_by_modality(tmp_path):
    p = syn.rtstruct(tmp_path / "file.dcm", {"GTV": [np.zeros((3, 3))]})
    assert sniff(p) == "rtstruct"


def test_bad_files(tmp_path):
    (tmp_path / "empty.nii").write_bytes(b"")
    with pytest.raises(LoadError, match="empty"):
        load(tmp_path / "empty.nii")
    (tmp_path / "junk.nii").write_bytes(b"\x00\x01junk" * 100)
    with pytest.raises(LoadError) as err:
        load(tmp_path / "junk.nii")
    assert "junk.nii" in str(err.value) and "unrecognised" in str(err.value)
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.nii")
    (tmp_path / "spectra.mzML").write_text('<?xml version="1.0"?><mzML><cvList/></mzML>')
    with pytest.raises(LoadError, match="IMS"):
        load(tmp_path / "spectra.mzML")


def test_options_that_do_not_apply(tmp_path):
    nib.save(nib.Nifti1Image(np.ones((3, 4, 5), np.int16), np.eye(4)), str(tmp_path / "v.nii"))
    with pytest.raises(TypeError, match="level"):
        load(tmp_path / "v.nii", level=1)
    with pytest.raises(LoadError, match="suv="):
        load(tmp_path / "v.nii", suv=True)
    with pytest.raises(TypeError, match="reference"):
        load(tmp_path / "v.nii", resample=True)


def test_save_by_suffix_and_errors(tmp_path):
    img = spatial_image(np.zeros((2, 3, 4), np.float32), spacing=1.0, modality="MR")
    for name, kind in [("a.nii", "nifti"), ("a.nii.gz", "nifti"), ("a.nrrd", "nrrd"), ("a.mha", "metaimage"),
                       ("a.ome.tiff", "tiff"), ("a.ome.zarr", "omezarr")]:
        assert sniff(save(img, tmp_path / name)) == kind
    with pytest.raises(LoadError, match="suffix"):
        save(img, tmp_path / "a.xyz")
    with pytest.raises(TypeError):
        save(np.zeros((2, 2)), tmp_path / "a.nii")


def test_modality_option_sets_attrs(tmp_path):
    nib.save(nib.Nifti1Image(np.ones((3, 4, 5), np.int16), np.eye(4)), str(tmp_path / "v.nii"))
    img = load(tmp_path / "v.nii", modality="MR", agent="Gd-DTPA")
    assert img.attrs["modality"] == "MR" and img.attrs["agent"] == "Gd-DTPA"
    assert img.attrs["provenance"]["source"].endswith("v.nii")


def test_imzml_dispatch(reference_data, tmp_path):
    from multiscale.io.imzml import read_imzml

    src = reference_data / "imzml" / "Example_Continuous.imzML"
    tic = load(src, cache=False)
    np.testing.assert_allclose(tic.values, read_imzml(src, cache=False).tic().values)
    ions = load(src, mz=[150.0, 300.0], tol=0.2, tol_unit="da", cache=False)
    ref = read_imzml(src, cache=False).ion_images([150.0, 300.0], tol=0.2, tol_unit="da")
    np.testing.assert_allclose(ions.values, ref.values)
    assert sniff(src) == "imzml"
    with pytest.raises(TypeError, match="mz="):
        load(src, tol=5.0, cache=False)


def test_lazy_images_pickle_for_distributed_workers(tmp_path):
    import pickle

    import cloudpickle

    syn.write_series(tmp_path / "ct", np.arange(3 * 4 * 4, dtype=np.int16).reshape(3, 4, 4), intercepts=[-5] * 3)
    tifffile.imwrite(tmp_path / "a.ome.tif", np.arange(2 * 6 * 7, dtype=np.uint16).reshape(2, 6, 7), ome=True,
                     metadata={"axes": "CYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5})
    nib.save(nib.Nifti1Image(np.ones((3, 4, 5), np.int16), np.eye(4)), str(tmp_path / "v.nii"))
    for p in (tmp_path / "ct", tmp_path / "a.ome.tif", tmp_path / "v.nii"):
        img = load(p)
        back = pickle.loads(cloudpickle.dumps(img))
        np.testing.assert_array_equal(back.values, img.values)
