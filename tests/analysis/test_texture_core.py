"""Texture core: settings, discretisation, the non-matrix families, and bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

from multiscale.analysis.texture import (
    RoiError,
    TextureSettingsError,
    TextureWarning,
    discretise,
    features,
    texture_settings,
)
from multiscale.analysis.texture.histogram import histogram_features
from multiscale.analysis.texture.intensity import intensity_features
from multiscale.analysis.texture.ivh import ivh_features
from multiscale.analysis.texture.local_intensity import local_intensity_features
from multiscale.analysis.texture.morphology import mesh_of_mask, morphology_features
from multiscale.image import spatial_image


def _by_tag(rows) -> dict[str, float]:
    if hasattr(rows, "iterrows"):
        return dict(zip(rows["tag"], rows["value"]))
    return {r["tag"]: r["value"] for r in rows}


@pytest.fixture()
def noisy():
    rng = np.random.default_rng(11)
    return spatial_image(rng.normal(50.0, 10.0, size=(6, 9, 10)), spacing=(2.0, 0.8, 0.8), modality="CT")


# --------------------------------------------------------------------------------------------- settings


def test_pyradiomics_aliases_map_to_ibsi_names():
    s = texture_settings(binWidth=25, resegmentRange=[-500, 400], symmetricalGLCM=False, distances=[2], gldm_a=1)
    assert (s["discretisation"], s["bin_width"]) == ("fbs", 25.0)
    assert s["resegment_range"] == (-500.0, 400.0)
    assert s["glcm_symmetric"] is False and s["glcm_distance"] == 2 and s["ngldm_alpha"] == 1
    assert texture_settings(binCount=16)["discretisation"] == "fbn"
    sigma = texture_settings(resegmentMode="sigma", resegmentRange=(-3, 3))
    assert sigma["outlier_sigma"] == 3.0 and sigma["resegment_range"] is None


def test_ibsi_phantom_preset():
    s = texture_settings(ibsi_phantom=True)
    assert (s["discretisation"], s["bin_width"], s["glcm_distance"], s["glcm_symmetric"], s["ngldm_alpha"]) == (
        "fbs", 1.0, 1, True, 0)
    # explicit settings override the preset
    assert texture_settings(ibsi_phantom=True, n_bins=8, discretisation="fbn")["n_bins"] == 8


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"bogus": 1}, "unknown texture setting 'bogus'"),
        ({"discretisation": "fixed"}, "discretisation="),
        ({"bin_width": 0}, "bin_width"),
        ({"resegment_range": (5, 1)}, "lower bound"),
        ({"glcm_distance": 0}, "glcm_distance"),
        ({"distances": [1, 2]}, "one GLCM distance"),
        ({"resegmentMode": "relative", "resegmentRange": (0, 1)}, "resegmentMode"),
        ({"nan_policy": "ignore"}, "nan_policy"),
        ({"binWidth": 5, "bin_width": 6}, "given twice"),
    ],
)
def test_bad_settings_are_named(kwargs, message):
    with pytest.raises(TextureSettingsError, match=message):
        texture_settings(**kwargs)


# ------------------------------------------------------------------------------------------ discretise


def test_fbn_formula_and_maximum_mapped_to_ng():
    x = np.array([2.0, 3.0, 4.5, 6.0, 10.0])
    q = discretise(x, "fbn", n_bins=4)
    expected = np.minimum(np.floor(4 * (x - 2.0) / 8.0) + 1, 4)
    assert q.tolist() == expected.astype(int).tolist() == [1, 1, 2, 3, 4]
    assert discretise(np.full(5, 7.0), "fbn", n_bins=8).tolist() == [1] * 5


def test_fbs_uses_the_ibsi_minimum_anchor_not_the_roi_minimum():
    hu = np.array([-480.0, -455.0, -20.0, 390.0])
    anchored = discretise(hu, "fbs", bin_width=25.0, min_anchor=-500.0)
    assert anchored.tolist() == [1, 2, 20, 36]  # floor((x + 500) / 25) + 1
    roi_min = discretise(hu, "fbs", bin_width=25.0)
    assert roi_min.tolist() == [1, 2, 19, 35]  # floor((x + 480) / 25) + 1: a different binning
    with pytest.raises(ValueError, match="below the FBS anchor"):
        discretise(hu, "fbs", bin_width=25.0, min_anchor=-400.0)
    with pytest.raises(ValueError, match="method must be"):
        discretise(hu, "equal", n_bins=3)


def test_features_anchor_fbs_at_resegmentation_lower_bound(noisy):
    df = features(noisy, families="ih", bin_width=5.0, resegment_range=(0.0, 200.0))
    assert df.attrs["min_anchor"] == 0.0
    assert df.attrs["n_levels"] == 40  # [0, 200] in bins of 5 from the lower bound: ceil(200 / 5) (issue 21: not 41)
    v = noisy.values
    q = np.floor(v / 5.0) + 1
    assert _by_tag(df)["ih_min"] == q.min() and _by_tag(df)["ih_mean"] == pytest.approx(q.mean())
    with pytest.warns(TextureWarning, match="FBS anchored at the ROI minimum"):
        df2 = features(noisy, families="ih", bin_width=5.0)
    assert df2.attrs["min_anchor"] == pytest.approx(v.min())


# ------------------------------------------------------------------------------- intensity families


def test_intensity_statistics_against_numpy_and_scipy():
    rng = np.random.default_rng(2)
    x = rng.gamma(2.0, 3.0, size=501)
    f = _by_tag(intensity_features(x))
    assert f["stat_mean"] == pytest.approx(x.mean())
    assert f["stat_var"] == pytest.approx(x.var())  # population variance
    assert f["stat_skew"] == pytest.approx(stats.skew(x))
    assert f["stat_kurt"] == pytest.approx(stats.kurtosis(x))  # excess
    p10, p25, p75, p90 = np.percentile(x, [10, 25, 75, 90])
    assert f["stat_p10"] == pytest.approx(p10) and f["stat_p90"] == pytest.approx(p90)
    assert f["stat_iqr"] == pytest.approx(p75 - p25)
    assert f["stat_qcod"] == pytest.approx((p75 - p25) / (p75 + p25))
    inner = x[(x >= p10) & (x <= p90)]
    assert f["stat_rmad"] == pytest.approx(np.abs(inner - inner.mean()).mean())
    assert f["stat_medad"] == pytest.approx(np.abs(x - np.median(x)).mean())
    assert f["stat_energy"] == pytest.approx((x**2).sum())
    assert f["stat_cov"] == pytest.approx(x.std() / x.mean())


def test_histogram_mode_gradient_entropy():
    q = np.array([1, 1, 1, 2, 4, 4, 4, 5])  # levels 1..5; 3 empty; modes 1 and 4 tie
    f = _by_tag(histogram_features(q, 5))
    assert f["ih_mode"] == 4.0  # the tied mode nearest the mean (2.75)
    h = np.array([3, 1, 0, 3, 1], float)
    grad = np.array([h[1] - h[0], (h[2] - h[0]) / 2, (h[3] - h[1]) / 2, (h[4] - h[2]) / 2, h[4] - h[3]])
    assert f["ih_max_grad"] == grad.max() and f["ih_max_grad_g"] == 1 + grad.argmax()
    assert f["ih_min_grad"] == grad.min() and f["ih_min_grad_g"] == 1 + grad.argmin()
    p = h[h > 0] / 8
    assert f["ih_entropy"] == pytest.approx(-(p * np.log2(p)).sum())
    assert f["ih_uniformity"] == pytest.approx((p**2).sum())


def test_ivh_on_a_continuous_grid():
    x = np.arange(0.0, 100.0)  # 100 voxels, one per unit step
    f = _by_tag(ivh_features(x, texture_settings(ivh_bin_width=1.0)))
    # gamma = i / 99: the smallest step with gamma >= 0.1 is 10 (90 of 100 voxels >= 10), with gamma >= 0.9 it is 90
    assert f["ivh_v10"] == pytest.approx(0.90)
    assert f["ivh_v90"] == pytest.approx(0.10)
    assert f["ivh_i10"] == 90.0 and f["ivh_i90"] == 10.0


def test_local_intensity_peaks_against_brute_force():
    rng = np.random.default_rng(7)
    img = rng.random((7, 9, 8)) * 10
    mask = np.zeros(img.shape, bool)
    mask[2:5, 3:7, 2:6] = True
    spacing = (3.0, 2.0, 2.5)
    f = _by_tag(local_intensity_features(img, mask, spacing))
    r = (3 * 1000 / (4 * np.pi)) ** (1 / 3)
    centres = np.argwhere(np.ones(img.shape, bool)) * np.asarray(spacing)
    flat = img.ravel()
    means = {}
    for idx in np.argwhere(mask):
        d = np.linalg.norm(centres - idx * np.asarray(spacing), axis=1)
        means[tuple(idx)] = flat[d <= r].mean()
    assert f["loc_peak_glob"] == pytest.approx(max(means.values()))
    top = max(img[mask])
    assert f["loc_peak_loc"] == pytest.approx(max(m for k, m in means.items() if img[k] == top))


def test_morphology_of_a_sphere_and_physical_spacing():
    z, y, x = np.indices((23, 23, 23)) - 11
    ball = (z**2 + y**2 + x**2) <= 10**2
    f = _by_tag(morphology_features(ball * 1.0, ball, ball, (1.0, 1.0, 1.0)))
    assert f["morph_vol_approx"] == ball.sum()
    assert f["morph_volume"] == pytest.approx(4 / 3 * np.pi * 10**3, rel=0.02)
    assert f["morph_sphericity"] == pytest.approx(1.0, abs=0.15)
    assert f["morph_diam"] == pytest.approx(21.0)  # vertices halfway between the edge voxels and outside
    assert f["morph_pca_elongation"] == pytest.approx(1.0, abs=1e-9)
    assert f["morph_com"] == pytest.approx(0.0, abs=1e-9)
    # the same voxels at 2 x 0.5 x 0.5 mm: volume scales with the voxel volume, lengths with spacing
    g = _by_tag(morphology_features(ball * 1.0, ball, ball, (2.0, 0.5, 0.5)))
    assert g["morph_vol_approx"] == pytest.approx(f["morph_vol_approx"] * 0.5)
    assert g["morph_volume"] == pytest.approx(f["morph_volume"] * 0.5, rel=1e-6)
    assert g["morph_pca_maj_axis"] == pytest.approx(2 * f["morph_pca_maj_axis"], rel=1e-9)


def test_mesh_of_a_box_is_exact_where_it_must_be():
    box = np.zeros((6, 7, 8), bool)
    box[1:5, 1:6, 1:7] = True  # 4 x 5 x 6 voxels
    verts, faces, volume, area = mesh_of_mask(box, (1.0, 2.0, 3.0))
    # marching cubes cuts the corners: the mesh sits inside the voxel box, its extent is (n - 1) + 1 voxel
    assert np.allclose(verts.max(0) - verts.min(0), [4.0, 10.0, 18.0])
    assert volume < 4 * 10 * 18 and volume > 0.8 * 4 * 10 * 18
    f = _by_tag(morphology_features(box * 1.0, box, box, (1.0, 2.0, 3.0)))
    assert f["morph_vol_approx"] == 120 * 6.0
    assert f["morph_vol_dens_conv_hull"] == pytest.approx(1.0, abs=1e-6)  # a convex mesh
    # the convex-hull shortcut equals the brute-force maximum over all mesh vertices
    brute = np.sqrt(((verts[:, None] - verts[None]) ** 2).sum(-1).max())
    assert f["morph_diam"] == pytest.approx(brute, rel=1e-12)


def test_centre_of_mass_shift_points_at_the_bright_side():
    mask = np.zeros((5, 5, 9), bool)
    mask[1:4, 1:4, 1:8] = True
    img = np.zeros(mask.shape)
    img[..., 1:8] = np.arange(1, 8)  # brighter along +x
    f = _by_tag(morphology_features(img, mask, mask, (1.0, 1.0, 2.0)))
    w = np.arange(1, 8.0)
    shift_x = 2.0 * ((w * np.arange(1, 8)).sum() / w.sum() - 4.0)
    assert f["morph_com"] == pytest.approx(abs(shift_x))


# ------------------------------------------------------------------------------------------- bad input


def test_empty_roi_gives_nan_with_one_warning(noisy):
    with pytest.warns(TextureWarning, match="ROI is empty") as rec:
        df = features(noisy, np.zeros(noisy.shape, bool))
    assert len([w for w in rec if issubclass(w.category, TextureWarning)]) == 1
    assert len(df) > 400 and df["value"].isna().all()


def test_one_voxel_roi(noisy):
    mask = np.zeros(noisy.shape, bool)
    mask[3, 4, 5] = True
    with pytest.warns(TextureWarning, match="undefined for this ROI"):
        df = features(noisy, mask, n_bins=8)
    f = _by_tag(df)
    assert f["stat_mean"] == noisy.values[3, 4, 5] and f["stat_var"] == 0.0 and f["stat_skew"] == 0.0
    assert f["morph_vol_approx"] == pytest.approx(2.0 * 0.8 * 0.8)
    assert np.isnan(f["morph_pca_maj_axis"]) and np.isnan(f["morph_moran_i"])


def test_constant_intensity(noisy):
    const = noisy.copy(data=np.full(noisy.shape, 3.0))
    with pytest.warns(TextureWarning, match="undefined"):
        df = features(const, families=["stat", "ih", "ivh", "morph"])
    f = _by_tag(df)
    assert f["stat_var"] == 0.0 and f["stat_skew"] == 0.0 and f["stat_kurt"] == 0.0
    assert f["ih_entropy"] == 0.0 and f["ih_mean"] == 1.0  # FBN: a constant ROI is level 1
    assert np.isnan(f["morph_moran_i"]) and np.isnan(f["ivh_v10"])


def test_nan_inside_the_roi_policies(noisy):
    data = noisy.values.copy()
    data[2, 3, 4] = np.nan
    img = noisy.copy(data=data)
    mask = np.ones(img.shape, bool)
    with pytest.warns(TextureWarning, match="1 NaN voxels inside the ROI were dropped"):
        omitted = _by_tag(features(img, mask, families="stat"))
    clean = mask.copy()
    clean[2, 3, 4] = False
    assert omitted["stat_mean"] == pytest.approx(np.nanmean(data))
    assert omitted == pytest.approx(_by_tag(features(noisy, clean, families="stat")))
    with pytest.warns(TextureWarning, match="propagate"):
        assert features(img, mask, families="stat", nan_policy="propagate")["value"].isna().all()
    with pytest.raises(RoiError, match="NaN/infinite voxels inside the ROI"):
        features(img, mask, nan_policy="raise")


def test_mask_on_another_grid_is_an_error(noisy):
    shifted = spatial_image(np.ones(noisy.shape), spacing=(2.0, 0.8, 0.8), origin=(0.0, 0.0, 0.4))
    with pytest.raises(RoiError, match="another grid.*resample the mask"):
        features(noisy, shifted)
    with pytest.raises(RoiError, match="mask array has shape"):
        features(noisy, np.ones((3, 3, 3), bool))


def test_unusable_images_and_families(noisy):
    with pytest.raises(RoiError, match="spatial image"):
        features(noisy.values)
    two = spatial_image(np.zeros((2, 3, 4, 5)), spacing=1.0)
    with pytest.raises(RoiError, match="select one with image.isel"):
        features(two)
    with pytest.raises(TextureSettingsError, match="unknown texture family"):
        features(noisy, families="wavelet")
    with pytest.raises(TextureSettingsError, match="unknown aggregation"):
        features(noisy, families="glcm", aggregation="4D")


def test_two_d_image_has_no_morphology_and_keeps_2d_texture():
    rng = np.random.default_rng(1)
    img = spatial_image(rng.integers(0, 5, size=(12, 13)).astype(float), spacing=(0.5, 0.5))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TextureWarning)
        df = features(img, families=["stat", "glcm"], aggregation="2D", n_bins=5)
        everything = features(img, n_bins=5)
    assert not everything["family"].eq("morph").any()
    assert set(df["family"]) == {"stat", "glcm"}
    assert df.loc[df.family == "glcm", "tag"].str.contains("_2D_").all()
    with pytest.raises(TextureSettingsError, match="3-D image"):
        features(img, families="morph")


def test_resegmentation_and_outlier_filtering_change_only_the_intensity_mask(noisy):
    v = noisy.values
    df = _by_tag(features(noisy, families=["stat", "morph"], resegment_range=(40.0, 60.0)))
    inside = v[(v >= 40) & (v <= 60)]
    assert df["stat_min"] >= 40 and df["stat_max"] <= 60 and df["stat_mean"] == pytest.approx(inside.mean())
    assert df["morph_vol_approx"] == pytest.approx(v.size * 2.0 * 0.8 * 0.8)  # morphology keeps the whole mask
    out = _by_tag(features(noisy, families="stat", outlier_sigma=1.0))
    kept = v[np.abs(v - v.mean()) <= v.std()]
    assert out["stat_mean"] == pytest.approx(kept.mean())


# ------------------------------------------------------------------------------------ API plumbing


def test_label_value_and_dataarray_mask(noisy):
    lab = np.zeros(noisy.shape, np.int16)
    lab[:3] = 2
    lab[3:] = 5
    mask_img = spatial_image(lab, spacing=(2.0, 0.8, 0.8))
    got = _by_tag(features(noisy, mask_img, families="stat", label=5))
    assert got["stat_mean"] == pytest.approx(noisy.values[3:].mean())


def test_settings_reach_the_matrix_families(noisy):
    from multiscale.analysis.texture import glcm

    d1 = _by_tag(features(noisy, families="glcm", aggregation="3D_comb", n_bins=8))
    d2 = _by_tag(features(noisy, families="glcm", aggregation="3D_comb", n_bins=8, distances=[2]))
    assert set(d1) == {t for t in d1 if t.endswith("_3D_comb")}
    assert d1["cm_contrast_3D_comb"] != d2["cm_contrast_3D_comb"]
    q = discretise(noisy.values, "fbn", n_bins=8)
    rows = glcm.family_features(q, 8, np.ones(q.shape, bool), (2.0, 0.8, 0.8), ["3D_comb"],
                                {"glcm_distance": 2, "glcm_symmetric": True, "ngldm_alpha": 0, "ngldm_distance": 1,
                                 "ngtdm_distance": 1})
    assert _by_tag(rows) == pytest.approx(d2)


def test_feature_map_is_exported():
    from multiscale.analysis.texture import feature_map

    img = spatial_image(np.random.default_rng(0).random((6, 6, 6)), spacing=1.0)
    m = feature_map(img, family="glcm", features=["joint_avg"], radius=1, bins=4)
    assert m.sizes["c"] == 1 and m.shape[1:] == (6, 6, 6)


def test_features_see_the_image_around_the_roi_for_local_intensity():
    rng = np.random.default_rng(8)
    data = rng.random((12, 30, 30))
    data[5, 14, 20] = 50.0  # outside the ROI, within 6.2 mm of its edge
    img = spatial_image(data, spacing=(2.0, 1.0, 1.0))
    mask = np.zeros(data.shape, bool)
    mask[4:7, 10:16, 10:16] = True
    got = _by_tag(features(img, mask, families="loc"))
    ref = _by_tag(local_intensity_features(data, mask, (2.0, 1.0, 1.0)))
    assert got == pytest.approx(ref)
    data[5, 14, 20] = 0.0
    without = _by_tag(features(img.copy(data=data), mask, families="loc"))
    assert got["loc_peak_glob"] > without["loc_peak_glob"] + 0.05  # the voxel outside the ROI entered the means


def test_aee_area_series_is_ibsi_and_finite_for_spheroids():
    from scipy import special

    from multiscale.analysis.texture.morphology import _ellipsoid_area

    a, b, c = 5.7, 4.655, 4.27
    alpha, beta = np.sqrt(1 - b * b / a / a), np.sqrt(1 - c * c / a / a)
    nu = np.arange(21)
    ibsi = 4 * np.pi * a * b * ((alpha * beta) ** nu / (1 - 4 * nu**2)
                                * special.eval_legendre(nu, (alpha**2 + beta**2) / (2 * alpha * beta))).sum()
    assert _ellipsoid_area(a, b, c) == pytest.approx(ibsi, rel=1e-12)
    assert _ellipsoid_area(2.0, 2.0, 2.0) == pytest.approx(16 * np.pi)  # a sphere
    assert _ellipsoid_area(3.0, 3.0, 1.0) == pytest.approx(_ellipsoid_area(3.0, 3.0 - 1e-7, 1.0), rel=1e-6)


def test_local_mean_skips_nan_and_the_image_border():
    from multiscale.analysis.texture.local_intensity import local_mean

    rng = np.random.default_rng(9)
    img = rng.random((5, 6, 7))
    img[0, 0, 1] = np.nan  # outside the ROI, inside its spheres
    roi = np.zeros(img.shape, bool)
    roi[0, 0, 0] = roi[2, 3, 3] = True  # a corner voxel: its sphere is cut by the border
    spacing = (2.0, 2.0, 2.0)
    r = (3 * 1000 / (4 * np.pi)) ** (1 / 3)
    pos = np.argwhere(np.ones(img.shape, bool)) * 2.0
    expected = []
    for idx in np.argwhere(roi):
        near = np.linalg.norm(pos - idx * 2.0, axis=1) <= r
        expected.append(np.nanmean(img.ravel()[near]))
    assert local_mean(img, roi, spacing) == pytest.approx(expected)
