"""The study's record of one registration: alignment_quality, checkerboard_array, central_slice, registration_figure."""

from __future__ import annotations

import io

import numpy as np
import pytest
import SimpleITK as sitk

from multiscale import image as mi
from multiscale.image import spatial_image
from multiscale.registration import (
    Transform,
    alignment_quality,
    central_slice,
    checkerboard,
    checkerboard_array,
    registration_figure,
    resample,
)


@pytest.fixture(scope="module")
def blob():
    yy, xx = np.mgrid[:40, :50]
    data = np.exp(-((yy - 20) ** 2 + (xx - 24) ** 2) / 60.0) + 0.3 * np.exp(-((yy - 10) ** 2 + (xx - 36) ** 2) / 20.0)
    return spatial_image(data, spacing=(0.5, 0.5), origin=(0.0, 0.0))


def _shift(dx: float, dy: float) -> Transform:
    return Transform(sitk.TranslationTransform(2, (dx, dy)))


def test_known_shift_keys_and_values(blob):
    t = _shift(1.0, 0.0)
    t.info.update(metric_before=-0.2, metric_after=-0.7, stages=["x"])
    truth = _shift(1.0, 0.5)  # recovered is off by 0.5 mm in y everywhere
    moved = resample(blob, blob, t)
    fixed_pts = np.array([[5.0, 5.0], [10.0, 2.0], [0.0, 0.0]])
    moving_pts = fixed_pts + [1.0, 0.0]
    moving_pts[2] += [0.0, 2.0]  # one landmark 2 mm off
    inside = mi.like(blob, (blob.values > 0.5).astype(np.uint8))
    empty = mi.like(blob, np.zeros(blob.shape, np.uint8))
    q = alignment_quality(blob, moved, t, landmarks=(fixed_pts, moving_pts), landmarks_used=True, truth=truth,
                          fixed_masks={"tumour": inside, "nothing": empty})
    assert list(q) == ["pearson_after", "overlap_fraction", "tre_mean_mm", "tre_max_mm", "tre_landmarks",
                       "tre_independent", "truth_error_mean_mm", "truth_error_max_mm", "truth_error_points",
                       "truth_error_mean_mm_in_tumour", "truth_error_max_mm_in_tumour", "metric_before", "metric_after"]
    # the moved image is the fixed one shifted by 2 voxels in x: 2 columns of 50 fall outside
    ok = np.asarray(moved.values) != 0
    assert q["overlap_fraction"] == pytest.approx(ok.mean()) and q["overlap_fraction"] == pytest.approx(48 / 50)
    fv, mv = blob.values[ok], moved.values[ok]
    assert q["pearson_after"] == pytest.approx(np.corrcoef(fv, mv)[0, 1])
    assert q["tre_mean_mm"] == pytest.approx(2.0 / 3) and q["tre_max_mm"] == pytest.approx(2.0)
    assert q["tre_landmarks"] == 3 and q["tre_independent"] is False
    assert q["truth_error_mean_mm"] == pytest.approx(0.5) and q["truth_error_max_mm"] == pytest.approx(0.5)
    assert q["truth_error_points"] == 144  # 12 x 12 lattice
    assert q["truth_error_mean_mm_in_tumour"] == pytest.approx(0.5)
    assert q["metric_before"] == -0.2 and q["metric_after"] == -0.7


def test_minimal_record(blob):
    q = alignment_quality(blob, blob, _shift(0.0, 0.0))
    assert list(q) == ["pearson_after", "overlap_fraction"] and q["pearson_after"] == pytest.approx(1.0)
    flat = mi.like(blob, np.ones(blob.shape))
    q = alignment_quality(blob, flat, _shift(0.0, 0.0), landmarks=([[0.0, 0.0]], [[0.0, 0.0]]))
    assert "pearson_after" not in q and q["tre_independent"] is True and q["tre_mean_mm"] == 0.0


def test_truth_points_lattice_on_small_axes():
    img = spatial_image(np.ones((5, 30, 3)), spacing=1.0)
    q = alignment_quality(img, img, Transform(sitk.TranslationTransform(3, (0.0, 0.0, 0.0))),
                          truth=Transform(sitk.TranslationTransform(3, (0.0, 0.0, 2.0))))
    assert q["truth_error_points"] == 5 * 12 * 3 and q["truth_error_mean_mm"] == pytest.approx(2.0)


