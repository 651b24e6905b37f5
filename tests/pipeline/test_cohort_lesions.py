"""Lesions from a label image: one region per label through the pipeline, and lesion-level summaries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from multiscale.errors import StatsError, StudyError
from multiscale.pipeline.runner import run_study
from multiscale.pipeline.study import load_study
from multiscale.stats import lesion_summary, variance_components

N = 16
#: lesion label -> (centre (z, y, x) voxel, radius voxels, PET uptake); blood pool uptake is 2.0
LESIONS = {1: ((4, 4, 4), 2, 3.0), 2: ((11, 11, 4), 2, 1.5), 3: ((8, 8, 11), 3, 4.0)}


def _write(arr, path):
    im = sitk.GetImageFromArray(arr)
    im.SetSpacing((1.0, 1.0, 1.0))
    sitk.WriteImage(im, str(path))


def _patient(folder, scale):
    folder.mkdir(parents=True)
    zz, yy, xx = np.mgrid[:N, :N, :N]
    labels = np.zeros((N,) * 3, np.uint8)
    pet = np.full((N,) * 3, 0.5, np.float32)
    for k, ((z, y, x), r, uptake) in LESIONS.items():
        inside = (zz - z) ** 2 + (yy - y) ** 2 + (xx - x) ** 2 <= r * r
        labels[inside] = k
        pet[inside] = uptake * scale
    blood = (np.abs(zz - 13) <= 1) & (np.abs(yy - 3) <= 1) & (np.abs(xx - 13) <= 1)
    pet[blood] = 2.0
    _write(pet, folder / "pet.nii.gz")
    _write(labels, folder / "lesions.nii.gz")
    _write(blood.astype(np.uint8), folder / "blood.nii.gz")


STUDY = """\
name: lesions
output: out
report: {by: arm, lesions: {mask: lesions, reference: blood, metric: suv_mean}}
reference: pet
defaults:
  images:
    pet: {path: "{subject}/pet.nii.gz", modality: PT, units: SUVbw}
  masks:
    lesions: {path: "{subject}/lesions.nii.gz", on: pet, labels: true}
    blood: {path: "{subject}/blood.nii.gz", on: pet}
subjects:
  - {id: p1, covariates: {arm: a}}
  - {id: p2, covariates: {arm: b}}
analyses:
  - {type: uptake, name: u, maps: [pet], masks: [lesions, blood], params: {peak_volume_ml: 0.005}}
"""


@pytest.fixture(scope="module")
def lesion_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("lesions")
    _patient(root / "p1", 1.0)
    _patient(root / "p2", 0.6)
    (root / "study.yaml").write_text(STUDY)
    run = run_study(root / "study.yaml", progress=None)
    assert run.completed == ["p1", "p2"], run.failed
    return root, pd.read_parquet(root / "out" / "results.parquet")


def test_a_label_image_gives_one_region_per_lesion(lesion_run):
    _, table = lesion_run
    assert sorted(table.region.unique()) == ["blood", "lesions#1", "lesions#2", "lesions#3"]
    mean = table[(table.metric == "suv_mean") & (table.subject == "p1")].set_index("region").value
    assert mean.to_dict() == pytest.approx({"lesions#1": 3.0, "lesions#2": 1.5, "lesions#3": 4.0, "blood": 2.0})


def test_lesion_level_summaries_from_the_run(lesion_run):
    _, table = lesion_run
    s = lesion_summary(table, metric="suv_mean", lesions="lesions", reference="blood").set_index("subject")
    # p1: lesions 1 (3.0) and 3 (4.0) above the blood pool (2.0); p2 (x 0.6): only lesion 3 (2.4)
    assert s.loc["p1", "n_lesions"] == 3 and s.loc["p1", "fraction_positive"] == pytest.approx(2 / 3)
    assert s.loc["p2", "fraction_positive"] == pytest.approx(1 / 3)
    vol = table[(table.metric == "volume_ml") & (table.subject == "p2")].set_index("region").value
    assert s.loc["p2", "burden_fraction_positive"] == pytest.approx(
        vol["lesions#3"] / (vol["lesions#1"] + vol["lesions#2"] + vol["lesions#3"]))
    long = table[(table.metric == "suv_mean") & table.region.str.startswith("lesions")]
    with pytest.raises(StatsError, match="cannot be fit on 6 rows in 2 groups"):   # two patients: refused, clearly
        variance_components(long.assign(animal=long.subject), value="value", levels=["animal"])


def test_the_report_says_what_cannot_be_computed(lesion_run):
    root, _ = lesion_run
    html = (root / "out" / "report.html").read_text()
    stats = html[html.index("<section id='statistics'>"):html.index("id='methods'")]
    # one patient per arm: the two-group test is reported as not computable, not crashed
    assert "Not computable:" in stats and "group &#39;a&#39; has 1 subject and &#39;b&#39; has 1 subject" in stats
    # lesion-level summary: 3 of 6 lesions above the blood pool (p1: lesions 1 and 3; p2: lesion 3)
    assert "3 of 6 lesions (50 %) meet suv_mean &gt; 1 x suv_mean of blood" in stats
    # lesions within patients: a mixed model per metric, here refused (two patients), said so per metric
    assert "Groups: repeated measures" in stats and "cannot be fit" in stats


def test_labels_field_is_validated(tmp_path):
    (tmp_path / "study.yaml").write_text(STUDY.replace("labels: true", "labels: yes please"))
    with pytest.raises(StudyError, match=r"study\.yaml:\d+: defaults\.masks\.lesions\.labels: labels must be true"):
        load_study(tmp_path / "study.yaml", check_files=False)
    (tmp_path / "study.yaml").write_text(STUDY.replace("labels: true", "labels: true, label: 2"))
    with pytest.raises(StudyError, match="either 'label'"):
        load_study(tmp_path / "study.yaml", check_files=False)


def test_stats_command_lesion_summary(lesion_run, capsys):
    from multiscale.cli import main

    root, _ = lesion_run
    assert main(["stats", str(root / "out"), "--lesions", "lesions", "--reference", "blood"]) == 0
    printed = capsys.readouterr().out
    assert "lesions:" in printed and "suv_mean > 1 x suv_mean of blood" in printed
