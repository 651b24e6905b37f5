"""Population AIFs against their published formulas and published test data."""

from __future__ import annotations

import numpy as np
import pytest

from multiscale.analysis.kinetics import population_aif
from multiscale.analysis.kinetics.aif import georgiou_aif, mouse_aif
from multiscale.errors import AnalysisError


def _parker_by_hand(t_min: np.ndarray) -> np.ndarray:
    """Parker et al. MRM 2006 eq. 1 with Table 1, typed independently of the library."""
    a1, a2, t1, t2, s1, s2 = 0.809, 0.330, 0.17046, 0.365, 0.0563, 0.132
    alpha, beta, s, tau = 1.050, 0.1685, 38.078, 0.483
    return (
        a1 / (s1 * np.sqrt(2 * np.pi)) * np.exp(-((t_min - t1) ** 2) / (2 * s1**2))
        + a2 / (s2 * np.sqrt(2 * np.pi)) * np.exp(-((t_min - t2) ** 2) / (2 * s2**2))
        + alpha * np.exp(-beta * t_min) / (1 + np.exp(-s * (t_min - tau)))
    )


def test_parker_equals_the_published_formula():
    t = np.linspace(0, 600, 1201)
    np.testing.assert_allclose(population_aif("parker", t), _parker_by_hand(t / 60), rtol=1e-12)
    # the first Gaussian's amplitude A1 / (sigma1 sqrt(2 pi)) = 5.73258 mM, the constant in OSIPI's code
    assert 0.809 / (0.0563 * np.sqrt(2 * np.pi)) == pytest.approx(5.73258, abs=1e-5)


def test_parker_matches_osipi_test_data():
    """cp_aif of OSIPI DCE-DSC-MRI_CodeCollection test/DCEmodels/data/2cxm_sd_0_delay_0.csv (M. Thrippleton's
    DCE-functions): Parker AIF starting at t = 10 s, plasma with Hct 0.42, sampled at 10.25..11.75 s."""
    t = np.array([10.25, 10.75, 11.25, 11.75])
    published = [0.167025, 0.241632, 0.346622, 0.491475]
    got = population_aif("parker", t, delay=10.0, hematocrit=0.42)
    np.testing.assert_allclose(got, published, rtol=2e-6)
    assert population_aif("parker", np.array([5.0]), delay=10.0)[0] == 0.0


def test_georgiou_is_the_published_functional_form():
    """Georgiou et al. MRM 2019 eq. 1 with Table 3, re-typed as a plain loop over circulations."""
    from math import gamma

    a = (0.37, 0.33, 10.06)
    m = (0.11, 1.17, 16.02)
    alpha, beta, tau = 5.26, 0.032, 0.129
    for tm in (0.05, 0.2, 0.5, 1.0, 2.5):
        train = 0.0
        for k in range(int(tm / tau) + 1):
            s = tm - k * tau
            shape = (k + 1) * alpha + k
            train += s**shape * np.exp(-s / beta) / (beta ** (shape + 1) * gamma(shape + 1))
        ref = sum(ai * np.exp(-mi * tm) for ai, mi in zip(a, m)) * train
        assert georgiou_aif(np.array([tm * 60]))[0] == pytest.approx(ref, rel=1e-9)
    # long series do not overflow the gamma function
    assert np.all(np.isfinite(georgiou_aif(np.linspace(0, 1800, 50))))


def test_mcgrath_preclinical_aif_is_the_published_model_b():
    """McGrath et al. MRM 2009 eq. 5, Table 1 model B (A1 3.4 mM, A2 1.81 mM, k1 0.045 /s, k2 0.0015 /s, t1 7 s)."""
    t = np.array([0.0, 3.5, 7.0, 20.0, 107.0, 300.0])
    ref = np.where(t <= 7, 5.21 * t / 7, 3.4 * np.exp(-0.045 * (t - 7)) + 1.81 * np.exp(-0.0015 * (t - 7)))
    np.testing.assert_allclose(population_aif("preclinical", t), ref, rtol=1e-12)
    np.testing.assert_allclose(population_aif("mcgrath", t + 30, delay=30.0), ref, rtol=1e-12)


def test_mouse_aif_needs_its_numbers_and_integrates_the_infusion():
    with pytest.raises(AnalysisError, match="no default"):
        population_aif("mouse", [0.0, 1.0])
    t = np.linspace(0, 600, 601)
    box = mouse_aif(t, a1=3.0, m1=2.0, a2=1.0, m2=0.05, injection_s=10.0)
    bolus = mouse_aif(t, a1=3.0, m1=2.0, a2=1.0, m2=0.05)
    assert box[0] == 0 and bolus[0] == pytest.approx(4.0)
    # an infusion conserves the dose: areas agree once both are (almost) washed out
    assert np.trapezoid(box, t) == pytest.approx(np.trapezoid(bolus, t), rel=0.02)


def test_unknown_aif_and_bad_hematocrit():
    with pytest.raises(AnalysisError, match="unknown population AIF"):
        population_aif("nope", [0.0])
    with pytest.raises(AnalysisError, match="hematocrit"):
        population_aif("parker", [0.0], hematocrit=1.2)
