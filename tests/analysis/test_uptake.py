"""Uptake metrics: SUVpeak on designed hot spheres, MTV/TLG by thresholds, reference regions, %ID/g."""

from __future__ import annotations

import math

import dask.array as da
import numpy as np
import pytest

from multiscale.analysis._masks import AnalysisError, AnalysisWarning
from multiscale.analysis.uptake import PERCIST_RADIUS_MM, sphere_offsets, suv_peak, uptake_metrics
from multiscale.image import spatial_image


def _grid(shape, spacing):
    sp = np.asarray(spacing, float)
    c = (np.asarray(shape) - 1) / 2
    return np.meshgrid(*[(np.arange(shape[k]) - c[k]) * sp[k] for k in range(3)], indexing="ij")


def test_percist_radius_is_one_millilitre():
    assert 4 / 3 * math.pi * PERCIST_RADIUS_MM**3 == pytest.approx(1000.0)
    assert PERCIST_RADIUS_MM == pytest.approx(6.2035, abs=1e-4)


def test_sphere_offsets_count_voxel_centres_within_radius():
    sp = (3.27, 2.0, 2.0)
    off = sphere_offsets(sp, PERCIST_RADIUS_MM)
    # brute force over a generous box
    rng = range(-5, 6)
    brute = sum(1 for i in rng for j in rng for k in rng
                if (i * sp[0]) ** 2 + (j * sp[1]) ** 2 + (k * sp[2]) ** 2 <= PERCIST_RADIUS_MM**2)
    assert len(off) == brute
    assert np.all(np.abs(off[:, 0]) <= 1)  # 2 x 3.27 mm > 6.2 mm


@pytest.mark.parametrize("spacing", [(2.0, 2.0, 2.0), (3.27, 1.5, 1.5)])
def test_suv_peak_finds_designed_hot_sphere(spacing):
    shape = (30, 40, 40) if spacing[0] < 3 else (20, 50, 50)
    z, y, x = _grid(shape, spacing)
    lesion = np.sqrt(z**2 + y**2 + x**2) <= 20.0
    hot_centre = np.array([4.0, -6.0, 5.0])
    r_hot = np.sqrt((z - hot_centre[0]) ** 2 + (y - hot_centre[1]) ** 2 + (x - hot_centre[2]) ** 2)
    suv = np.where(lesion, 4.0, 1.0)
    suv[r_hot <= 9.0] = 12.0  # hot sphere larger than the 1 ml sphere: SUVpeak is exactly 12
    img = spatial_image(suv, spacing=spacing, origin=(-10.0, 5.0, 20.0), units="SUVbw")
    res = suv_peak(img, spatial_image(lesion, spacing=spacing, origin=(-10.0, 5.0, 20.0)))
    assert res["suv_peak"] == pytest.approx(12.0, abs=1e-9)
    # the best sphere is centred inside the hot sphere (world mm, the grid's centre is its mean coordinate)
    hot_world = hot_centre + np.array([float(img.z.mean()), float(img.y.mean()), float(img.x.mean())])
    assert np.linalg.norm(np.asarray(res["suv_peak_centre_mm"]) - hot_world) <= 9.0 - PERCIST_RADIUS_MM + 2 * max(spacing)
    assert res["suv_peak_n_voxels"] == len(sphere_offsets(spacing, PERCIST_RADIUS_MM))


def test_suv_peak_of_a_single_hot_voxel_averages_the_sphere_including_outside_the_mask():
    sp = (2.0, 2.0, 2.0)
    v = np.full((21, 21, 21), 2.0)
    m = np.zeros(v.shape, bool)
    m[8:13, 8:13, 10:13] = True
    v[10, 10, 10] = 102.0  # on the lesion's edge: half the sphere lies outside the mask
    v[:, :, :10] = 5.0  # outside the lesion, the sphere sees 5
    n_sphere = len(sphere_offsets(sp, PERCIST_RADIUS_MM))
    off = sphere_offsets(sp, PERCIST_RADIUS_MM)
    outside = int((off[:, 2] < 0).sum())
    expected = (102.0 + 5.0 * outside + 2.0 * (n_sphere - outside - 1)) / n_sphere
    res = uptake_metrics(spatial_image(v, spacing=sp), spatial_image(m, spacing=sp))
    assert res["suv_max"] == 102.0
    assert res["suv_peak"] == pytest.approx(expected, rel=1e-12)
    assert res["suv_peak"] < res["suv_max"]


