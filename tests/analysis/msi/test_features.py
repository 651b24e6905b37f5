"""Feature lists, adduct m/z (against published values), isotopes, recalibration of a planted ppm drift."""

from __future__ import annotations

import numpy as np
import pytest

from multiscale.analysis.msi.features import (
    adduct_mz,
    feature_list,
    feature_mz,
    group_isotopes,
    isotope_envelope,
    pixel_shifts,
    recalibrate_mz,
    recalibrated_ion_images,
)
from multiscale.errors import AnalysisError, AnalysisWarning

from ._synthetic import smooth_field, write_imzml


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("MULTISCALE_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


# published monoisotopic m/z: doxorubicin (C27H29NO11) [M+H]+ 544.1813, [M+Na]+ 566.1633, [M+K]+ 582.1372,
# [M-H]- 542.1668 (METASPACE / PubChem exact mass 543.1741); glucose [M+Na]+ 203.0526; PC 34:1 (C42H82NO8P)
# [M+H]+ 760.5851 (LIPID MAPS)
@pytest.mark.parametrize("formula, adduct, published", [
    ("C27H29NO11", "[M+H]+", 544.1813),
    ("C27H29NO11", "[M+Na]+", 566.1633),
    ("C27H29NO11", "[M+K]+", 582.1372),
    ("C27H29NO11", "[M-H]-", 542.1668),
    ("C6H12O6", "[M+Na]+", 203.0526),
    ("C42H82NO8P", "[M+H]+", 760.5851),
])
def test_adduct_mz_matches_published_values(formula, adduct, published):
    assert adduct_mz(formula, adduct) == pytest.approx(published, abs=6e-5)


def test_adduct_mz_agrees_with_molmass_charged_formula_and_refuses_bad_input():
    from molmass import Formula

    assert adduct_mz("C27H29NO11", "[M+H]+") == pytest.approx(Formula("[C27H30NO11]+").monoisotopic_mass, abs=1e-9)
    assert adduct_mz("C27H29NO11", "[M+2H]2+") == pytest.approx((543.17406075 + 2 * 1.00782503 - 2 * 0.00054858) / 2,
                                                              abs=1e-6)
    with pytest.raises(AnalysisError, match="unknown adduct"):
        adduct_mz("C27H29NO11", "[M+Xx]+")
    with pytest.raises(AnalysisError, match="formula"):
        adduct_mz("Qq12", "[M+H]+")


def test_isotope_envelope_follows_molmass_distribution():
    from molmass import Formula

    env = isotope_envelope("C27H29NO11", "[M+H]+", n=3)
    spec = Formula("C27H30NO11").spectrum()
    fr = {k: v.fraction for k, v in spec.items()}
    assert env["fraction"].tolist() == pytest.approx([fr[544], fr[545], fr[546]], rel=1e-6)
    assert env["mz"][0] == pytest.approx(544.18134, abs=1e-5)
    # M+1 lies ~1.0034 above M (13C dominates); the abundance ~ 27 x 1.07 % carbon + N, H, O contributions
    assert env["mz"][1] - env["mz"][0] == pytest.approx(1.0033, abs=2e-3)
    assert 0.28 < env["abundance"][1] < 0.32


def test_group_isotopes_finds_planted_envelopes():
    env = isotope_envelope("C27H29NO11", "[M+H]+")
    env2 = isotope_envelope("C42H82NO8P", "[M+H]+")
    mz = np.concatenate([env["mz"], env2["mz"], [600.1234, 601.5]])
    inten = np.concatenate([100 * env["abundance"], 50 * env2["abundance"], [30.0, 20.0]])
    g = group_isotopes(mz, intensity=inten, ppm=3)
    by_mz = g.set_index(g["mz"].round(4))
    assert by_mz.loc[round(env["mz"][1], 4), "isotope"] == 1
    assert by_mz.loc[round(env["mz"][2], 4), "isotope"] == 2
    assert by_mz.loc[round(env2["mz"][2], 4), "monoisotopic_mz"] == pytest.approx(env2["mz"][0])
    assert by_mz.loc[600.1234, "isotope"] == 0 and by_mz.loc[601.5, "isotope"] == 0
    assert g["isotope_group"].nunique() == 4


def _drift_dataset(tmp_path, drift=True, noise_peaks=0):
    rng = np.random.default_rng(3)
    ny, nx = 12, 14
    lock = adduct_mz("C27H29NO11", "[M+H]+")  # the drug is everywhere here: our lock mass
    mz = np.array([lock, 650.321, 760.5851, 820.4321])
    imgs = np.stack([np.full((ny, nx), 500.0), 100 * smooth_field(rng, (ny, nx)), 80 * smooth_field(rng, (ny, nx)),
                     60 * smooth_field(rng, (ny, nx))])
    yy, xx = np.mgrid[:ny, :nx]
    ppm = (-4.0 + 10.0 * xx / (nx - 1) + 1.5 * np.sin(yy / 2.0)) if drift else np.zeros((ny, nx))
    path = write_imzml(tmp_path / "drift.imzML", mz, imgs, drift_ppm=ppm, noise_peaks=noise_peaks)
    from multiscale.io import read_imzml

    return read_imzml(path), mz, imgs, ppm


def test_lock_mass_recalibration_removes_planted_drift(tmp_path):
    ds, mz, imgs, ppm = _drift_dataset(tmp_path)
    shifts = pixel_shifts(ds, mz[0], search_ppm=15)
    assert shifts.attrs["units"] == "ppm" and shifts.dims == ("y", "x")
    assert np.max(np.abs(shifts.values - ppm)) < 0.5  # the bar; the sub-window grid gives ~0.03
    multi = pixel_shifts(ds, mz[[0, 2]], search_ppm=15)  # reference peaks: median of their shifts
    assert np.max(np.abs(multi.values - ppm)) < 0.5
    # drifted ions fall out of a 3 ppm window; the recalibrated windows follow them
    plain = ds.ion_images(mz[1:], tol=3).values
    recal = recalibrated_ion_images(ds, mz[1:], shifts, tol=3).values
    np.testing.assert_allclose(recal, imgs[1:].astype(np.float32), rtol=1e-6)
    assert np.mean(plain == 0) > 0.3
    # a feature list of the recalibrated peaks: observed m/z corrected per pixel to within 0.5 ppm
    obs = mz[2] * (1 + ppm * 1e-6)
    assert np.max(np.abs((recalibrate_mz(obs, shifts.values) - mz[2]) / mz[2] * 1e6)) < 0.5


def test_missing_lock_mass_pixels_are_filled_with_a_warning(tmp_path):
    ds, mz, imgs, ppm = _drift_dataset(tmp_path, drift=False)
    with pytest.raises(AnalysisError, match="no pixel has signal"):
        pixel_shifts(ds, 300.0, search_ppm=5)
    with pytest.warns(AnalysisWarning, match="no reference peak"):
        s = pixel_shifts(ds, [650.321 * (1 + 40e-6)], search_ppm=45, min_intensity=150.0)
    assert np.isfinite(s.values).all()


def test_feature_list_of_a_dataset_and_zero_peaks(tmp_path):
    ds, mz, imgs, ppm = _drift_dataset(tmp_path, drift=False, noise_peaks=40)
    fl = feature_list(ds, snr=5)
    for m in mz:
        assert np.min(np.abs(fl["mz"].to_numpy() - m) / m * 1e6) < 2.0
    with pytest.warns(AnalysisWarning, match="no peak"):
        empty = feature_list(ds, snr=1e9)
    with pytest.raises(AnalysisError, match="zero peaks"):
        feature_mz(empty)