def test_mask_points_are_capped():
    img = spatial_image(np.ones((100, 100)), spacing=0.1)
    truth = _shift(0.0, 0.0)
    # a 1% stretch in x: the error grows with x, so the mean over the mask depends on the points used
    t = Transform(sitk.AffineTransform(2))
    t.sitk.SetMatrix((1.01, 0.0, 0.0, 1.0))
    q = alignment_quality(img, img, t, truth=truth, fixed_masks={"all": mi.like(img, np.ones((100, 100), np.uint8))})
    xs = (np.arange(10000)[::3] % 100) * 0.1  # every 3rd of 10,000 voxels (at most 4,000 points)
    assert q["truth_error_mean_mm_in_all"] == pytest.approx(0.01 * xs.mean())


def test_checkerboard_array_tiles_and_scaling():
    a = np.zeros((8, 8))
    b = np.arange(64.0).reshape(8, 8)
    cb = checkerboard_array(a, b, tiles=4)
    lo, hi = np.percentile(b, [1, 99])
    scaled_b = np.clip((b - lo) / (hi - lo), 0, 1)
    tile = (np.indices((8, 8)) // 2).sum(0) % 2 == 0
    np.testing.assert_array_equal(cb[tile], 0.0)  # a (constant: scaled to 0) on the even tiles
    np.testing.assert_allclose(cb[~tile], scaled_b[~tile])
    # uneven shapes: tiles of shape // tiles pixels; NaN counts as 0
    odd = checkerboard_array(np.full((5, 7), np.nan), np.ones((5, 7)), tiles=8)
    assert odd.shape == (5, 7) and odd[0, 0] == 0.0 and odd[0, 1] == 0.0  # 1-pixel tiles; b constant -> 0
    assert np.isfinite(odd).all()


def test_checkerboard_image_version_differs_on_uneven_tiles():
    a = spatial_image(np.zeros((10, 10)), spacing=1.0)
    b = spatial_image(np.ones((10, 10)), spacing=1.0)
    # image version: exactly 4 tiles per axis (3, 2, 3, 2 pixels); array version: 2-pixel tiles
    assert checkerboard(a, b, tiles=4).values[0].tolist() == [0, 0, 0, 1, 1, 0, 0, 0, 1, 1]
    ramp = np.tile(np.arange(10.0), (10, 1))  # not constant, so it is not scaled to 0
    row = checkerboard_array(np.zeros((10, 10)), ramp, tiles=4)[0]
    assert (row[[0, 1, 4, 5, 8, 9]] == 0).all() and (row[[2, 3, 6, 7]] > 0).all()


def test_central_slice():
    vol = np.arange(6.0)[:, None, None] * np.ones((6, 3, 3))
    plane = vol[0]
    assert central_slice(plane) is plane  # 2-D: itself
    w = np.zeros_like(vol)
    w[4] = 1.0
    w[5] = np.nan
    assert central_slice(vol, w)[0, 0] == 4.0
    assert central_slice(vol, np.zeros_like(vol))[0, 0] == 3.0  # no weight: the middle slice
    assert central_slice(vol)[0, 0] == 3.0


def test_registration_figure_draws(tmp_path):
    from matplotlib.figure import Figure

    rng = np.random.default_rng(0)
    f, m = rng.random((30, 40)), rng.random((30, 40))
    fig = registration_figure("pet_to_mri", f, m, "rigid", {"truth_error_mean_mm": 0.123456, "truth_error_max_mm": 0.5})
    assert isinstance(fig, Figure)
    assert [ax.get_title() for ax in fig.axes[:3]] == ["fixed", "checkerboard fixed / moving (registered)",
                                                    "fixed (magenta) + moving (green)"]
    assert fig.get_suptitle() == "pet_to_mri (rigid); error vs truth mean 0.123 mm, max 0.5 mm"
    np.testing.assert_array_equal(fig.axes[1].images[0].get_array(), checkerboard_array(f, m))
    rgb = fig.axes[2].images[0].get_array()
    assert rgb.shape == (30, 40, 3)
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    assert buf.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"
    plain = registration_figure("a_to_b", f, m, "identity", {})
    assert plain.get_suptitle() == "a_to_b (identity)"


def test_registration_figure_leaves_pyplot_alone():
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    registration_figure("x", np.zeros((4, 4)), np.zeros((4, 4)), "rigid", None)
    assert plt.get_fignums() == before
