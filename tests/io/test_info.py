"""describe() and format_info(): the fields of `multiscale info FILE`."""

from __future__ import annotations

import numpy as np
import tifffile

from multiscale.image import spatial_image
from multiscale.io import save
from multiscale.io.info import describe, format_info

from . import _dicom_synth as syn


def test_describe_nifti(tmp_path):
    img = spatial_image(np.zeros((3, 4, 5), np.float32), spacing=(2.0, 0.5, 0.25), origin=(1.0, 2.0, 3.0),
                        modality="MR", units="ms")
    p = save(img, tmp_path / "t1.nii.gz")
    d = describe(p)
    assert d["format"] == "nifti" and d["modality"] == "MR" and d["units"] == "ms"
    assert d["dims"] == ("z", "y", "x") and d["shape"] == (3, 4, 5)
    assert d["spacing"] == (2.0, 0.5, 0.25) and d["origin"] == (1.0, 2.0, 3.0)
    assert d["direction"] == np.eye(3).tolist()
    assert d["size_on_disk"] == p.stat().st_size and d["warnings"] == []
    text = format_info(d)
    assert "spacing (mm): z=2 y=0.5 x=0.25" in text
    assert "modality: MR" in text and "units: ms" in text and "warnings: none" in text


def test_describe_uncalibrated_tiff_reports_warning(tmp_path):
    p = tmp_path / "raw.tif"
    tifffile.imwrite(p, np.zeros((2, 6, 7), np.uint8), photometric="minisblack")
    d = describe(p)
    assert d["spacing_known"] is False and d["warnings"]
    text = format_info(d)
    assert "NOT CALIBRATED" in text and "spacing" in text.split("warnings:")[1]


def test_describe_dicom_folder_with_channels(tmp_path):
    syn.write_series(tmp_path / "ct", np.zeros((3, 4, 4), np.int16), intercepts=[-1024] * 3)
    d = describe(tmp_path / "ct")
    assert d["format"] == "dicom-folder" and d["modality"] == "CT" and d["units"] == "HU"
    assert d["size_on_disk"] > 0 and d["series_uid"]
    maps = spatial_image(np.zeros((2, 4, 4), np.float32), spacing=0.02, dims=("c", "y", "x"),
                         channels=["DAPI", "GFP"])
    d2 = describe(save(maps, tmp_path / "m.ome.zarr"))
    assert d2["channels"] == ["DAPI", "GFP"] and "channels: DAPI, GFP" in format_info(d2)


def test_describe_rtstruct_lists_rois(tmp_path):
    sq = np.array([[0, 0, 1.0], [2, 0, 1.0], [2, 2, 1.0]])
    p = syn.rtstruct(tmp_path / "rs.dcm", {"GTV": [sq, sq + [0, 0, 2.0]], "Liver": [sq]})
    d = describe(p)
    assert d["format"] == "rtstruct" and d["rois"] == ["GTV (2 contours)", "Liver (1 contours)"]
    text = format_info(d)
    assert "rois: GTV (2 contours); Liver (1 contours)" in text and "reference=" in text
