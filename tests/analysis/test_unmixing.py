"""Spectral unmixing: NNLS against scipy, planted concentrations and sO2 under noise, lazy stacks, bad input."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import scipy.optimize

from multiscale.analysis import unmixing as um
from multiscale.analysis.family import FamilyResult
from multiscale.analysis.unmixing.nnls import nnls_columns
from multiscale.errors import AnalysisError
from multiscale.image import spacing, spatial_image

WL = np.arange(700.0, 901.0, 20.0)  # 11 wavelengths, 700-900 nm


def _phantom(so2_in=0.35, so2_out=0.85, total=1.0, snr=50.0, seed=0, n=64, extra=None):
    """A disc of low sO2 (hypoxic core) in well-oxygenated tissue; noise SD = mean signal / snr."""
    yy, xx = np.mgrid[:n, :n]
    core = (yy - n / 2) ** 2 + (xx - n / 2) ** 2 < (n / 4) ** 2
    s = np.where(core, so2_in, so2_out)
    thb = total * (1.0 + 0.3 * xx / n)            # a gradient of total haemoglobin
    conc = {"HbO2": s * thb, "Hb": (1 - s) * thb}
    names, A = um.spectra_matrix(["HbO2", "Hb"], WL)
    A = A / 1000.0                                 # signal of order 1
    stack = np.einsum("lk,kyx->lyx", A, np.stack([conc["HbO2"], conc["Hb"]]))
    if extra is not None:
        stack = stack + extra
    rng = np.random.default_rng(seed)
    stack = stack + rng.normal(0.0, stack.mean() / snr, stack.shape)
    img = spatial_image(stack, spacing=0.1, dims=("c", "y", "x"), channels=[f"{w:g}" for w in WL], modality="OT")
    return img, conc, core, {"HbO2": A[:, 0], "Hb": A[:, 1]}


def test_shipped_haemoglobin_table_matches_prahl():
    """Published values of Prahl's OMLC table (Gratzer/Kollias), and the isosbestic point near 797-800 nm."""
    t = um.haemoglobin_spectra()
    assert t.loc[750.0].tolist() == [518.0, 1405.24]
    assert t.loc[850.0].tolist() == [1058.0, 691.32]
    assert t.loc[700.0].tolist() == [290.0, 1794.28]
    d = (t["HbO2"] - t["Hb"]).loc[780:820]
    crossing = d.index[np.where(np.diff(np.sign(d.to_numpy())) != 0)[0][0]]
    assert 794 <= crossing <= 800


@pytest.mark.parametrize("k", [1, 2, 3, 4, 6])
def test_enumerated_nnls_equals_scipy(k):
    rng = np.random.default_rng(k)
    A = rng.random((9, k))
    B = A @ rng.normal(0.5, 1.0, (k, 300)) + rng.normal(0, 0.2, (9, 300))
    X, rss = nnls_columns(A, B, method="enumerate")
    ref = [scipy.optimize.nnls(A, B[:, j]) for j in range(B.shape[1])]
    np.testing.assert_allclose(X, np.array([r[0] for r in ref]).T, atol=1e-10)
    np.testing.assert_allclose(rss, np.array([r[1] ** 2 for r in ref]), rtol=1e-8, atol=1e-10)
    assert (X >= 0).all()


def test_projected_gradient_converges_to_scipy():
    rng = np.random.default_rng(3)
    A = rng.random((14, 10))
    B = A @ rng.normal(0.5, 1.0, (10, 200))
    X, _ = nnls_columns(A, B, method="gradient", tol=1e-12, max_iter=200000)
    ref = np.array([scipy.optimize.nnls(A, B[:, j])[0] for j in range(200)]).T
    np.testing.assert_allclose(X, ref, atol=1e-5)


