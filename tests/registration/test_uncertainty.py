"""Registration uncertainty: transforms drawn around a result, and the TRE estimate they give."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from multiscale.errors import RegistrationError
from multiscale.registration import Transform, identity, register
from multiscale.registration.uncertainty import (
    landmark_uncertainty_mm,
    lattice_points,
    transform_samples,
    uncertainty_mm,
)


@pytest.fixture(scope="module")
def fitted(pair_2d):
    t = register(pair_2d["fixed"], pair_2d["moving"], transform="affine")
    return pair_2d, t


def test_samples_stay_near_a_good_result_and_are_reproducible(fitted):
    pair, t = fitted
    samples = transform_samples(pair["fixed"], pair["moving"], t, n=3, seed=5)
    assert [s.info["sample"] for s in samples] == [0, 1, 2]
    est = uncertainty_mm(samples, t, lattice_points(pair["fixed"]))
    assert 0 < est["tre_estimate_mm"] < pair["spacing"]  # a well-determined affine: below one pixel
    again = transform_samples(pair["fixed"], pair["moving"], t, n=3, seed=5, threads=1)
    once_more = transform_samples(pair["fixed"], pair["moving"], t, n=3, seed=5, threads=1)
    pts = pair["points"]
    for a, b in zip(again, once_more):
        np.testing.assert_array_equal(a.transform_points(pts), b.transform_points(pts))


def test_bad_requests_are_refused(fitted):
    pair, t = fitted
    with pytest.raises(RegistrationError, match="n must be >= 1"):
        transform_samples(pair["fixed"], pair["moving"], t, n=0)
    bsp = Transform(sitk.BSplineTransformInitializer(sitk.Image(8, 8, sitk.sitkFloat32), (3, 3)))
    with pytest.raises(RegistrationError, match="not linear"):
        transform_samples(pair["fixed"], pair["moving"], bsp, n=2)


def test_estimates_from_known_offsets():
    shifted = [Transform(sitk.TranslationTransform(2, (0.3, 0.4))), Transform(sitk.TranslationTransform(2, (0.0, 0.0)))]
    est = uncertainty_mm(shifted, identity(2), np.zeros((4, 2)))
    assert est["tre_estimate_mm"] == pytest.approx(np.sqrt(0.5 * 0.25)) and est["tre_estimate_max_mm"] == 0.5
    lm = landmark_uncertainty_mm([[0.0, 0.0], [1.0, 1.0]], [[0.3, 0.4], [1.0, 1.0]], identity(2))
    assert lm["tre_estimate_mm"] == pytest.approx(np.sqrt(0.125)) and lm["tre_estimate_landmarks"] == 2
