"""Curves: decay correction to injection (per frame or from already-corrected frames), %ID and %ID/g, Cmax/Tmax."""

from __future__ import annotations

import math

import numpy as np
import pytest

from multiscale.analysis.kinetics import curves as cv
from multiscale.errors import AnalysisError, KineticsWarning
from multiscale.image import spatial_image

F18 = 109.77 * 60  # s: NNDC, as listed in the European Pharmacopoeia table 5.7 (109.77(5) min)


def test_isotope_table_holds_the_published_half_lives():
    # 68Ga: 4057.7 s, the DICOM/vendor value of STANDARDS.md (NNDC lists 67.71 min)
    published_h = {"18F": 109.77 / 60, "64Cu": 12.701, "89Zr": 78.41, "68Ga": 4057.7 / 3600, "99mTc": 6.0067,
                   "111In": 2.8047 * 24, "124I": 4.176 * 24}
    for name, hours in published_h.items():
        assert cv.isotope_half_life(name) == pytest.approx(hours * 3600, rel=1e-9), name
    # one half-life per nuclide across the project: kinetics' table and the SUV reader's agree
    from multiscale.io.suv import NUCLIDE_HALF_LIFE_S

    for name, seconds in cv.ISOTOPE_HALF_LIFE_S.items():
        if name in NUCLIDE_HALF_LIFE_S:
            assert seconds == pytest.approx(NUCLIDE_HALF_LIFE_S[name], rel=2e-5), name
    assert cv.isotope_half_life("F-18") == cv.isotope_half_life("f18") == cv.isotope_half_life("18F")
    with pytest.raises(AnalysisError, match="unknown radionuclide"):
        cv.isotope_half_life("99Xx")


def _pet(values: np.ndarray, t: np.ndarray, dur: np.ndarray, units: str = "kBq/mL", **attrs):
    img = spatial_image(values[:, None, None, None] * np.ones((t.size, 2, 3, 3)), spacing=1.0,
                        dims=("t", "z", "y", "x"), units=units)
    return img.assign_coords(t=t, frame_duration=("t", dur)).assign_attrs(**attrs)


def _frames():
    starts = np.array([0.0, 60, 180, 480, 1080, 2280])
    dur = np.diff(np.append(starts, 4080.0))
    return starts + dur / 2, dur


def test_uncorrected_frames_are_brought_back_to_injection_exactly():
    """A constant 5 kBq/mL at injection (600 s before the scan), frames averaging the decaying activity."""
    t, dur = _frames()
    lam, inj, c0 = math.log(2) / F18, -600.0, 5.0
    s = t - dur / 2
    measured = c0 * np.exp(-lam * (s - inj)) * (1 - np.exp(-lam * dur)) / (lam * dur)  # frame mean, analytic
    mask = spatial_image(np.ones((2, 3, 3), bool), spacing=1.0)
    img = _pet(measured, t, dur)
    rows = cv.curves_table(img, mask, isotope="18F", injection_time_s=inj, injected_dose=10.0,
                           injected_dose_units="MBq")
    mean = [r for r in rows if r["metric"] == "mean"]
    np.testing.assert_allclose([r["value"] for r in mean], c0, rtol=1e-12)
    assert "injection at t = -600 s" in mean[0]["detail"] and "not decay-corrected" in mean[0]["detail"]
    # %ID/g = 100 x 5000 Bq/mL / 10 MBq = 0.05; the region is 18 voxels of 1 mm^3 = 0.018 g -> 9e-4 %ID
    pidg = [r for r in rows if r["metric"] == "pid_per_g"]
    pid = [r for r in rows if r["metric"] == "pid"]
    assert len(pidg) == t.size and pidg[0]["units"] == "%ID/g" and pid[0]["units"] == "%ID"
    np.testing.assert_allclose([r["value"] for r in pidg], 0.05, rtol=1e-12)
    np.testing.assert_allclose([r["value"] for r in pid], 0.05 * 0.018, rtol=1e-12)
    assert "dose 10 MBq" in pidg[0]["detail"]
    # the mid-time approximation is not the same number for long frames
    mid = cv.decay_correction_factors(t, F18, injection_s=inj)
    assert not np.allclose(measured * mid, c0, rtol=1e-4)


