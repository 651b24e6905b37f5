"""Radial (periphery vs core) analysis: known answers on analytic spheres, dask agreement, bad input."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pandas as pd
import pytest

from multiscale.analysis._masks import AnalysisError, AnalysisWarning
from multiscale.analysis.radial import (
    depth_map,
    penetration_depth,
    radial_gradient,
    radial_profile,
    rim_core_ratio,
)
from multiscale.image import spatial_image


def _sphere(radius_mm: float, spacing, pad: int = 3, origin=(5.0, -3.0, 12.0)):
    sp = np.broadcast_to(np.asarray(spacing, float), (3,))
    n = (np.ceil(2 * radius_mm / sp)).astype(int) + 2 * pad + 1
    c = (n - 1) / 2
    zz, yy, xx = np.meshgrid(*[(np.arange(n[k]) - c[k]) * sp[k] for k in range(3)], indexing="ij")
    r = np.sqrt(zz**2 + yy**2 + xx**2)
    mask = spatial_image(r <= radius_mm, spacing=sp, origin=origin, aspect="mask")
    return r, mask, sp, origin


@pytest.mark.parametrize("spacing", [0.6, (1.0, 0.5, 0.5)])
def test_linear_sphere_gives_slope_within_2_percent(spacing):
    radius, rim_value, slope = 12.0, 100.0, -3.0  # signal falls 3 units per mm from rim to centre
    r, mask, sp, org = _sphere(radius, spacing)
    img = spatial_image(rim_value + slope * (radius - r), spacing=sp, origin=org, units="a.u.")
    g = radial_gradient(img, mask)
    assert g["slope_per_mm"] == pytest.approx(slope, rel=0.02)
    assert g["slope_per_mm_ci_low"] < g["slope_per_mm"] < g["slope_per_mm_ci_high"]
    assert g["slope_per_normalised_depth"] == pytest.approx(g["slope_per_mm"] * g["max_depth_mm"])
    assert g["max_depth_mm"] == pytest.approx(radius, rel=0.05)
    assert g["intercept"] == pytest.approx(rim_value, abs=0.5)


def test_profile_by_depth_follows_analytic_depth():
    radius = 10.0
    r, mask, sp, org = _sphere(radius, 0.8)
    img = spatial_image(radius - r, spacing=sp, origin=org)  # the signal is the true depth
    prof = radial_profile(img, mask, shells=5, by="depth_mm", n_boot=0)
    assert list(prof["shell"]) == [0, 1, 2, 3, 4]
    width = prof["upper"] - prof["lower"]
    assert np.allclose(width, width[0])
    # the mean depth of each shell matches the mean true depth of its voxels within half a voxel (0.4 mm)
    assert np.allclose(prof["depth_mm"], prof["mean"], atol=0.3)
    assert (prof["depth_mm"] >= prof["lower"]).all() and (prof["depth_mm"] <= prof["upper"]).all()
    assert prof["n"].sum() == mask.values.sum()
    assert prof["volume_mm3"].sum() == pytest.approx(mask.values.sum() * 0.8**3)
    assert prof["normalised_depth"].between(0, 1).all()
    assert (prof["by"] == "depth_mm").all() and (prof["reference"] == "boundary").all()


def test_equal_volume_shells_have_equal_counts():
    r, mask, sp, org = _sphere(6.0, 0.5)
    img = spatial_image(r, spacing=sp, origin=org)
    n = int(mask.values.sum())
    for shells in (4, 7):
        prof = radial_profile(img, mask, shells=shells, by="equal_volume", n_boot=0)
        counts = prof["n"].to_numpy()
        assert counts.sum() == n
        assert counts.max() - counts.min() <= 1
        assert np.all(np.diff(prof["depth_mm"]) > 0)


def test_normalised_depth_shells_and_max_depth():
    r, mask, sp, org = _sphere(8.0, 0.5)
    img = spatial_image(r, spacing=sp, origin=org)
    prof = radial_profile(img, mask, shells=4, by="normalised_depth", n_boot=0)
    assert prof["lower"].iloc[0] == 0 and prof["upper"].iloc[-1] == 1
    assert np.all(np.diff(prof["normalised_depth"]) > 0)
    shallow = radial_profile(img, mask, shells=[0, 1, 2], by="depth_mm", max_depth_mm=2.0, n_boot=0)
    assert shallow["n"].sum() < mask.values.sum()
    assert shallow["upper"].iloc[-1] == 2.0


def test_bootstrap_ci_is_reproducible_and_brackets_mean():
    r, mask, sp, org = _sphere(5.0, 0.5)
    rng = np.random.default_rng(1)
    img = spatial_image(rng.normal(10, 2, r.shape), spacing=sp, origin=org)
    a = radial_profile(img, mask, shells=3, n_boot=200, seed=7)
    b = radial_profile(img, mask, shells=3, n_boot=200, seed=7)
    pd.testing.assert_frame_equal(a, b)
    assert (a["mean_ci_low"] < a["mean"]).all() and (a["mean"] < a["mean_ci_high"]).all()


def test_depth_map_on_a_slab_is_exact_and_anisotropic():
    m = np.zeros((12, 12, 16), bool)
    m[:, 2:10, :] = True  # a slab crossing the image in z and x: near the middle, depth is along y
    mask = spatial_image(m, spacing=(2.0, 0.5, 1.0))
    d = depth_map(mask).values
    expected_y = np.array([-0.75, -0.25, 0.25, 0.75, 1.25, 1.75, 1.75, 1.25, 0.75, 0.25, -0.25, -0.75])
    assert np.allclose(d[6, :, 8], expected_y, atol=1e-6)
    assert d.dtype == np.float64
    assert depth_map(mask).attrs["units"] == "mm"


def test_rim_core_ratio_and_penetration_depth():
    radius = 10.0
    r, mask, sp, org = _sphere(radius, 1.0)
    img = spatial_image(np.where(radius - r < 3.0, 5.0, 1.0), spacing=sp, origin=org)
    res = rim_core_ratio(img, mask, rim_mm=2.0, n_boot=100)
    assert res["rim_mean"] == 5.0
    assert res["rim_core_ratio"] > 1.5 and res["ci_low"] <= res["rim_core_ratio"] <= res["ci_high"]
    half = rim_core_ratio(img, mask, n_boot=0)
    assert abs(half["rim_n"] - half["core_n"]) <= 1
    # a step from 5 to 1 at 3 mm depth: falls to half the rim value between 2.5 and 3.5 mm
    pen = penetration_depth(img, mask, fraction=0.5, shells=20)
    assert 2.5 <= pen <= 3.5


def test_vessel_distance_profile_is_exact_for_a_straight_vessel():
    m = np.ones((8, 21, 21), bool)
    vessel = np.zeros_like(m)
    vessel[:, 10, 10] = True  # a vessel along z through the middle
    sp = (1.0, 0.4, 0.4)
    yy, xx = np.meshgrid((np.arange(21) - 10) * 0.4, (np.arange(21) - 10) * 0.4, indexing="ij")
    dist = np.broadcast_to(np.hypot(yy, xx), m.shape)
    img = spatial_image(7.0 - 1.5 * dist, spacing=sp)
    mask, ves = spatial_image(m, spacing=sp), spatial_image(vessel, spacing=sp)
    g = radial_gradient(img, mask, vessels=ves)
    assert g["slope_per_mm"] == pytest.approx(-1.5, rel=1e-9)
    prof = radial_profile(img, mask, shells=4, vessels=ves, n_boot=0)
    assert "vessel_distance_mm" in prof and (prof["reference"] == "vessels").all()
    assert np.allclose(prof["mean"], 7.0 - 1.5 * prof["vessel_distance_mm"])


def test_dask_backed_image_agrees_with_numpy():
    r, mask, sp, org = _sphere(6.0, 0.5)
    rng = np.random.default_rng(3)
    values = 20 + 2 * r + rng.normal(0, 1, r.shape)
    img = spatial_image(values, spacing=sp, origin=org)
    lazy = spatial_image(da.from_array(values, chunks=(10, 11, 12)), spacing=sp, origin=org)
    assert lazy.data.npartitions > 1
    pd.testing.assert_frame_equal(radial_profile(img, mask, n_boot=50), radial_profile(lazy, mask, n_boot=50))
    assert radial_gradient(img, mask) == radial_gradient(lazy, mask)
    assert rim_core_ratio(img, mask, n_boot=20) == rim_core_ratio(lazy, mask, n_boot=20)
    assert np.isfinite(penetration_depth(img, mask, fraction=0.8))
    assert penetration_depth(img, mask, fraction=0.8) == penetration_depth(lazy, mask, fraction=0.8)


def test_bad_input_gives_clear_errors():
    r, mask, sp, org = _sphere(4.0, 0.5)
    img = spatial_image(r, spacing=sp, origin=org)
    empty = spatial_image(np.zeros(r.shape, bool), spacing=sp, origin=org)
    with pytest.raises(AnalysisError, match="empty"):
        radial_profile(img, empty)
    shifted = spatial_image(mask.values, spacing=sp, origin=(0.0, 0.0, 0.0))
    with pytest.raises(AnalysisError, match="not on the image's grid"):
        radial_profile(img, shifted)
    with pytest.raises(AnalysisError, match="by="):
        radial_profile(img, mask, by="radius")
    with pytest.raises(AnalysisError, match="unknown statistic"):
        radial_profile(img, mask, stats=("mode",), n_boot=0)
    far = np.zeros(r.shape, bool)
    far[0, 0, :] = True
    with pytest.raises(AnalysisError, match="does not intersect"):
        radial_profile(img, mask, vessels=spatial_image(far, spacing=sp, origin=org))
    with pytest.raises(AnalysisError, match="rim and core"):
        rim_core_ratio(img, mask, rim_mm=100.0)
    two_channels = spatial_image(np.stack([r, r]), spacing=sp, origin=org, dims=("c", "z", "y", "x"))
    with pytest.raises(AnalysisError, match="select one"):
        radial_profile(two_channels, mask)


def test_nan_voxels_are_dropped_with_a_warning_and_constant_images_work():
    r, mask, sp, org = _sphere(4.0, 0.5)
    values = 10 - r
    with_nan = values.copy()
    with_nan[tuple(np.argwhere(mask.values)[0])] = np.nan
    img = spatial_image(with_nan, spacing=sp, origin=org)
    with pytest.warns(AnalysisWarning, match="1 of"):
        prof = radial_profile(img, mask, n_boot=0)
    assert prof["n"].sum() == mask.values.sum() - 1
    const = spatial_image(np.full(r.shape, 3.0), spacing=sp, origin=org)
    g = radial_gradient(const, mask)
    assert g["slope_per_mm"] == pytest.approx(0.0, abs=1e-12)
    with pytest.warns(AnalysisWarning, match="never falls"):
        assert np.isnan(penetration_depth(const, mask))
    zero = spatial_image(np.where(r < 3.5, 0.0, 1.0), spacing=sp, origin=org)
    with pytest.warns(AnalysisWarning, match="core mean is 0"):
        assert np.isnan(rim_core_ratio(zero, mask, rim_mm=1.0)["rim_core_ratio"])


def test_two_dimensional_section_gives_the_slope():
    # a 2-D microscopy-like section (10 µm pixels): a disc of radius 1.5 mm, signal falling 20 per mm inward
    sp = 0.01
    n = 331
    yy, xx = (np.mgrid[:n, :n] - (n - 1) / 2) * sp
    r = np.hypot(yy, xx)
    img = spatial_image(500 - 20 * (1.5 - r), spacing=sp)
    g = radial_gradient(img, spatial_image(r <= 1.5, spacing=sp))
    assert g["slope_per_mm"] == pytest.approx(-20.0, rel=0.02)
    prof = radial_profile(img, spatial_image(r <= 1.5, spacing=sp), shells=3, by="equal_volume", n_boot=0)
    assert prof["n"].max() - prof["n"].min() <= 1
