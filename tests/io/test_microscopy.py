"""Microscopy: OME-TIFF axes/units/channels, ImageJ hyperstacks, pyramids, PNG/JPEG, calibration warnings."""

from __future__ import annotations

import itertools
import warnings

import dask.array as da
import numpy as np
import pytest
import tifffile
from PIL import Image

from multiscale.image import origin, spacing, spatial_image
from multiscale.io import load, save
from multiscale.io._common import CalibrationWarning, LoadError


def _tczyx(t=2, c=3, z=4, y=8, x=10):
    idx = np.indices((t, c, z, y, x))
    return (idx[0] * 1000 + idx[1] * 100 + idx[2] * 10 + (idx[3] + idx[4]) % 10).astype(np.uint16)


@pytest.mark.parametrize("unit, factor", [("nm", 1e-6), ("µm", 1e-3), ("mm", 1.0)])
def test_ome_tiff_axes_units_and_channel_names(tmp_path, unit, factor):
    data = _tczyx()
    p = tmp_path / "a.ome.tif"
    tifffile.imwrite(p, data, ome=True, metadata={
        "axes": "TCZYX", "PhysicalSizeX": 0.5, "PhysicalSizeXUnit": unit, "PhysicalSizeY": 0.25,
        "PhysicalSizeYUnit": unit, "PhysicalSizeZ": 2.0, "PhysicalSizeZUnit": unit,
        "Channel": {"Name": ["DAPI", "FITC", "Cy5"]}})
    img = load(p)
    assert img.dims == ("t", "c", "z", "y", "x")
    np.testing.assert_array_equal(img.values, data)
    assert spacing(img) == pytest.approx((2.0 * factor, 0.25 * factor, 0.5 * factor))
    assert list(img.coords["c"].values) == ["DAPI", "FITC", "Cy5"]
    assert img.attrs["spacing_known"] is True and img.attrs["modality"] == "FLUO"
    assert isinstance(img.data, da.Array)


def test_other_dimension_orders_are_reordered(tmp_path):
    data = _tczyx(t=2, c=3, z=2)  # written as Z C T Y X planes
    p = tmp_path / "b.ome.tif"
    tifffile.imwrite(p, data.transpose(2, 1, 0, 3, 4), ome=True, metadata={"axes": "ZCTYX"})
    with pytest.warns(CalibrationWarning):
        img = load(p)
    assert img.dims == ("t", "c", "z", "y", "x")
    np.testing.assert_array_equal(img.values, data)


def test_imagej_hyperstack_calibration(tmp_path):
    data = _tczyx(t=2, c=2, z=3).astype(np.uint16)  # t, c, z, y, x
    p = tmp_path / "ij.tif"
    tifffile.imwrite(p, data.transpose(0, 2, 1, 3, 4), imagej=True, resolution=(1 / 0.4, 1 / 0.4),
                     metadata={"axes": "TZCYX", "spacing": 1.5, "unit": "um"})
    img = load(p)
    assert img.dims == ("t", "c", "z", "y", "x")
    np.testing.assert_array_equal(img.values, data)
    assert spacing(img) == pytest.approx((0.0015, 0.0004, 0.0004))
    assert img.attrs["spacing_known"] is True


def test_missing_calibration_warns_and_marks(tmp_path):
    p = tmp_path / "plain.tif"
    tifffile.imwrite(p, np.zeros((5, 6), np.uint8))
    with pytest.warns(CalibrationWarning, match="spacing"):
        img = load(p)
    assert img.attrs["spacing_known"] is False and spacing(img) == (1.0, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        given = load(p, spacing=(0.002, 0.001))
    assert given.attrs["spacing_known"] is True and spacing(given) == pytest.approx((0.002, 0.001))


def test_tiff_resolution_tags_in_centimetres(tmp_path):
    p = tmp_path / "res.tif"
    tifffile.imwrite(p, np.zeros((4, 4), np.uint8), resolution=(2000.0, 4000.0), resolutionunit="CENTIMETER")
    img = load(p)
    assert spacing(img) == pytest.approx((10.0 / 4000.0, 10.0 / 2000.0))


def _pyramid(path):
    base = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 251)
    with tifffile.TiffWriter(path, ome=True) as tw:
        tw.write(base, subifds=2, tile=(16, 16), metadata={"axes": "YX", "PhysicalSizeX": 1.0,
                                                            "PhysicalSizeY": 1.0})
        tw.write(base[::2, ::2], subfiletype=1, tile=(16, 16))
        tw.write(base[::4, ::4], subfiletype=1, tile=(16, 16))
    return base


def test_pyramid_levels_by_index_and_resolution(tmp_path):
    p = tmp_path / "pyr.ome.tif"
    base = _pyramid(p)
    lvl0 = load(p)
    assert lvl0.attrs["pyramid_levels"] == 3 and lvl0.shape == (64, 64)
    lvl2 = load(p, level=2)
    assert lvl2.shape == (16, 16)
    np.testing.assert_array_equal(lvl2.values, base[::4, ::4])
    assert spacing(lvl2) == pytest.approx((0.004, 0.004))
    # pixel centres of level 2 cover base pixels 0..3: centre at 1.5 base pixels (1 µm each)
    assert origin(lvl2) == pytest.approx((0.0015, 0.0015))
    by_res = load(p, resolution=0.0025)  # 2.5 µm wanted: level 1 (2 µm) is the coarsest not coarser
    assert by_res.shape == (32, 32)
    with pytest.raises(LoadError, match="level="):
        load(p, level=5)


