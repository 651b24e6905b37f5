"""The B-spline stage's own Mattes MI (sparse Jacobian, ``_bspline.py``) and its use by register()."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from multiscale.registration import RegistrationError, register
from multiscale.registration import _synthetic as S
from multiscale.registration._bspline import _Level, bspline_weights


def _oblique_image(d: int) -> sitk.Image:
    img = sitk.Image([20, 17, 13][:d], sitk.sitkFloat32)
    img.SetSpacing([0.7, 1.1, 0.9][:d])
    img.SetOrigin([3.0, -2.0, 1.0][:d])
    th = 0.3
    rot = np.eye(d)
    rot[:2, :2] = [[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]]
    img.SetDirection(tuple(rot.reshape(-1)))
    return img


@pytest.mark.parametrize("d", [2, 3])
def test_spline_weights_reproduce_simpleitk_and_are_sparse(d):
    # the parameter layout (x fastest, one block per component), the grid geometry (oblique
    # direction, anisotropic spacing) and the support must match SimpleITK's BSplineTransform exactly
    rng = np.random.default_rng(0)
    img = _oblique_image(d)
    bsp = sitk.BSplineTransformInitializer(img, [4, 5, 3][:d], 3)
    p = rng.normal(size=len(bsp.GetParameters()))
    bsp.SetParameters(tuple(p))
    idx = rng.uniform(0, 1, size=(300, d)) * (np.array(img.GetSize()) - 1)
    pts = np.array([img.TransformContinuousIndexToPhysicalPoint(tuple(i)) for i in idx])
    w = bspline_weights(bsp, pts)
    mine = pts + w @ p.reshape(d, -1).T
    ref = np.array([bsp.TransformPoint(tuple(q)) for q in pts])
    assert np.abs(mine - ref).max() < 1e-9
    # each point moves only the 4^d control points around it: the cost per sample is mesh-independent
    assert np.all(np.diff(w.indptr) == 4**d)


def _smooth_pair(shape=(96, 120)):
    rng = np.random.default_rng(1)
    f = sitk.SmoothingRecursiveGaussian(sitk.GetImageFromArray(rng.random(shape).astype(np.float32)), 8.0)
    m = sitk.SmoothingRecursiveGaussian(sitk.GetImageFromArray(rng.random(shape).astype(np.float32)), 8.0)
    return sitk.Cast(f, sitk.sitkFloat32), sitk.Cast(0.5 * f + 0.5 * m, sitk.sitkFloat32)


def test_sparse_mattes_gradient_matches_finite_differences():
    f, m = _smooth_pair()
    bsp = sitk.BSplineTransformInitializer(f, [3, 3], 3)
    a = np.array([[1.01, 0.02], [-0.01, 0.99]])
    lev = _Level(f, m, bsp, a, np.array([0.3, -0.2]), 4000, 16, np.random.default_rng(1))
    n = len(bsp.GetParameters()) // 2
    c = np.random.default_rng(2).normal(scale=0.3, size=(n, 2))
    _, g = lev.value_and_gradient(c)
    num = np.zeros_like(c)
    h = 1e-5
    for i in range(n):
        for j in range(2):
            cp, cm = c.copy(), c.copy()
            cp[i, j] += h
            cm[i, j] -= h
            num[i, j] = (lev.value_and_gradient(cp)[0] - lev.value_and_gradient(cm)[0]) / (2 * h)
    # exact derivative of the metric up to the central-difference image gradient (0.4% measured);
    # a wrong sign, bin offset or chain-rule factor costs far more than 2%
    assert np.abs(num - g).max() < 0.02 * np.abs(num).max()


def test_sparse_mattes_value_agrees_with_simpleitk():
    f, m = _smooth_pair((60, 70))
    bsp = sitk.BSplineTransformInitializer(f, [3, 3], 3)
    lev = _Level(f, m, bsp, np.eye(2), np.array([0.3, -0.2]), 10**6, 32, np.random.default_rng(1))
    mine, _ = lev.value_and_gradient(np.zeros((len(bsp.GetParameters()) // 2, 2)))
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(32)
    reg.SetMetricSamplingStrategy(reg.NONE)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetInitialTransform(sitk.TranslationTransform(2, (0.3, -0.2)))
    ref = reg.MetricEvaluate(f, m)
    # same estimator (Parzen windows, bins, padding); ours samples jittered voxel positions: 1% measured
    assert mine == pytest.approx(ref, rel=0.03)


@pytest.fixture(scope="module")
def warp_pair():
    ph = S.Phantom(2, 6.4, seed=1)
    sp = 0.05
    fixed = S.sample_image(ph, (128, 128), (sp, sp), (-3.2 + sp / 2,) * 2, modality="HISTO")
    aff = S.affine_true(2, 8.0, (0.15, -0.2), (0.0, 0.0), scale=(1.03, 0.98))
    fwd, inv = S.warp_true(2, 0.1, 3.2, (0.0, 0.0), affine=aff)
    moving = S.sample_image(ph, (128, 128), (sp, sp), (-3.2 + sp / 2,) * 2, inverse=inv, remap=S.remap_multimodal)
    pts = S.grid_points((12, 12), (0.4, 0.4), (-2.2, -2.2))
    return fixed, moving, fwd, pts, sp


def test_default_bspline_stage_is_sparse_and_recovers_the_warp(warp_pair):
    fixed, moving, fwd, pts, sp = warp_pair
    t = register(fixed, moving, transform="auto")
    rec = t.info["stages"][-1]
    assert rec["stage"] == "bspline" and rec["kept"]
    assert rec["stop"].startswith("lbfgsb")  # the sparse Mattes path, not SimpleITK's dense one
    # 2 px warp amplitude; 0.15 px measured (SimpleITK's LBFGS2 path: 0.16 px, twice the time)
    assert S.mean_error(t, fwd, pts) < 0.25 * sp
    # from the same linear start, the same seed gives the same B-spline (no threading in this stage)
    lin = register(fixed, moving, transform="affine")
    b1 = register(fixed, moving, transform=["bspline"], initial=lin, bspline_iterations=10)
    b2 = register(fixed, moving, transform=["bspline"], initial=lin, bspline_iterations=10)
    assert np.array_equal(np.asarray(b1.sitk.GetParameters()), np.asarray(b2.sitk.GetParameters()))
    b3 = register(fixed, moving, transform=["bspline"], initial=lin, bspline_iterations=10, seed=1)
    assert not np.array_equal(np.asarray(b1.sitk.GetParameters()), np.asarray(b3.sitk.GetParameters()))


def test_bspline_fixed_mask_and_other_metrics(warp_pair):
    fixed, moving, fwd, pts, sp = warp_pair
    inside = (np.abs(fixed.coords["x"]) < 2.5) & (np.abs(fixed.coords["y"]) < 2.5)
    mask = fixed.copy(data=inside.transpose(*fixed.dims).values.astype(np.uint8))
    t = register(fixed, moving, transform="auto", fixed_mask=mask)
    assert t.info["stages"][-1]["stop"].startswith("lbfgsb")
    assert S.mean_error(t, fwd, pts) < 0.25 * sp  # 0.11 px measured
    # samples are drawn inside the mask only
    f_s = sitk.Cast(sitk.GetImageFromArray(fixed.values.astype(np.float32)), sitk.sitkFloat32)
    m_s = sitk.GetImageFromArray(inside.transpose(*fixed.dims).values.astype(np.uint8))
    bsp = sitk.BSplineTransformInitializer(f_s, [4, 4], 3)
    lev = _Level(f_s, f_s, bsp, np.eye(2), np.zeros(2), 2000, 32, np.random.default_rng(0), fixed_mask=m_s)
    ix = np.rint(lev.points).astype(int)  # unit spacing, zero origin: physical = index (x, y)
    assert inside.transpose(*fixed.dims).values[ix[:, 1], ix[:, 0]].all()
    # metrics other than Mattes MI use SimpleITK's optimiser
    t_ncc = register(fixed, moving, transform="bspline", metric="mean_squares", bspline_iterations=5)
    assert not t_ncc.info["stages"][-1]["stop"].startswith("lbfgsb")


def test_bspline_optimizer_name_checked(warp_pair):
    fixed, moving, *_ = warp_pair
    with pytest.raises(RegistrationError, match="bspline_optimizer"):
        register(fixed, moving, bspline_optimizer="adam")
