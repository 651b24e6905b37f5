"""Colocalisation: designed correlations and overlaps, Coloc 2's Costes search, significance, bad input."""

from __future__ import annotations

import math

import dask.array as da
import numpy as np
import pandas as pd
import pytest

from multiscale.analysis._masks import AnalysisError, AnalysisWarning
from multiscale.analysis.coloc import (
    _block_shuffle,
    colocalisation,
    colocalisation_matrix,
    costes_threshold,
    joint_histogram,
    pearson_r,
)
from multiscale.image import spatial_image


def _img(a, spacing=0.5, **kw):
    return spatial_image(np.asarray(a), spacing=spacing, **kw)


# --- a literal transcription of Coloc 2's loop (STANDARDS.md), one Pearson per step -------------


def _naive_costes(x, y, method, lo=-np.inf, hi=np.inf):
    n = x.size
    mx, my = x.mean(), y.mean()
    vx = ((x - mx) ** 2).sum() / (n - 1)
    vy = ((y - my) ** 2).sum() / (n - 1)
    vs = ((x + y - mx - my) ** 2).sum() / (n - 1)
    cov = 0.5 * (vs - vx - vy)
    m = (vy - vx + math.sqrt((vy - vx) ** 2 + 4 * cov * cov)) / (2 * cov)
    b = my - m * mx
    on_x = -1 < m < 1
    f1 = (lambda t: t) if on_x else (lambda t: (t - b) / m)
    f2 = (lambda t: t * m + b) if on_x else (lambda t: t)
    w = x if on_x else y
    rnd = lambda v: min(max(math.floor(v + 0.5), lo), hi)  # noqa: E731

    def r_below(t1, t2):
        s = (x < t1) | (y < t2)
        return pearson_r(x[s], y[s])

    if method == "stepper":
        t, cur = w.max(), 1.0
        while True:
            t1, t2 = rnd(f1(t)), rnd(f2(t))
            r = r_below(t1, t2)
            last, cur = cur, r
            t -= 1
            if t < 1 or r < 1e-4 or r > last:
                return t1, t2
    t, prev = abs(w.max() + w.min()) / 2, w.max()
    step, it = abs(t - prev), 0
    while not (it > 100 or step < 1):
        t1, t2 = rnd(f1(t)), rnd(f2(t))
        r = r_below(t1, t2)
        prev = t
        if r < 0:
            t += step / 2
        elif r > 0:
            t -= step / 2
        step, it = abs(t - prev), it + 1
    return t1, t2


def test_hand_computed_steps_on_identical_channels():
    x = np.arange(11, dtype=float)  # ch1 == ch2: slope 1, walk along ch2; below-r is 1 until one value is left
    bis = costes_threshold(x, x.copy(), "bisection")
    # bisection: t = 5 (r = 1, down) -> 2.5, rounded 3 (r = 1, down) -> 1.25, rounded 1 (one voxel: NaN, stop)
    assert (bis["threshold_a"], bis["threshold_b"], bis["steps"]) == (1.0, 1.0, 3)
    assert bis["slope"] == pytest.approx(1.0) and bis["intercept"] == pytest.approx(0.0, abs=1e-12)


def test_hand_computed_stepper_stops_on_negative_r():
    # one bright voxel makes the channels correlate (slope 1 by symmetry); below T = 10 the other four
    # are perfectly anti-correlated: r = -1 < 1e-4 stops the stepper after its first step, at T = 10
    x = np.array([0.0, 1, 2, 3, 10])
    y = np.array([3.0, 2, 1, 0, 10])
    step = costes_threshold(x, y, "stepper")
    assert (step["threshold_a"], step["threshold_b"], step["steps"]) == (10.0, 10.0, 1)
    assert step["r_below"] == pytest.approx(-1.0)


