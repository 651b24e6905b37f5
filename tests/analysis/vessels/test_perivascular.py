"""Perivascular profiles, penetration depths, fractions, density tiles, ULM maps and the two study families."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from multiscale.analysis import family_named
from multiscale.analysis.vessels import segment_vessels, vessel_graph
from multiscale.analysis.vessels.perivascular import (
    compare_penetration,
    density_tiles,
    penetration_depth,
    perivascular_fractions,
    perivascular_profile,
)
from multiscale.analysis.vessels.synthetic import Tube, VesselTree
from multiscale.analysis.vessels.ulm import localisation_maps
from multiscale.errors import AnalysisError, AnalysisWarning
from multiscale.image import spatial_image

SP = 0.01


def _field(decay_mm: float, noise: float = 0.0, seed: int = 0):
    """Two vessels in a 3 x 3 mm field; a signal exp(-d / decay) from their walls (+ noise), and the vessel mask."""
    t = VesselTree([Tube(np.array([[0.8, 0.2], [0.8, 2.8]]), 0.03), Tube(np.array([[2.2, 0.3], [2.3, 2.7]]), 0.04)])
    d = t.axis_distance((300, 300), SP, reach=5.0)
    v = d < 0
    img = np.exp(-np.maximum(d, 0) / decay_mm) + np.random.default_rng(seed).normal(0, noise, d.shape)
    return (spatial_image(img, spacing=SP, units="ng/mL"), spatial_image(v.astype(np.uint8), spacing=SP),
            spatial_image(np.ones((300, 300), np.uint8), spacing=SP))


def test_penetration_depths_match_the_planted_exponential():
    img, ves, region = _field(0.1, noise=0.05)
    e = penetration_depth(img, ves, region, level="1/e", background=0.0, bin_mm=0.01, max_distance_mm=0.6, n_boot=100)
    h = penetration_depth(img, ves, region, level="half", background=0.0, bin_mm=0.01, max_distance_mm=0.6,
                          n_boot=100)
    # the profile starts at the first bin's mean distance (~5 um) and the wall sits within half a pixel
    assert e["depth_mm"] == pytest.approx(0.1, abs=SP)
    assert h["depth_mm"] == pytest.approx(0.1 * np.log(2), abs=SP)
    assert e["ci_low"] <= e["depth_mm"] <= e["ci_high"] and e["ci_high"] - e["ci_low"] < 0.02


def test_profile_has_cis_and_excludes_vessel_voxels():
    img, ves, region = _field(0.1, noise=0.05)
    p = perivascular_profile(img, ves, region, bin_mm=0.05, max_distance_mm=0.5, n_boot=100)
    assert list(p["bin"]) == list(range(10)) and (p["n"] > 0).all()
    assert (p["ci_low"] <= p["mean"]).all() and (p["mean"] <= p["ci_high"]).all()
    assert p["mean"].is_monotonic_decreasing
    assert p["n"].sum() < int((ves.values == 0).sum())


def test_two_formulations_small_particles_travel_twice_as_far():
    small, ves, region = _field(0.12, noise=0.03, seed=1)
    large, _, _ = _field(0.06, noise=0.03, seed=2)
    r = compare_penetration(large, small, ves, region, level="1/e", background=0.0, bin_mm=0.01,
                            max_distance_mm=0.6, n_boot=100)
    assert r["ratio"] == pytest.approx(2.0, rel=0.12)
    assert r["ratio_ci_low"] <= r["ratio"] <= r["ratio_ci_high"] and r["ratio_ci_low"] > 1.5


def test_fractions_and_band():
    img, ves, region = _field(0.1)
    ones = img.copy(data=np.ones(img.shape))
    f = perivascular_fractions(ones, ves, region, band_mm=0.05)
    assert f["intravascular_fraction"] == pytest.approx(float(ves.values.mean()))
    assert f["band_enrichment"] == pytest.approx(1.0)
    g = perivascular_fractions(img, ves, region, band_mm=0.05)
    assert g["band_enrichment"] > 2 and g["intravascular_fraction"] + g["extravascular_fraction"] == pytest.approx(1)


def test_density_tiles_rank_drug_by_vessel_density():
    img, ves, region = _field(0.1)
    tab, st = density_tiles(img, ves, region, tile_mm=0.25)
    assert st["spearman_rho"] > 0.5 and tab["mean"].is_monotonic_increasing and tab["n_tiles"].sum() == 144


def test_bad_inputs_are_refused_clearly():
    img, ves, region = _field(0.1)
    other = spatial_image(ves.values, spacing=0.02)
    with pytest.raises(AnalysisError, match="not on the image's grid"):
        perivascular_profile(img, other, region)
    vol = spatial_image(np.zeros((3, 300, 300), np.uint8), spacing=SP)
    with pytest.raises(AnalysisError, match="3-D"):
        perivascular_profile(img, vol, region)
    empty = ves.copy(data=np.zeros(ves.shape, np.uint8))
    with pytest.warns(AnalysisWarning, match="empty"):
        assert np.isnan(penetration_depth(img, empty, region)["depth_mm"])
    with pytest.raises(AnalysisError, match="level"):
        penetration_depth(img, ves, region, level=2.0)


def test_families_run_flag_empty_masks_and_keep_units():
    img, ves, region = _field(0.1)
    peri = family_named("perivascular").evaluate({"image": img, "mask": region, "vessels": ves},
                                                 {"bin_mm": 0.02, "max_distance_mm": 0.4, "n_boot": 20,
                                                  "background": 0.0, "tile_mm": 0.5})
    rows = peri.rows.set_index("metric")
    assert rows.loc["penetration_1_over_e_mm", "units"] == "mm"
    assert rows.loc["penetration_1_over_e_mm", "value"] == pytest.approx(0.1, abs=0.015)
    assert (peri.rows.loc[peri.rows.metric == "profile_mean", "units"] == "ng/mL").all()
    vessels = family_named("vessels")
    res = vessels.evaluate({"image": img, "mask": region, "vessels": ves}, {})
    r = res.rows.set_index("metric")
    assert r.loc["total_length_mm", "value"] == pytest.approx(2.6 + np.hypot(0.1, 2.4), rel=0.05)
    assert r.loc["length_density_mm_per_mm2", "units"] == "mm/mm2" and r.loc["n_branch_points", "value"] == 0
    assert set(res.images) >= {"vessel_mask", "distance_to_vessels", "vessel_radius"}
    empty = ves.copy(data=np.zeros(ves.shape, np.uint8))
    with pytest.warns(AnalysisWarning):
        res = vessels.evaluate({"image": img, "mask": region, "vessels": empty}, {})
    assert (res.rows["flags"].str.contains("empty")).all()
    assert np.isnan(res.rows.set_index("metric").loc["mean_diameter_mm", "value"])
    with pytest.raises(AnalysisError, match="grid"):
        vessels.evaluate({"image": img, "mask": region, "vessels": spatial_image(ves.values, spacing=0.02)}, {})


def test_ulm_tracks_give_density_speed_and_a_vessel_graph():
    rng = np.random.default_rng(0)
    rows = []
    for track in range(60):  # bubbles flowing along a horizontal vessel at 8 mm/s, 1 kHz frames
        y0 = 1.0 + rng.normal(0, 0.01)
        x0 = rng.uniform(-0.5, 0.0)
        for f in range(450):
            x = x0 + 0.008 * f
            if 0.0 <= x < 3.0:
                rows.append({"frame": f + 3 * track, "y": y0, "x": x})
    pts = pd.DataFrame(rows)
    grid = spatial_image(np.zeros((100, 160)), spacing=0.02)
    maps = localisation_maps(pts, grid, frame_rate_hz=1000.0, search_mm=0.03)
    assert maps["density"].dims == ("y", "x") and maps["speed"].attrs["units"] == "mm/s"
    assert float(np.nanmedian(maps["speed"].values)) == pytest.approx(8.0, rel=0.02)
    assert float(np.nanmedian(maps["direction_deg"].values)) == pytest.approx(0.0, abs=2.0)
    assert int(maps["density"].sum()) == len(pts)
    seg = segment_vessels(maps["density"], scales_mm=[0.02, 0.04])
    assert vessel_graph(seg).metric("total_length_mm") == pytest.approx(3.0, rel=0.1)  # flat ends: one radius in