def test_mtv_tlg_fractions_and_reference():
    sp = (2.0, 2.0, 2.0)
    v = np.full((12, 12, 12), 1.0)
    m = np.zeros(v.shape, bool)
    m[2:10, 2:10, 2:10] = True  # 512 voxels
    v[m] = 3.0
    v[3:5, 3:5, 3:5] = 10.0  # 8 voxels at SUV 10
    ref = np.zeros(v.shape, bool)
    ref[10:, 10:, :] = True  # background at SUV 1
    v[10, 10, :6] = 2.0  # reference mean 1.25, SD computable
    img, mask = spatial_image(v, spacing=sp), spatial_image(m, spacing=sp)
    res = uptake_metrics(img, mask, suv_thresholds=(2.5, 5), percent_of_max=(41, 100),
                         reference_mask=spatial_image(ref, spacing=sp), reference_factor=1.5, reference_sd=2.0,
                         fraction_above=(5.0,))
    vml = 8e-3
    assert res["volume_ml"] == pytest.approx(512 * vml)
    assert res["suv_mean"] == pytest.approx((504 * 3 + 8 * 10) / 512)
    assert res["mtv_suv2.5_ml"] == pytest.approx(512 * vml)
    assert res["tlg_suv2.5"] == pytest.approx(512 * vml * res["suv_mean"])
    assert res["mtv_suv5_ml"] == pytest.approx(8 * vml) and res["tlg_suv5"] == pytest.approx(8 * vml * 10)
    assert res["mtv_41pct_ml"] == pytest.approx(8 * vml)  # 4.1 > 3
    assert res["mtv_100pct_ml"] == pytest.approx(8 * vml)
    assert res["fraction_above_5"] == pytest.approx(8 / 512)
    rv = v[ref]
    thr = 1.5 * rv.mean() + 2.0 * rv.std(ddof=1)
    assert res["reference_threshold"] == pytest.approx(thr)
    assert res["fraction_above_reference"] == pytest.approx((v[m] > thr).mean())
    assert res["tumour_to_reference_ratio"] == pytest.approx(res["suv_mean"] / rv.mean())
    pid = uptake_metrics(img, mask, body_weight_g=25.0)
    assert pid["pidg_mean"] == pytest.approx(100 * res["suv_mean"] / 25.0)
    assert pid["pidg_peak"] == pytest.approx(100 * pid["suv_peak"] / 25.0)


def test_dask_backed_volume_agrees_with_numpy():
    rng = np.random.default_rng(0)
    sp = (2.0, 1.5, 1.5)
    v = rng.gamma(2.0, 1.5, (24, 30, 30))
    m = np.zeros(v.shape, bool)
    m[5:19, 6:25, 4:20] = True
    eager = uptake_metrics(spatial_image(v, spacing=sp), spatial_image(m, spacing=sp))
    lazy = uptake_metrics(spatial_image(da.from_array(v, chunks=(8, 10, 10)), spacing=sp), spatial_image(m, spacing=sp))
    assert eager == lazy


def test_bad_input():
    sp = (2.0, 2.0, 2.0)
    v = np.full((8, 8, 8), 2.0)
    m = np.zeros(v.shape, bool)
    img = spatial_image(v, spacing=sp)
    with pytest.raises(AnalysisError, match="empty"):
        uptake_metrics(img, spatial_image(m, spacing=sp))
    m[2:5, 2:5, 2:5] = True
    with pytest.raises(AnalysisError, match="not on the image's grid"):
        uptake_metrics(img, spatial_image(m, spacing=(2.0, 2.0, 1.0)))
    with pytest.raises(AnalysisError, match="3-D"):
        uptake_metrics(spatial_image(v[0], spacing=2.0), spatial_image(m[3], spacing=2.0))
    with pytest.raises(AnalysisError, match="not both"):
        uptake_metrics(img, spatial_image(m, spacing=sp), body_weight_g=20, injected_dose_bq=1e6)
    with pytest.raises(AnalysisError, match="percent_of_max"):
        uptake_metrics(img, spatial_image(m, spacing=sp), percent_of_max=(150,))
    w = v.copy()
    w[3, 3, 3] = np.nan
    with pytest.warns(AnalysisWarning, match="1 of 27"):
        res = uptake_metrics(spatial_image(w, spacing=sp), spatial_image(m, spacing=sp))
    assert res["n_voxels"] == 26 and res["suv_max"] == 2.0 and res["suv_peak"] == pytest.approx(2.0)
    const = uptake_metrics(img, spatial_image(m, spacing=sp))
    assert const["suv_sd"] == 0.0 and const["mtv_41pct_ml"] == pytest.approx(27 * 8e-3)
