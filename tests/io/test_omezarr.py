"""OME-Zarr: write 0.5 with pyramid, units and channel names; read 0.4 and 0.5; atomic overwrite."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import zarr

from multiscale.image import direction, origin, spacing, spatial_image
from multiscale.io import load, save
from multiscale.io._common import LoadError


def _maps():
    rng = np.random.default_rng(0)
    return spatial_image(rng.random((2, 600, 520)).astype(np.float32), spacing=(0.02, 0.01), origin=(5.0, -3.0),
                         dims=("c", "y", "x"), channels=[544.18, 760.58], modality="MSI", agent="doxorubicin",
                         units="TIC-normalised", provenance={"source": "x.imzML"})


def test_write_05_metadata(tmp_path):
    p = save(_maps(), tmp_path / "maps.ome.zarr")
    meta = json.loads((p / "zarr.json").read_text())
    ome = meta["attributes"]["ome"]
    assert ome["version"] == "0.5"
    ms = ome["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["c", "y", "x"]
    assert ms["axes"][1] == {"name": "y", "type": "space", "unit": "millimeter"}
    assert [d["path"] for d in ms["datasets"]] == ["0", "1", "2"]  # 520 -> 260 -> 130 pixels
    s1 = ms["datasets"][1]["coordinateTransformations"]
    assert s1[0]["scale"] == pytest.approx([1.0, 0.04, 0.02])
    # a 2x2 block mean's centre sits half a base pixel in from the first base centre
    assert s1[1]["translation"] == pytest.approx([0.0, 5.0 + 0.01, -3.0 + 0.005])
    assert [c["label"] for c in ome["omero"]["channels"]] == ["544.18", "760.58"]
    assert meta["attributes"]["multiscale"]["agent"] == "doxorubicin"


def test_round_trip_and_levels(tmp_path):
    img = _maps()
    p = save(img, tmp_path / "maps.ome.zarr")
    back = load(p)
    np.testing.assert_array_equal(back.values, img.values)
    assert spacing(back) == pytest.approx(spacing(img)) and origin(back) == pytest.approx(origin(img))
    assert list(back.coords["c"].values) == [544.18, 760.58]
    assert (back.attrs["modality"], back.attrs["units"], back.attrs["agent"]) == ("MSI", "TIC-normalised",
                                                                                 "doxorubicin")
    lvl1 = load(p, level=1)
    assert lvl1.shape == (2, 300, 260)
    np.testing.assert_allclose(lvl1.values[0, 0, 0], img.values[0, :2, :2].mean(), rtol=1e-6)
    # world positions agree across levels: level-1 voxel (0, 0) is the centre of base voxels 0..1
    assert float(lvl1.y[0]) == pytest.approx(float(img.y[:2].mean()))
    assert load(p, resolution=0.05).shape == (2, 300, 260)  # level 2 has 0.08 mm rows: too coarse
    assert load(p, resolution=0.08).shape == (2, 150, 130)


def test_mask_pyramid_is_subsampled_not_averaged(tmp_path):
    m = np.zeros((512, 512), np.uint8)
    m[::2, ::2] = 7
    img = spatial_image(m, spacing=0.01, aspect="mask")
    p = save(img, tmp_path / "m.ome.zarr")
    lvl1 = load(p, level=1)
    assert set(np.unique(lvl1.values)) == {7}
    assert origin(lvl1) == pytest.approx(origin(img))


def test_3d_with_direction_kept(tmp_path):
    d = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])
    img = spatial_image(np.arange(4 * 6 * 8, dtype=np.int16).reshape(4, 6, 8), spacing=(2.0, 1.0, 0.5),
                        origin=(1.0, 2.0, 3.0), direction=d, modality="CT", units="HU")
    back = load(save(img, tmp_path / "ct.ome.zarr", levels=1))
    np.testing.assert_array_equal(back.values, img.values)
    np.testing.assert_allclose(direction(back), d)
    assert back.dims == ("z", "y", "x") and back.dtype == np.int16


def test_overwrite_is_atomic(tmp_path):
    p = tmp_path / "a.ome.zarr"
    save(spatial_image(np.zeros((8, 8), np.float32), spacing=1.0), p)
    save(spatial_image(np.ones((4, 4), np.float32), spacing=1.0), p)
    assert load(p).shape == (4, 4)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.ome.zarr"]


def test_read_ngff_04_zarr_v2(tmp_path):
    p = tmp_path / "old.zarr"
    g = zarr.open_group(str(p), mode="w", zarr_format=2)
    data = np.arange(2 * 3 * 4 * 5, dtype=np.uint16).reshape(2, 3, 4, 5)  # c z y x
    a0 = g.create_array("s0", shape=data.shape, dtype=data.dtype, chunks=data.shape)
    a0[:] = data
    a1 = g.create_array("s1", shape=(2, 3, 2, 2), dtype=data.dtype, chunks=(2, 3, 2, 2))
    a1[:] = data[:, :, ::2, ::2][:, :, :2, :2]
    g.attrs["multiscales"] = [{
        "version": "0.4",
        "axes": [{"name": "c", "type": "channel"}, {"name": "z", "type": "space", "unit": "micrometer"},
                 {"name": "y", "type": "space", "unit": "micrometer"},
                 {"name": "x", "type": "space", "unit": "nanometer"}],
        "datasets": [
            {"path": "s0", "coordinateTransformations": [{"type": "scale", "scale": [1, 2.0, 0.5, 250.0]},
                                                         {"type": "translation", "translation": [0, 10.0, 0, 0]}]},
            {"path": "s1", "coordinateTransformations": [{"type": "scale", "scale": [1, 2.0, 1.0, 500.0]}]},
        ],
    }]
    g.attrs["omero"] = {"channels": [{"label": "DAPI"}, {"label": "GFP"}]}
    img = load(p)
    assert img.dims == ("c", "z", "y", "x")
    np.testing.assert_array_equal(img.values, data)
    assert spacing(img) == pytest.approx((0.002, 0.0005, 0.00025))
    assert origin(img) == pytest.approx((0.01, 0.0, 0.0))
    assert list(img.coords["c"].values) == ["DAPI", "GFP"]
    assert load(p, level=1).shape == (2, 3, 2, 2)


def test_zarr_without_ngff_metadata_is_an_error(tmp_path):
    p = tmp_path / "plain.zarr"
    g = zarr.open_group(str(p), mode="w", zarr_format=3)
    g.create_array("0", shape=(2, 2), dtype="u1")
    with pytest.raises(LoadError) as err:
        load(p)
    assert "plain.zarr" in str(err.value) and "multiscales" in str(err.value)


def test_unknown_unit_is_an_error(tmp_path):
    p = tmp_path / "u.zarr"
    g = zarr.open_group(str(p), mode="w", zarr_format=2)
    g.create_array("0", shape=(2, 2), dtype="u1")
    g.attrs["multiscales"] = [{"version": "0.4", "axes": [{"name": "y", "type": "space", "unit": "furlong"},
                                                          {"name": "x", "type": "space", "unit": "furlong"}],
                               "datasets": [{"path": "0", "coordinateTransformations": [
                                   {"type": "scale", "scale": [1.0, 1.0]}]}]}]
    with pytest.raises(LoadError, match="furlong"):
        load(p)


def test_missing_space_unit_is_flagged(tmp_path):
    from multiscale.io._common import CalibrationWarning

    p = tmp_path / "nounit.zarr"
    g = zarr.open_group(str(p), mode="w", zarr_format=2)
    g.create_array("0", shape=(3, 4), dtype="u1")
    g.attrs["multiscales"] = [{"version": "0.4", "axes": [{"name": "y", "type": "space"},
                                                          {"name": "x", "type": "space"}],
                               "datasets": [{"path": "0", "coordinateTransformations": [
                                   {"type": "scale", "scale": [2.0, 2.0]}]}]}]
    with pytest.warns(CalibrationWarning, match="no space unit"):
        img = load(p)
    assert img.attrs["spacing_known"] is False and spacing(img) == (2.0, 2.0)


def test_bioformats2raw_layout(tmp_path):
    root = tmp_path / "converted.zarr"
    g = zarr.open_group(str(root), mode="w", zarr_format=2)
    g.attrs["bioformats2raw.layout"] = 3
    for k, n in enumerate((4, 6)):
        save(spatial_image(np.full((n, n), k, np.uint8), spacing=0.001), root / str(k) / "tmp.ome.zarr")
        # move the image group into place the way bioformats2raw lays it out (root/<k>/)
        for item in (root / str(k) / "tmp.ome.zarr").iterdir():
            shutil.move(str(item), str(root / str(k) / item.name))
        (root / str(k) / "tmp.ome.zarr").rmdir()
    assert load(root).shape == (4, 4)
    second = load(root, series=1)
    assert second.shape == (6, 6) and int(second.max()) == 1


def test_default_chunks_are_blocks_in_3d_and_planes_in_2d(tmp_path):

    from multiscale.io.omezarr import write_omezarr

    vol = spatial_image(np.random.default_rng(0).random((2, 40, 300, 20), dtype=np.float32), spacing=(0.5, 0.1, 0.1),
                        dims=("c", "z", "y", "x"), channels=["a", "b"])
    write_omezarr(vol, tmp_path / "v.ome.zarr", levels=1)
    assert zarr.open_group(str(tmp_path / "v.ome.zarr"), mode="r")["0"].chunks == (1, 16, 256, 20)
    back = load(tmp_path / "v.ome.zarr")
    np.testing.assert_array_equal(np.asarray(back.data), vol.values)
    plane = spatial_image(np.zeros((600, 30), np.float32), spacing=0.01, dims=("y", "x"))
    write_omezarr(plane, tmp_path / "p.ome.zarr", levels=1)
    assert zarr.open_group(str(tmp_path / "p.ome.zarr"), mode="r")["0"].chunks == (512, 30)
