"""Chains of registrations into a reference frame: compose_chain, resample_chain, analysis grids."""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest
import SimpleITK as sitk

from multiscale import image as mi
from multiscale.image import spatial_image
from multiscale.registration import (
    Transform,
    analysis_grid,
    anti_alias,
    compose_chain,
    linear_summary,
    resample,
    resample_chain,
)

resample_module = importlib.import_module("multiscale.registration.resample")


def _rigid3(angle: float, shift: tuple[float, float, float]) -> Transform:
    return Transform(sitk.Euler3DTransform((1.0, 1.0, 1.0), 0.0, 0.0, angle, shift))


@pytest.fixture(scope="module")
def volume():
    rng = np.random.default_rng(4)
    zz, yy, xx = np.mgrid[:12, :20, :24]
    data = np.exp(-((zz - 6) ** 2 + (yy - 9) ** 2 + (xx - 13) ** 2) / 30.0) + 0.05 * rng.random((12, 20, 24))
    return spatial_image(data.astype(np.float32), spacing=(0.4, 0.2, 0.15), origin=(-1.0, 0.5, 0.0), modality="MR")


def test_compose_chain_sends_reference_points_through_the_last_edge_first():
    t_ab = Transform(sitk.TranslationTransform(3, (1.0, 0.0, 0.0)))
    t_bref = _rigid3(np.pi / 2, (0.0, 0.0, 0.0))
    p = np.array([[2.0, 1.0, 0.5], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(compose_chain([t_ab, t_bref]).transform_points(p),
                               t_ab.transform_points(t_bref.transform_points(p)), atol=1e-12)
    assert compose_chain([t_ab]) is t_ab and compose_chain([]) is None


def test_resample_chain_equals_resample_through_compose_chain(volume):
    chain = [_rigid3(0.05, (0.1, -0.2, 0.05)), Transform(sitk.TranslationTransform(3, (0.2, 0.1, -0.1)))]
    got = resample_chain(volume, volume, chain)
    want = resample(volume, volume, compose_chain(chain))
    np.testing.assert_array_equal(got.values, want.values)
    assert mi.same_grid(got, volume) and got.attrs["modality"] == "MR"


def test_resample_chain_without_transforms(volume):
    assert resample_chain(volume, volume, []) is volume  # same grid: the image itself, no copy
    grid = analysis_grid(volume, 0.5)
    out = resample_chain(volume, grid, [])
    assert mi.same_grid(out, grid)
    np.testing.assert_array_equal(out.values, resample(volume, grid).values)


def test_resample_chain_anti_aliases_onto_a_coarse_grid(volume):
    grid = analysis_grid(volume, 0.6)
    out = resample_chain(volume, grid, [], smooth_to=0.6)
    np.testing.assert_array_equal(out.values, resample(anti_alias(volume, 0.6), grid).values)
    assert not np.array_equal(out.values, resample(volume, grid).values)


def test_resample_chain_nearest_keeps_dtype_and_is_not_smoothed(volume):
    mask = mi.like(volume, (volume.values > 0.5).astype(np.uint8), units="")
    grid = analysis_grid(volume, 0.6)
    t = [_rigid3(0.02, (0.1, 0.0, 0.0))]
    out = resample_chain(mask, grid, t, "nearest", smooth_to=0.6)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out.values, resample(mask, grid, t[0], "nearest").values)
    assert set(np.unique(out.values)) <= {0, 1}


def test_resample_chain_drops_the_channels_of_the_reference(volume):
    ref = mi.spatial_image(np.zeros((2,) + mi.shape(volume)), spacing=mi.spacing(volume), origin=mi.origin(volume),
                           dims=("c", "z", "y", "x"), channels=["a", "b"])
    out = resample_chain(volume, ref, [_rigid3(0.0, (0.1, 0.0, 0.0))])
    assert out.dims == ("z", "y", "x")


def test_analysis_grid_covers_the_field_of_view(volume):
    g = analysis_grid(volume, 0.5)
    assert mi.spacing(g) == (0.5, 0.5, 0.5)
    assert g.shape == tuple(max(1, round(n * s / 0.5)) for n, s in zip(volume.shape, mi.spacing(volume)))
    np.testing.assert_allclose(mi.bounding_box(g)[0], mi.bounding_box(volume)[0], atol=1e-12)  # first edges agree
    multi = mi.spatial_image(np.zeros((3, 10, 10)), spacing=0.1, dims=("c", "y", "x"))
    assert analysis_grid(multi, 0.2).dims == ("y", "x")


def test_analysis_grid_doctest():
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in finder.find(resample_module.analysis_grid, "analysis_grid", globs=dict(vars(resample_module))):
        runner.run(test)
    assert runner.failures == 0 and runner.tries >= 3


def test_anti_alias_sigma_per_axis():
    point = np.zeros((31, 31))
    point[15, 15] = 1.0
    img = spatial_image(point, spacing=(0.1, 0.3))
    out = anti_alias(img, 0.5).values
    # FWHM making up the difference: sigma (mm) = sqrt(0.5^2 - s^2) / 2.3548, per axis
    for axis, s in ((0, 0.1), (1, 0.3)):
        prof = out.sum(axis=1 - axis)
        x = (np.arange(31) - 15) * s
        sd = np.sqrt((prof * x**2).sum() / prof.sum())
        # (within 5%: a Gaussian of half a pixel is sampled coarsely along x)
        assert sd == pytest.approx(np.sqrt(0.5**2 - s**2) / 2.3548, rel=0.05)
    assert anti_alias(img, 0.3) is not img  # y is still finer than 0.3
    assert anti_alias(img, 0.05) is img


def test_linear_summary():
    t = Transform(sitk.Euler2DTransform((0.0, 0.0), np.deg2rad(30.0), (1.0, -2.0)))
    s = linear_summary(t)
    assert s["rotation (deg)"] == "30.000" and s["scales"] == "1.0000, 1.0000"
    assert s["translation (mm, x y z)"] == "1.0000, -2.0000"
    r3 = linear_summary(_rigid3(np.deg2rad(10.0), (0.0, 0.0, 0.0)))
    assert r3["rotation (deg)"] == "10.000" and len(r3["matrix (x y z)"].split("; ")) == 3
    assert linear_summary(Transform(sitk.BSplineTransform(2))) is None
