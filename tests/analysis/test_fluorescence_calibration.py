"""Calibrated fluorescence: standards curves recover planted concentrations, LOD, flat field, radiant efficiency."""

from __future__ import annotations

import numpy as np
import pytest

from multiscale.analysis import fluorescence as fl
from multiscale.errors import AnalysisError
from multiscale.image import spatial_image


def test_linear_curve_recovers_planted_concentrations_and_ich_lod():
    rng = np.random.default_rng(0)
    conc = np.repeat([0.0, 0.5, 1.0, 2.0, 5.0, 10.0], 3)
    sd = 0.4
    inten = 3.0 + 20.0 * conc + rng.normal(0, sd, conc.size)
    curve = fl.standards_curve(conc, inten, units="ug/mL")
    assert curve.params["slope"] == pytest.approx(20.0, rel=0.01)
    planted = np.array([0.7, 3.3, 8.0])
    got = curve.concentration(3.0 + 20.0 * planted)
    np.testing.assert_allclose(got, planted, atol=0.03)
    # ICH Q2(R1): LOD = 3.3 sigma / slope, sigma the residual SD of the regression
    fit = curve.params["intercept"] + curve.params["slope"] * conc
    s_res = np.sqrt(np.sum((inten - fit) ** 2) / (conc.size - 2))
    assert curve.lod == pytest.approx(3.3 * s_res / curve.params["slope"], rel=1e-12)
    assert curve.loq == pytest.approx(10 * s_res / curve.params["slope"], rel=1e-12)
    blanks = 3.0 + rng.normal(0, sd, 10)
    with_blanks = fl.standards_curve(conc, inten, blanks=blanks)
    expected = (blanks.mean() + 3.3 * blanks.std(ddof=1) - with_blanks.params["intercept"]) / with_blanks.params["slope"]
    assert with_blanks.lod == pytest.approx(expected)


def test_four_parameter_logistic_recovers_planted_concentrations():
    a, d, c50, h = 50.0, 4050.0, 3.0, 1.3
    conc = np.array([0.0, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0])
    inten = d + (a - d) / (1 + (conc / c50) ** h)
    rng = np.random.default_rng(1)
    inten = inten * (1 + rng.normal(0, 0.005, conc.size))
    curve = fl.standards_curve(conc, inten, model="4pl")
    assert curve.params["c50"] == pytest.approx(c50, rel=0.05)
    planted = np.array([0.5, 2.0, 7.0, 20.0])
    got = curve.concentration(d + (a - d) / (1 + (planted / c50) ** h))
    np.testing.assert_allclose(got, planted, rtol=0.05)
    with pytest.warns(UserWarning, match="outside"):
        assert np.isnan(curve.concentration([5000.0])[0])
    assert 0 < curve.lod < 0.3


def test_concentration_map_and_family_with_tbr():
    n = 30
    yy, xx = np.mgrid[:n, :n]
    tumour = ((yy - 15) ** 2 + (xx - 15) ** 2 < 49).astype(np.uint8)
    conc = np.where(tumour, 4.0, 0.5)
    img = spatial_image(100.0 + 10.0 + 25.0 * conc, spacing=0.1, units="counts")  # offset 100 + blank 10
    bg = spatial_image((xx < 4).astype(np.uint8), spacing=0.1)
    res = fl.FAMILY.evaluate({"image": img, "mask": spatial_image(tumour, spacing=0.1), "background": bg},
                             {"standards_concentration": [0.0, 1.0, 2.0, 5.0], "background_value": 100.0,
                              "standards_intensity": [10.0, 35.0, 60.0, 135.0]})
    rows = res.rows.set_index("metric")
    assert rows.loc["concentration_mean", "value"] == pytest.approx(4.0)
    assert rows.loc["concentration_mean", "units"] == "ug/mL"
    assert rows.loc["tumour_to_background", "value"] == pytest.approx(110.0 / 22.5)
    assert rows.loc["fraction_above_lod", "value"] == 1.0
    assert [n for n, _ in fl.FAMILY.figure(res, title="t")] == ["standards", "concentration"]


def test_flat_field_background_and_radiant_efficiency():
    rng = np.random.default_rng(2)
    truth = rng.uniform(10, 20, (16, 16))
    vignette = np.outer(np.hanning(18)[1:-1], np.hanning(18)[1:-1]) * 0.8 + 0.2
    raw = spatial_image(truth * vignette + 5.0, spacing=0.1)
    flat = spatial_image(vignette * 1000.0 + 5.0, spacing=0.1)
    corr = fl.flat_field(raw, flat, dark=5.0).values
    np.testing.assert_allclose(corr / corr.mean(), truth / truth.mean(), rtol=1e-10)
    af = spatial_image(np.full((16, 16), 2.0), spacing=0.1)
    sub = fl.subtract_background(spatial_image(truth + 3.0, spacing=0.1), 1.0, autofluorescence=af)
    np.testing.assert_allclose(sub.values, truth)
    rad = fl.radiance(spatial_image(np.full((4, 4), 1200.0), spacing=1.0), exposure_s=2.0, calibration=2.0e4, binning=2)
    assert float(rad.values[0, 0]) == pytest.approx(1200 / 2 / 4 * 2e4) and rad.attrs["units"] == "p/s/cm^2/sr"
    eff = fl.radiant_efficiency(rad, 100.0)
    assert eff.attrs["units"] == "(p/s/cm^2/sr)/(uW/cm^2)"


def test_bad_standards_are_refused():
    with pytest.raises(AnalysisError, match="at least 2 distinct"):
        fl.standards_curve([1.0, 1.0, 1.0], [2.0, 2.1, 2.2])
    with pytest.raises(AnalysisError, match="4 distinct"):
        fl.standards_curve([0.0, 1.0, 2.0], [1.0, 2.0, 3.0], model="4pl")
    with pytest.raises(AnalysisError, match="model"):
        fl.standards_curve([0.0, 1.0, 2.0], [1.0, 2.0, 3.0], model="cubic")


def test_family_radiant_efficiency_and_total_signal():
    counts = np.zeros((10, 10))
    counts[3:7, 3:7] = 1000.0
    img = spatial_image(counts + 50.0, spacing=1.0, units="counts")          # 1 mm pixels, camera offset 50
    tumour = spatial_image((counts > 0).astype(np.uint8), spacing=1.0)
    res = fl.FAMILY.evaluate({"image": img, "mask": tumour},
                             {"background_value": 50.0, "exposure_s": 0.5, "radiance_calibration": 1.0e4,
                              "irradiance_uw_cm2": 200.0})
    rows = res.rows.set_index("metric")
    eff = 1000.0 / 0.5 * 1.0e4 / 200.0
    assert rows.loc["intensity_mean", "value"] == pytest.approx(eff)
    assert rows.loc["intensity_mean", "units"] == "(p/s/cm^2/sr)/(uW/cm^2)"
    assert rows.loc["total_signal", "value"] == pytest.approx(eff * 16 * 0.01)   # 16 px of 0.01 cm^2
