"""A 2-D section into a 3-D volume, and a stack of serial sections rebuilt by neighbours."""

from __future__ import annotations

import numpy as np
import pytest

from multiscale.image import spacing
from multiscale.registration import (
    RegistrationError,
    reconstruct_stack,
    register,
    register_slice_to_volume,
    resample,
    section_pose,
)
from multiscale.registration import _synthetic as S


def _embed(q):
    return np.c_[q, np.zeros(len(q))]


def test_section_pose_recovered_in_volume(pair_3d):
    p = pair_3d
    truth = section_pose(z=1.3, angles_deg=(6.0, -4.0, 10.0), xy_offset=(0.4, -0.3))
    section = S.sample_image(p["phantom"], (80, 80), (0.15, 0.15), (-5.925, -5.925),
                             inverse=lambda q: truth.transform_points(_embed(q)), remap=S.remap_multimodal,
                             supersample=2, modality="HISTO")
    pts = _embed(S.grid_points((10, 10), (0.8, 0.8), (-3.6, -3.6)))
    start = section_pose(z=0.0)
    err0 = np.linalg.norm(start.transform_points(pts) - truth.transform_points(pts), axis=1).mean()
    t = register(section, p["fixed"], transform="rigid", initial=start, slice_to_volume=True)
    err = np.linalg.norm(t.transform_points(pts) - truth.transform_points(pts), axis=1).mean()
    # start: 1.5 mm (nearly 4 voxels of 0.4 mm) off, tilted 7 deg; bound: a quarter voxel
    # (0.03 mm measured on this pair)
    assert err0 > 1.0
    assert err < 0.25 * p["spacing"]
    assert t.dimension == 3 and t.info["metric_after"] < t.info["metric_before"]
    cut = resample(p["fixed"], section, t)
    assert cut.dims == ("y", "x") and spacing(cut) == (0.15, 0.15)
    same = register_slice_to_volume(section, p["fixed"], initial=start)
    np.testing.assert_allclose(same.sitk.GetParameters(), t.sitk.GetParameters(), atol=1e-6)


def test_section_outside_volume_refused(pair_3d):
    sec = S.sample_image(lambda q: pair_3d["phantom"](_embed(q)), (20, 20), (0.3, 0.3), (-3.0, -3.0))
    with pytest.raises(RegistrationError, match="does not cut the volume.*section_pose"):
        register(sec, pair_3d["fixed"], slice_to_volume=True, initial=section_pose(z=50.0))


def test_serial_sections_reconstructed_by_composing_neighbours():
    ph = S.Phantom(3, 6.4, seed=11)
    zs = np.array([-0.1, -0.05, 0.0, 0.05, 0.1])
    # each section was cut at height z and laid on its slide with its own rigid motion
    motions = [(-6.0, (0.1, 0.05)), (4.0, (-0.12, 0.0)), (0.0, (0.0, 0.0)), (-5.0, (0.08, -0.1)), (7.0, (0.0, 0.15))]
    sections, truths = [], []
    for z, (ang, tr) in zip(zs, motions):
        fwd, inv = S.affine_true(2, ang, tr, (0.0, 0.0))  # slide frame -> tissue frame is inv
        sec = S.sample_image(lambda q, z=z: ph(np.c_[q, np.full(len(q), z)]), (96, 96), (0.05, 0.05),
                             (-2.375, -2.375), inverse=inv, modality="HISTO")
        sections.append(sec)
        truths.append(fwd)
    vol, transforms = reconstruct_stack(sections, spacing_z=0.05, transform="rigid", metric="ncc")
    assert vol.dims == ("z", "y", "x") and vol.shape == (5, 96, 96)
    assert spacing(vol) == pytest.approx((0.05, 0.05, 0.05))
    pts = S.grid_points((8, 8), (0.4, 0.4), (-1.4, -1.4))
    for t, fwd in zip(transforms, truths):
        # reference section 2 is untouched; every other section's chain maps reference points where
        # the truth does; neighbours (50 um apart) differ a little in content and two pairwise errors
        # add up at the ends: 0.011 mm measured, bound half a pixel (0.025 mm)
        err = np.linalg.norm(t.transform_points(pts) - fwd(pts), axis=1).mean()
        assert err < 0.025
    assert transforms[0].info["pair"] == transforms[0].info["pair"] | {"fixed_section": 1, "moving_section": 0}


def test_a_stack_with_a_missing_section_is_refused_or_left_empty():
    ph = S.Phantom(3, 6.4, seed=11)
    zs = [-0.1, -0.05, 0.05, 0.1]  # the section at z = 0 was lost
    sections = [S.sample_image(lambda q, z=z: ph(np.c_[q, np.full(len(q), z)]), (48, 48), (0.1, 0.1),
                               (-2.35, -2.35), modality="HISTO") for z in zs]
    with pytest.raises(RegistrationError, match=r"section\(s\) \[1\] are missing"):
        reconstruct_stack([sections[0], None, sections[1]], spacing_z=0.05, transform="rigid", metric="ncc")
    with pytest.raises(RegistrationError, match=r"1 section\(s\) missing from the stack at \[0.0\] mm.*allow_gaps"):
        reconstruct_stack(sections, spacing_z=0.05, positions_mm=zs, transform="rigid", metric="ncc")
    with pytest.raises(RegistrationError, match="must increase"):
        reconstruct_stack(sections, spacing_z=0.05, positions_mm=[0.0, 0.1, 0.05, 0.2])
    with pytest.raises(RegistrationError, match="not on the 0.05 mm spacing"):
        reconstruct_stack(sections, spacing_z=0.05, positions_mm=[0.0, 0.05, 0.13, 0.2])
    vol, transforms = reconstruct_stack(sections, spacing_z=0.05, positions_mm=zs, allow_gaps=True,
                                        transform="rigid", metric="ncc")
    assert vol.shape == (5, 48, 48) and len(transforms) == 4
    assert np.isnan(np.asarray(vol[2])).all() and np.isfinite(np.asarray(vol[1])).all()
    assert "planes [2] are empty" in vol.attrs["warnings"][0]
