"""Whole-slide images: SVS (Aperio MPP), pyramidal TIFF (resolution tags), levels in mm, lazy tiles, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from multiscale.errors import LoadError
from multiscale.image import origin, spacing
from multiscale.io import load, sniff
from multiscale.io.slide import read_slide, slide_levels

DESC = "Aperio Image Library v12.0.15\n{w}x{h} [0,0 {w}x{h}] (64x64) JPEG/RGB Q=70|AppMag = 40|MPP = {mpp}"


def _base(n=256):
    rng = np.random.default_rng(0)
    return (rng.random((n, n, 3)) * 255).astype(np.uint8)


def _svs(path, base, mpp=0.25):
    """The Aperio layout tifffile reads as SVS: tiled baseline, thumbnail strip, tiled reduced levels."""
    h, w = base.shape[:2]
    with tifffile.TiffWriter(path) as tw:
        tw.write(base, tile=(64, 64), photometric="rgb", compression="zlib", metadata=None,
                 description=DESC.format(w=w, h=h, mpp=mpp))
        tw.write(base[::8, ::8], photometric="rgb", metadata=None, description="Aperio Image Library v12\nthumbnail")
        tw.write(base[::2, ::2], tile=(64, 64), photometric="rgb", compression="zlib", metadata=None,
                 description=f"Aperio Image Library v12\n{w}x{h} -> {w // 2}x{h // 2}|MPP = {mpp}")
        tw.write(base[::4, ::4], tile=(64, 64), photometric="rgb", compression="zlib", metadata=None,
                 description=f"Aperio Image Library v12\n{w}x{h} -> {w // 4}x{h // 4}|MPP = {mpp}")
    return path


def _pyramid(path, base, resolution=True):
    kw = dict(resolution=(1e4 / 0.5, 1e4 / 0.5), resolutionunit="CENTIMETER") if resolution else {}
    with tifffile.TiffWriter(path) as tw:
        tw.write(base, subifds=2, tile=(64, 64), photometric="rgb", compression="zlib", **kw)
        tw.write(base[::2, ::2], subfiletype=1, tile=(64, 64), photometric="rgb", compression="zlib")
        tw.write(base[::4, ::4], subfiletype=1, tile=(64, 64), photometric="rgb", compression="zlib")
    return path


def test_svs_levels_with_their_pixel_size_in_mm(tmp_path):
    base = _base()
    p = _svs(tmp_path / "s.svs", base)
    assert sniff(p) == "slide"
    img = load(p)
    assert img.dims == ("c", "y", "x") and list(img.coords["c"].values) == ["R", "G", "B"]
    assert hasattr(img.data, "dask") and spacing(img) == (0.00025, 0.00025) and origin(img) == (0.0, 0.0)
    assert img.attrs["modality"] == "HISTO" and img.attrs["pyramid_levels"] == 3 and img.attrs["slide_kind"] == "svs"
    np.testing.assert_array_equal(np.moveaxis(img.values, 0, -1), base)
    lv2 = load(p, level=2)
    assert lv2.shape == (3, 64, 64) and spacing(lv2) == pytest.approx((0.001, 0.001))
    # level 2's first pixel covers base pixels 0-3: its centre at 1.5 base pixels
    assert origin(lv2) == pytest.approx((1.5 * 0.00025, 1.5 * 0.00025))
    assert float(lv2.x[-1]) + 0.0005 == pytest.approx(float(img.x[-1]) + 0.000125)  # same right edge
    np.testing.assert_array_equal(np.moveaxis(lv2.values, 0, -1), base[::4, ::4])
    assert load(p, resolution=0.0006).attrs["level"] == 1
    assert [lv["pixel_size_um"] for lv in slide_levels(p)] == [0.25, 0.5, 1.0]


def test_pyramidal_tiff_from_resolution_tags_and_chunks_are_tiles(tmp_path):
    base = _base(512)
    p = _pyramid(tmp_path / "p.tif", base)
    assert sniff(p) == "slide"
    img = read_slide(p, level=1)
    assert spacing(img) == pytest.approx((0.001, 0.001)) and img.attrs["pixel_size_um"] == pytest.approx(1.0)
    assert img.data.chunksize[1] % 64 == 0
    np.testing.assert_array_equal(np.moveaxis(img.values, 0, -1), base[::2, ::2])


def test_slide_without_pixel_size_is_refused_naming_the_fix(tmp_path):
    p = _pyramid(tmp_path / "nocal.tif", _base(), resolution=False)
    with pytest.raises(LoadError, match=r"nocal.tif: pixel size: .*pixel_size_um=") as err:
        load(p)
    assert "MPP" in str(err.value)
    img = load(p, pixel_size_um=0.5, level=1)
    assert spacing(img) == pytest.approx((0.001, 0.001))


def test_plain_and_ome_tiffs_stay_with_the_tiff_format(tmp_path):
    tifffile.imwrite(tmp_path / "plain.tif", _base(64), photometric="rgb")
    assert sniff(tmp_path / "plain.tif") == "tiff"
    with tifffile.TiffWriter(tmp_path / "o.ome.tif", ome=True) as tw:
        tw.write(_base(64)[..., 0], subifds=1, tile=(16, 16), metadata={"axes": "YX", "PhysicalSizeX": 1.0,
                                                                        "PhysicalSizeY": 1.0})
        tw.write(_base(64)[::2, ::2, 0], subfiletype=1, tile=(16, 16))
    assert sniff(tmp_path / "o.ome.tif") == "tiff"


def test_bad_levels_and_truncation(tmp_path):
    p = _svs(tmp_path / "s.svs", _base())
    with pytest.raises(LoadError, match="level="):
        load(p, level=7)
    cut = tmp_path / "cut.svs"
    cut.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    with pytest.raises(LoadError, match="cut.svs"):
        np.asarray(load(cut).values)
