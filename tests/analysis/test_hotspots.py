"""Gi* hotspots, local Moran, semivariogram and patches: brute-force cross-checks and planted patterns."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from multiscale.analysis.spatial import (
    getis_ord_gi_star,
    local_moran,
    patch_statistics,
    semivariogram,
    spatial_autocorrelation,
    variogram_range,
)
from multiscale.analysis.spatial.hotspots import FAMILY
from multiscale.image import spatial_image


def _small(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.gamma(2.0, 1.0, (9, 11))
    m = rng.random((9, 11)) > 0.25
    sp = (0.5, 0.4)
    return x, m, sp, spatial_image(x, spacing=sp), spatial_image(m.astype(np.uint8), spacing=sp)


def _pairs(m, sp, radius, include_self):
    idx = np.argwhere(m)
    pos = idx * np.array(sp)
    d = np.linalg.norm(pos[:, None] - pos[None], axis=2)
    w = (d <= radius + 1e-12).astype(float)
    if not include_self:
        np.fill_diagonal(w, 0.0)
    return idx, w


def test_gi_star_equals_the_formula_computed_pair_by_pair():
    x, m, sp, img, mask = _small()
    idx, w = _pairs(m, sp, 1.0, include_self=True)
    v = x[m]
    n = v.size
    xbar, s = v.mean(), np.sqrt((v ** 2).mean() - v.mean() ** 2)
    wi = w.sum(1)
    ref = (w @ v - xbar * wi) / (s * np.sqrt((n * (w ** 2).sum(1) - wi ** 2) / (n - 1)))
    z = getis_ord_gi_star(img, mask, radius_mm=1.0).values
    np.testing.assert_allclose(z[m], ref, rtol=1e-5)
    assert np.isnan(z[~m]).all()


def test_local_moran_equals_anselin_pair_by_pair_and_its_mean_is_morans_i():
    x, m, sp, img, mask = _small(1)
    idx, w = _pairs(m, sp, 0.7, include_self=False)
    v = x[m]
    n = v.size
    z = v - v.mean()
    m2, b2 = (z ** 2).mean(), (z ** 4).mean() / (z ** 2).mean() ** 2
    wr = w / w.sum(1, keepdims=True)
    li = z * (wr @ z) / m2
    wi, wi2 = wr.sum(1), (wr ** 2).sum(1)
    var = wi2 * (n - b2) / (n - 1) + (wi ** 2 - wi2) * (2 * b2 - n) / ((n - 1) * (n - 2)) - wi ** 2 / (n - 1) ** 2
    ref_z = (li + wi / (n - 1)) / np.sqrt(var)
    r = local_moran(img, mask, radius_mm=0.7)
    np.testing.assert_allclose(r["I"].values[m], li, rtol=1e-5)
    np.testing.assert_allclose(r["z"].values[m], ref_z, rtol=1e-4)
    # binary weights (8-neighbours at this spacing): the mean agrees with the existing neighbour-graph Moran's I
    rb = local_moran(img, mask, radius_mm=0.7, row_standardise=False)
    ref_i = spatial_autocorrelation(img, mask, method="neighbours", connectivity=2)["morans_i"]
    assert rb["global_I"] == pytest.approx(ref_i, rel=1e-9)


def test_gi_star_recovers_planted_hotspots():
    rng = np.random.default_rng(2)
    a = rng.normal(10, 1, (120, 120))
    yy, xx = np.mgrid[:120, :120]
    centres = [(25, 30), (80, 90), (95, 25)]
    for y, x in centres:
        a[np.hypot(yy - y, xx - x) < 8] += 3.0
    img = spatial_image(a, spacing=0.01)
    z = getis_ord_gi_star(img, radius_mm=0.05).values
    hot = z > 1.96
    lab, n = ndi.label(hot, structure=np.ones((3, 3)))
    sizes = np.bincount(lab.ravel())[1:]
    big = np.flatnonzero(sizes >= 20) + 1
    assert len(big) == 3
    for y, x in centres:
        assert lab[y, x] in big
    planted = np.zeros_like(hot)
    for y, x in centres:
        planted |= np.hypot(yy - y, xx - x) < 13
    assert hot[~planted].mean() < 0.03                     # few false hot voxels away from the planted spots
    rows = FAMILY.evaluate({"image": img, "mask": None}, {"radius_mm": 0.05}).rows.set_index("metric")
    assert rows.loc["gi_star_max", "units"] == "z" and rows.loc["n_hotspots", "value"] >= 3


def test_semivariogram_equals_the_pair_by_pair_sum():
    x, m, sp, img, mask = _small(3)
    v = semivariogram(img, mask, max_lag_mm=2.0, n_lags=4)
    idx = np.argwhere(m)
    pos = idx * np.array(sp)
    d = np.linalg.norm(pos[:, None] - pos[None], axis=2)
    dv = (x[m][:, None] - x[m][None]) ** 2
    iu = np.triu_indices(len(idx), 1)
    d, dv = d[iu], dv[iu]
    edges = np.linspace(0, 2.0, 5)
    for k, row in v.iterrows():
        sel = (d > edges[k]) & (d <= edges[k + 1] + 1e-12)
        assert row["n_pairs"] == sel.sum()
        assert row["gamma"] == pytest.approx(dv[sel].mean() / 2, rel=1e-6)
        assert row["lag_mm"] == pytest.approx(d[sel].mean(), rel=1e-6)


def test_variogram_range_of_smoothed_noise_is_the_analytic_one():
    """White noise smoothed by a Gaussian of SD s has covariance exp(-h^2 / (4 s^2)): the Gaussian model's a is 2 s."""
    rng = np.random.default_rng(4)
    s_px, sp = 4.0, 0.01
    field = ndi.gaussian_filter(rng.normal(0, 1, (300, 300)), s_px, mode="wrap")
    v = semivariogram(spatial_image(field, spacing=sp), max_lag_mm=0.3, n_lags=30)
    fit = variogram_range(v, "gaussian")
    assert fit["a_mm"] == pytest.approx(2 * s_px * sp, rel=0.1)
    assert fit["range_mm"] == pytest.approx(np.sqrt(3) * fit["a_mm"])


