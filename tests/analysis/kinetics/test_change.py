"""The change family: change-from-baseline maps and rows of two sessions, dR2* -> iron -> payload, refusals."""

from __future__ import annotations

import numpy as np
import pytest

from multiscale.analysis.kinetics import change as ch
from multiscale.errors import AnalysisError, KineticsWarning
from multiscale.image import spatial_image


def _pair(units: str = "SUVbw"):
    a = np.full((2, 4, 5), 2.0)
    b = a.copy()
    b[:, :, :2] = 3.0  # +1 (+50 %) in 2 of 5 columns
    b[:, 0, 4] = 1.0  # -1 (-50 %) in two voxels
    img = lambda v: spatial_image(v, spacing=0.5, units=units)  # noqa: E731
    return img(a), img(b), spatial_image(np.ones(a.shape, bool), spacing=0.5)


def test_change_maps_and_rows_by_hand():
    a, b, m = _pair()
    res = ch.FAMILY.evaluate({"a": a, "b": b, "mask": m}, {"threshold": 0.5, "percent_threshold": 40.0})
    r = res.rows.set_index("metric")
    n = 40
    diff = (16 * 1.0 - 2 * 1.0) / n  # 16 voxels +1, 2 voxels -1
    assert r.loc["difference_mean", "value"] == pytest.approx(diff)
    assert r.loc["difference_mean", "units"] == "SUVbw"
    assert r.loc["percent_change_mean", "value"] == pytest.approx(100 * diff / 2.0)
    assert r.loc["percent_change_mean", "units"] == "%"
    assert r.loc["fraction_above_threshold", "value"] == pytest.approx(16 / n)
    assert r.loc["fraction_above_percent_threshold", "value"] == pytest.approx(16 / n)
    assert r.loc["ratio_of_means", "value"] == pytest.approx((2.0 + diff) / 2.0)
    assert r.loc["n_voxels", "value"] == n
    np.testing.assert_array_equal(res.images["difference"].values, b.values - a.values)
    assert res.images["percent_change"].attrs["units"] == "%"
    assert float(res.images["percent_change"][0, 0, 4]) == -50.0
    # a region: only the columns that rose
    rising = np.zeros(a.shape, bool)
    rising[:, 1:, :2] = True
    rr = ch.FAMILY.evaluate({"a": a, "b": b, "mask": spatial_image(rising, spacing=0.5)}).rows.set_index("metric")
    assert rr.loc["difference_median", "value"] == 1.0 and rr.loc["fraction_above_percent_threshold", "value"] == 1.0
    figs = ch.FAMILY.figure(res, title="t", labels=("pre", "post"))
    assert figs and figs[0][0] == "change"


def test_delta_r2star_gives_iron_and_payload():
    """dR2* 60 /s with r2* 120 /mM/s -> 0.5 mM Fe = 27.92 ug/mL (55.845 g/mol); 5 % loading -> 1.396 ug/mL."""
    rng = np.random.default_rng(1)
    pre = 25.0 + rng.normal(0, 0.5, (3, 6, 6))
    post = pre.copy()
    tumour = np.zeros(pre.shape, bool)
    tumour[:, 2:5, 2:5] = True
    post[tumour] += 60.0
    a = spatial_image(pre, spacing=0.2, units="1/s")
    b = spatial_image(post, spacing=0.2, units="1/s")
    res = ch.FAMILY.evaluate(
        {"a": a, "b": b, "mask": spatial_image(tumour, spacing=0.2)},
        {"relaxivity_per_mM_s": 120.0, "loading_ratio": 0.05},
    )
    r = res.rows.set_index("metric")
    assert r.loc["difference_mean", "units"] == "1/s"
    assert r.loc["iron_mM_mean", "value"] == pytest.approx(0.5) and r.loc["iron_mM_mean", "units"] == "mM"
    assert r.loc["iron_ug_per_ml_median", "value"] == pytest.approx(0.5 * 55.845)
    assert r.loc["payload_ug_per_ml_mean", "value"] == pytest.approx(0.5 * 55.845 * 0.05)
    assert r.loc["payload_ug_per_ml_mean", "units"] == "ug/mL"
    iron = res.images["iron_mM"].values
    assert iron[tumour] == pytest.approx(0.5) and abs(iron[~tumour]).max() < 1e-12
    assert res.images["iron_ug_per_ml"].attrs["units"] == "ug/mL"


def test_change_refuses_what_it_cannot_compare():
    a, b, m = _pair()
    with pytest.raises(AnalysisError, match="1/s"):
        ch.change_table(a, b, m, relaxivity_per_mM_s=120.0)
    with pytest.raises(AnalysisError, match="same grid"):
        ch.change_table(a, spatial_image(np.ones((2, 4, 4)), spacing=0.5, units="SUVbw"), m)
    series = spatial_image(np.ones((3, 2, 4, 5)), spacing=0.5, dims=("t", "z", "y", "x")).assign_coords(t=[0, 1, 2.0])
    with pytest.raises(AnalysisError, match="series along 't'"):
        ch.change_table(series, b, m)
    with pytest.warns(KineticsWarning, match="different units"):
        rows = ch.change_table(a, b.assign_attrs(units="kBq/mL"), m)
    assert {r["units"] for r in rows if r["metric"] == "difference_mean"} == {"a.u."}