def test_planted_concentrations_and_so2_recovered_at_snr_50():
    img, conc, core, _ = _phantom()
    u = um.unmix(img, ["HbO2", "Hb"])
    assert list(u.coords["c"].values) == ["HbO2", "Hb", "residual"] and spacing(u) == (0.1, 0.1)
    for name in ("HbO2", "Hb"):
        for region in (core, ~core):
            got = 1000.0 * float(u.sel(c=name).values[region].mean())  # spectra per M, planted in mM
            want = float(conc[name][region].mean())
            assert abs(got - want) / want < 0.02, (name, got, want)
    s = um.so2(u)
    assert abs(float(np.nanmean(s.values[core])) - 0.35) < 0.02
    assert abs(float(np.nanmean(s.values[~core])) - 0.85) < 0.02
    # per pixel: the median error of sO2 is small too
    assert np.nanmedian(np.abs(s.values - np.where(core, 0.35, 0.85))) < 0.02
    thb = um.total_haemoglobin(u).values
    assert abs(1000.0 * thb.mean() / (conc["HbO2"] + conc["Hb"]).mean() - 1) < 0.02
    np.testing.assert_allclose(um.deoxy_fraction(u).values, 1 - s.values)
    # residual: about the noise SD (0.02 x mean signal)
    noise = float(img.values.mean()) / 50.0
    assert 0.5 * noise < float(u.sel(c="residual").mean()) < 1.1 * noise


def test_exact_mixture_recovered_exactly_with_user_absorber():
    """A third absorber (ICG-like Gaussian band) given as a callable, and the same as a tabulation."""
    def icg(w):
        return np.exp(-0.5 * ((np.asarray(w) - 800.0) / 25.0) ** 2) * 2.0

    img, conc, _, spectra = _phantom(snr=1e12, extra=None)
    dye = np.zeros(img.shape[1:])
    dye[10:20, 10:20] = 0.3
    stack = img.values + icg(WL)[:, None, None] * dye
    img2 = img.copy(data=stack)
    members = {"HbO2": spectra["HbO2"], "Hb": spectra["Hb"], "ICG": icg}
    u = um.unmix(img2, members)
    np.testing.assert_allclose(u.sel(c="ICG").values, dye, atol=1e-6)
    np.testing.assert_allclose(u.sel(c="HbO2").values, conc["HbO2"], rtol=1e-6)
    table = {float(w): float(icg(w)) for w in np.arange(690.0, 911.0, 5.0)}
    u2 = um.unmix(img2, {"HbO2": spectra["HbO2"], "Hb": spectra["Hb"], "ICG": table})
    np.testing.assert_allclose(u2.sel(c="ICG").values, dye, atol=2e-3)


def test_dask_stack_is_lazy_and_equal():
    img, _, _, _ = _phantom(n=48)
    lazy = img.copy(data=da.from_array(img.values, chunks=(3, 16, 16)))
    u = um.unmix(lazy, ["HbO2", "Hb"])
    assert hasattr(u.data, "dask") and u.data.chunks[0] == (3,)
    np.testing.assert_allclose(u.values, um.unmix(img, ["HbO2", "Hb"]).values)


def test_oxygenation_metrics_and_hypoxic_fraction():
    img, _, core, _ = _phantom()
    u = um.unmix(img, ["HbO2", "Hb"])
    m = um.oxygenation_metrics(u, so2_threshold=0.6)
    assert abs(m["fraction_below_so2_0.6"] - core.mean()) < 0.01
    assert m["n_pixels"] == core.size and m["fraction_without_blood"] == 0.0


def test_fewer_wavelengths_than_endmembers_is_a_clear_error():
    img, _, _, _ = _phantom()
    two = img.isel(c=[0, 5])
    with pytest.raises(AnalysisError, match=r"3 endmembers .* cannot be unmixed from 2 wavelength"):
        um.unmix(two, {"HbO2": "HbO2", "Hb": "Hb", "ICG": {700: 1.0, 800: 2.0}})


def test_bad_wavelengths_and_spectra_are_refused():
    img, _, _, _ = _phantom()
    with pytest.raises(AnalysisError, match="not a wavelength"):
        um.unmix(img.assign_coords(c=[f"ch{i}" for i in range(img.sizes['c'])]), ["HbO2", "Hb"])
    with pytest.raises(AnalysisError, match="outside"):
        um.unmix(img.assign_coords(c=WL + 300), ["HbO2", "Hb"])
    with pytest.raises(AnalysisError, match="linearly dependent"):
        um.unmix(img, {"a": np.ones(WL.size), "b": 2 * np.ones(WL.size)})
    with pytest.raises(AnalysisError, match="no shipped spectrum"):
        um.unmix(img, ["melanin"])