def test_patches_of_a_thresholded_map():
    a = np.zeros((50, 50))
    a[5:10, 5:10] = 4
    a[20:30, 20:25] = 4
    a[40:42, 40:48] = 4
    s, p = patch_statistics(spatial_image(a, spacing=0.1), threshold=1.0)
    assert s["n_patches"] == 3
    assert sorted(p["size"].round(3)) == [0.16, 0.25, 0.5]
    assert s["area_fraction"] == pytest.approx((25 + 50 + 16) / 2500)
    assert s["density"] == pytest.approx(3 / 25.0)
    rows = FAMILY.evaluate({"image": spatial_image(a + np.random.default_rng(0).random((50, 50)) * 0.1, spacing=0.1),
                            "mask": None}, {"threshold": 1.0}).rows.set_index("metric")
    assert rows.loc["n_patches", "value"] == 3 and rows.loc["patch_size_max", "units"] == "mm²"


def test_against_pysal_esda_when_installed():
    """Gi* equals esda's G_Local(star=True) Zs; local Moran equals esda's Is x n / (n - 1) (esda scales by n - 1,
    Anselin 1995 by n) and its z uses esda's EI/VI; checked with esda 2.9.0 / libpysal 4.14.1 (not a dependency)."""
    esda = pytest.importorskip("esda")
    weights = pytest.importorskip("libpysal.weights")
    x, m, sp, img, mask = _small(5)
    pts = np.argwhere(m) * np.array(sp)
    y = x[m]
    w = weights.DistanceBand(pts, threshold=1.0 + 1e-9, binary=True, silence_warnings=True)
    g = esda.G_Local(y, w, transform="B", star=True, permutations=0)
    np.testing.assert_allclose(getis_ord_gi_star(img, mask, radius_mm=1.0).values[m], g.Zs, atol=1e-5)
    w2 = weights.DistanceBand(pts, threshold=0.7 + 1e-9, binary=True, silence_warnings=True)
    lm = esda.Moran_Local(y, w2, transformation="r", permutations=0)
    r = local_moran(img, mask, radius_mm=0.7)
    n = y.size
    np.testing.assert_allclose(r["I"].values[m], lm.Is * n / (n - 1), atol=1e-5)
    np.testing.assert_allclose(r["z"].values[m], (lm.Is * n / (n - 1) - lm.EI) / np.sqrt(lm.VI), atol=1e-5)
    assert (r["quadrant"].values[m] == lm.q).all()
    assert r["global_I"] == pytest.approx(esda.Moran(y, w2, transformation="r", permutations=0).I)