def test_png_rgb_and_jpeg(tmp_path):
    rgb = np.zeros((6, 8, 3), np.uint8)
    rgb[..., 0] = 200
    rgb[2:4, 2:6, 2] = 90
    Image.fromarray(rgb).save(tmp_path / "a.png")
    img = load(tmp_path / "a.png", spacing=0.0005)
    assert img.dims == ("c", "y", "x") and list(img.coords["c"].values) == ["R", "G", "B"]
    np.testing.assert_array_equal(img.values, rgb.transpose(2, 0, 1))
    assert spacing(img) == (0.0005, 0.0005) and img.attrs["spacing_known"] is True
    Image.fromarray(rgb).save(tmp_path / "a.jpg", quality=95)
    with pytest.warns(CalibrationWarning):
        j = load(tmp_path / "a.jpg")
    assert j.shape == (3, 6, 8) and j.attrs["spacing_known"] is False
    assert abs(int(j.values[0].mean()) - 200) < 5


def test_truncated_tiff_and_png(tmp_path):
    p = tmp_path / "t.tif"
    tifffile.imwrite(p, np.ones((64, 64), np.uint16))
    p.write_bytes(p.read_bytes()[:100])
    with pytest.raises(LoadError, match="t.tif"):
        _ = load(p).values
    q = tmp_path / "t.png"
    Image.fromarray(np.ones((32, 32), np.uint8)).save(q)
    q.write_bytes(q.read_bytes()[:40])
    with pytest.raises(LoadError, match="t.png"):
        load(q, spacing=1.0)


def test_ome_tiff_round_trip_keeps_attrs_and_mz_channels(tmp_path):
    img = spatial_image(np.arange(2 * 5 * 6, dtype=np.float32).reshape(2, 5, 6), spacing=(0.02, 0.01),
                        origin=(1.0, 2.0), dims=("c", "y", "x"), channels=[544.18, 760.58], modality="MSI",
                        agent="doxorubicin", units="TIC-normalised")
    back = load(save(img, tmp_path / "m.ome.tif"))
    np.testing.assert_array_equal(back.values, img.values)
    assert spacing(back) == pytest.approx((0.02, 0.01)) and origin(back) == pytest.approx((1.0, 2.0))
    assert list(back.coords["c"].values) == [544.18, 760.58]
    assert (back.attrs["modality"], back.attrs["agent"], back.attrs["units"]) == ("MSI", "doxorubicin",
                                                                                 "TIC-normalised")


# --- reference data ---------------------------------------------------------------------------


def _cells(plane):
    """The glyph cells of 'c<C> z<Z>' (top line) and 'T<T>' (bottom line) drawn on each sample plane."""
    fg = plane != np.bincount(plane.ravel()).argmax()
    return fg[1:10, 3:9].tobytes(), fg[1:10, 13:18].tobytes(), fg[15:24, 8:14].tobytes()


def test_ome_tiff_samples_axis_order(reference_data):
    path = reference_data / "ome-tiff" / "2010-06_18x24y5z5t2c8b-text.ome.tiff"
    with pytest.warns(CalibrationWarning):
        img = load(path)
    assert img.dims == ("t", "c", "z", "y", "x") and img.shape == (5, 2, 5, 24, 18)
    arr = img.values
    # the glyph drawn for each index must depend on that index only: C cells on c, Z cells on z, T on t
    seen = {"c": {}, "z": {}, "t": {}}
    for t, c, z in itertools.product(range(5), range(2), range(5)):
        cc, zc, tc = _cells(arr[t, c, z])
        for key, val, cell in (("c", c, cc), ("z", z, zc), ("t", t, tc)):
            assert seen[key].setdefault(val, cell) == cell, f"{key} glyph changes with another axis"
    for key, n in (("c", 2), ("z", 5), ("t", 5)):
        assert len(set(seen[key].values())) == n, f"{key} glyphs are not distinct"
    # plane (t, c, z) is IFD z + 5 (c + 2 t) for DimensionOrder XYZCT
    with tifffile.TiffFile(path) as tif:
        for t, c, z in [(0, 0, 0), (3, 1, 2), (4, 0, 4)]:
            np.testing.assert_array_equal(arr[t, c, z], tif.pages[z + 5 * (c + 2 * t)].asarray())


@pytest.mark.parametrize("name, dims, shape", [
    ("2010-06_18x24y1z5t2c8b-text.ome.tiff", ("t", "c", "y", "x"), (5, 2, 24, 18)),
    ("2010-06_6x4y1z1t3c8b-swatch.ome.tiff", ("c", "y", "x"), (3, 4, 6)),
    ("2008-02_single-channel.ome.tif", ("y", "x"), (167, 239)),
])
def test_other_ome_samples(reference_data, name, dims, shape):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalibrationWarning)
        img = load(reference_data / "ome-tiff" / name)
    assert img.dims == dims and img.shape == shape
    if "swatch" in name:  # PhysicalSizeX/Y = 10000 µm
        assert spacing(img) == pytest.approx((10.0, 10.0)) and img.attrs["spacing_known"] is True
