"""MSI analysis: normalisation factors and normalisation, hotspot clipping, peak picking."""

from __future__ import annotations

import statistics

import dask.array as da
import numpy as np
import pytest
from scipy.stats import norm

from multiscale.analysis.msi import (
    MAD_TO_SIGMA,
    clip_hotspots,
    normalization_factors,
    normalize,
    pick_peaks,
    reference_ion_normalize,
)
from multiscale.image import spacing, spatial_image


def ion_stack(rng, nc=3, ny=6, nx=5, lazy=False):
    data = rng.uniform(0, 100, (nc, ny, nx))
    data[:, 0, 0] = 0.0
    if lazy:
        data = da.from_array(data, chunks=(1, 3, 5))
    return spatial_image(data, spacing=(0.02, 0.03), dims=("c", "y", "x"), channels=[100.0 + 50 * k for k in range(nc)],
                         modality="MSI", units="counts")


def test_normalization_factors_follow_their_definitions() -> None:
    rng = np.random.default_rng(0)
    spectra = rng.uniform(0, 10, (7, 40))
    spectra[spectra < 3] = 0.0
    spectra[3] = 0.0
    for method in ("tic", "rms", "median", "max"):
        got = normalization_factors(spectra, method)
        for i, row in enumerate(spectra.tolist()):
            nz = [v for v in row if v != 0]
            want = {
                "tic": sum(row),
                "rms": (sum(v * v for v in row) / len(row)) ** 0.5,
                "median": statistics.median(nz) if nz else 0.0,
                "max": max(row),
            }[method]
            assert got[i] == pytest.approx(want, rel=1e-12)
    np.testing.assert_allclose(normalization_factors(spectra.T, "tic", axis=0), spectra.sum(axis=1))
    with pytest.raises(ValueError, match="method must be"):
        normalization_factors(spectra, "l2")


def test_mad_constant_is_the_gaussian_quartile() -> None:
    assert MAD_TO_SIGMA == pytest.approx(1.0 / norm.ppf(0.75), rel=1e-12)


@pytest.mark.parametrize("lazy", [False, True])
def test_normalize_divides_and_rescales(lazy) -> None:
    rng = np.random.default_rng(1)
    img = ion_stack(rng, lazy=lazy)
    factor = rng.uniform(1, 5, (6, 5))
    factor[2, 3] = 0.0  # no usable factor here
    out = normalize(img, factor, method="tic")
    if lazy:
        assert isinstance(out.data, da.Array)
    vals = np.asarray(out.values)
    s = np.median(factor[factor > 0])
    ok = factor > 0
    np.testing.assert_allclose(vals[:, ok], np.asarray(img.values)[:, ok] / factor[ok] * s, rtol=1e-12)
    assert np.all(vals[:, 2, 3] == 0.0)
    assert out.dims == img.dims and spacing(out) == spacing(img)
    assert out.attrs["units"] == "TIC-normalised counts"
    assert out.attrs["provenance"]["steps"][-1]["scale"] == pytest.approx(s)
    raw = normalize(img, spatial_image(factor, spacing=(0.02, 0.03)), method="rms", scale=None, fill_value=np.nan)
    assert np.isnan(raw.values[0, 2, 3])
    np.testing.assert_allclose(raw.values[:, ok], np.asarray(img.values)[:, ok] / factor[ok])
    assert raw.attrs["units"] == "RMS-normalised counts"


def test_normalize_rejects_mismatched_factors() -> None:
    img = ion_stack(np.random.default_rng(2))
    with pytest.raises(ValueError, match="does not match the images' spatial shape"):
        normalize(img, np.ones((5, 6)))
    with pytest.raises(ValueError, match="no pixel has a positive"):
        normalize(img, np.zeros((6, 5)))


def test_reference_ion_normalize_makes_reference_flat() -> None:
    rng = np.random.default_rng(3)
    img = ion_stack(rng)
    out = reference_ion_normalize(img, 150.0)
    ref = img.sel(c=150.0).values
    s = np.median(ref[ref > 0])
    flat = out.sel(c=150.0).values
    np.testing.assert_allclose(flat[ref > 0], s)
    assert flat[0, 0] == 0.0
    np.testing.assert_allclose(out.sel(c=100.0).values[ref > 0], img.sel(c=100.0).values[ref > 0] / ref[ref > 0] * s)
    assert out.attrs["units"] == "reference-ion-normalised counts"
    with pytest.raises(ValueError, match="not among the images' channels"):
        reference_ion_normalize(img, 151.0)


