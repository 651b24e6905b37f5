"""The DCE demo data (example_datasets/_dynamic.py) through the real study pipeline: maps match the planted truth."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from example_datasets._dynamic import write_dynamic
from multiscale.io import load

STUDY = """\
name: dynamic demo
output: out
reference: dce
defaults:
  images:
    dce: {path: generated/dce.nii.gz, modality: MR, aspect: environment, agent: Gd-DTPA, units: mM}
    dce_truth: {path: generated/dce_truth.ome.zarr, modality: MR, aspect: environment, agent: planted truth}
    r2star_pre: {path: generated/r2star_pre.nii.gz, modality: MR, aspect: environment, agent: R2* pre, units: 1/s}
    r2star_post: {path: generated/r2star_post.nii.gz, modality: MR, aspect: nanoparticle, agent: SPION, units: 1/s}
  masks:
    dce_tumour: {path: generated/dce_tumour.nii.gz, on: dce}
  registration:
    - {moving: dce_truth, fixed: dce, method: identity}
    - {moving: r2star_pre, fixed: dce, method: identity}
    - {moving: r2star_post, fixed: dce, method: identity}
subjects:
  - id: mouse01
analyses:
  - {type: dce, name: dce_kinetics, maps: [dce], masks: [dce_tumour],
     inputs: {truth_ktrans: "dce_truth:ktrans", truth_ve: "dce_truth:ve", truth_vp: "dce_truth:vp"},
     params: {model: etofts, aif: parker, aif_delay: 20.0, hematocrit: 0.42}}
  - {type: curves, name: dce_curve, maps: [dce], masks: [dce_tumour]}
  - {type: change, name: iron_uptake, pairs: [[r2star_pre, r2star_post]], masks: [dce_tumour],
     params: {relaxivity_per_mM_s: 120.0, loading_ratio: 0.05, threshold: 10.0}}
"""


#: the series alone (for registering it to another frame)
BASE = """\
name: dynamic demo
output: out
reference: dce
defaults:
  images:
    dce: {path: generated/dce.nii.gz, modality: MR, aspect: environment, agent: Gd-DTPA, units: mM}
  masks:
    dce_tumour: {path: generated/dce_tumour.nii.gz, on: dce}
subjects:
  - id: mouse01
analyses:
  - {type: dce, name: dce_kinetics, maps: [dce], masks: [dce_tumour],
     params: {model: etofts, aif: parker, aif_delay: 20.0, hematocrit: 0.42}}
  - {type: curves, name: dce_curve, maps: [dce], masks: [dce_tumour]}
"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("dynamic")
    t0 = time.perf_counter()
    truth = write_dynamic(root / "generated", seed=0)
    assert time.perf_counter() - t0 < 10.0  # ~1 s on an idle machine; generous here
    (root / "study.yaml").write_text(STUDY)
    return root, truth


def test_demo_series_carries_its_frame_times(demo):
    root, truth = demo
    img = load(root / "generated" / "dce.nii.gz")
    assert img.dims == ("t", "z", "y", "x")
    assert img["t"].values.tolist() == pytest.approx(truth["frame_times_s"])


def test_demo_study_recovers_the_planted_maps(demo):
    from multiscale.pipeline.runner import run_study

    root, truth = demo
    t0 = time.perf_counter()
    run_study(root / "study.yaml", progress=None)
    elapsed = time.perf_counter() - t0
    res = pd.read_csv(root / "out" / "results.csv")
    r = res[res.analysis == "dce_kinetics"].set_index("metric")
    assert r.loc["ktrans_median", "value"] == pytest.approx(truth["tumour_ktrans_median_per_min"], abs=0.005, rel=0.1)
    assert r.loc["ve_median", "value"] == pytest.approx(truth["tumour_ve_median"], abs=0.05)
    assert r.loc["vp_median", "value"] == pytest.approx(truth["tumour_vp"], abs=0.025)
    assert r.loc["ktrans_median", "units"] == "1/min"
    assert r.loc["fraction_not_converged", "value"] == 0
    assert r.loc["ktrans_truth_median", "value"] == pytest.approx(truth["tumour_ktrans_median_per_min"], rel=1e-6)
    assert abs(r.loc["ktrans_error_median", "value"]) < 0.005 and abs(r.loc["ve_error_median", "value"]) < 0.05
    fe = res[res.analysis == "iron_uptake"].set_index("metric")
    assert fe.loc["difference_mean", "units"] == "1/s"
    assert fe.loc["difference_mean", "value"] == pytest.approx(truth["tumour_delta_r2star_mean_per_s"], rel=0.02)
    assert fe.loc["iron_mM_mean", "value"] == pytest.approx(truth["tumour_iron_mM_mean"], rel=0.02)
    assert fe.loc["payload_ug_per_ml_mean", "units"] == "ug/mL"
    c = res[res.analysis == "dce_curve"].set_index("metric")
    assert c.loc["auc_last", "units"] == "mM*s" and c.loc["tmax_s", "value"] > 20
    subj = root / "out" / "subjects" / "mouse01"
    assert (subj / "maps" / "dce.ome.zarr").exists()
    figs = {p.name for p in (subj / "figures").glob("*.png")}
    assert any(n.startswith("dce_") for n in figs) and any(n.startswith("curves_") for n in figs)
    assert any(n.startswith("change_") for n in figs)
    maps = load(subj / "maps" / "dce.ome.zarr")
    channels = [str(c) for c in maps.coords["c"].values]
    assert "ktrans:dce" in channels and "iron_mM:r2star_pre ~ r2star_post" in channels, channels
    assert elapsed < 30.0  # ~3 s on an idle machine


def test_a_series_registered_to_another_frame_keeps_its_frames(demo, tmp_path):
    """A t image as the moving image of a registration: registered on its time-mean, every frame resampled."""
    import numpy as np

    from multiscale.io import save
    from multiscale.pipeline.runner import run_study

    root, truth = demo
    gen = root / "generated"
    anat = load(gen / "dce.nii.gz").mean("t", keep_attrs=True)
    save(anat.copy(data=np.asarray(anat.data)), tmp_path / "anat.nii.gz")
    study = BASE.replace("reference: dce", "reference: anat").replace(
        "  images:\n", f"  images:\n    anat: {{path: {tmp_path / 'anat.nii.gz'}, modality: MR, aspect: anatomy}}\n"
    ).replace("subjects:", "  registration:\n    - {moving: dce, fixed: anat, method: identity}\nsubjects:")
    study = study.replace("generated/", f"{gen}/").replace("output: out", f"output: {tmp_path / 'out'}")
    (tmp_path / "study.yaml").write_text(study)
    run_study(tmp_path / "study.yaml", progress=None)
    res = pd.read_csv(tmp_path / "out" / "results.csv")
    r = res[res.analysis == "dce_kinetics"].set_index("metric")
    assert r.loc["ktrans_median", "value"] == pytest.approx(truth["tumour_ktrans_median_per_min"], abs=0.005, rel=0.1)
    frames = res[(res.analysis == "dce_curve") & (res.metric == "mean")]
    assert len(frames) == len(truth["frame_times_s"])
