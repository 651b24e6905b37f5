"""Spectral CT: xraydb coefficients against NIST values, planted iodine/gadolinium recovered within 5 %."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from multiscale.analysis import spectral_ct as sct
from multiscale.errors import AnalysisError
from multiscale.image import spatial_image

ENERGIES = [35.0, 45.0, 55.0, 70.0, 90.0]  # around the I (33.2 keV) and Gd (50.2 keV) K-edges


def test_mass_attenuation_matches_nist_xcom():
    """Hubbell & Seltzer (NIST XCOM) total mass attenuation with coherent scattering, cm^2/g."""
    water = sct.mass_attenuation("water", [40.0, 60.0, 80.0])
    np.testing.assert_allclose(water, [0.2683, 0.2059, 0.1837], rtol=0.005)
    np.testing.assert_allclose(sct.mass_attenuation("iodine", [40.0]), [22.10], rtol=0.01)
    # the gadolinium K-edge at 50.24 keV: attenuation jumps about 5-fold
    below, above = sct.mass_attenuation("Gd", [50.0, 50.5])
    assert 4.0 < above / below < 7.0


def _phantom(noise=0.0, seed=0, units="1/cm"):
    n = 40
    yy, xx = np.mgrid[:n, :n]
    iodine = np.where((yy - 12) ** 2 + (xx - 12) ** 2 < 36, 8.0, 0.0)      # mg/mL
    gad = np.where((yy - 27) ** 2 + (xx - 27) ** 2 < 36, 5.0, 0.0)
    gad[(yy - 12) ** 2 + (xx - 27) ** 2 < 25] = 2.5
    iodine[(yy - 12) ** 2 + (xx - 27) ** 2 < 25] = 4.0                     # a mixed vial
    water = np.full((n, n), 1000.0)
    A = np.column_stack([sct.mass_attenuation(m, ENERGIES) for m in ("water", "iodine", "gadolinium")])
    mu = np.einsum("lk,kyx->lyx", A, np.stack([water, iodine, gad]) / 1000.0)
    rng = np.random.default_rng(seed)
    mu = mu + rng.normal(0, noise, mu.shape)
    if units == "HU":
        mu_w = sct.mass_attenuation("water", ENERGIES)[:, None, None]
        data = (mu / mu_w - 1.0) * 1000.0
    else:
        data = mu
    img = spatial_image(data, spacing=0.2, dims=("c", "y", "x"), channels=[f"{e:g} keV" for e in ENERGIES],
                        units=units, modality="CT")
    return img, {"water": water, "iodine": iodine, "gadolinium": gad}


@pytest.mark.parametrize("units", ["1/cm", "HU"])
def test_planted_concentrations_recovered_within_5_percent(units):
    img, truth = _phantom(noise=0.0005, units=units)  # 0.5e-3 /cm noise: ~2 HU
    d = sct.decompose(img)
    assert d.attrs["units"] == "mg/mL"
    for name in ("iodine", "gadolinium"):
        planted = truth[name] > 0
        for level in np.unique(truth[name][planted]):
            sel = truth[name] == level
            got = float(d.sel(c=name).values[sel].mean())
            assert abs(got - level) / level < 0.05, (name, level, got)
    assert abs(float(d.sel(c="water").values.mean()) - 1000.0) < 10.0


def test_exact_without_noise_and_lazy():
    img, truth = _phantom()
    lazy = img.copy(data=da.from_array(img.values, chunks=(5, 20, 20)))
    d = sct.decompose(lazy)
    assert hasattr(d.data, "dask")
    np.testing.assert_allclose(d.sel(c="iodine").values, truth["iodine"], atol=1e-6)
    np.testing.assert_allclose(d.sel(c="gadolinium").values, truth["gadolinium"], atol=1e-6)


def test_bad_input_is_refused():
    img, _ = _phantom()
    with pytest.raises(AnalysisError, match="cannot be separated with 2 energy"):
        sct.decompose(img.isel(c=[0, 1]))
    with pytest.raises(AnalysisError, match="units"):
        sct.decompose(img.assign_attrs(units="a.u."))
    with pytest.raises(AnalysisError, match="not an energy"):
        sct.decompose(img.assign_coords(c=list("abcde")))
    with pytest.raises(AnalysisError, match="keV"):
        sct.decompose(img, energies_kev=[35e3, 45e3, 55e3, 70e3, 90e3])


def test_family_rows_in_mg_per_ml():
    img, truth = _phantom()
    mask = spatial_image((truth["iodine"] == 8.0).astype(np.uint8), spacing=0.2)
    res = sct.FAMILY.evaluate({"image": img, "mask": mask}, {})
    rows = res.rows.set_index("metric")
    assert abs(rows.loc["mean_iodine", "value"] - 8.0) < 1e-6 and rows.loc["mean_iodine", "units"] == "mg/mL"
    assert rows.loc["residual_rms_mean", "units"] == "1/cm"
    assert sct.FAMILY.figure(res, title="t")
