"""Histology: colour deconvolution as scikit-image does on its bundled IHC sample, DAB fraction, tissue detection."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from skimage import data
from skimage.color import hdx_from_rgb, rgb2hed, separate_stains

from multiscale.analysis import histology as hist
from multiscale.errors import AnalysisError
from multiscale.image import spacing, spatial_image


@pytest.fixture(scope="module")
def ihc():
    rgb = data.immunohistochemistry()  # 512 x 512 x 3, bundled with scikit-image
    return rgb, spatial_image(np.moveaxis(rgb, -1, 0), spacing=0.0005, dims=("c", "y", "x"),
                              channels=["R", "G", "B"], modality="HISTO")


def test_dab_separated_as_scikit_image_does(ihc):
    rgb, img = ihc
    s = hist.stain_maps(img)
    ref = rgb2hed(rgb) * hist.OD_PER_SKIMAGE_UNIT
    for k, name in enumerate(["haematoxylin", "eosin", "DAB"]):
        np.testing.assert_allclose(s.sel(c=name).values, ref[..., k], rtol=1e-12, atol=1e-12)
    assert s.attrs["units"] == "OD" and spacing(s) == (0.0005, 0.0005)
    hdx = hist.stain_maps(img, "HDAB")
    np.testing.assert_allclose(hdx.sel(c="DAB").values, separate_stains(rgb, hdx_from_rgb)[..., 1] * 6, atol=1e-12)


def test_tile_by_tile_equals_whole(ihc):
    _, img = ihc
    lazy = img.copy(data=da.from_array(img.values, chunks=(3, 128, 128)))
    s = hist.stain_maps(lazy)
    assert hasattr(s.data, "dask") and s.data.chunks[1] == (128,) * 4
    np.testing.assert_allclose(s.values, hist.stain_maps(img).values)


def test_planted_dab_fraction_recovered():
    """A synthetic IHC section: haematoxylin background, DAB in a known square; optical densities mixed exactly."""
    from skimage.color import hed2rgb

    n = 80
    hed = np.zeros((n, n, 3))
    hed[..., 0] = 0.3 / 6                      # haematoxylin everywhere (skimage units)
    hed[20:40, 20:60, 2] = 0.8 / 6             # DAB in 20 x 40 px
    rgb = (hed2rgb(hed) * 255).round().astype(np.uint8)
    img = spatial_image(np.moveaxis(rgb, -1, 0), spacing=0.001, dims=("c", "y", "x"))
    dab = hist.stain_maps(img).sel(c="DAB", drop=True)
    assert abs(float(dab.values[25, 30]) - 0.8) < 0.05 and float(dab.values[5, 5]) < 0.05
    pf = hist.positive_fraction(dab, threshold=0.3)
    assert pf["positive_fraction"] == pytest.approx(800 / n**2)
    assert pf["positive_area_mm2"] == pytest.approx(800 * 1e-6)


def test_tissue_detection_and_family(ihc):
    _, img = ihc
    rgb = np.full((3, 60, 60), 242, np.uint8)
    rgb[:, 10:50, 15:45] = np.asarray(img.values[:, 100:140, 100:130])
    slide = spatial_image(rgb, spacing=0.01, dims=("c", "y", "x"), channels=["R", "G", "B"])
    t = hist.tissue_mask(slide)
    assert abs(int(t.values.sum()) - 40 * 30) < 60
    res = hist.FAMILY.evaluate({"image": slide, "mask": spatial_image(np.ones((60, 60), np.uint8), spacing=0.01)},
                               {"threshold": 0.2})
    rows = res.rows.set_index("metric")
    assert abs(rows.loc["tissue_fraction", "value"] - 1200 / 3600) < 0.02
    assert rows.loc["DAB_positive_fraction", "units"] == "1" and rows.loc["mean_od_DAB", "units"] == "OD"
    assert hist.FAMILY.figure(res, title="t")[0][0] == "stains"


def test_bad_input():
    with pytest.raises(AnalysisError, match="RGB"):
        hist.stain_maps(spatial_image(np.zeros((2, 4, 4)), spacing=0.1, dims=("c", "y", "x")))
    img = spatial_image(np.zeros((3, 4, 4), np.uint8), spacing=0.1, dims=("c", "y", "x"))
    with pytest.raises(AnalysisError, match="unknown stain set"):
        hist.stain_maps(img, "PAS")
    with pytest.raises(AnalysisError, match="uniform"):
        hist.tissue_mask(img)


def test_family_on_a_lazy_slide_equals_in_memory(ihc):
    _, img = ihc
    mask = spatial_image(np.ones((512, 512), np.uint8), spacing=0.0005)
    eager = hist.FAMILY.evaluate({"image": img, "mask": mask}, {"threshold": 0.1}).rows
    lazy_img = img.copy(data=da.from_array(img.values, chunks=(3, 200, 200)))
    lazy = hist.FAMILY.evaluate({"image": lazy_img, "mask": mask}, {"threshold": 0.1}).rows
    np.testing.assert_allclose(lazy["value"].to_numpy(float), eager["value"].to_numpy(float), rtol=1e-12)
    # Otsu from the lazy 256-bin histogram is scikit-image's threshold_otsu on the grey image
    from skimage.color import rgb2gray
    from skimage.filters import threshold_otsu

    grey = rgb2gray(np.moveaxis(img.values, 0, -1))
    want = float((grey < threshold_otsu(grey)).mean())
    assert eager.set_index("metric").loc["tissue_fraction", "value"] == pytest.approx(want)


def test_one_colour_channel_is_refused_not_taken_as_a_stain(ihc):
    _, img = ihc
    red = img.sel(c=["R"]).isel(c=0)   # what a pipeline splitting channels would pass
    mask = spatial_image(np.ones((512, 512), np.uint8), spacing=0.0005)
    with pytest.raises(AnalysisError, match="one colour channel"):
        hist.FAMILY.evaluate({"image": red, "mask": mask}, {})
    dab = hist.stain_maps(img).sel(c="DAB", drop=True)
    rows = hist.FAMILY.evaluate({"image": dab, "mask": mask}, {"threshold": 0.1}).rows.set_index("metric")
    assert rows.loc["DAB_positive_fraction", "value"] == pytest.approx(float((dab.values > 0.1).mean()))
