"""Acceptance tests of register(): known transforms recovered, bad input refused clearly.

Errors are exact: the synthetic phantoms are analytic, so the true fixed -> moving map is known at
every point; the error is the mean distance between where the estimate and the truth send a grid
of points inside the tissue.
"""

from __future__ import annotations

import numpy as np
import pytest

from multiscale.image import spatial_image
from multiscale.registration import (
    RegistrationError,
    Transform,
    identity,
    landmark_transform,
    register,
    resample,
)
from multiscale.registration import _synthetic as S


def test_2d_affine_multimodal_recovered(pair_2d):
    p = pair_2d
    start = S.mean_error(identity(2), p["truth"], p["points"])
    t = register(p["fixed"], p["moving"], transform="affine", metric="mattes_mi")
    err = S.mean_error(t, p["truth"], p["points"])
    # noise-free analytic data, 128 px: MI registration reaches a few hundredths of a pixel here
    # (0.03 px measured); 0.2 px leaves room for threading noise while still failing on any
    # convention error (a flipped angle or swapped axis costs several pixels; start error ~8 px).
    assert start > 5 * p["spacing"]
    assert err < 0.2 * p["spacing"]
    info = t.info
    assert info["stages_kept"] == ["rigid", "affine"]
    assert info["metric_after"] < info["metric_before"]
    assert info["iterations"] > 0 and info["time_s"] > 0
    assert {r["stage"] for r in info["stages"]} == {"rigid", "affine"}


def test_2d_rigid_large_rotation_found_by_search(pair_2d):
    p = pair_2d
    ph = S.Phantom(2, 6.4, seed=1)
    fwd, inv = S.affine_true(2, 100.0, (0.1, 0.05), (0.0, 0.0))
    moving = S.sample_image(ph, (128, 128), (0.05, 0.05), (-3.175, -3.175), inverse=inv, remap=S.remap_multimodal)
    t = register(p["fixed"], moving, transform="rigid")
    # a 100 degree rotation is outside any gradient descent's reach: only the coarse rotation search
    # can bring it in; once found, rigid is exact (truth is rigid), so the 0.2 px bound above holds.
    assert S.mean_error(t, fwd, p["points"]) < 0.2 * 0.05
    assert abs(t.info["initialisation"]["angle_deg"] - 100.0) <= 15.0


def test_auto_keeps_bspline_only_when_it_helps(pair_2d):
    p = pair_2d
    ph = S.Phantom(2, 6.4, seed=1)
    aff = S.affine_true(2, 8.0, (0.15, -0.2), (0.0, 0.0), scale=(1.03, 0.98))
    fwd, inv = S.warp_true(2, 0.1, 3.2, (0.0, 0.0), affine=aff)
    moving = S.sample_image(ph, (128, 128), (0.05, 0.05), (-3.175, -3.175), inverse=inv, remap=S.remap_multimodal)
    t_aff = register(p["fixed"], moving, transform="affine")
    t = register(p["fixed"], moving, transform="auto")
    e_aff = S.mean_error(t_aff, fwd, p["points"])
    e_auto = S.mean_error(t, fwd, p["points"])
    # the warp (2 px amplitude) is beyond any affine (error > 1 px); the B-spline stage brings it
    # under half a pixel (0.22 px measured) and must therefore be kept
    assert "bspline" in t.info["stages_kept"]
    assert e_aff > 1.0 * 0.05
    assert e_auto < 0.5 * 0.05
    # on a purely affine pair the deformable stage gains little and must be dropped
    t2 = register(p["fixed"], p["moving"], transform="auto")
    assert "bspline" not in t2.info["stages_kept"]
    assert S.mean_error(t2, p["truth"], p["points"]) < 0.2 * p["spacing"]


def test_cross_resolution_msi_like_to_histology_like():
    ext = 0.512  # mm
    ph = S.Phantom(2, ext, seed=5)
    fwd, inv = S.affine_true(2, 7.0, (0.01, -0.008), (0.0, 0.0), scale=(1.03, 0.98))
    histo = S.sample_image(ph, (256, 256), (0.002,) * 2, (-ext / 2 + 0.001,) * 2, modality="HISTO")
    # MSI pixels integrate over their 16 um area (4x4 supersampling)
    msi = S.sample_image(ph, (32, 32), (0.016,) * 2, (-ext / 2 + 0.008,) * 2, inverse=inv,
                         remap=S.remap_multimodal, supersample=4, modality="MSI")
    pts = S.grid_points((8, 8), (0.03, 0.03), (-0.105, -0.105))
    t = register(histo, msi, transform="affine")
    # the optimiser works at the MSI pixel size (16 um), so the histology enters at 32x32;
    # the estimate must be a small fraction of an MSI pixel (0.08 px measured): bound 0.25 px = 4 um
    assert t.info["working_spacing_mm"] == pytest.approx(0.016)
    assert t.info["working_shape"]["fixed"] == [32, 32]
    assert S.mean_error(t, fwd, pts) < 0.25 * 0.016


