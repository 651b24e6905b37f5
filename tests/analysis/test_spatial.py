"""Spatial statistics: IBSI phantom values, hand-computable autocorrelation, ratio maps, joint criteria."""

from __future__ import annotations

import csv

import dask.array as da
import numpy as np
import pandas as pd
import pytest

from multiscale.analysis._masks import AnalysisError, AnalysisWarning
from multiscale.analysis.spatial import (
    distribution_stats,
    fraction_meeting_criteria,
    ratio_map,
    spatial_autocorrelation,
)
from multiscale.image import from_sitk, spatial_image


def _phantom(reference_data):
    import SimpleITK as sitk

    folder = reference_data / "ibsi-digital-phantom"
    img = from_sitk(sitk.ReadImage(str(folder / "phantom.nii.gz")))
    mask = from_sitk(sitk.ReadImage(str(folder / "mask.nii.gz")))
    with open(folder / "reference_values.csv", newline="", encoding="utf-8") as fh:
        ref = {row["tag"]: (float(row["value"]), float(row["tolerance"])) for row in csv.DictReader(fh)}
    return img.astype(np.float64), mask, ref


def _sig3(x: float) -> float:
    return float(f"{x:.3g}")


def test_ibsi_phantom_morans_i_and_gearys_c(reference_data):
    img, mask, ref = _phantom(reference_data)
    res = spatial_autocorrelation(img, mask, method="ibsi")
    assert res["n"] == 74
    for key, tag in (("morans_i", "morph_moran_i"), ("gearys_c", "morph_geary_c")):
        value, tol = ref[tag]
        assert abs(_sig3(res[key]) - value) <= tol + 1e-12, (key, res[key], value)


def test_ibsi_phantom_distribution_statistics(reference_data):
    img, mask, ref = _phantom(reference_data)
    t = distribution_stats(img, mask, bins=6).set_index("metric")["value"]
    pairs = {"mean": "stat_mean", "skewness": "stat_skew", "excess_kurtosis": "stat_kurt", "cv": "stat_cov",
             "qcod": "stat_qcod", "median": "stat_median", "entropy_log2": "ih_entropy"}
    for metric, tag in pairs.items():
        value, tol = ref[tag]
        assert abs(_sig3(t[metric]) - value) <= tol + 1e-12, (metric, t[metric], value)
    assert t["sd"] ** 2 == pytest.approx(ref["stat_var"][0], abs=0.005)


def _brute_force(values, mask, spacing, kind):
    idx = np.argwhere(mask)
    x = values[mask]
    z = x - x.mean()
    pos = idx * np.asarray(spacing)
    d = np.sqrt(((pos[:, None, :] - pos[None, :, :]) ** 2).sum(-1))
    if kind == "ibsi":
        with np.errstate(divide="ignore"):
            w = np.where(d > 0, 1.0 / d, 0.0)
    else:  # 8/26-neighbours: Chebyshev distance 1 in index space
        cheb = np.abs(idx[:, None, :] - idx[None, :, :]).max(-1)
        w = (cheb == 1).astype(float)
    n, wt = x.size, w.sum()
    moran = n / wt * (w * np.outer(z, z)).sum() / (z * z).sum()
    geary = (n - 1) / (2 * wt) * (w * (x[:, None] - x[None, :]) ** 2).sum() / (z * z).sum()
    return moran, geary


@pytest.mark.parametrize("method", ["ibsi", "neighbours"])
def test_autocorrelation_matches_its_definition_on_anisotropic_voxels(method):
    rng = np.random.default_rng(0)
    v = rng.random((5, 6, 7))
    m = rng.random((5, 6, 7)) > 0.3
    sp = (2.0, 0.7, 0.5)
    res = spatial_autocorrelation(spatial_image(v, spacing=sp), spatial_image(m, spacing=sp), method=method)
    mi, gc = _brute_force(v, m, sp, method)
    assert res["morans_i"] == pytest.approx(mi, rel=1e-9)
    assert res["gearys_c"] == pytest.approx(gc, rel=1e-9)


