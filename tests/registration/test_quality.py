"""quality(): TRE statistics, Dice, MI/NCC before and after, and the checkerboard/overlay figure."""

from __future__ import annotations

import numpy as np
import pytest

from multiscale.image import spatial_image
from multiscale.registration import (
    RegistrationError,
    checkerboard,
    dice,
    mutual_information,
    normalized_cross_correlation,
    quality,
    register,
    target_registration_error,
)


def test_tre_statistics_by_hand():
    fixed = np.zeros((10, 2))
    moving = np.c_[np.arange(1.0, 11.0), np.zeros(10)]  # errors 1..10 mm
    tre = target_registration_error(fixed, moving)
    assert tre["mean"] == pytest.approx(5.5)
    assert tre["median"] == pytest.approx(5.5)
    assert tre["p90"] == pytest.approx(9.1)  # numpy's linear percentile: 1 + 0.9 * 9
    assert tre["max"] == 10.0 and tre["n"] == 10
    with pytest.raises(RegistrationError, match="pair up"):
        target_registration_error(fixed, moving[:3])


def test_dice_and_information_measures():
    a = np.zeros((10, 10), bool)
    a[2:6, 2:6] = True  # 16
    b = np.zeros((10, 10), bool)
    b[4:8, 2:6] = True  # 16, overlap 8
    assert dice(a, b) == pytest.approx(0.5)
    assert dice(a, a) == 1.0 and dice(np.zeros(3), np.zeros(3)) == 1.0
    rng = np.random.default_rng(0)
    x = rng.random(20000)
    # MI of a variable with itself is its (binned) entropy, log(32) for uniform data in 32 bins
    assert mutual_information(x, x, bins=32) == pytest.approx(np.log(32), rel=0.01)
    assert mutual_information(x, rng.random(20000)) < 0.05
    assert mutual_information(x, np.cos(3 * x)) > 1.0  # non-linear dependence is seen
    assert normalized_cross_correlation(x, 2 * x + 1) == pytest.approx(1.0)
    assert normalized_cross_correlation(x, -x) == pytest.approx(-1.0)
    with_nan = x.copy()
    with_nan[:100] = np.nan
    assert normalized_cross_correlation(with_nan, x) == pytest.approx(1.0)


def test_quality_before_and_after_registration(pair_2d, tmp_path):
    p = pair_2d
    t = register(p["fixed"], p["moving"], transform="affine")
    f_pts = p["points"]
    m_pts = p["truth"](f_pts)
    fmask = spatial_image((p["fixed"].values > 0.6).astype(np.uint8), spacing=(0.05, 0.05), origin=(-3.175, -3.175))
    # the moving mask is the same tissue region seen in the moving image (threshold of the unmapped values)
    from multiscale.registration import _synthetic as S

    ph = S.Phantom(2, 6.4, seed=1)
    _, inv = S.affine_true(2, 12.0, (0.15, -0.2), (0.0, 0.0), scale=(1.04, 0.97), shear=0.03)
    raw = S.sample_image(ph, (128, 128), (0.05, 0.05), (-3.175, -3.175), inverse=inv)
    mmask = spatial_image((raw.values > 0.6).astype(np.uint8), spacing=(0.05, 0.05), origin=(-3.175, -3.175))
    fig = tmp_path / "check.png"
    q = quality(p["fixed"], p["moving"], t, landmarks=(f_pts, m_pts), fixed_mask=fmask, moving_mask=mmask, figure=fig)
    assert q["tre_mm"]["after"]["mean"] < 0.2 * p["spacing"] < q["tre_mm"]["before"]["mean"]
    assert q["dice"]["after"] > 0.95 > q["dice"]["before"]
    assert q["mi"]["after"] > q["mi"]["before"]
    assert q["figure"] == fig and fig.stat().st_size > 1000
    assert fig.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(RegistrationError, match="fixed_mask is not on the fixed image's grid"):
        quality(p["fixed"], p["moving"], t, fixed_mask=mmask.isel(x=slice(0, 64)), moving_mask=mmask)


def test_checkerboard_tiles_alternate():
    a = spatial_image(np.zeros((8, 8)), spacing=1.0)
    b = spatial_image(np.full((8, 8), 5.0), spacing=1.0)
    cb = checkerboard(a, b, tiles=4).values
    assert cb[0, 0] == 0.0 and cb[0, 2] == 1.0 and cb[2, 0] == 1.0 and cb[2, 2] == 0.0
    with pytest.raises(RegistrationError, match="one grid"):
        checkerboard(a, spatial_image(np.zeros((4, 4)), spacing=1.0))