def test_3d_rigid_recovered(pair_3d):
    p = pair_3d
    start = S.mean_error(identity(3), p["truth"], p["points"])
    t = register(p["fixed"], p["moving"], transform="rigid", metric="mattes_mi")
    err = S.mean_error(t, p["truth"], p["points"])
    # 40^3 voxels of 0.4 mm, start error ~1 mm (2.5 voxels); bound: a fifth of a voxel
    assert start > 2 * p["spacing"]
    assert err < 0.2 * p["spacing"]


def test_landmark_initialisation_and_landmark_only(pair_2d):
    p = pair_2d
    f_pts = p["points"][::7]
    m_pts = p["truth"](f_pts)
    t_lm = register(p["fixed"], p["moving"], transform="landmarks", landmarks=(f_pts, m_pts), landmark_kind="affine")
    # exact correspondences of an affine truth: least squares is exact to rounding
    assert S.mean_error(t_lm, p["truth"], p["points"]) < 1e-9
    t = register(p["fixed"], p["moving"], transform="affine", landmarks=(f_pts, m_pts))
    assert t.info["initialisation"]["method"] == "landmarks"
    assert S.mean_error(t, p["truth"], p["points"]) < 0.2 * p["spacing"]
    assert t.info["landmark_tre_mm"] < 0.2 * p["spacing"]


def test_initial_transform_is_used(pair_2d):
    p = pair_2d
    f_pts = p["points"][::5]
    init = landmark_transform(f_pts, p["truth"](f_pts), kind="rigid")
    t = register(p["fixed"], p["moving"], transform="affine", initial=init, rotation_search=False)
    assert t.info["initialisation"]["method"] == "given"
    assert S.mean_error(t, p["truth"], p["points"]) < 0.2 * p["spacing"]


def test_reproducible_with_seed_and_threads(pair_2d):
    p = pair_2d
    a = register(p["fixed"], p["moving"], transform="rigid", seed=3, threads=1)
    b = register(p["fixed"], p["moving"], transform="rigid", seed=3, threads=1)
    assert a.sitk.GetParameters() == b.sitk.GetParameters()
    assert a.info["seed"] == 3


def test_channel_choice_weighted_and_named(pair_2d):
    p = pair_2d
    noise = np.random.default_rng(0).random(p["moving"].shape).astype(np.float32)
    stack = np.stack([noise, p["moving"].values, 0.5 * noise])
    moving = spatial_image(stack, spacing=(0.05, 0.05), origin=(-3.175, -3.175), dims=("c", "y", "x"),
                           channels=[100.5, 544.18, 700.0], modality="MSI")
    t = register(p["fixed"], moving, transform="affine", moving_channel=544.18)
    assert S.mean_error(t, p["truth"], p["points"]) < 0.2 * p["spacing"]
    t2 = register(p["fixed"], moving, transform="affine", moving_channel={544.18: 1.0, 100.5: 0.0})
    assert S.mean_error(t2, p["truth"], p["points"]) < 0.2 * p["spacing"]
    with pytest.raises(RegistrationError, match="not among the channels"):
        register(p["fixed"], moving, transform="rigid", moving_channel=999.0)


def test_masks_restrict_the_metric(pair_2d):
    p = pair_2d
    mask = spatial_image(np.ones((128, 128), np.uint8), spacing=(0.05, 0.05), origin=(-3.175, -3.175))
    t = register(p["fixed"], p["moving"], transform="affine", fixed_mask=mask)
    assert S.mean_error(t, p["truth"], p["points"]) < 0.2 * p["spacing"]


# ------------------------------------------------------------------------------------ bad input