def test_checkerboard_neighbour_graph_is_hand_computable():
    board = (np.indices((6, 8)).sum(0) % 2).astype(float)
    res = spatial_autocorrelation(spatial_image(board, spacing=0.25), method="neighbours", connectivity=1)
    n = board.size
    assert res["morans_i"] == pytest.approx(-1.0)
    assert res["gearys_c"] == pytest.approx(2 * (n - 1) / n)
    assert res["weight_total"] == 2 * (6 * 7 + 5 * 8)
    smooth = spatial_image(np.add.outer(np.arange(6.0), np.arange(8.0)), spacing=0.25)
    assert spatial_autocorrelation(smooth, method="neighbours")["morans_i"] > 0.5


def test_distribution_stats_known_values():
    rng = np.random.default_rng(1)
    counts = rng.poisson(20.0, size=(60, 60)).astype(float)
    t = distribution_stats(spatial_image(counts, spacing=0.1)).set_index("metric")["value"]
    assert t["dispersion_index"] == pytest.approx(1.0, abs=0.08)
    assert t["n"] == 3600
    equal = distribution_stats(spatial_image(np.full((5, 5), 3.0), spacing=1.0)).set_index("metric")["value"]
    assert equal["gini"] == 0.0 and equal["cv"] == 0.0 and equal["entropy_log2"] == 0.0
    assert equal["skewness"] == 0.0 and equal["excess_kurtosis"] == 0.0
    one_hot = np.zeros(100)
    one_hot[0] = 7.0
    with pytest.warns(AnalysisWarning, match="quartile"):  # p25 = p75 = 0
        t = distribution_stats(spatial_image(one_hot.reshape(10, 10), spacing=1.0)).set_index("metric")["value"]
    assert t["gini"] == pytest.approx(0.99)  # (n - 1) / n for one voxel holding everything
    two = np.concatenate([rng.normal(0, 1, 2000), rng.normal(10, 1, 2000)]) + 10
    bc_two = distribution_stats(spatial_image(two.reshape(40, 100), spacing=1.0)).set_index("metric")["value"]
    bc_one = distribution_stats(spatial_image(rng.normal(10, 1, 4000).reshape(40, 100), spacing=1.0)
                                ).set_index("metric")["value"]
    assert bc_two["bimodality_coefficient"] > 5 / 9 > bc_one["bimodality_coefficient"]
    assert bc_one["bimodality_coefficient"] == pytest.approx(1 / 3, abs=0.03)  # a normal distribution
    # two equal bins: entropy exactly 1 bit
    half = distribution_stats(spatial_image(np.repeat([0.0, 1.0], 50).reshape(10, 10), spacing=1.0))
    assert half.set_index("metric").loc["entropy_log2", "value"] == pytest.approx(1.0)


def test_ratio_map_noise_floor_validity_and_dask():
    rng = np.random.default_rng(2)
    drug = rng.random((20, 24)) * 10
    carrier = rng.random((20, 24)) * 4
    m = np.zeros((20, 24), bool)
    m[2:18, 3:20] = True
    sp = (0.02, 0.02)
    r, ok = ratio_map(spatial_image(drug, spacing=sp, units="ng/mg"), spatial_image(carrier, spacing=sp, units="ng/mg"),
                      mask=spatial_image(m, spacing=sp), noise_floor_denominator=1.0, noise_floor_numerator=0.5)
    expect_ok = m & (carrier > 1.0) & (drug >= 0.5)
    assert np.array_equal(ok.values, expect_ok)
    assert np.allclose(r.values[expect_ok], drug[expect_ok] / carrier[expect_ok])
    assert np.isnan(r.values[~expect_ok]).all()
    assert r.attrs["units"] == "ng/mg/ng/mg" and r.attrs["aspect"] == "ratio"
    lazy_r, lazy_ok = ratio_map(spatial_image(da.from_array(drug, chunks=8), spacing=sp),
                                spatial_image(da.from_array(carrier, chunks=8), spacing=sp),
                                mask=spatial_image(m, spacing=sp), noise_floor_denominator=1.0,
                                noise_floor_numerator=0.5)
    assert hasattr(lazy_r.data, "dask")
    np.testing.assert_array_equal(lazy_r.values, r.values)
    np.testing.assert_array_equal(lazy_ok.values, ok.values)


