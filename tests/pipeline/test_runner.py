"""Running studies end to end: outputs, failure isolation, resume, ground-truth checks.

The LocalCluster (2 worker processes) run is in ``tests/test_cli.py``.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from multiscale import image as mi
from multiscale.pipeline.outputs import SUCCESS_FILE
from multiscale.pipeline.provenance import file_sha256
from multiscale.pipeline.results import COLUMNS
from multiscale.pipeline.runner import run_study

from ._study_data import SHIFTS, make_study


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    """A 3-subject study run once in this process; shared by the read-only checks below."""
    root = tmp_path_factory.mktemp("three")
    path = make_study(root)
    run = run_study(path, progress=None)
    return root, path, run


def test_three_subjects_run_end_to_end(three):
    root, path, run = three
    assert run.completed == ["s1", "s2", "s3"] and not run.failed
    out = root / "out"
    table = pd.read_parquet(out / "results.parquet")
    assert list(table.columns[: len(COLUMNS)]) == list(COLUMNS)
    assert sorted(table.subject.unique()) == ["s1", "s2", "s3"]
    csv = pd.read_csv(out / "results.csv")
    assert len(csv) == len(table)
    # one row per subject x region x map x metric (x shell for profiles)
    keys = ["subject", "region", "map", "analysis", "metric", "bin"]
    assert not table.duplicated(keys).any()
    means = table[(table.metric == "shell_mean")]
    assert set(means.units) == {"SUVbw"} and set(means.region) == {"tumour"}
    # the designed PET is high at the rim and falls towards the core, in every subject
    for sid, t in means.groupby("subject"):
        v = t.sort_values("bin").value.to_numpy()
        assert v[0] > v[-1], (sid, v)
    # the subject table is the cohort table's slice
    sub = pd.read_parquet(out / "subjects" / "s2" / "results.parquet")
    pd.testing.assert_frame_equal(sub.reset_index(drop=True),
                                  table[table.subject == "s2"].reset_index(drop=True), check_dtype=False)


def test_outputs_maps_transforms_provenance(three):
    root, path, run = three
    folder = root / "out" / "subjects" / "s1"
    from multiscale import io

    maps = io.load(folder / "maps" / "mri.ome.zarr")
    mri = io.load(root / "data" / "s1" / "mri.nii.gz")
    assert [str(c) for c in maps.coords["c"].values] == ["mri", "pet", "mask:tumour"]
    assert mi.same_grid(maps.isel(c=0, drop=True), mri)
    np.testing.assert_allclose(np.asarray(maps.sel(c="mri")), np.asarray(mri), rtol=1e-6)
    # the transform file maps MRI points to PET points like the registration did
    t = sitk.ReadTransform(str(folder / "transforms" / "pet_to_mri.tfm"))
    assert t.GetDimension() == 3
    prov = json.loads((folder / "provenance.json").read_text())
    data = root / "data" / "s1"
    assert prov["inputs"][str(data / "pet.nii.gz")] == file_sha256(data / "pet.nii.gz")
    assert {"load-mri", "register-pet_to_mri", "resample-pet", "analysis-pet_radial"} <= set(prov["timings_s"])
    # figures are drawn in tasks of their own (per frame, registration and analysis), so workers share them
    assert {"figures-overlay-mri", "figures-registration-pet_to_mri", "figures-pet_radial"} <= set(prov["timings_s"])
    assert sorted(p.name for p in (folder / "figures").iterdir()) == [
        "overlay_mri.png", "radial_pet_radial_pet_tumour_profile.png", "registration_pet_to_mri.png"]
    assert prov["packages"]["numpy"] == np.__version__
    marker = json.loads((folder / SUCCESS_FILE).read_text())
    assert all((folder / f).exists() for f in marker["outputs"])
    study_prov = json.loads((root / "out" / "provenance.json").read_text())
    assert [s["status"] for s in study_prov["statuses"]] == ["completed"] * 3
    # atomic writes go through private temporary files; the outputs get ordinary permissions
    from multiscale._util import umask_mode as _umask_mode

    for f in (root / "out" / "report.html", root / "out" / "results.csv", folder / "provenance.json"):
        assert f.stat().st_mode & 0o777 == _umask_mode(), f
    assert folder.stat().st_mode & 0o777 == _umask_mode(0o777)


def test_report_is_self_contained_and_holds_every_subject(three):
    root, path, run = three
    html = (root / "out" / "report.html").read_text()
    srcs = re.findall(r'src="([^"]*)"', html)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "<link" not in html and "<script" not in html
    for sid in ("s1", "s2", "s3"):
        assert f"id='{sid}'" in html
    # per subject: overlay, registration checkerboard, radial profile; plus the cohort figures
    assert len(srcs) == 3 * 3 + 2
    sub = (root / "out" / "subjects" / "s3" / "report.html").read_text()
    assert sub.count("data:image/png;base64,") == 3


def test_registration_against_ground_truth_is_reported(three):
    root, path, run = three
    for sid in ("s1", "s2", "s3"):
        reg = json.loads((root / "out" / "subjects" / sid / "registration.json").read_text())
        q = reg["pet_to_mri"]["quality"]
        # the error is reported over the whole fixed image and inside the tumour (a mask on the MRI)
        assert q["truth_error_points"] == 12**3
        assert q["truth_error_max_mm"] >= q["truth_error_mean_mm"] >= 0
        # PET voxels are 1 mm: a rigid registration of these tiny volumes must land within half a
        # PET voxel of the true translation, on average over the tumour
        assert q["truth_error_mean_mm_in_tumour"] < 0.5, (sid, q)


def test_truth_error_and_tre_are_distances_between_transforms_and_points(tmp_path):
    # a transform read from a file: exactly the truth (errors 0), or the truth plus 1 mm in x (errors 1)
    for offset, expected in ((0.0, 0.0), (1.0, 1.0)):
        root = tmp_path / f"o{offset}"
        root.mkdir()
        sx, sy, sz = SHIFTS["s1"]
        sitk.WriteTransform(sitk.TranslationTransform(3, (sx + offset, sy, sz)), str(root / "t.tfm"))
        fixed = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 3.0, 2.0]])
        pd.DataFrame(fixed, columns=list("xyz")).to_csv(root / "lm_mri.csv", index=False)
        pd.DataFrame(fixed + [sx, sy, sz], columns=list("xyz")).to_csv(root / "lm_pet.csv", index=False)
        extra = 'transform: "t.tfm", landmarks: {fixed: lm_mri.csv, moving: lm_pet.csv}, '
        path = make_study(root, subjects=("s1",), method="file", extra=extra)
        run = run_study(path, progress=None)
        assert run.completed == ["s1"], run.failed
        q = json.loads((root / "out" / "subjects" / "s1" / "registration.json").read_text())["pet_to_mri"]["quality"]
        assert q["truth_error_mean_mm"] == pytest.approx(expected, abs=1e-9)
        assert q["truth_error_max_mm"] == pytest.approx(expected, abs=1e-9)
        assert q["tre_mean_mm"] == pytest.approx(expected, abs=1e-9) and q["tre_landmarks"] == 3
        assert q["tre_independent"] is True
        assert "tre_mean_mm" in (root / "out" / "report.html").read_text()


def test_a_broken_subject_is_reported_and_the_others_complete(tmp_path):
    path = make_study(tmp_path, method="identity")
    broken = tmp_path / "data" / "s2" / "pet.nii.gz"
    broken.write_bytes(b"this is not a NIfTI file")
    run = run_study(path, progress=None)
    assert run.completed == ["s1", "s3"]
    assert list(run.failed) == ["s2"]
    assert "pet.nii.gz" in run.failed["s2"]
    assert not (tmp_path / "out" / "subjects" / "s2").exists()  # nothing half-written
    table = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert sorted(table.subject.unique()) == ["s1", "s3"]
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Failed subjects" in html and "pet.nii.gz" in html
    leftovers = [p.name for p in (tmp_path / "out" / "subjects").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_a_subject_failing_after_its_maps_were_staged_leaves_nothing_behind(tmp_path, monkeypatch):
    """The OME-Zarr of a frame is written by its own task into a staging folder; when the subject's
    write step then fails, the subject fails and its staged maps are removed."""
    from multiscale.pipeline import wiring as tasks

    path = make_study(tmp_path, subjects=("s1",), method="identity")
    staged = []
    real = tasks.frame_maps_step

    def spy(*args):
        store = real(*args)
        staged.append(store)
        return store

    def broken(*args, **kwargs):
        assert staged and staged[0].is_dir()  # the maps were staged before the write step
        raise RuntimeError("disk full")

    monkeypatch.setattr(tasks, "frame_maps_step", spy)
    monkeypatch.setattr(tasks, "write_subject_step", broken)
    run = run_study(path, progress=None)
    assert list(run.failed) == ["s1"] and "disk full" in run.failed["s1"]
    assert staged and not staged[0].exists()
    assert [p.name for p in (tmp_path / "out" / "subjects").iterdir()] == []


def test_resume_recomputes_nothing_that_is_complete(tmp_path):
    path = make_study(tmp_path, subjects=("s1", "s2"), method="identity")
    first = run_study(path, progress=None)
    assert first.completed == ["s1", "s2"]
    subjects = tmp_path / "out" / "subjects"
    names = ("s1", "s2")
    stamps = {s: (subjects / s / SUCCESS_FILE).stat().st_mtime_ns for s in names}
    tables = {s: (subjects / s / "results.parquet").stat().st_mtime_ns for s in names}
    again = run_study(path, resume=True, progress=None)
    assert again.completed == [] and again.skipped == ["s1", "s2"]
    assert {s: (subjects / s / SUCCESS_FILE).stat().st_mtime_ns for s in names} == stamps
    assert {s: (subjects / s / "results.parquet").stat().st_mtime_ns for s in names} == tables
    # a changed input makes that subject (and only it) incomplete
    from ._study_data import make_subject

    make_subject(tmp_path / "data" / "s2", seed=42, shift=SHIFTS["s2"])
    third = run_study(path, resume=True, progress=None)
    assert third.completed == ["s2"] and third.skipped == ["s1"]
    assert (subjects / "s1" / SUCCESS_FILE).stat().st_mtime_ns == stamps["s1"]
    # the cohort table still holds both subjects
    assert sorted(pd.read_parquet(tmp_path / "out" / "results.parquet").subject.unique()) == ["s1", "s2"]
    # a folder without its success marker (an interrupted write) is recomputed
    (subjects / "s1" / SUCCESS_FILE).unlink()
    fourth = run_study(path, resume=True, progress=None)
    assert fourth.completed == ["s1"] and fourth.skipped == ["s2"]


def test_an_analysis_error_names_the_analysis_map_and_region(tmp_path):
    path = make_study(tmp_path, subjects=("s1",), method="identity",
                      analyses="  - {type: radial, name: bad, maps: [pet], masks: [tumour], params: {by: nonsense}}\n")
    run = run_study(path, progress=None)
    assert list(run.failed) == ["s1"]
    assert "analysis 'bad' (radial) of pet in tumour" in run.failed["s1"]


def test_a_frame_analysed_on_a_coarser_grid(tmp_path):
    from multiscale import io

    path = make_study(tmp_path, subjects=("s1",), method="identity")
    text = path.read_text().replace("subjects:\n", "  grids: {mri: {spacing: 1.0}}\nsubjects:\n", 1)
    path.write_text(text)
    run = run_study(path, progress=None)
    assert run.completed == ["s1"], run.failed
    maps = io.load(tmp_path / "out" / "subjects" / "s1" / "maps" / "mri.ome.zarr")
    # 20 voxels of 0.5 mm become 10 of 1 mm, edges kept: first centre at -0.25 + 0.5 = 0.25 mm
    assert maps.shape[1:] == (10, 10, 10) and mi.spacing(maps) == (1.0, 1.0, 1.0)
    np.testing.assert_allclose(mi.origin(maps), (0.25, 0.25, 0.25))
    # the mask stays a mask (nearest), the MRI is smoothed before sampling (no value outside its range)
    tumour = np.asarray(maps.sel(c="mask:tumour"))
    assert set(np.unique(tumour)) == {0.0, 1.0} and 100 < tumour.sum() < 150  # sphere r = 3 mm: 113 mm3
    mri = io.load(tmp_path / "data" / "s1" / "mri.nii.gz")
    coarse = np.asarray(maps.sel(c="mri"))
    assert float(np.asarray(mri).min()) - 1 <= coarse.min() and coarse.max() <= float(np.asarray(mri).max()) + 1
    table = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert table[(table.metric == "shell_n")].value.sum() == tumour.sum()


def test_grids_name_a_reference_frame(tmp_path):
    from multiscale.pipeline.study import StudyError, load_study

    path = make_study(tmp_path, subjects=("s1",), method="identity")
    text = path.read_text().replace("subjects:\n", "  grids: {pet: {spacing: 1.0}}\nsubjects:\n", 1)
    path.write_text(text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "grids:" in t)
    with pytest.raises(StudyError, match=rf"{path}:{line}: defaults.grids.pet: grid for 'pet', which is not a reference"):
        load_study(path)


def test_cohort_figures_are_radial_profiles_and_one_metric_heatmap(three):
    from multiscale.pipeline import report

    root, path, run = three
    table = pd.read_parquet(root / "out" / "results.parquet")
    specs = report.cohort_figure_specs(table)
    assert [kind for _, kind, _ in specs] == ["radial", "scalars"]
    data = specs[1][2]
    assert data["bin"].isna().all() and np.isfinite(data["value"]).all()
    assert set(data.subject) == {"s1", "s2", "s3"}
    assert report.cohort_figure_png("scalars", data).startswith(b"\x89PNG")
    # a large table is cut to the first 60 rows, and the caption says so
    many = pd.DataFrame([{"subject": f"m{i}", "region": "r", "map": "a", "analysis": "x", "metric": f"k{j:02d}",
                          "bin": np.nan, "value": float(i * j), "units": ""} for i in range(2) for j in range(70)])
    (caption, kind, data), = report.cohort_figure_specs(many)
    assert kind == "scalars" and "first 60 of 70 rows" in caption and data.metric.nunique() == 60
    with pytest.raises(ValueError, match="unknown cohort figure kind"):
        report.cohort_figure_png("pie", data)