def test_non_overlapping_images_refused(pair_2d):
    p = pair_2d
    far = p["moving"].assign_coords(x=p["moving"].x + 100.0)
    with pytest.raises(RegistrationError, match="do not overlap.*units"):
        register(p["fixed"], far)


def test_2d_against_3d_without_slice_to_volume_refused(pair_2d, pair_3d):
    with pytest.raises(RegistrationError, match="slice_to_volume=True"):
        register(pair_2d["fixed"], pair_3d["moving"])
    with pytest.raises(RegistrationError, match="section the fixed image"):
        register(pair_3d["fixed"], pair_2d["moving"], slice_to_volume=True)


def test_mask_on_another_grid_refused(pair_2d):
    p = pair_2d
    mask = spatial_image(np.ones((64, 64), np.uint8), spacing=(0.1, 0.1), origin=(-3.15, -3.15))
    with pytest.raises(RegistrationError, match="fixed_mask is not on the fixed image's grid.*nearest"):
        register(p["fixed"], p["moving"], fixed_mask=mask)
    with pytest.raises(RegistrationError, match="moving_mask is not on the moving image's grid"):
        register(p["fixed"], p["moving"], moving_mask=mask)


def test_too_few_landmarks_refused(pair_2d):
    p = pair_2d
    pts = p["points"][:2]
    with pytest.raises(Exception, match="at least 3 point pairs"):
        register(p["fixed"], p["moving"], transform="landmarks", landmarks=(pts, pts))


def test_unknown_names_refused(pair_2d):
    p = pair_2d
    with pytest.raises(RegistrationError, match="metric='mi'"):
        register(p["fixed"], p["moving"], metric="mi")
    with pytest.raises(RegistrationError, match="transform='demons'"):
        register(p["fixed"], p["moving"], transform="demons")
    with pytest.raises(RegistrationError, match="unknown stage"):
        register(p["fixed"], p["moving"], transform=["rigid", "warp"])
    with pytest.raises(RegistrationError, match="unknown option"):
        register(p["fixed"], p["moving"], iteratons=5)


def test_result_resamples_moving_onto_fixed(pair_2d):
    p = pair_2d
    t = register(p["fixed"], p["moving"], transform="affine")
    moved = resample(p["moving"], p["fixed"], t)
    expected = S.remap_multimodal(p["fixed"].values)
    inner = (slice(20, 108), slice(20, 108))
    # after registration the resampled moving image equals the remapped fixed one up to
    # interpolation error; before, it differs by far more
    before = resample(p["moving"], p["fixed"])
    err_after = np.abs(moved.values[inner] - expected[inner]).mean()
    err_before = np.abs(before.values[inner] - expected[inner]).mean()
    assert err_after < 0.1 * err_before
    assert moved.attrs["modality"] == "FLUO" and moved.attrs["units"] == "a.u."
    assert isinstance(t, Transform)


def test_lazy_large_fixed_is_decimated_by_block_means(pair_2d):
    import dask.array as da

    p = pair_2d
    ph = S.Phantom(2, 6.4, seed=1)
    # a "whole slide" 4x finer than the moving image, dask-backed: it enters the optimiser at the
    # moving image's pixel size (block means of 4x4), never at full resolution
    fine = S.sample_image(ph, (512, 512), (0.0125, 0.0125), (-3.2 + 0.00625,) * 2)
    lazy = fine.copy(data=da.from_array(fine.values, chunks=128))
    t = register(lazy, p["moving"], transform="affine")
    assert t.info["working_shape"]["fixed"] == [128, 128]
    assert S.mean_error(t, p["truth"], p["points"]) < 0.2 * p["spacing"]


def test_3d_cross_resolution_pet_like(pair_3d):
    p = pair_3d
    ph = p["phantom"]
    _, inv = S.affine_true(3, (6.0, -4.0, 9.0), (0.5, -0.3, 0.4), (0.0, 0.0, 0.0))
    # PET-like: 20^3 voxels of 0.8 mm, each integrating its volume, against the 0.4 mm MR
    pet = S.sample_image(ph, (20, 20, 20), (0.8,) * 3, (-7.6,) * 3, inverse=inv, remap=S.remap_multimodal,
                         supersample=2, modality="PT")
    t = register(p["fixed"], pet, transform="rigid")
    assert t.info["working_spacing_mm"] == pytest.approx(0.8)
    # bound: a quarter of a PET voxel (0.2 mm)
    assert S.mean_error(t, p["truth"], p["points"]) < 0.2
