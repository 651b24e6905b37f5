"""The study design in the study file: covariates and outcomes per subject, or a CSV joined by subject id."""

from __future__ import annotations

import re

import pytest

from multiscale.errors import StudyError
from multiscale.pipeline.study import load_study

HEAD = """\
name: cohort
output: out
reference: mri
defaults:
  images:
    mri: {path: "data/{subject}/mri.nii.gz", modality: MR}
"""


def _study(tmp_path, subjects: str, top: str = "", csv: str | None = None):
    for sid in ("m1", "m2", "m3"):
        (tmp_path / "data" / sid).mkdir(parents=True, exist_ok=True)
        (tmp_path / "data" / sid / "mri.nii.gz").write_bytes(b"")
    if csv is not None:
        (tmp_path / "design.csv").write_text(csv)
    path = tmp_path / "study.yaml"
    path.write_text(HEAD + top + "subjects:\n" + subjects)
    return path


def _error(path) -> str:
    with pytest.raises(StudyError) as info:
        load_study(path, check_files=False)
    return str(info.value)


SUBJECTS = """\
  - id: m1
    covariates: {group: treated, dose_mg_kg: 5, sex: F}
    outcomes: {response: 0.4, pfs_days: 120, progressed: true}
  - id: m2
    covariates: {group: control, dose_mg_kg: 0, sex: M}
    outcomes: {response: 0.1, pfs_days: 60, progressed: false}
"""


def test_covariates_and_outcomes_under_each_subject(tmp_path):
    study = load_study(_study(tmp_path, SUBJECTS), check_files=False)
    d = study.design
    assert d.covariates == ("group", "dose_mg_kg", "sex") and d.outcomes == ("response", "pfs_days", "progressed")
    frame = d.frame()
    assert frame.loc["m1", "group"] == "treated" and frame.loc["m2", "dose_mg_kg"] == 0
    assert frame.loc["m1", "progressed"] is True or frame.loc["m1", "progressed"] == 1


def test_design_does_not_change_a_subjects_fingerprint(tmp_path):
    a = load_study(_study(tmp_path, SUBJECTS), check_files=False)
    b = load_study(_study(tmp_path, SUBJECTS.replace("treated", "vehicle")), check_files=False)
    assert a.subject_fingerprint(a.subjects[0]) == b.subject_fingerprint(b.subjects[0])


CSV = "subject,group,weight_g,response\nm1,treated,21.5,0.4\nm2,control,20.1,0.1\nm3,control,22.0,0.2\n"
THREE = "  - id: m1\n  - id: m2\n  - id: m3\n"


def test_csv_table_joined_by_subject_id(tmp_path):
    path = _study(tmp_path, THREE, top="covariates: {file: design.csv}\noutcomes: [response]\n", csv=CSV)
    d = load_study(path, check_files=False).design
    assert d.covariates == ("group", "weight_g") and d.outcomes == ("response",)
    assert d.frame().loc["m3", "weight_g"] == 22.0 and str(tmp_path / "design.csv") in d.source


def test_csv_with_a_subject_missing_names_the_subject_and_the_line(tmp_path):
    path = _study(tmp_path, THREE, top="covariates: {file: design.csv, id: subject}\n",
                  csv="subject,group\nm1,treated\nm2,control\n")
    msg = _error(path)
    assert re.search(r"study\.yaml:\d+: covariates\.file: design\.csv has no row for subject\(s\) \['m3'\]", msg), msg


def test_csv_with_an_extra_subject_names_its_line(tmp_path):
    path = _study(tmp_path, THREE, top="covariates: {file: design.csv}\n", csv=CSV + "m9,treated,20.0,0.3\n")
    msg = _error(path)
    assert re.search(r"design\.csv:5: subject: 'm9' is not a subject of the study", msg), msg


def test_csv_with_a_repeated_subject(tmp_path):
    path = _study(tmp_path, THREE, top="covariates: {file: design.csv}\n", csv=CSV + "m2,treated,20.0,0.3\n")
    assert re.search(r"design\.csv:5: subject: subject 'm2' repeats line 3", _error(path))


