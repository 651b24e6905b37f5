"""regional_features: many regions in one pass, each equal to features() on that region."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import ndimage

from multiscale.analysis.texture import RoiError, TextureWarning, features, regional_features
from multiscale.image import spatial_image


@pytest.fixture(scope="module")
def scene():
    rng = np.random.default_rng(21)
    img = spatial_image(ndimage.gaussian_filter(rng.normal(size=(10, 16, 18)), 1.2) * 100, spacing=(2.0, 0.8, 0.9))
    lab = np.zeros(img.shape, np.int16)
    lab[1:5, 2:10, 3:12] = 1
    lab[5:9, 4:14, 3:16] = 2
    lab[2:4, 11:15, 1:5] = 7  # a small third region
    return img, lab


def _table(df):
    return df.set_index("tag")["value"]


@pytest.mark.parametrize(
    "settings",
    [{"n_bins": 16}, {"bin_width": 10.0, "resegment_range": (-250.0, 250.0)}, {"outlier_sigma": 2.0, "n_bins": 8}],
)
def test_each_region_equals_features_on_its_own_mask(scene, settings):
    img, lab = scene
    fams = ["stat", "ih", "ivh", "loc", "morph", "glcm"]
    out = regional_features(img, lab, families=fams, aggregation="3D", **settings)
    assert sorted(out["label"].unique()) == [1, 2, 7]
    for region in (1, 2, 7):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TextureWarning)
            ref = _table(features(img, lab == region, families=fams, aggregation="3D", **settings))
        got = _table(out[out["label"] == region])
        assert list(got.index) == list(ref.index)
        np.testing.assert_allclose(got.values, ref.values, rtol=1e-10, atol=1e-12, equal_nan=True)


def test_regions_differ_and_follow_the_data(scene):
    img, lab = scene
    shifted = img.copy(data=img.values + np.where(lab == 2, 1000.0, 0.0))
    out = regional_features(shifted, lab, families="stat")
    means = out[out.tag == "stat_mean"].set_index("label")["value"]
    assert means[2] == pytest.approx(img.values[lab == 2].mean() + 1000.0)
    assert means[1] == pytest.approx(img.values[lab == 1].mean())


def test_requested_absent_region_is_nan_with_warning(scene):
    img, lab = scene
    with pytest.warns(TextureWarning, match=r"regions \[9\] are empty"):
        out = regional_features(img, lab, families=["stat", "ih", "morph"], regions=[1, 9])
    assert out[out.label == 9]["value"].isna().all()
    assert out[out.label == 1]["value"].notna().any()


def test_bad_label_images(scene):
    img, lab = scene
    with pytest.raises(RoiError, match="labels array has shape"):
        regional_features(img, lab[:5], families="stat")
    with pytest.raises(RoiError, match="integers"):
        regional_features(img, lab + 0.5, families="stat")
    with pytest.raises(RoiError, match="background"):
        regional_features(img, lab, families="stat", regions=[0, 1])
    other = spatial_image(lab, spacing=(2.0, 0.8, 0.8))
    with pytest.raises(RoiError, match="another grid"):
        regional_features(img, other, families="stat")


def test_two_d_label_image():
    rng = np.random.default_rng(4)
    img = spatial_image(rng.random((20, 30)), spacing=(0.5, 0.5))
    lab = np.zeros((20, 30), int)
    lab[:10, :20] = 1
    lab[10:, 5:] = 2
    out = regional_features(img, lab, families=["stat", "ih", "glcm"], n_bins=8)
    assert not out["family"].eq("morph").any()
    for region in (1, 2):
        ref = features(img, lab == region, families=["stat", "ih", "glcm"], n_bins=8)
        np.testing.assert_allclose(out[out.label == region]["value"].values, ref["value"].values, rtol=1e-10,
                                   equal_nan=True)