def test_ratiometric_map_recovers_planted_ph():
    rng = np.random.default_rng(1)
    ph = np.linspace(6.2, 7.8, 100).reshape(10, 10)
    cal_ph = np.array([6.0, 6.5, 7.0, 7.5, 8.0])
    cal_ratio = 0.2 + 0.9 * (cal_ph - 6.0)          # a linear probe response
    true_ratio = np.interp(ph, cal_ph, cal_ratio)
    den = rng.uniform(50, 100, ph.shape)
    a = spatial_image(true_ratio * den + 10.0, spacing=0.05)
    b = spatial_image(den + 5.0, spacing=0.05)
    got = um.ratiometric_map(a, b, background=(10.0, 5.0), calibration=um.calibration_curve(cal_ratio, cal_ph),
                             units="pH")
    np.testing.assert_allclose(got.values, ph, atol=1e-9)
    assert got.attrs["units"] == "pH"
    with pytest.raises(AnalysisError, match="monotonic"):
        um.calibration_curve([1.0, 2.0, 1.5], [6.0, 7.0, 8.0])


def test_family_rows_images_and_figure():
    img, _, core, _ = _phantom()
    mask = spatial_image(core.astype(np.uint8), spacing=0.1)
    res = um.FAMILY.evaluate({"image": img, "mask": mask}, {"so2_threshold": 0.5})
    assert isinstance(res, FamilyResult)
    rows = res.rows.set_index("metric")
    assert abs(rows.loc["so2_mean", "value"] - 0.35) < 0.02 and rows.loc["so2_mean", "units"] == "1"
    assert rows.loc["fraction_below_so2_0.5", "value"] > 0.99
    assert rows.loc["residual_rms_mean", "units"] == "a.u."
    assert {"sO2", "concentration", "total_haemoglobin"} <= set(res.images)
    figs = um.FAMILY.figure(res, title="t")
    assert figs and figs[0][0] == "sO2"
    with pytest.raises(AnalysisError, match="whole multi-wavelength image"):
        um.FAMILY.evaluate({"image": img.isel(c=0, drop=True), "mask": mask}, {})


def test_ratiometric_family_on_a_pair():
    from multiscale.analysis.unmixing import ratiometric

    ph = np.linspace(6.5, 7.5, 64).reshape(8, 8)
    ratio = 0.5 + (ph - 6.0)                       # probe response, linear in pH
    b = spatial_image(np.full((8, 8), 40.0), spacing=0.1)
    a = spatial_image(ratio * 40.0, spacing=0.1)
    mask = spatial_image(np.ones((8, 8), np.uint8), spacing=0.1)
    res = ratiometric.FAMILY.evaluate({"a": a, "b": b, "mask": mask},
                                      {"calibration_ratios": [0.5, 1.5, 2.5], "calibration_values": [6.0, 7.0, 8.0],
                                       "units": "pH"})
    rows = res.rows.set_index("metric")
    assert rows.loc["mean", "value"] == pytest.approx(7.0) and rows.loc["mean", "units"] == "pH"
    np.testing.assert_allclose(res.images["ratio"].values, ph)
    assert ratiometric.FAMILY.pairwise and ratiometric.FAMILY.figure(res, title="t", labels=("a", "b"))


def test_non_finite_pixels_give_nan_and_leave_the_others_exact():
    rng = np.random.default_rng(5)
    A = rng.random((6, 3))
    B = A @ rng.random((3, 50))
    B[2, 7] = np.nan
    X, rss = nnls_columns(A, B)
    assert np.isnan(X[:, 7]).all() and np.isnan(rss[7])
    ok = np.ones(50, bool)
    ok[7] = False
    ref = np.array([scipy.optimize.nnls(A, B[:, j])[0] for j in np.flatnonzero(ok)]).T
    np.testing.assert_allclose(X[:, ok], ref, atol=1e-10)
