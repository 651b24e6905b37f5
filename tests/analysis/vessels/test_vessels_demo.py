"""The vessels demo data (example_datasets/_vessels.py) through the real study pipeline: tree and penetration."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest

from example_datasets._vessels import section_vessel_truth, write_vessels

STUDY = """\
name: vessels demo
output: out
reference: [intravital]
defaults:
  images:
    intravital: {path: generated/vessels.ome.tif, modality: FLUO, aspect: nanoparticle,
                 agent: "dextran + 12 nm / 125 nm nanoparticles", units: counts}
subjects:
  - id: mouse01
analyses:
  - type: vessels
    name: vessel_network
    maps: ["intravital:dextran"]
    params: {scales_mm: [0.01, 0.02], grow: true, avascular_mm: 0.1}
  - type: perivascular
    name: np_penetration
    maps: ["intravital:NP 12 nm", "intravital:NP 125 nm"]
    inputs: {vessels: "intravital:dextran"}
    params: {scales_mm: [0.01, 0.02], grow: true, bin_mm: 0.01, max_distance_mm: 0.3, band_mm: 0.02, n_boot: 100}
"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("vessels")
    t0 = time.process_time()
    truth = write_vessels(root / "generated", seed=0)
    assert time.process_time() - t0 < 4.0           # ~1 s of CPU
    json.dumps(truth)
    (root / "study.yaml").write_text(STUDY)
    return root, truth


def test_demo_study_recovers_the_tree_and_the_penetration_depths(demo):
    from multiscale.pipeline.runner import run_study

    root, truth = demo
    run = run_study(root / "study.yaml", progress=None)
    assert run.ok, run.failed
    table = pd.read_parquet(root / "out" / "results.parquet")
    net = table[table["analysis"] == "vessel_network"].set_index("metric")
    assert net.loc["total_length_mm", "value"] == pytest.approx(truth["total_length_mm"], rel=0.05)
    assert net.loc["n_branch_points", "value"] == truth["n_branch_points"]
    assert abs(net.loc["mean_diameter_mm", "value"] - truth["mean_diameter_mm"]) < 2 * truth["pixel_um"] / 1000
    pen = table[table["analysis"] == "np_penetration"]
    depth = {}
    for name in ("NP 12 nm", "NP 125 nm"):
        rows = pen[pen["map"] == f"intravital:{name}"].set_index("metric")
        d = rows.loc["penetration_1_over_e_mm", "value"]
        # the profile starts a few um from the wall (the first bin's mean distance) and the wall is within a pixel
        assert d == pytest.approx(truth["penetration_1_over_e_mm"][name], abs=0.012)
        assert rows.loc["penetration_1_over_e_ci_low", "value"] <= d <= rows.loc["penetration_1_over_e_ci_high",
                                                                                   "value"]
        depth[name] = d
    assert depth["NP 12 nm"] / depth["NP 125 nm"] == pytest.approx(truth["penetration_ratio_12_over_125"], rel=0.2)
    sub = root / "out" / "subjects" / "mouse01"
    figs = {p.name for p in sub.rglob("*.png")}
    assert any("overlay" in f for f in figs) and any("profile" in f for f in figs), figs


def test_section_truth_of_the_example_phantom():
    from example_datasets import _phantom as ph_mod

    ph = ph_mod.make_phantom(0, (3.25, 3.0, 9.1))
    t = section_vessel_truth(ph, ph.section_z0, (0.0, 6.495), (0.0, 5.995))
    assert 0 < t["tumour"]["total_length_mm"] <= t["tissue"]["total_length_mm"]
    assert t["tumour"]["n_branch_points"] <= t["tissue"]["n_branch_points"]
    # a plane far from every vessel holds none
    empty = section_vessel_truth(ph, ph.section_z0 + 50.0, (0.0, 6.495), (0.0, 5.995))
    assert empty["tissue"]["total_length_mm"] == 0 and empty["tissue"]["n_branch_points"] == 0
    assert np.isfinite(t["tissue"]["total_length_mm"])
