"""Signal to concentration (VFA T1 against the QIBA T1 DRO), curves, half-lives, %ID, semi-quantitative values."""

from __future__ import annotations

import numpy as np
import pytest

from multiscale.analysis.kinetics import curves as cv
from multiscale.analysis.kinetics import signal as sg
from multiscale.analysis.kinetics.change import change_maps
from multiscale.errors import AnalysisError
from multiscale.image import spatial_image

#: QIBA T1 DRO v3 voxels as typed in OSIPI DCE-DSC-MRI_CodeCollection test/T1_mapping/data/t1_quiba_data.csv
#: (FA 3, 6, 9, 15, 24, 35 deg; TR 5 ms; reference R1 in /ms); the high-SNR ones (SNR >= 400)
QIBA_FA = (3, 6, 9, 15, 24, 35)
QIBA_T1 = [
    ([1475, 1276, 981, 644, 406, 276], 0.0003536),  # voxel 2, SNR 422
    ([1885, 2053, 1746, 1217, 798, 551], 0.0007071),  # voxel 7, SNR 688
    ([2196, 2953, 2858, 2227, 1541, 1084], 0.0014142),  # voxel 12, SNR 1072
    ([923, 1354, 1403, 1181, 846, 605], 0.002),  # voxel 15, SNR 526
    ([2497, 4386, 5470, 5915, 5068, 3925], 0.0056569),  # voxel 25, SNR 2272
    ([2587, 4996, 7094, 10077, 11811, 11427], 0.022627),  # voxel 39, SNR 3999
    ([2602, 5117, 7459, 11407, 15174, 16751], 0.045255),  # voxel 46, SNR 4876
]


def test_vfa_t1_matches_the_qiba_dro_within_5_percent():
    s = np.array([v for v, _ in QIBA_T1], float)
    ref_t1_s = np.array([1.0 / r1 for _, r1 in QIBA_T1]) / 1000.0
    t1 = sg.vfa_t1(s, QIBA_FA, 0.005)["t1"]
    np.testing.assert_allclose(t1, ref_t1_s, rtol=0.05)


def test_spgr_round_trip_and_ct():
    tr, fa, r1, t10 = 0.004, 20.0, 4.5, np.array([0.8, 1.5])
    c = np.array([[0, 0, 0.2, 0.8, 0.5], [0, 0, 1.0, 2.0, 1.5]])
    s = sg.spgr_signal(1000.0, 1 / (1 / t10[:, None] + r1 * c), np.deg2rad(fa), tr)
    np.testing.assert_allclose(
        sg.spgr_concentration(s, t10, flip_angle_deg=fa, tr=tr, relaxivity=r1, n_baseline=2), c, atol=1e-9
    )
    with pytest.raises(AnalysisError):
        sg.vfa_t1(s, [2, 5], tr)


def test_auc_cmax_half_lives_and_decay():
    t = np.linspace(0, 3600, 121)
    c = 8 * np.exp(-np.log(2) / 300 * t) + 2 * np.exp(-np.log(2) / 2400 * t)
    hl = cv.half_lives(t, c)
    assert hl["half_life_alpha_s"] == pytest.approx(300, rel=1e-3)
    assert hl["half_life_beta_s"] == pytest.approx(2400, rel=1e-3)
    exact = 8 * 300 / np.log(2) + 2 * 2400 / np.log(2)
    a = cv.auc(t, c, tail_points=4)
    assert a["auc_inf"] == pytest.approx(exact, rel=5e-3)
    assert cv.auc(t, c, t_end=90.0)["auc_last"] == pytest.approx(np.trapezoid(c[:4], t[:4]))
    f18 = 109.77 * 60  # F-18 half-life, s
    decayed = 5.0 * np.exp(-np.log(2) * t / f18)
    np.testing.assert_allclose(cv.decay_correct(t, decayed, f18), 5.0)
    p = cv.percent_id(np.array([2.0e5]), injected_dose=1.0e7, mass_g=0.5)  # Bq/mL, Bq
    assert p["pid_per_g"][0] == pytest.approx(2.0) and p["pid"][0] == pytest.approx(1.0)


def test_semi_quantitative_and_bad_inputs():
    t = np.arange(0, 300.0, 5.0)
    c = np.where(t < 30, 0, 1 - np.exp(-(t - 30) / 40))
    r = cv.semi_quantitative(t, c)
    assert r["bolus_arrival_s"] == pytest.approx(35.0)  # first frame above baseline
    ref = np.trapezoid(np.interp(np.linspace(35, 95, 601), t, c), np.linspace(35, 95, 601))
    assert r["iauc60"] == pytest.approx(ref, rel=1e-3)
    with pytest.raises(AnalysisError, match="increase strictly"):
        cv.auc([0, 2, 1], [1, 2, 3])
    img = spatial_image(np.ones((3, 2, 2)), spacing=1.0, dims=("t", "y", "x"))
    with pytest.raises(AnalysisError, match="no times"):
        cv.region_curve(img, np.ones((2, 2), bool))


def test_change_from_baseline():
    a = spatial_image(np.full((2, 2), 4.0), spacing=1.0, units="SUVbw")
    b = spatial_image(np.array([[4.0, 6.0], [2.0, 4.0]]), spacing=1.0, units="SUVbw")
    out = change_maps(a, b)
    assert out["difference"].values.tolist() == [[0.0, 2.0], [-2.0, 0.0]]
    assert out["percent_change"].values.tolist() == [[0.0, 50.0], [-50.0, 0.0]]
    with pytest.raises(AnalysisError, match="same grid"):
        change_maps(a, spatial_image(np.ones((3, 3)), spacing=1.0))
