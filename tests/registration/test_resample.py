"""resample(): agrees with transform_points, handles channel stacks lazily, keeps attrs, resamples once."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import SimpleITK as sitk

from multiscale.image import ImageError, same_grid, spacing, spatial_image
from multiscale.registration import TransformError, landmark_transform, resample, section_pose
from multiscale.registration import _synthetic as S


def _affine(deg, t, center=(0.0, 0.0), scale=(1.0, 1.0)):
    fwd, _ = S.affine_true(2, deg, t, center, scale=scale)
    f = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    return landmark_transform(f, fwd(f), kind="affine")


def test_point_moved_by_transform_lands_on_the_resampled_feature():
    # a bright spot at q (moving frame); after resampling onto the fixed grid through T the spot
    # sits at p with T(p) = q: the two directions of the convention agree
    q = np.array([1.3, -0.7])  # (x, y) mm
    yy, xx = np.mgrid[-4:4:0.05, -4:4:0.05]
    spot = np.exp(-((xx - q[0]) ** 2 + (yy - q[1]) ** 2) / (2 * 0.15**2))
    moving = spatial_image(spot, spacing=(0.05, 0.05), origin=(-4.0, -4.0))
    t = _affine(25.0, (0.4, -0.3), scale=(1.1, 0.9))
    fixed_grid = {"shape": (120, 140), "spacing": (0.06, 0.06), "origin": (-3.5, -4.0)}
    out = resample(moving, fixed_grid, t)
    w = out.values / out.values.sum()
    p = np.array([(w * out.x.values[None, :]).sum(), (w * out.y.values[:, None]).sum()])  # centroid (x, y)
    # the centroid of an affinely mapped Gaussian is the mapped centre: exact up to sampling (~1e-3 mm)
    np.testing.assert_allclose(t.transform_points(p), q, atol=0.01)
    # and the inverse maps the spot's centre to the centroid
    np.testing.assert_allclose(t.inverse().transform_points(q), p, atol=0.01)


def test_channel_stack_is_resampled_lazily_without_a_loop_per_channel(monkeypatch):
    rng = np.random.default_rng(0)
    n_ions = 120
    data = da.from_array(rng.random((n_ions, 40, 50)).astype(np.float32), chunks=(40, 40, 50))
    msi = spatial_image(data, spacing=(0.05, 0.05), origin=(0.0, 0.0), dims=("c", "y", "x"),
                        channels=np.linspace(100.0, 900.0, n_ions), modality="MSI", units="TIC-normalised")
    t = _affine(10.0, (0.1, 0.05), center=(1.0, 1.0))
    grid = {"shape": (60, 70), "spacing": (0.03, 0.03), "origin": (0.2, 0.1)}
    calls = []
    real = sitk.ResampleImageFilter.Execute

    def counting(self, *args):
        calls.append(args[0].GetNumberOfComponentsPerPixel())
        return real(self, *args)

    monkeypatch.setattr(sitk.ResampleImageFilter, "Execute", counting)
    out = resample(msi, grid, t)
    assert isinstance(out.data, da.Array) and not calls  # lazy: nothing computed yet
    values = out.values
    assert sorted(calls) == [40, 40, 40]  # one call per chunk of 40 ions, not one per ion
    assert out.dims == ("c", "y", "x") and out.shape == (n_ions, 60, 70)
    np.testing.assert_array_equal(out.coords["c"].values, msi.coords["c"].values)
    assert out.attrs["modality"] == "MSI" and out.attrs["units"] == "TIC-normalised"
    assert out.attrs["provenance"]["resampled"]["interpolation"] == "linear"
    one = resample(msi.isel(c=57).compute(), grid, t)
    np.testing.assert_allclose(values[57], one.values, rtol=1e-6)


def test_labels_with_nearest_keep_dtype_and_values():
    labels = np.zeros((50, 50), np.uint16)
    labels[10:30, 10:25] = 7
    labels[30:45, 25:45] = 300
    img = spatial_image(labels, spacing=(0.1, 0.1), modality="mask", aspect="mask")
    out = resample(img, {"shape": (80, 80), "spacing": (0.07, 0.07), "origin": (0.0, 0.0)},
                   _affine(13.0, (0.2, 0.1), center=(2.5, 2.5)), interpolation="nearest")
    assert out.dtype == np.uint16
    assert set(np.unique(out.values)) == {0, 7, 300}
    mask = spatial_image(labels > 0, spacing=(0.1, 0.1))
    assert resample(mask, mask, interpolation="nearest").dtype == bool
    with pytest.raises(ValueError, match="interpolation='cubic'.*nearest"):
        resample(img, img, interpolation="cubic")


def test_identity_onto_own_grid_is_exact_and_reference_forms_agree():
    img = spatial_image(np.random.default_rng(1).random((20, 30)), spacing=(0.2, 0.1), origin=(1.0, -2.0))
    out = resample(img, img)
    np.testing.assert_allclose(out.values, img.values, atol=1e-12)
    assert same_grid(out, img)
    ref_sitk = sitk.Image(30, 20, sitk.sitkUInt8)
    ref_sitk.SetSpacing((0.1, 0.2))
    ref_sitk.SetOrigin((-2.0, 1.0))
    np.testing.assert_allclose(resample(img, ref_sitk).values, img.values, atol=1e-12)
    with pytest.raises(ValueError, match="lacks \\['spacing'\\]"):
        resample(img, {"shape": (5, 5)})


def test_chain_applied_once_equals_sequential_resampling_within_interpolation_error():
    ph = S.Phantom(2, 6.4, seed=7)
    sp = 0.04
    src = S.sample_image(ph, (160, 160), (sp, sp), (-3.2 + sp / 2,) * 2)
    t1 = _affine(9.0, (0.1, -0.15), scale=(1.02, 0.99))  # target frame -> intermediate
    t2 = _affine(-14.0, (-0.2, 0.05), scale=(0.97, 1.03))  # intermediate -> source
    grid = {"shape": (100, 100), "spacing": (0.04, 0.04), "origin": (-2.0, -2.0)}
    once = resample(src, grid, t1.compose(t2))
    inter = resample(src, src, t2)  # onto the intermediate frame (same grid as src)
    twice = resample(inter, grid, t1)
    pts = S.grid_points((100, 100), (0.04, 0.04), (-2.0, -2.0))
    exact = ph(t2.transform_points(t1.transform_points(pts))).reshape(100, 100)
    err_once = np.abs(once.values - exact).mean()
    err_twice = np.abs(twice.values - exact).mean()
    diff = np.abs(once.values - twice.values).mean()
    scale = np.abs(exact).mean()
    # both agree to interpolation error (a few % of the signal at 1 px sampling); composing and
    # resampling once is closer to the truth than resampling twice
    assert diff < 0.05 * scale
    assert err_once < err_twice
    # the wrong order is not within interpolation error: the test can fail
    wrong = resample(src, grid, t2.compose(t1))
    assert np.abs(wrong.values - exact).mean() > 5 * err_once


def test_volume_cut_along_a_section_plane():
    vol = np.random.default_rng(2).random((10, 12, 14)).astype(np.float32)
    img = spatial_image(vol, spacing=(0.5, 0.25, 0.25), origin=(1.0, 0.0, 0.0), modality="MR")
    section_grid = {"shape": (12, 14), "spacing": (0.25, 0.25), "origin": (0.0, 0.0), "dims": ("y", "x")}
    cut = resample(img, section_grid, section_pose(z=1.0 + 3 * 0.5))
    assert cut.dims == ("y", "x") and spacing(cut) == (0.25, 0.25)
    np.testing.assert_allclose(cut.values, vol[3], atol=1e-6)


def test_section_placed_into_a_volume_grid():
    sec = spatial_image(np.ones((8, 8), np.float32), spacing=(0.5, 0.5), origin=(0.0, 0.0))
    vol_grid = {"shape": (5, 8, 8), "spacing": (1.0, 0.5, 0.5), "origin": (0.0, 0.0, 0.0)}
    pose = section_pose(z=2.0)
    out = resample(sec, vol_grid, pose.inverse(), section_thickness=0.5)
    assert out.dims == ("z", "y", "x")
    # the section's slab (z = 2 +- 0.25 mm) holds exactly the voxel plane z = 2
    assert out.values[2].min() == 1.0 and out.values[[0, 1, 3, 4]].max() == 0.0


def test_dimension_mismatch_refused():
    img2 = spatial_image(np.zeros((4, 4)), spacing=1.0)
    img3 = spatial_image(np.zeros((4, 4, 4)), spacing=1.0)
    with pytest.raises(TransformError, match="reference grid is 3-D but the transform is 2-D"):
        resample(img2, img3, _affine(0.0, (0.0, 0.0)))
    with pytest.raises(TransformError, match="2-D transform cannot resample a 3-D image"):
        resample(img3, img3, _affine(0.0, (0.0, 0.0)))
    with pytest.raises(ImageError):
        resample(img2.rename(x="q"), img2)