def test_frames_already_corrected_are_read_from_bids_and_dicom_metadata():
    t, dur = _frames()
    lam, c0 = math.log(2) / F18, 5.0
    mask = spatial_image(np.ones((2, 3, 3), bool), spacing=1.0)
    # BIDS: corrected to scan start (0 s); injection 300 s before it
    at_start = np.full(t.size, c0 * np.exp(-lam * 300.0))
    img = _pet(at_start, t, dur, bids_TracerRadionuclide="F18", bids_InjectionStart=-300.0,
               bids_ImageDecayCorrected=True, bids_ImageDecayCorrectionTime=0.0)
    rows = cv.curves_table(img, mask)
    mean = [r for r in rows if r["metric"] == "mean"]
    np.testing.assert_allclose([r["value"] for r in mean], c0, rtol=1e-12)
    assert "BIDS ImageDecayCorrectionTime" in mean[0]["detail"] and "F18" in mean[0]["detail"]
    # DICOM ADMIN: already at injection, factor 1
    img = _pet(np.full(t.size, c0), t, dur, decay_correction="ADMIN", time_origin="injection (x)")
    rows = cv.curves_table(img, mask, isotope="64Cu")
    assert {r["value"] for r in rows if r["metric"] == "mean"} == {c0}


def test_percent_id_needs_activity_units_and_a_known_half_life():
    t, dur = _frames()
    mask = spatial_image(np.ones((2, 3, 3), bool), spacing=1.0)
    with pytest.raises(AnalysisError, match="activity concentration"):
        cv.curves_table(_pet(np.ones(t.size), t, dur, units="SUVbw"), mask, injected_dose=1.0)
    with pytest.raises(AnalysisError, match="contradicts"):
        cv.curves_table(_pet(np.ones(t.size), t, dur), mask, isotope="18F", half_life_s=100.0)
    with pytest.warns(KineticsWarning, match="not decay-corrected"):
        rows = cv.curves_table(_pet(np.ones(t.size), t, dur, units="uCi/mL"), mask, injected_dose=100.0)
    r = {x["metric"]: x for x in rows if x["metric"].startswith("pid_per_g_")}
    assert r["pid_per_g_max"]["value"] == pytest.approx(1.0)  # 1 uCi/mL of 100 uCi


def test_cmax_tmax_and_auc_to_infinity_of_an_analytic_curve():
    """C = t exp(-t / tau): Cmax = tau / e at Tmax = tau, AUC(0, inf) = tau^2; the tail is mono-exponential."""
    tau = 60.0
    t = np.arange(0.0, 601.0, 1.0)
    c = t * np.exp(-t / tau)
    mask = spatial_image(np.ones((2, 2), bool), spacing=1.0)
    img = spatial_image(c[:, None, None] * np.ones((t.size, 2, 2)), spacing=1.0, dims=("t", "y", "x"),
                        units="mM").assign_coords(t=t)
    r = {x["metric"]: x for x in cv.curves_table(img, mask, tail_points=20)}
    assert r["tmax_s"]["value"] == tau and r["cmax"]["value"] == pytest.approx(tau / math.e)
    assert r["auc_inf"]["value"] == pytest.approx(tau**2, rel=2e-3) and r["auc_inf"]["units"] == "mM*s"
    assert r["auc_last"]["value"] < r["auc_inf"]["value"]
    # mono-exponential: the half-life and the area to infinity are exact
    c2 = 4.0 * np.exp(-np.log(2) * t / 90.0)
    assert cv.half_lives(t, c2)["half_life_s"] == pytest.approx(90.0, rel=1e-6)
    assert cv.auc(t, c2)["auc_inf"] == pytest.approx(4.0 * 90.0 / np.log(2), rel=1e-4)
