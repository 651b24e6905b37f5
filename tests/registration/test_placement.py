"""Placing a 2-D section in a 3-D volume from a rough height (search, then refinement), and its bad input."""

from __future__ import annotations

import numpy as np
import pytest

from multiscale.errors import RegistrationError
from multiscale.image import spatial_image
from multiscale.registration import resample
from multiscale.registration.placement import place_section, section_pose_error
from multiscale.registration.slice_to_volume import section_pose


def _volume() -> object:
    """A 3-D volume (0.2 mm voxels) with structure that changes with z, so a height is identifiable."""
    z, y, x = np.mgrid[:40, :48, :48] * 0.2
    v = (np.sin(1.7 * x + 0.9 * z) * np.cos(1.3 * y - 0.6 * z) + 0.6 * np.exp(-((x - 4.5) ** 2 + (y - 5) ** 2) / 4)
         + 0.4 * np.sin(1.1 * z) * (x > 3))
    return spatial_image(v.astype(np.float32), spacing=0.2)


@pytest.fixture(scope="module")
def pair():
    vol = _volume()
    sec_grid = spatial_image(np.zeros((40, 40), np.float32), spacing=0.2, origin=(1.0, 1.0))
    truth = section_pose(4.2)
    section = resample(vol, sec_grid, truth)  # the volume's plane z = 4.2 mm, on the section's own grid
    return vol, section, truth


def test_pose_is_recovered_from_a_rough_height(pair):
    vol, section, truth = pair
    t = place_section(section, vol, z_mm=4.8, search_mm=1.0)
    err = section_pose_error(section, t, truth)
    assert err["pose_error_mean_mm"] < 0.1, err  # half a voxel
    tried = t.info["placement"]["tried"]
    assert len(tried) > 3 and abs(t.info["placement"]["chosen_z_mm"] - 4.2) < 0.1


def test_index_and_z_are_alternatives(pair):
    vol, section, truth = pair
    t = place_section(section, vol, index=22, search_mm=0.6)  # slice 22 is at z = 4.4 mm
    assert section_pose_error(section, t, truth)["pose_error_mean_mm"] < 0.1
    with pytest.raises(RegistrationError, match="z_mm= .* or index="):
        place_section(section, vol, z_mm=4.0, index=20)
    with pytest.raises(RegistrationError, match="z_mm= .* or index="):
        place_section(section, vol)


def test_heights_outside_the_volume_are_refused(pair):
    vol, section, _ = pair
    with pytest.raises(RegistrationError, match="outside the volume"):
        place_section(section, vol, z_mm=50.0)
    with pytest.raises(RegistrationError, match="index=99 is outside"):
        place_section(section, vol, index=99)


def test_a_section_that_does_not_meet_the_volume_is_refused(pair):
    vol, section, _ = pair
    far = section.assign_coords(x=section.x + 100.0, y=section.y + 100.0)
    with pytest.raises(RegistrationError, match="does not cut the volume|cuts the volume at none"):
        place_section(far, vol, z_mm=4.2, search_mm=0.4)


def test_pose_error_of_a_height_shift():
    sec = spatial_image(np.zeros((10, 10)), spacing=0.1)
    e = section_pose_error(sec, section_pose(10.3), section_pose(10.0))
    assert e["pose_error_mean_mm"] == pytest.approx(0.3) and e["height_error_mm"] == pytest.approx(0.3)
