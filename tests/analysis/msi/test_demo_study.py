"""The demo's MSI ions through the real pipeline: a mini study ranks the planted ions against the drug, clusters
and quantifies, from a stand-alone imzML written by ``example_datasets._msi_ions.write_msi_ions``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from example_datasets._msi_ions import ENDOGENOUS, endogenous_ions, write_msi_ions
from multiscale.analysis.msi import adduct_mz

pytest.importorskip("pyimzml")


def test_endogenous_ion_mz_are_the_adducts_of_their_formulas():
    for name, (formula, adduct, mz, _, _) in ENDOGENOUS.items():
        assert adduct_mz(formula, adduct) == pytest.approx(mz, abs=6e-5), name


def test_endogenous_patterns_have_the_grid_shape_and_are_cheap():
    maps = {k: np.random.default_rng(0).random((30, 33)) for k in ("tissue", "viable", "drug", "vessels")}
    ions = endogenous_ions(maps, 0)
    assert ions["patterns"].shape == (len(ENDOGENOUS), 30, 33)
    assert np.isfinite(ions["patterns"]).all() and (ions["patterns"] >= 0).all()
    json.dumps(ions["truth"])


STUDY = """\
name: msi ions
output: out
reference: msi
defaults:
  images:
    msi:
      path: generated/msi_ions.imzML
      modality: MSI
      aspect: drug
      targets: {targets}
      options: {{tol: 10, tol_unit: ppm}}
  masks:
    tissue: {{path: generated/msi_tissue.ome.tif, on: msi}}
subjects:
  - id: s1
analyses:
  - type: msi_colocalisation
    name: ions_vs_drug
    maps: [msi]
    masks: [tissue]
    inputs: {{reference: "msi:doxorubicin"}}
    params: {{n_permutations: 60}}
  - type: msi_segmentation
    name: drug_habitats
    maps: ["msi:doxorubicin"]
    masks: [tissue]
    params: {{n_clusters: 3}}
  - type: msi_quantitation
    name: drug_ug_per_g
    maps: ["msi:doxorubicin"]
    params: {{calibration: [[0.0, 5.0], [1.0, 105.0], [2.0, 210.0], [5.0, 498.0]]}}
"""


def test_mini_study_ranks_the_planted_ions(tmp_path, monkeypatch):
    monkeypatch.setenv("MULTISCALE_CACHE_DIR", str(tmp_path / "cache"))
    from multiscale.pipeline.runner import run_study

    truth = write_msi_ions(tmp_path / "generated", seed=0)
    targets = "{" + ", ".join(f'"{k}": {v}' for k, v in truth["mz"].items()) + "}"
    path = tmp_path / "study.yaml"
    path.write_text(STUDY.format(targets=targets))
    run = run_study(path, progress=None)
    assert run.completed == ["s1"] and not run.failed
    table = pd.read_parquet(tmp_path / "out" / "results.parquet")
    # the whole stack is ranked at once (q-values across ions); each row's map names its ion
    coloc = table[table.analysis == "ions_vs_drug"].pivot_table(index="map", columns="metric", values="value")
    assert all(m.startswith("msi:") for m in coloc.index)
    coloc.index = [m.split(":", 1)[1] for m in coloc.index]
    assert (coloc["q_value"] >= coloc["p_value"] - 1e-12).all()
    drug_like = [n for n, t in truth["ions"].items() if "doxorubicin" in t["colocalised_with"] and n != "doxorubicin"]
    unrelated = [n for n, t in truth["ions"].items() if t["pattern"] == "independent"]
    others = coloc.drop(index=["doxorubicin"] + drug_like)
    assert coloc.loc[drug_like, "similarity"].min() > others["similarity"].max()
    assert (coloc.loc[drug_like, "p_value"] <= 0.05).all()
    assert (coloc.loc[unrelated, "p_value"] > 0.05).all()
    seg = table[table.analysis == "drug_habitats"]
    assert seg.loc[seg.metric == "area_fraction", "value"].sum() == pytest.approx(1.0)
    q = table[table.analysis == "drug_ug_per_g"].set_index("metric")
    assert q.loc["lod", "units"] == "µg/g"
