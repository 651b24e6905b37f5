"""Kinetic models against closed forms and published (OSIPI) simulated curves."""

from __future__ import annotations

import numpy as np
import pytest

from multiscale.analysis.kinetics import models, population_aif


def test_exp_conv_is_exact_for_a_linear_ramp_on_a_nonuniform_grid():
    t = np.array([0.0, 0.3, 1.0, 2.5, 2.7, 6.0, 10.0])
    k = 0.37
    cp = 2.0 * t  # a ramp: (exp(-k t) (*) 2t)(t) = 2 (k t - 1 + e^{-k t}) / k^2
    np.testing.assert_allclose(models.exp_conv(t, cp, k), 2 * (k * t - 1 + np.exp(-k * t)) / k**2, rtol=1e-12)
    np.testing.assert_allclose(models.exp_conv(t, cp, 0.0), t**2, rtol=1e-12)  # k = 0: the integral
    np.testing.assert_allclose(models.exp_conv(t, cp, 1e-7), t**2, rtol=1e-5)  # small k: series, no cancellation


def test_two_cxm_matches_osipi_published_curve():
    """OSIPI DCE-DSC-MRI_CodeCollection test/DCEmodels/data/2cxm_sd_0_delay_0.csv, case_1 (vp 0.02, ve 0.1,
    Fp 5 mL/100 mL/min, PS 0.05 /min; Parker AIF from t = 10 s, Hct 0.42, 0.5 s sampling; noise-free)."""
    t = np.arange(0.25, 300.0, 0.5)
    cp = population_aif("parker", t, delay=10.0, hematocrit=0.42)
    c = models.two_cxm(t, cp, 5.0, 0.05, 0.02, 0.1)
    published = {10.25: 3.4617e-05, 15.25: 0.004979, 20.25: 0.03337, 25.25: 0.058379, 30.25: 0.060115, 299.75: 0.10443}
    for tt, ref in published.items():
        i = int(np.flatnonzero(np.isclose(t, tt))[0])
        assert c[i] == pytest.approx(ref, rel=2e-3 if tt < 11 else 5e-4), tt


def test_tofts_limits_and_model_relations():
    t = np.arange(0, 600.0, 1.0)
    step = np.where(t >= 10, 1.0, 0.0)
    c = models.tofts(t, step, 0.3, 0.2)
    assert c[-1] == pytest.approx(0.2, rel=1e-6)  # equilibrium at ve * Cp
    cp = population_aif("parker", t, delay=10, hematocrit=0.42)
    # etofts = tofts + vp Cp; 2CXM with huge Fp tends to etofts (Ktrans = PS)
    np.testing.assert_allclose(models.etofts(t, cp, 0.1, 0.3, 0.05), models.tofts(t, cp, 0.1, 0.3) + 0.05 * cp)
    np.testing.assert_allclose(
        models.two_cxm(t, cp, 1e6, 0.1, 0.05, 0.3), models.etofts(t, cp, 0.1, 0.3, 0.05), atol=2e-4
    )
    # 2CUM is 2CXM with an infinite ve
    np.testing.assert_allclose(
        models.two_cum(t, cp, 20.0, 0.02, 0.05), models.two_cxm(t, cp, 20.0, 0.02, 0.05, 1e7), atol=1e-6
    )
    # Patlak: vp Cp + Ktrans * integral
    integral = np.concatenate([[0], np.cumsum(0.5 * (cp[1:] + cp[:-1]) * np.diff(t))])
    np.testing.assert_allclose(models.patlak(t, cp, 0.06, 0.1), 0.1 * cp + 0.001 * integral, rtol=1e-10, atol=1e-12)


def test_biexponential_inversions_round_trip():
    for fp, ps, vp, ve in [(5, 0.05, 0.02, 0.1), (40, 0.15, 0.1, 0.2), (120, 1.0, 0.05, 0.4)]:
        p = models.biexp_to_2cxm(*models.two_cxm_rates(fp, ps, vp, ve))
        assert [p["fp"], p["ps"], p["vp"], p["ve"]] == pytest.approx([fp, ps, vp, ve], rel=1e-9)
