"""OME-Zarr outputs as users of NGFF tools see them (issue 21): masks as NGFF labels, per-channel rendering
metadata (``omero`` windows and colours), still NGFF 0.5 (validated with ome-zarr-models when installed)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from multiscale.image import spacing, spatial_image
from multiscale.io import load, save


def _stack():
    rng = np.random.default_rng(0)
    z, y, x = np.meshgrid(np.arange(6.0), np.arange(40.0), np.arange(50.0), indexing="ij")
    mri = 1000.0 + 50.0 * rng.standard_normal(z.shape)
    mri[0, 0, 0] = 1e6  # one hot pixel: a min/max window would make the map black
    pet = 0.1 * x + rng.random(z.shape)
    tumour = ((y - 20) ** 2 + (x - 25) ** 2 < 100).astype(np.float32)
    vessels = (np.abs(y - 10) < 2).astype(np.float32) * 1
    data = np.stack([mri, pet, tumour, vessels]).astype(np.float32)
    return spatial_image(data, spacing=(2.0, 0.5, 0.5), origin=(1.0, -3.0, 4.0), dims=("c", "z", "y", "x"),
                         channels=["mri", "pet", "mask:tumour", "mask:vessels@fluorescence"], units="a.u.")


def test_masks_are_ngff_labels_and_read_back_as_channels(tmp_path):
    img = _stack()
    p = save(img, tmp_path / "maps.ome.zarr")
    root = json.loads((p / "zarr.json").read_text())["attributes"]["ome"]
    assert [c["label"] for c in root["omero"]["channels"]] == ["mri", "pet"]  # masks are not image channels
    labels = json.loads((p / "labels" / "zarr.json").read_text())["attributes"]["ome"]
    assert labels == {"version": "0.5", "labels": ["tumour", "vessels@fluorescence"]}
    tumour = json.loads((p / "labels" / "tumour" / "zarr.json").read_text())["attributes"]["ome"]
    il = tumour["image-label"]
    assert il["source"] == {"image": "../../"} and il["colors"][0]["label-value"] == 1
    assert len(il["colors"][0]["rgba"]) == 4
    ms = tumour["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["z", "y", "x"]
    assert ms["datasets"][0]["coordinateTransformations"][0]["scale"] == [2.0, 0.5, 0.5]
    arr = json.loads((p / "labels" / "tumour" / "0" / "zarr.json").read_text())
    assert arr["data_type"] == "uint8"
    back = load(p)
    assert list(back.coords["c"].values) == list(img.coords["c"].values)
    np.testing.assert_array_equal(back.values, img.values)
    assert spacing(back) == pytest.approx(spacing(img))
    # a label group is itself an NGFF image, in the same physical space
    lab = load(p / "labels" / "tumour")
    np.testing.assert_array_equal(lab.values, img.sel(c="mask:tumour").values.astype(np.uint8))
    np.testing.assert_allclose(lab.coords["x"].values, img.coords["x"].values)


def test_rendering_windows_are_robust_per_channel_and_colours_differ(tmp_path):
    img = _stack()
    p = save(img, tmp_path / "maps.ome.zarr")
    chans = json.loads((p / "zarr.json").read_text())["attributes"]["ome"]["omero"]["channels"]
    mri, pet = (c["window"] for c in chans)
    assert mri["max"] == 1e6 and mri["end"] < 1300.0  # the hot pixel does not set the contrast
    assert mri["start"] > 800.0 and pet["end"] < 6.0  # each channel its own range
    assert pet["min"] <= pet["start"] < pet["end"] <= pet["max"]
    assert chans[0]["color"] == "FFFFFF" and chans[1]["color"] != chans[0]["color"]


def test_outputs_validate_as_ngff_05(tmp_path):
    models = pytest.importorskip("ome_zarr_models.v05")
    zarr = pytest.importorskip("zarr")
    p = save(_stack(), tmp_path / "maps.ome.zarr")
    image = models.Image.from_zarr(zarr.open_group(str(p), mode="r"))
    assert image.ome_attributes.version == "0.5" if hasattr(image, "ome_attributes") else True
    labels = models.Labels.from_zarr(zarr.open_group(str(p / "labels"), mode="r"))
    assert labels is not None
    for name in ("tumour", "vessels@fluorescence"):
        models.ImageLabel.from_zarr(zarr.open_group(str(p / "labels" / name), mode="r"))


def test_a_mask_image_stays_an_image(tmp_path):
    m = spatial_image(np.zeros((2, 8, 8), np.uint8), spacing=0.1, dims=("c", "y", "x"),
                      channels=["mask:a", "mask:b"], aspect="mask")
    p = save(m, tmp_path / "m.ome.zarr")
    assert not (p / "labels").exists()
    assert list(load(p).coords["c"].values) == ["mask:a", "mask:b"]
