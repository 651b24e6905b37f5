"""Quantitation (calibration with an internal standard, LOD/LOQ, concentration maps), composition and
several acquisitions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from multiscale.analysis.msi import (
    calibration_curve,
    combine_acquisitions,
    concentration_map,
    enrichment,
    ratio_map,
    ratio_summary,
    region_spectra,
    rgb_composite,
    standard_responses,
    virtual_homogenate,
)
from multiscale.analysis.msi.composition import detection_limit
from multiscale.analysis.msi.quantitation import FAMILY, quantitation_table
from multiscale.errors import AnalysisError
from multiscale.image import spatial_image

from ._synthetic import PX_MM


def test_calibration_curve_matches_linregress_and_ich_limits():
    x = np.array([0.0, 0.5, 1.0, 2.0, 5.0, 10.0])
    y = np.array([0.02, 0.55, 0.98, 2.1, 4.9, 10.2])
    c = calibration_curve(x, y)
    ref = stats.linregress(x, y)
    assert c.slope == pytest.approx(ref.slope, rel=1e-12)
    assert c.intercept == pytest.approx(ref.intercept, abs=1e-12)
    assert c.r_squared == pytest.approx(ref.rvalue**2, rel=1e-12)
    sigma = np.sqrt(np.sum((y - ref.slope * x - ref.intercept) ** 2) / (x.size - 2))
    assert c.lod == pytest.approx(3.3 * sigma / ref.slope) and c.loq == pytest.approx(10 * sigma / ref.slope)
    with pytest.raises(AnalysisError, match="at least three standards"):
        calibration_curve([0.0, 1.0, 1.0], [0.0, 1.0, 1.1])
    with pytest.raises(AnalysisError, match="not positive"):
        calibration_curve([0.0, 1.0, 2.0], [2.0, 1.0, 0.0])


def _mimetics(seed=0):
    """Spotted standards with an internal standard (IS), and a tissue with a planted concentration map."""
    rng = np.random.default_rng(seed)
    ny, nx = 40, 60
    conc_levels = [0.0, 1.0, 2.0, 5.0, 10.0, 20.0]  # ug/g
    k_resp, blank = 40.0, 2.0  # analyte counts per ug/g per IS-count-unit, blank signal
    lab = np.zeros((ny, nx), int)
    for i in range(len(conc_levels)):
        lab[2:8, 2 + 9 * i : 8 + 9 * i] = i + 1
    tissue = np.zeros((ny, nx), bool)
    tissue[12:38, 5:55] = True
    yy, xx = np.mgrid[:ny, :nx]
    planted = np.where(tissue, 0.2 + 18.0 * np.exp(-((xx - 30) ** 2 + (yy - 25) ** 2) / 150.0), 0.0)
    conc = np.zeros((ny, nx))
    for i, c in enumerate(conc_levels):
        conc[lab == i + 1] = c
    conc = np.where(tissue, planted, conc)
    isd = 100.0 * rng.lognormal(0, 0.3, (ny, nx))  # the IS varies with ionisation: the analyte follows it
    analyte = (k_resp * conc + blank) * isd / 100.0 * (1 + 0.03 * rng.normal(size=(ny, nx)))
    mk = lambda a, u: spatial_image(a, spacing=PX_MM, units=u)  # noqa: E731
    return mk(analyte, "counts"), mk(isd, "counts"), mk(lab.astype(np.uint8), ""), mk(tissue.astype(np.uint8), ""), \
        planted, conc_levels


def test_planted_concentrations_recovered_within_5_percent_above_loq():
    analyte, isd, lab, tissue, planted, levels = _mimetics()
    pts = standard_responses(analyte, lab, levels, isd)
    curve = calibration_curve(pts["concentration"], pts["response"])
    assert curve.n_standards == 6 and curve.loq < 1.0
    cmap = concentration_map(analyte, curve, isd)
    assert cmap.attrs["units"] == "µg/g"
    t = tissue.values.astype(bool)
    above = t & (planted > curve.loq)
    rel = np.abs(cmap.values[above] - planted[above]) / planted[above]
    assert np.median(rel) < 0.05  # single pixels carry the 3 % measurement noise
    # in every band of planted concentration above the LOQ, the recovered mean is within 5 %
    edges = np.quantile(planted[above], np.linspace(0, 1, 9))
    band = np.clip(np.searchsorted(edges, planted[above], side="right") - 1, 0, 7)
    for b in range(8):
        sel = band == b
        assert np.mean(cmap.values[above][sel]) == pytest.approx(np.mean(planted[above][sel]), rel=0.05)
    # the mean over the region, above LOQ: within 5 %
    assert np.nanmean(cmap.values[above]) == pytest.approx(planted[above].mean(), rel=0.05)
    low = cmap.attrs["below_lod"]
    assert np.isnan(cmap.values[low]).all() and (planted[t & low] < 2 * curve.lod).all()
    res = FAMILY.evaluate({"image": analyte, "mask": tissue, "standards": lab, "internal_standard": isd},
                          {"concentrations": levels})
    rows = res.rows.set_index("metric")
    assert rows.loc["lod", "units"] == "µg/g" and rows.loc["slope", "units"] == "1/(µg/g)"
    assert rows.loc["lod", "value"] == pytest.approx(curve.lod)
    assert "concentration" in res.images and "below_lod" in res.images
    with pytest.raises(AnalysisError, match="three standards"):
        quantitation_table(analyte, tissue, lab, isd, concentrations=[0.0, 1.0])  # two standard levels only


def test_composition_enrichment_ratio_and_homogenate():
    a = np.ones((20, 20))
    dep = np.zeros((20, 20), bool)
    dep[8:12, 8:12] = True
    parent = np.where(dep, 50.0, 5.0)
    metab = np.where(dep, 10.0, 4.0)
    carrier = np.full((20, 20), 10.0)
    st = spatial_image(np.stack([parent, metab, carrier * a]), spacing=PX_MM, dims=("c", "y", "x"),
                       channels=["dox", "doxol", "DSPC"], units="counts")
    e = enrichment(st, dep, parent="dox", metabolites=["doxol"], ring_px=2).set_index("channel")
    assert e.loc["dox", "enrichment"] == pytest.approx(10.0) and e.loc["doxol", "enrichment"] == pytest.approx(2.5)
    assert e.loc["doxol", "metabolite_to_parent_deposit"] == pytest.approx(0.2)
    assert e.loc["doxol", "metabolite_to_parent_surroundings"] == pytest.approx(0.8)
    regions = {"deposit": dep, "rest": ~dep}
    spec = region_spectra(st, regions).set_index(["region", "channel"])
    assert spec.loc[("deposit", "dox"), "mean"] == 50.0
    blank = np.zeros((20, 20), bool)
    blank[:2] = True
    num = spatial_image(parent, spacing=PX_MM, units="counts")
    den = spatial_image(carrier, spacing=PX_MM, units="counts")
    lod = detection_limit(num, blank)
    assert lod == pytest.approx(5.0)
    r = ratio_map(num, den, lod_numerator=6.0)
    assert np.isnan(r.values[~dep]).all() and np.allclose(r.values[dep], 5.0) and r.attrs["units"] == "1"
    summ = ratio_summary(num, den, regions, lod_numerator=6.0).set_index("region")
    assert summ.loc["deposit", "ratio_of_sums"] == pytest.approx(5.0)
    assert summ.loc["rest", "masked_fraction"] == pytest.approx(1.0)
    h = virtual_homogenate(num, regions).set_index("region")
    want = (50.0 * 16 + 5.0 * 384) / 400
    assert h.loc["homogenate", "mean"] == pytest.approx(want)
    frac = h.loc[["deposit", "rest"], "area_fraction"].to_numpy()
    assert (h.loc[["deposit", "rest"], "mean"].to_numpy() * frac).sum() == pytest.approx(want)
    assert h.loc["deposit", "area_mm2"] == pytest.approx(16 * PX_MM**2)


def test_acquisitions_on_one_grid_and_rgb():
    pos = spatial_image(np.ones((2, 5, 6)), spacing=PX_MM, dims=("c", "y", "x"), channels=[544.1813, 760.5851])
    neg = spatial_image(np.full((1, 5, 6), 2.0), spacing=PX_MM, dims=("c", "y", "x"), channels=[885.5499])
    both = combine_acquisitions({"pos": pos, "neg": neg})
    assert both.coords["c"].values.tolist() == ["pos:544.1813", "pos:760.5851", "neg:885.5499"]
    assert both.attrs["targets_mz"]["neg:885.5499"] == pytest.approx(885.5499)
    off = spatial_image(np.ones((1, 5, 6)), spacing=PX_MM, origin=(1.0, 0.0), dims=("c", "y", "x"), channels=[1.0])
    with pytest.raises(AnalysisError, match="resample"):
        combine_acquisitions({"pos": pos, "shifted": off})
    rgb = rgb_composite(both, ["pos:544.1813", "neg:885.5499"])
    assert rgb.coords["c"].values.tolist() == ["R", "G", "B"] and float(rgb.max()) == 1.0
    with pytest.raises(AnalysisError, match="1 to 3"):
        rgb_composite(both, [])


def test_composition_family_ratio_lod_and_homogenate():
    from multiscale.analysis.msi.composition import FAMILY as COMPOSITION

    rng = np.random.default_rng(1)
    drug = np.full((20, 20), 20.0)
    drug[:, 10:] = 60.0
    drug[:2] = rng.normal(1.0, 0.2, (2, 20))  # off-tissue rows: the blank
    carrier = np.full((20, 20), 10.0)
    blank = np.zeros((20, 20), np.uint8)
    blank[:2] = 1
    tissue = 1 - blank
    strata = np.where(np.arange(20)[None, :] < 10, 1, 2) * tissue
    mk = lambda a, u="counts": spatial_image(a, spacing=PX_MM, units=u)  # noqa: E731
    res = COMPOSITION.evaluate({"image": mk(drug), "mask": mk(tissue, ""), "denominator": mk(carrier),
                                "blank": mk(blank, ""), "strata": mk(strata, "")}, {})
    rows = res.rows
    one = rows.set_index("metric")
    lod = drug[:2].mean() + 3 * drug[:2].std(ddof=1)
    assert one.loc["lod_numerator", "value"] == pytest.approx(lod)
    assert one.loc["ratio_of_sums", "value"] == pytest.approx(4.0) and one.loc["ratio_of_sums", "units"] == "1"
    assert one.loc["masked_fraction", "value"] == pytest.approx(0.0)
    assert one.loc["homogenate_mean", "value"] == pytest.approx(40.0)
    st = rows[rows.metric == "stratum_mean"].set_index("bin")["value"]
    assert st[1] == pytest.approx(20.0) and st[2] == pytest.approx(60.0)
    assert "ratio" in res.images
