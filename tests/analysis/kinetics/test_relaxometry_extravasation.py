"""ADC, IVIM, R2*, iron; intravital extravasation; through the families with their units."""

from __future__ import annotations

import numpy as np
import pytest

from multiscale.analysis.kinetics import extravasation as ex
from multiscale.analysis.kinetics import relaxometry as rx
from multiscale.errors import AnalysisError
from multiscale.image import spatial_image


def _series(values: np.ndarray, **coords) -> object:
    img = spatial_image(values, spacing=0.5, dims=("t", "z", "y", "x"), units="a.u.")
    return img.assign_coords({k: ("t", v) for k, v in coords.items()})


def test_adc_map_and_family():
    rng = np.random.default_rng(0)
    b = np.array([0, 100, 400, 800, 1000.0])
    adc = np.full((2, 4, 4), 1.2e-3)
    adc[:, :, 2:] = 2.0e-3
    s = 1000 * np.exp(-b[:, None, None, None] * adc[None]) + rng.normal(0, 1, (5, 2, 4, 4))
    img = _series(s, b_value=b)
    mask = spatial_image(np.ones((2, 4, 4), bool), spacing=0.5)
    res = rx.FAMILY.evaluate({"image": img, "mask": mask})
    r = res.rows.set_index("metric")
    assert r.loc["adc_median", "units"] == "mm2/s"
    assert r.loc["adc_mean", "value"] == pytest.approx(1.6e-3, rel=0.02)
    assert float(res.images["adc"][0, 0, 3]) == pytest.approx(2.0e-3, rel=0.03)


def test_r2star_delta_iron_and_payload():
    te = np.array([0.002, 0.004, 0.006, 0.010, 0.015])
    pre = _series(800 * np.exp(-te[:, None, None, None] * np.full((1, 2, 2, 2), 40.0)), echo_time=te)
    post = _series(800 * np.exp(-te[:, None, None, None] * np.full((1, 2, 2, 2), 100.0)), echo_time=te)
    mask = spatial_image(np.ones((2, 2, 2), bool), spacing=0.5)
    res = rx.FAMILY.evaluate(
        {"image": post, "mask": mask, "baseline": pre}, {"relaxivity_per_mM_s": 120.0, "loading_ratio": 0.1}
    )
    r = res.rows.set_index("metric")
    assert r.loc["r2star_median", "value"] == pytest.approx(100.0) and r.loc["t2star_median", "value"] == pytest.approx(
        10.0
    )
    assert r.loc["delta_r2star_median", "value"] == pytest.approx(60.0)
    assert r.loc["iron_mM_median", "value"] == pytest.approx(0.5)
    assert r.loc["iron_ug_per_ml_median", "value"] == pytest.approx(0.5 * 55.845)
    assert r.loc["payload_ug_per_ml_median", "units"] == "ug/mL"
    with pytest.raises(AnalysisError, match="b_value"):
        rx.FAMILY.evaluate({"image": post.drop_vars("echo_time"), "mask": mask}, {"kind": "adc"})


def test_ivim_segmented():
    b = np.array([0, 10, 20, 40, 80, 150, 200, 400, 600, 800.0])
    s = 0.85 * np.exp(-b * 1.1e-3) + 0.15 * np.exp(-b * 3e-2)
    r = rx.ivim_map(s, b)
    assert float(r["d"]) == pytest.approx(1.1e-3, rel=0.02) and float(r["f"]) == pytest.approx(0.15, abs=0.02)
    assert float(r["d_star"]) == pytest.approx(3e-2, rel=0.35)


def test_extravasation_recovers_planted_permeability():
    rng = np.random.default_rng(2)
    t = np.arange(0, 600.0, 20.0)
    k = 2e-3  # 1/s
    plasma = 100 * np.exp(-np.log(2) / 300 * t)  # circulation half-life 300 s
    plasma[0] = 0.0  # the bolus arrives after the first frame
    integral = np.concatenate([[0], np.cumsum(0.5 * (plasma[1:] + plasma[:-1]) * np.diff(t))])
    extra = k * integral
    yy, xx = np.mgrid[:40, :40]
    vessel = np.abs(xx - 20) < 3
    leaky = xx < 17  # nanoparticles leave the vessel on its left only
    frames = np.where(vessel[None], plasma[:, None, None], np.where(leaky[None], extra[:, None, None], 0.0))
    frames = frames + rng.normal(0, 0.2, frames.shape)
    img = spatial_image(frames, spacing=0.001, dims=("t", "y", "x"), units="a.u.").assign_coords(t=t)
    region = spatial_image(np.ones((40, 40), bool), spacing=0.001)
    vessels = spatial_image(vessel, spacing=0.001)
    res = ex.FAMILY.evaluate({"image": img, "mask": region, "vessels": vessels})
    r = res.rows[res.rows["bin"].isna()].set_index("metric")
    outside = ~(np.abs(xx - 20) < 3 + 1)  # extravascular: one voxel of margin
    frac = (leaky & outside).sum() / outside.sum()
    assert r.loc["patlak_k", "value"] == pytest.approx(k * frac, rel=0.1) and r.loc["patlak_k", "units"] == "1/s"
    assert r.loc["circulation_half_life", "value"] == pytest.approx(300, rel=0.05)
    assert r.loc["np_positive_fraction", "value"] == pytest.approx(frac, abs=0.01)
    ratio = res.rows[res.rows.metric == "ratio"]
    assert len(ratio) == t.size and (ratio["bin_units"] == "s").all()
