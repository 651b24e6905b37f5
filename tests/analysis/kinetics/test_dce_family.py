"""The dce family: SPGR signal with a T10 map, a measured AIF from an arterial mask, units, maps, refusals."""

from __future__ import annotations

import numpy as np
import pytest

from multiscale.analysis.kinetics import dce, models, population_aif
from multiscale.analysis.kinetics import signal as sg
from multiscale.errors import AnalysisError
from multiscale.image import spatial_image


def test_spgr_series_with_t10_map_and_measured_aif():
    t = np.arange(0, 300.0, 3.0)
    hct, tr, fa, r1 = 0.42, 0.005, 25.0, 4.5
    cp = population_aif("parker", t, delay=30.0, hematocrit=hct)
    shape = (2, 6, 6)
    ktrans = np.full(shape, 0.15)
    ktrans[:, :, 3:] = 0.3
    conc = models.etofts(t, cp, ktrans.ravel(), 0.3, 0.05).T.reshape((t.size,) + shape)
    artery = np.zeros(shape, bool)
    artery[:, 0, 0] = True
    conc[:, artery] = (cp * (1 - hct))[:, None]  # whole-blood concentration in the artery
    t10 = np.where(artery, 1.6, 1.1)
    r1t = 1 / t10[None] + r1 * conc
    signal = sg.spgr_signal(1500.0, 1 / r1t, np.deg2rad(fa), tr)
    img = spatial_image(signal, spacing=0.5, dims=("t", "z", "y", "x"), units="a.u.").assign_coords(t=t)
    tumour = ~artery
    m = spatial_image(tumour, spacing=0.5)
    res = dce.FAMILY.evaluate(
        {
            "image": img,
            "mask": m,
            "aif_region": spatial_image(artery, spacing=0.5),
            "t10": spatial_image(t10, spacing=0.5),
        },
        {
            "model": "etofts",
            "aif": "measured",
            "signal": "spgr",
            "flip_angle_deg": fa,
            "tr_s": tr,
            "relaxivity_per_mM_s": r1,
            "hematocrit": hct,
            "n_baseline": 5,
        },
    )
    r = res.rows.set_index("metric")
    assert r.loc["ktrans_median", "units"] == "1/min" and r.loc["iauc60", "units"] == "mM*s"
    np.testing.assert_allclose(res.images["ktrans"].values[tumour], ktrans[tumour], rtol=1e-3)
    assert np.isnan(res.images["ktrans"].values[artery]).all()
    assert r.loc["fraction_not_converged", "value"] == 0
    figs = dce.FAMILY.figure(res, title="t")
    assert figs and figs[0][0] == "dce"


def test_dce_refuses_what_it_cannot_use():
    img = spatial_image(np.ones((2, 2, 2)), spacing=1.0)
    m = spatial_image(np.ones((2, 2, 2), bool), spacing=1.0)
    with pytest.raises(AnalysisError, match="time series"):
        dce.dce_table(img, m)
    series = spatial_image(np.ones((3, 2, 2, 2)), spacing=1.0, dims=("t", "z", "y", "x")).assign_coords(t=[0, 1, 2.0])
    with pytest.raises(AnalysisError, match="flip_angle_deg"):
        dce.dce_table(series, m, signal="spgr")
    with pytest.raises(AnalysisError, match="aif_region"):
        dce.dce_table(series, m, aif="measured")
    with pytest.raises(AnalysisError, match="spatial shape"):
        dce.dce_table(series, spatial_image(np.ones((3, 3), bool), spacing=1.0))


def test_dce_ct_from_hounsfield_units_with_a_computed_iodine_calibration():
    """HU = 40 + k C with k from NIST XCOM at 70 keV; Ktrans back exactly, concentrations in mg/mL."""
    t = np.arange(0, 240.0, 4.0)
    cp = population_aif("parker", t, delay=20.0, hematocrit=0.42)  # taken as mg/mL of iodine (the models are linear)
    k = sg.ct_enhancement_per_mg_ml(70.0)
    assert 25.0 <= k <= 27.0  # the phantom range quoted for 120 kVp (effective energy about 70 keV)
    conc = models.etofts(t, cp, np.array([0.1, 0.25]), 0.3, 0.05)  # (2 voxels, frames)
    hu = 40.0 + k * conc.T.reshape(t.size, 1, 1, 2)
    img = spatial_image(hu, spacing=0.5, dims=("t", "z", "y", "x"), units="HU").assign_coords(t=t)
    m = spatial_image(np.ones((1, 1, 2), bool), spacing=0.5)
    res = dce.FAMILY.evaluate(
        {"image": img, "mask": m},
        {"model": "etofts", "signal": "ct", "ct_effective_kev": 70.0, "aif_delay": 20.0, "n_baseline": 4},
    )
    np.testing.assert_allclose(res.images["ktrans"].values.ravel(), [0.1, 0.25], rtol=1e-4)
    r = res.rows.set_index("metric")
    assert r.loc["iauc60", "units"] == "mg/mL*s" and r.loc["peak", "units"] == "mg/mL"
    assert "HU per mg/mL (iodine at 70 keV" in r.loc["ktrans_median", "detail"]
    with pytest.raises(AnalysisError, match="enhancement_per_unit"):
        dce.dce_table(img, m, signal="ct")
    with pytest.raises(AnalysisError, match="Hounsfield"):
        dce.dce_table(img.assign_attrs(units="mM"), m, signal="ct", enhancement_per_unit=25.0)


def test_ct_calibration_equals_the_nist_xcom_ratio():
    """NIST XCOM at 40 keV: iodine 22.10 cm^2/g, water 0.2683 cm^2/g -> 82.37 HU per mg/mL."""
    assert sg.ct_enhancement_per_mg_ml(40.0) == pytest.approx(22.10 / 0.2683, rel=2e-3)


def test_dce_truth_inputs_give_errors_and_the_figure_shows_them():
    t = np.arange(0, 240.0, 4.0)
    cp = population_aif("parker", t, delay=20.0, hematocrit=0.42)
    ktrans = np.array([0.05, 0.1, 0.2, 0.3]).reshape(1, 2, 2)
    conc = models.tofts(t, cp, ktrans.ravel(), 0.3).T.reshape(t.size, 1, 2, 2)
    img = spatial_image(conc, spacing=0.5, dims=("t", "z", "y", "x"), units="mM").assign_coords(t=t)
    m = spatial_image(np.ones((1, 2, 2), bool), spacing=0.5)
    truth = {"truth_ktrans": spatial_image(ktrans, spacing=0.5), "truth_ve": spatial_image(np.full((1, 2, 2), 0.3),
                                                                                            spacing=0.5)}
    res = dce.FAMILY.evaluate({"image": img, "mask": m, **truth}, {"model": "tofts", "aif_delay": 20.0})
    r = res.rows.set_index("metric")
    assert r.loc["ktrans_truth_median", "value"] == pytest.approx(0.15) and r.loc["ktrans_truth_median", "units"] == "1/min"
    assert abs(r.loc["ktrans_abs_error_median", "value"]) < 1e-4 and abs(r.loc["ve_error_median", "value"]) < 1e-4
    (name, fig), = dce.FAMILY.figure(res, title="t")
    titles = [ax.get_title() for ax in fig.axes]
    assert "ktrans truth" in titles and "ve truth" in titles
    with pytest.raises(AnalysisError, match="no vp"):
        dce.FAMILY.evaluate({"image": img, "mask": m, "truth_vp": truth["truth_ve"]}, {"model": "tofts",
                                                                                        "aif_delay": 20.0})
