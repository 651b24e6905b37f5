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