def test_fraction_meeting_criteria_and_dask():
    rng = np.random.default_rng(3)
    a = rng.random((30, 30))
    b = rng.random((30, 30))
    m = np.zeros((30, 30), bool)
    m[:, :20] = True
    sp = (0.5, 0.5)
    crit = [("a_high", spatial_image(a, spacing=sp), ">", 0.5), ("b_low", spatial_image(b, spacing=sp), "<=", 0.3)]
    t = fraction_meeting_criteria(crit, mask=spatial_image(m, spacing=sp))
    assert t["criterion"].tolist() == ["a_high", "b_low", "all"]
    assert t["fraction"].tolist() == pytest.approx([(a[m] > 0.5).mean(), (b[m] <= 0.3).mean(),
                                                    ((a > 0.5) & (b <= 0.3))[m].mean()])
    assert t["volume_mm3"].iloc[-1] == pytest.approx(((a > 0.5) & (b <= 0.3))[m].sum() * 0.25)
    lazy = [(n, spatial_image(da.from_array(img.values, chunks=7), spacing=sp), op, th) for n, img, op, th in crit]
    pd.testing.assert_frame_equal(t, fraction_meeting_criteria(lazy, mask=spatial_image(m, spacing=sp)))


def test_dask_backed_statistics_agree_with_numpy():
    rng = np.random.default_rng(4)
    v = rng.gamma(2.0, 2.0, (12, 14, 16))
    m = rng.random(v.shape) > 0.4
    sp = (1.0, 0.5, 0.5)
    eager, lazy = spatial_image(v, spacing=sp), spatial_image(da.from_array(v, chunks=(5, 6, 7)), spacing=sp)
    mask = spatial_image(m, spacing=sp)
    pd.testing.assert_frame_equal(distribution_stats(eager, mask), distribution_stats(lazy, mask))
    for method in ("ibsi", "neighbours"):
        assert spatial_autocorrelation(eager, mask, method) == spatial_autocorrelation(lazy, mask, method)


def test_bad_input():
    sp = (1.0, 1.0)
    img = spatial_image(np.arange(16.0).reshape(4, 4), spacing=sp)
    with pytest.raises(AnalysisError, match="empty"):
        distribution_stats(img, spatial_image(np.zeros((4, 4), bool), spacing=sp))
    with pytest.raises(AnalysisError, match="not on the image's grid"):
        spatial_autocorrelation(img, spatial_image(np.ones((4, 4), bool), spacing=(2.0, 1.0)))
    with pytest.raises(AnalysisError, match="method"):
        spatial_autocorrelation(img, method="knn")
    big = spatial_image(da.zeros((300, 300, 300), chunks=100), spacing=1.0)  # lazy: never computed
    big_mask = np.zeros((300, 300, 300), bool)
    big_mask[0, 0, 0] = big_mask[-1, -1, -1] = True
    with pytest.raises(AnalysisError, match="neighbours"):
        spatial_autocorrelation(big, spatial_image(big_mask, spacing=1.0))
    with pytest.raises(AnalysisError, match="same grid"):
        ratio_map(img, spatial_image(np.ones((4, 4)), spacing=(1.0, 0.5)))
    with pytest.raises(AnalysisError, match="op"):
        fraction_meeting_criteria({"x": (img, "=", 1.0)})
    with pytest.warns(AnalysisWarning, match="constant"):
        res = spatial_autocorrelation(spatial_image(np.ones((4, 4)), spacing=sp))
    assert np.isnan(res["morans_i"]) and np.isnan(res["gearys_c"])
    nan = np.arange(16.0).reshape(4, 4)
    nan[1, 1] = np.nan
    with pytest.warns(AnalysisWarning, match="1 of 16"):
        t = distribution_stats(spatial_image(nan, spacing=sp)).set_index("metric")["value"]
    assert t["n"] == 15
    with pytest.warns(AnalysisWarning, match="Gini"):
        distribution_stats(spatial_image(np.arange(16.0).reshape(4, 4) - 8, spacing=sp))