def test_clip_hotspots_uses_each_channels_positive_percentile() -> None:
    rng = np.random.default_rng(4)
    data = rng.exponential(10, (2, 20, 20))
    data[:, :5] = 0.0  # background outside the tissue
    data[1] *= 100
    data[0, 10, 10] = np.nan
    img = spatial_image(data, spacing=0.05, dims=("c", "y", "x"), channels=[300.0, 400.0])
    out = clip_hotspots(img)
    for k in range(2):
        v = data[k][np.isfinite(data[k]) & (data[k] > 0)]
        q = np.percentile(v, 99)
        assert out.attrs["hotspot_threshold"][k] == pytest.approx(q)
        o = out.values[k]
        assert np.nanmax(o) == pytest.approx(q)
        below = data[k] <= q
        np.testing.assert_array_equal(o[below], data[k][below])
        assert np.sum(data[k] > q) >= 1
    assert np.isnan(out.values[0, 10, 10])
    with_zeros = clip_hotspots(img, 50, positive_only=False)
    assert with_zeros.attrs["hotspot_threshold"][0] < out.attrs["hotspot_threshold"][0]
    single = clip_hotspots(img.isel(c=1, drop=True), 95)
    assert single.dims == ("y", "x") and isinstance(single.attrs["hotspot_threshold"], float)
    with pytest.raises(ValueError, match="percentile"):
        clip_hotspots(img, 0)


def _profile(rng, centres, heights, sigma_da=0.004, noise=1.0):
    mz = np.arange(400.0, 420.0, 0.001)
    y = 20.0 + rng.normal(0, noise, mz.size)
    for c, h in zip(centres, heights):
        y += h * np.exp(-0.5 * ((mz - c) / sigma_da) ** 2)
    return mz, y


def test_pick_peaks_finds_known_peaks_above_snr() -> None:
    rng = np.random.default_rng(5)
    centres = [402.1234, 405.5, 411.0101, 417.77]
    heights = [200.0, 60.0, 30.0, 4.0]  # the last is below 5 sigma
    mz, y = _profile(rng, centres, heights)
    peaks = pick_peaks(mz, y, snr=8)
    assert len(peaks) == 3
    np.testing.assert_allclose(peaks["mz"], centres[:3], atol=3e-4)
    assert peaks.attrs["noise"] == pytest.approx(1.0, rel=0.1)  # MAD estimate of the Gaussian noise sigma
    assert peaks.attrs["baseline"] == pytest.approx(20.0, abs=0.2)
    assert np.all(peaks["snr"] >= 8)
    np.testing.assert_allclose(peaks["snr"], (peaks["intensity"] - peaks.attrs["baseline"]) / peaks.attrs["noise"])
    apex = pick_peaks(mz, y, snr=8, centroid=False)
    np.testing.assert_array_equal(apex["mz"], mz[apex["apex_index"]])
    assert list(pick_peaks(mz, y, snr=8, top_n=1)["apex_mz"]) == [apex["apex_mz"][0]]


def test_pick_peaks_min_distance_and_centroided_input() -> None:
    rng = np.random.default_rng(6)
    mz = np.sort(rng.uniform(300, 310, 300))
    y = rng.uniform(1, 3, 300)
    # centroided data: two tall peaks 5 ppm apart with a low point between them, and one more
    extra_mz = np.array([305.0, 305.0007, 305.0015, 308.0])
    extra_y = np.array([100.0, 2.0, 120.0, 80.0])
    mz, order = np.concatenate([mz, extra_mz]), None
    y = np.concatenate([y, extra_y])
    order = np.argsort(mz, kind="stable")
    mz, y = mz[order], y[order]
    far = pick_peaks(mz, y, snr=10, min_distance_ppm=1.0)
    near = pick_peaks(mz, y, snr=10, min_distance_ppm=10.0)
    assert far["apex_mz"].tolist() == [305.0, 305.0015, 308.0]
    assert near["apex_mz"].tolist() == [305.0015, 308.0]  # the smaller of the close pair goes
    np.testing.assert_array_equal(near["mz"], near["apex_mz"])  # isolated points: centroid = apex
    assert len(pick_peaks(mz, np.zeros_like(y))) == 0
    with pytest.raises(ValueError, match="ascending"):
        pick_peaks(mz[::-1], y)
    with pytest.raises(ValueError, match="equal length"):
        pick_peaks(mz, y[:-1])