def test_round_half_up_not_half_even():
    # ch2 = ch1 / 2 exactly: slope 0.5, walk along ch1 from |0 + 9| / 2 = 4.5 -> thresholds round(4.5) = 5,
    # round(2.25) = 2; half-to-even would give 4
    x = np.arange(10, dtype=float)
    y = x / 2
    res = costes_threshold(x, y, "bisection")
    ref = _naive_costes(x, y, "bisection")
    assert (res["threshold_a"], res["threshold_b"]) == ref
    assert res["slope"] == pytest.approx(0.5)
    first_t1 = math.floor(4.5 + 0.5)
    assert first_t1 == 5 and round(4.5) == 4  # Python's round would differ


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("method", ["stepper", "bisection"])
def test_costes_matches_literal_loop(seed, method):
    rng = np.random.default_rng(seed)
    n = 3000
    s = rng.integers(0, 200, n).astype(float)
    kind = seed % 4
    if kind == 0:  # positively correlated, slope ~ 1
        x, y = s, np.clip(s + rng.normal(0, 20, n), 0, 255).round()
    elif kind == 1:  # shallow slope: walks along ch1
        x, y = s, np.clip(0.3 * s + rng.normal(0, 10, n), 0, 255).round()
    elif kind == 2:  # steep slope: walks along ch2
        x, y = np.clip(0.3 * s + rng.normal(0, 10, n), 0, 255).round(), s
    else:  # anti-correlated
        x, y = s, np.clip(220 - s + rng.normal(0, 30, n), 0, 255).round()
    res = costes_threshold(x, y, method, np.uint8)
    assert (res["threshold_a"], res["threshold_b"]) == _naive_costes(x, y, method, 0, 255)


def _designed_threshold_pair(rng, t=60, n=6000):
    bg_x = rng.integers(0, t, n).astype(float)
    bg_y = rng.integers(0, t, n).astype(float)
    sig = rng.integers(t, 250, n).astype(float)
    sig_y = np.clip(sig + rng.normal(0, 3, n), t, 255).round()
    return np.concatenate([bg_x, sig]), np.concatenate([bg_y, sig_y])


@pytest.mark.parametrize("method", ["stepper", "bisection"])
def test_costes_recovers_designed_threshold(method):
    # below 60 both channels are independent noise; above, they are the same signal
    x, y = _designed_threshold_pair(np.random.default_rng(5))
    res = costes_threshold(x, y, method, np.uint8)
    assert 50 <= res["threshold_a"] <= 70 and 50 <= res["threshold_b"] <= 70
    assert abs(res["r_below"]) < 0.1


def test_designed_correlation_gives_known_coefficients():
    rho = 0.6
    rng = np.random.default_rng(11)
    z = rng.multivariate_normal([100, 100], [[100, rho * 100], [rho * 100, 100]], size=(100, 100))
    a, b = _img(z[..., 0]), _img(z[..., 1])
    res = colocalisation(a, b, threshold="none")
    assert res["pearson"] == pytest.approx(rho, abs=0.02)
    assert res["spearman"] == pytest.approx(6 / np.pi * np.arcsin(rho / 2), abs=0.02)  # 0.582 for a normal pair
    assert res["kendall"] == pytest.approx(2 / np.pi * np.arcsin(rho), abs=0.02)  # 0.410
    assert np.isnan(res["tm1"]) and np.isnan(res["threshold_a"])


def test_designed_overlap_gives_known_manders():
    a = np.zeros((20, 30))
    b = np.zeros((20, 30))
    a[:, :20] = 2.0  # 400 voxels of ch1
    b[:, 10:30] = 3.0  # 400 voxels of ch2, overlap 200
    b[:, 25:30] = 1.0  # a dim part of ch2, outside ch1
    res = colocalisation(_img(a), _img(b), threshold=(1.5, 2.0))
    assert res["m1"] == pytest.approx(200 / 400)
    assert res["m2"] == pytest.approx(200 * 3 / (300 * 3 + 100 * 1))
    # tM1: ch1 where ch2 > 0 and ch2 >= 2, over all ch1; tM2: ch2 where ch1 >= 1.5, over all ch2
    assert res["tm1"] == pytest.approx(200 / 400)
    assert res["tm2"] == pytest.approx(600 / 1000)
    jac = colocalisation(_img(a), _img(b), threshold=(1.5, 2.0), convention="jacop")
    # JACoP: ch1 > 1.5 and ch2 > 2 over ch1 > 1.5; ch2 with both above over ch2 > 2
    assert jac["tm1"] == pytest.approx(400 / 800)
    assert jac["tm2"] == pytest.approx(600 / 900)
    assert jac["m1"] == res["m1"]


def test_icq_counts_zero_products_as_positive_in_coloc2_only():
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 3.0])  # mean 3: voxels 2 and 5 give zero products
    y = np.array([5.0, 1.0, 2.0, 4.0, 3.0, 9.0])  # mean 4: voxel 3 gives a zero product
    a, b = _img(x.reshape(2, 3)), _img(y.reshape(2, 3))
    prod = (x.mean() - x) * (y.mean() - y)
    c2 = colocalisation(a, b, threshold="none")
    jc = colocalisation(a, b, threshold="none", convention="jacop")
    assert c2["icq"] == pytest.approx((prod >= 0).sum() / 6 - 0.5)
    assert jc["icq"] == pytest.approx((prod > 0).sum() / 6 - 0.5)
    assert c2["icq"] - jc["icq"] == pytest.approx(3 / 6)