def test_non_numeric_outcome_in_the_table(tmp_path):
    path = _study(tmp_path, THREE, top="covariates: {file: design.csv}\noutcomes: [response]\n",
                  csv=CSV.replace("0.1", "partial"))
    assert re.search(r"design\.csv:3: response: outcome must be a number", _error(path))


def test_non_numeric_outcome_under_a_subject(tmp_path):
    msg = _error(_study(tmp_path, SUBJECTS.replace("response: 0.1", "response: good")))
    assert re.search(r"study\.yaml:\d+: subjects\[1\]\.outcomes\.response: outcome 'response' must be a number", msg)


def test_table_and_subject_disagree(tmp_path):
    subjects = "  - id: m1\n    covariates: {group: control}\n  - id: m2\n  - id: m3\n"
    path = _study(tmp_path, subjects, top="covariates: {file: design.csv}\n", csv=CSV)
    assert "subjects[0].covariates.group: group = 'control' here but 'treated' in" in _error(path)


@pytest.mark.parametrize("bad, expected", [
    ("    covariates: [treated]\n", r"subjects\[0\]\.covariates: covariates must map names to values"),
    ("    covariates: {group: [a, b]}\n", r"covariate 'group' must be one value"),
    ("    covariates: {map: x}\n", r"covariate name 'map' is a column of the results table"),
    ("    covariatse: {group: a}\n", r"unknown field 'covariatse' in subject; did you mean 'covariates'\?"),
])
def test_bad_covariates_name_the_field(tmp_path, bad, expected):
    msg = _error(_study(tmp_path, "  - id: m1\n" + bad))
    assert re.search(r"study\.yaml:\d+: ", msg) and re.search(expected, msg), msg


def test_missing_table_and_missing_id_column(tmp_path):
    path = _study(tmp_path, THREE, top="covariates: {file: nothere.csv}\n")
    with pytest.raises(StudyError, match=r"covariates\.file: file not found"):
        load_study(path, check_files=True)
    path = _study(tmp_path, THREE, top="covariates: {file: design.csv, id: animal}\n", csv=CSV)
    assert re.search(r"covariates\.id: design\.csv has no column 'animal'", _error(path))


@pytest.mark.parametrize("report, expected", [
    ("report: {mode: pdf}\n", r"report\.mode: unknown report mode 'pdf'"),
    ("report: {by: grup}\n", r"report\.by: 'grup' is not a column of the study design; did you mean 'group'\?"),
    ("report: {survival: {duration: pfs_days}}\n", r"report\.survival: survival needs 'event'"),
    ("report: {templates: nowhere}\n", r"report\.templates: templates folder not found"),
    ("report: {mdoe: folder}\n", r"unknown field 'mdoe' in report; did you mean 'mode'\?"),
])
def test_report_options_are_validated(tmp_path, report, expected):
    msg = _error(_study(tmp_path, SUBJECTS, top=report))
    assert re.search(r"study\.yaml:\d+: ", msg) and re.search(expected, msg), msg


def test_report_options_accepted(tmp_path):
    top = "report: {mode: folder, by: group, survival: {duration: pfs_days, event: progressed, covariates: [group]}}\n"
    study = load_study(_study(tmp_path, SUBJECTS, top=top), check_files=False)
    assert study.report["mode"] == "folder" and study.report["survival"]["event"] == "progressed"


def test_folder_report_asks_for_svg_figures(tmp_path):
    """A folder report offers SVG downloads, so the subject figures are drawn as SVG too; a one-file report not."""
    folder = load_study(_study(tmp_path, SUBJECTS, top="report: {mode: folder}\n"), check_files=False)
    assert folder.figure_formats == ("png", "svg")
    no_downloads = load_study(_study(tmp_path, SUBJECTS, top="report: {mode: folder, downloads: false}\n"),
                              check_files=False)
    assert no_downloads.figure_formats == ("png",)
    assert load_study(_study(tmp_path, SUBJECTS), check_files=False).figure_formats == ("png",)
