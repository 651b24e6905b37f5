"""The cells demo data (example_datasets/_cells.py) through the real study pipeline: per-type uptake, cross-type K/L."""

from __future__ import annotations

import json
import time

import pandas as pd
import pytest

from example_datasets._cells import write_cells

STUDY = """\
name: cells demo
output: out
reference: [cells]
defaults:
  images:
    cells: {path: generated/cells.ome.tif, modality: IMC, aspect: nanoparticle, agent: "NP counts, multiplex panel",
            units: counts}
subjects:
  - id: mouse01
analyses:
  - type: cells
    name: np_per_cell_type
    maps: ["cells:NP"]
    inputs: {nuclei: "cells:DNA", marker_1: "cells:CD68", marker_2: "cells:PanCK"}
    params: {diameter_um: 8.0, expand_um: 4.0, gates: {macrophage: "CD68 > 7.5", tumour: "PanCK > 7.5"}}
  - type: cell_patterns
    name: macrophages_near_tumour
    maps: ["cells:NP"]
    inputs: {nuclei: "cells:DNA", marker_1: "cells:CD68", marker_2: "cells:PanCK"}
    params: {diameter_um: 8.0, gates: {macrophage: "CD68 > 7.5", tumour: "PanCK > 7.5"},
             radii_um: [10.0, 20.0, 30.0, 40.0, 50.0], pairs: [[macrophage, tumour]], n_simulations: 39}
  - {type: hotspots, name: np_hotspots, maps: ["cells:NP"], params: {radius_mm: 0.012}}
"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("cells")
    t0 = time.perf_counter()
    truth = write_cells(root / "generated", seed=0)
    assert time.perf_counter() - t0 < 10.0          # ~0.3 s on an idle machine
    json.dumps(truth)                                # JSON-able
    (root / "study.yaml").write_text(STUDY)
    return root, truth


def test_demo_study_recovers_types_uptake_and_the_cross_type_pattern(demo):
    from multiscale.pipeline.runner import run_study

    root, truth = demo
    t0 = time.perf_counter()
    run = run_study(root / "study.yaml", progress=None)
    elapsed = time.perf_counter() - t0
    assert run.ok, run.failed
    table = pd.read_parquet(root / "out" / "results.parquet")
    cells = table[table["analysis"] == "np_per_cell_type"].set_index("metric")
    for kind, t in truth["types"].items():
        assert cells.loc[f"{kind}.n", "value"] == t["n"]
        assert abs(cells.loc[f"{kind}.uptake_mean", "value"] / t["np_cell_mean"] - 1) < 0.05
        assert cells.loc[f"{kind}.uptake_mean", "units"] == "counts"
    assert abs(cells.loc["compartment.cytoplasm.mean", "value"] / truth["np_cytoplasm_mean"] - 1) < 0.05
    assert cells.loc["compartment.nucleus.mean", "value"] < 0.2 * cells.loc["compartment.cytoplasm.mean", "value"]
    pat = table[table["analysis"] == "macrophages_near_tumour"]
    series = pat[pat["metric"].str.startswith("macrophage~tumour.")].pivot_table(
        index="bin_hi", columns="metric", values="value")
    above = series["macrophage~tumour.L"] > series["macrophage~tumour.L_hi"]
    assert above.loc[20.0:40.0].all()               # macrophages sit next to tumour cells: above the envelope
    nn = pat.set_index("metric")
    assert abs(nn.loc["macrophage~tumour.nn_mean", "value"] - truth["macrophage_to_tumour_nn_mean_um"]) < 2.0
    assert nn.loc["macrophage~tumour.nn_ratio", "value"] < 0.85
    hot = table[table["analysis"] == "np_hotspots"].set_index("metric")
    assert hot.loc["n_hotspots", "value"] >= 1 and hot.loc["gi_star_max", "value"] > 5
    assert abs(hot.loc["patch_size_median", "value"] / truth["macrophage_cytoplasm_area_mm2"] - 1) < 0.15
    sub = root / "out" / "subjects" / "mouse01"
    tables = sorted(p.name for p in (sub / "tables").glob("*.parquet"))
    assert "np_per_cell_type_cells_NP_all_objects.parquet" in tables
    objects = pd.read_parquet(sub / "tables" / "np_per_cell_type_cells_NP_all_objects.parquet")
    assert len(objects) == sum(t["n"] for t in truth["types"].values())
    assert {"area_um2", "centroid_y_mm", "mean_NP", "mean_CD68", "type"} <= set(objects.columns)
    success = json.loads((sub / "_SUCCESS.json").read_text())
    assert "tables/np_per_cell_type_cells_NP_all_objects.parquet" in success["outputs"]
    figs = {p.name for p in sub.rglob("*.png")}
    assert any("segmentation" in f for f in figs) and any("ripley_L" in f for f in figs), figs
    assert elapsed < 60                              # the analyses take ~3 s; the rest is the pipeline's writing