def test_below_and_above_pearson_use_or():
    x, y = _designed_threshold_pair(np.random.default_rng(2), n=500)
    a, b = _img(x.reshape(50, 20)), _img(y.reshape(50, 20))
    res = colocalisation(a, b, threshold=(60, 60))
    below = (x < 60) | (y < 60)
    above = (x > 60) | (y > 60)
    assert res["pearson_below"] == pytest.approx(np.corrcoef(x[below], y[below])[0, 1], abs=1e-12)
    assert res["pearson_above"] == pytest.approx(np.corrcoef(x[above], y[above])[0, 1], abs=1e-12)


def test_uint8_images_do_not_overflow_and_mask_restricts():
    rng = np.random.default_rng(0)
    x = rng.integers(150, 256, (30, 30)).astype(np.uint8)
    y = rng.integers(150, 256, (30, 30)).astype(np.uint8)
    m = np.zeros((30, 30), bool)
    m[5:25, 5:25] = True
    r8 = colocalisation(_img(x), _img(y), mask=_img(m), costes_method="stepper")
    rf = colocalisation(_img(x.astype(float)), _img(y.astype(float)), mask=_img(m), costes_method="stepper",
                        threshold=(r8["threshold_a"], r8["threshold_b"]))
    assert r8["n"] == 400
    assert r8["pearson"] == pytest.approx(np.corrcoef(x[m].astype(float), y[m].astype(float))[0, 1], abs=1e-12)
    for k in ("pearson", "m1", "m2", "tm1", "tm2", "icq"):
        assert r8[k] == pytest.approx(rf[k], abs=1e-12)
    assert 0 <= r8["threshold_a"] <= 255


def test_block_shuffle_moves_whole_blocks_and_mirrors_edges():
    rng = np.random.default_rng(0)
    arr = np.arange(36.0).reshape(6, 6)
    out = _block_shuffle(arr, 3, rng)
    blocks = sorted(tuple(arr[i:i + 3, j:j + 3].ravel()) for i in (0, 3) for j in (0, 3))
    got = sorted(tuple(out[i:i + 3, j:j + 3].ravel()) for i in (0, 3) for j in (0, 3))
    assert blocks == got
    odd = np.arange(20.0).reshape(4, 5)  # padded by mirroring to 6 x 6
    mirrored = np.pad(odd, ((0, 2), (0, 1)), mode="symmetric")
    out = _block_shuffle(odd, 3, np.random.default_rng(1))
    assert out.shape == odd.shape
    assert set(out.ravel()) <= set(mirrored.ravel())


def test_costes_significance_is_reproducible_and_detects_colocalisation():
    from scipy import ndimage as ndi

    rng = np.random.default_rng(4)
    base = ndi.gaussian_filter(rng.random((48, 48)), 2)
    a = _img(base * 1000)
    b = _img(base * 800 + rng.normal(0, 1, base.shape))
    r1 = colocalisation(a, b, significance=True, n_randomisations=20, seed=3)
    r2 = colocalisation(a, b, significance=True, n_randomisations=20, seed=3)
    r3 = colocalisation(a, b, significance=True, n_randomisations=20, seed=4)
    assert r1["costes_p"] == r2["costes_p"] and r1["costes_r_random_mean"] == r2["costes_r_random_mean"]
    assert r1["costes_r_random_mean"] != r3["costes_r_random_mean"]
    assert r1["costes_p"] > 0.95
    indep = _img(ndi.gaussian_filter(rng.random((48, 48)), 2) * 1000)
    r4 = colocalisation(a, indep, significance=True, n_randomisations=20, seed=3)
    assert 0.0 <= r4["costes_p"] < 0.95


def test_dask_backed_images_agree_with_numpy():
    x, y = _designed_threshold_pair(np.random.default_rng(8), n=1800)
    x, y = x.reshape(60, 60), y.reshape(60, 60)
    m = np.zeros((60, 60), bool)
    m[3:57, 2:50] = True
    eager = colocalisation(_img(x), _img(y), mask=_img(m), significance=True, n_randomisations=5)
    lazy = colocalisation(_img(da.from_array(x, chunks=25)), _img(da.from_array(y, chunks=25)), mask=_img(m),
                          significance=True, n_randomisations=5)
    assert eager == lazy
    h1 = joint_histogram(_img(x), _img(y), mask=_img(m), bins=16)
    h2 = joint_histogram(_img(da.from_array(x, chunks=25)), _img(da.from_array(y, chunks=25)), mask=_img(m), bins=16)
    pd.testing.assert_frame_equal(h1, h2)
    assert h1["count"].sum() == m.sum()


def test_colocalisation_matrix_has_one_row_per_pair():
    rng = np.random.default_rng(0)
    base = rng.random((20, 20)) * 100
    maps = [spatial_image(base + k * rng.random((20, 20)) * 100, spacing=0.1, name=f"map{k}") for k in range(4)]
    table = colocalisation_matrix(maps, threshold="none")
    assert len(table) == 6
    assert table[["a", "b"]].iloc[0].tolist() == ["map0", "map1"]
    one = colocalisation(maps[1], maps[3], threshold="none")
    row = table[(table.a == "map1") & (table.b == "map3")].iloc[0]
    assert row["pearson"] == one["pearson"]


def test_bad_input():
    a = _img(np.arange(24.0).reshape(4, 6))
    with pytest.raises(AnalysisError, match="not on the same grid"):
        colocalisation(a, _img(np.arange(24.0).reshape(4, 6), spacing=0.25))
    with pytest.raises(AnalysisError, match="empty"):
        colocalisation(a, a, mask=_img(np.zeros((4, 6), bool)))
    with pytest.raises(AnalysisError, match="convention"):
        colocalisation(a, a, convention="imaris")
    with pytest.raises(AnalysisError, match="costes_method"):
        colocalisation(a, a * 2 + 1, costes_method="newton")
    with pytest.raises(AnalysisError, match="threshold"):
        colocalisation(a, a, threshold="otsu")
    const = _img(np.full((4, 6), 7.0))
    with pytest.warns(AnalysisWarning, match="constant"):
        res = colocalisation(a, const)
    assert np.isnan(res["pearson"]) and np.isnan(res["threshold_a"]) and res["m1"] == 1.0
    with pytest.warns(AnalysisWarning, match="whole intensity units"):
        colocalisation(_img(np.linspace(0, 1, 24).reshape(4, 6)), _img(np.linspace(0, 1, 24).reshape(4, 6) ** 2))
    nan = np.arange(24.0).reshape(4, 6)
    nan[0, 0] = np.nan
    with pytest.warns(AnalysisWarning, match="1 of 24"):
        res = colocalisation(_img(nan), a, threshold="none")
    assert res["n"] == 23 and res["pearson"] == pytest.approx(1.0)


def test_three_dimensional_block_shuffle_and_significance():
    from scipy import ndimage as ndi

    rng = np.random.default_rng(6)
    base = ndi.gaussian_filter(rng.random((10, 20, 20)), 1.5)
    arr = np.arange(10 * 20 * 20, dtype=float).reshape(10, 20, 20)
    out = _block_shuffle(arr, 3, np.random.default_rng(0))
    assert out.shape == arr.shape and not np.array_equal(out, arr)
    a = spatial_image(base * 1000, spacing=(2.0, 0.5, 0.5))
    b = spatial_image(base * 500 + rng.normal(0, 0.5, base.shape), spacing=(2.0, 0.5, 0.5))
    res = colocalisation(a, b, significance=True, psf_px=2, n_randomisations=10, seed=1)
    assert 0.0 <= res["costes_p"] <= 1.0 and res["costes_p"] > 0.95


def test_pearson_and_manders_agree_with_scikit_image():
    from skimage.measure import manders_coloc_coeff, pearson_corr_coeff

    rng = np.random.default_rng(9)
    x = rng.integers(0, 4096, (40, 50)).astype(float)
    y = np.where(rng.random((40, 50)) > 0.3, np.clip(x + rng.normal(0, 300, x.shape), 0, 4095).round(), 0.0)
    m = rng.random((40, 50)) > 0.2
    res = colocalisation(_img(x), _img(y), mask=_img(m), threshold="none")
    assert res["pearson"] == pytest.approx(pearson_corr_coeff(x, y, m)[0], abs=1e-12)
    assert res["m1"] == pytest.approx(manders_coloc_coeff(x, y > 0, m), abs=1e-12)
    assert res["m2"] == pytest.approx(manders_coloc_coeff(y, x > 0, m), abs=1e-12)
