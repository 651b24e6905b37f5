"""The study file: parsing, defaults, and errors that name the file, the line and the field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from multiscale.pipeline.graph import chain_to_reference, frames_of
from multiscale.pipeline.study import StudyError, load_study, parse_map_name

GOOD = """\
name: toy
output: out
reference: [mri, fluo]
defaults:
  images:
    mri: {path: "{subject}/mri.nii.gz", modality: MR, aspect: anatomy}
    pet: {path: "{subject}/pet.nii.gz", modality: pt, aspect: nanoparticle, units: SUVbw}
    fluo: {path: "{subject}/fluo.ome.tif", modality: FLUO}
    msi:
      path: "{subject}/msi.imzML"
      modality: MSI
      targets: {doxorubicin: 544.1813, haem: 616.1767}
      options: {tol: 5, tol_unit: ppm}
  masks:
    tumour: {path: "{subject}/tumour.nii.gz", on: mri}
  registration:
    - {moving: pet, fixed: mri, method: rigid}
    - {moving: "msi:haem", fixed: "fluo:vessels", method: affine}
subjects:
  - id: m1
  - id: m2
    images:
      pet: {path: other/pet.nii.gz}
analyses:
  - {type: uptake, maps: [pet], masks: [tumour]}
  - {type: radial, maps: [pet], masks: [tumour], params: {shells: 4}}
  - {type: colocalisation, pairs: [["msi:doxorubicin", "fluo:nanoparticle dye"]]}
"""


def write(tmp_path: Path, text: str, name: str = "study.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def touch_inputs(tmp_path: Path, subjects=("m1", "m2")) -> None:
    for s in subjects:
        (tmp_path / s).mkdir(exist_ok=True)
        for f in ("mri.nii.gz", "pet.nii.gz", "fluo.ome.tif", "msi.imzML", "msi.ibd", "tumour.nii.gz"):
            (tmp_path / s / f).write_bytes(b"x")
    (tmp_path / "other").mkdir(exist_ok=True)
    (tmp_path / "other" / "pet.nii.gz").write_bytes(b"x")


def test_good_study_parses_with_defaults_and_overrides(tmp_path):
    touch_inputs(tmp_path)
    study = load_study(write(tmp_path, GOOD))
    assert study.name == "toy"
    assert study.output == tmp_path / "out"
    m1, m2 = study.subjects
    assert m1.images["mri"].path == tmp_path / "m1" / "mri.nii.gz"
    # the subject's own field replaces one field of the default and keeps the others
    assert m2.images["pet"].path == tmp_path / "other" / "pet.nii.gz"
    assert m2.images["pet"].units == "SUVbw"
    assert m1.images["pet"].modality == "PT"  # modality codes are case-insensitive
    assert m1.images["msi"].load_options() == {"tol": 5, "tol_unit": "ppm", "channels": [544.1813, 616.1767]}
    assert frames_of(m1) == {"mri": "mri", "pet": "mri", "fluo": "fluo", "msi": "fluo"}
    assert [a.name for a in study.analyses] == ["uptake0", "radial1", "colocalisation2"]
    # the imzML's .ibd companion is an input too (checksummed for resume)
    assert tmp_path / "m1" / "msi.ibd" in m1.input_files()


def test_fingerprint_changes_with_parameters(tmp_path):
    touch_inputs(tmp_path)
    a = load_study(write(tmp_path, GOOD))
    b = load_study(write(tmp_path, GOOD.replace("shells: 4", "shells: 5"), "b.yaml"))
    assert a.subject_fingerprint(a.subjects[0]) != b.subject_fingerprint(b.subjects[0])
    assert a.subject_fingerprint(a.subjects[0]) == load_study(tmp_path / "study.yaml").subject_fingerprint(a.subjects[0])


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize(
    "old, new, needle, words",
    [
        ("modality: MR", "modality: MRI", "modality: MRI", ["modality", "MRI", "MR"]),
        ("aspect: anatomy}", "aspect: anatomy, colour: red}", "colour: red", ["unknown field", "colour"]),
        ("method: rigid}", "method: rigidd}", "method: rigidd", ["method", "rigid"]),
        ("{type: uptake,", "{type: uptak,", "type: uptak", ["analysis type", "uptake"]),
        ("maps: [pet], masks: [tumour]}", "maps: [ct], masks: [tumour]}", "maps: [ct]", ["unknown image", "ct"]),
        ("masks: [tumour], params", "masks: [tumor], params", "masks: [tumor]", ["unknown mask", "tumor"]),
        ("targets: {doxorubicin: 544.1813,", "targets: {doxorubicin: -1,", "doxorubicin: -1", ["m/z", "positive"]),
        ("- {moving: pet, fixed: mri, method: rigid}", "- {moving: pet, fixed: ct, method: rigid}",
         "fixed: ct", ["fixed", "ct", "not an image"]),
        ("tumour: {path: \"{subject}/tumour.nii.gz\", on: mri}", "tumour: {path: \"{subject}/tumour.nii.gz\", on: us}",
         "on: us", ["unknown image", "us"]),
        # params bind to the family's table when the study is read
        ("params: {shells: 4}", "params: {shels: 4}", "shels: 4",
         ["analyses[1].params.shels: unknown parameter of radial; did you mean 'shells'?"]),
        ("params: {shells: 4}", "params: {shells: four}", "shells: four",
         ["analyses[1].params.shells", "'four' is not a valid value", "int"]),
        ("{type: colocalisation, pairs:", "{type: colocalisation, maps: [pet], pairs:", "type: colocalisation",
         ["colocalisation takes pairs"]),
        ("{type: radial, maps: [pet], masks: [tumour],", "{type: radial, maps: [pet], masks: [tumour], "
         "inputs: {vesels: tumour},", "inputs: {vesels", ["unknown input role 'vesels'", "did you mean 'vessels'?"]),
    ],
)
def test_errors_name_file_line_and_field(tmp_path, old, new, needle, words):
    touch_inputs(tmp_path)
    text = GOOD.replace(old, new)
    assert text != GOOD
    p = write(tmp_path, text)
    with pytest.raises(StudyError) as info:
        load_study(p)
    msg = str(info.value)
    assert msg.startswith(f"{p}:{line_of(text, needle)}:"), msg
    for w in words:
        assert w in msg, msg


def test_yaml_syntax_error_names_the_line(tmp_path):
    text = GOOD.replace("  - id: m2\n", "  - id: m2\n   bad: [unclosed\n")
    p = write(tmp_path, text)
    with pytest.raises(StudyError, match="YAML syntax error") as info:
        load_study(p, check_files=False)
    line = int(str(info.value).split(":")[1])
    assert abs(line - line_of(text, "bad: [unclosed")) <= 1


def test_duplicate_keys_are_refused(tmp_path):
    text = GOOD.replace("name: toy\n", "name: toy\nname: again\n")
    p = write(tmp_path, text)
    with pytest.raises(StudyError, match=r":2: name: duplicate key \(first at line 1\)"):
        load_study(p, check_files=False)


def test_missing_file_is_named(tmp_path):
    touch_inputs(tmp_path)
    (tmp_path / "m2" / "fluo.ome.tif").unlink()
    p = write(tmp_path, GOOD)
    with pytest.raises(StudyError, match=r"file not found: .*m2/fluo\.ome\.tif") as info:
        load_study(p)
    # the path came from the defaults: the error points at the defaults' line
    assert f"{p}:{line_of(GOOD, 'fluo: {path')}:" in str(info.value)
    load_study(p, check_files=False)  # structure alone is fine


def test_disconnected_graph_is_refused(tmp_path):
    text = GOOD.replace('    - {moving: "msi:haem", fixed: "fluo:vessels", method: affine}\n', "")
    p = write(tmp_path, text)
    with pytest.raises(StudyError, match="'msi' is not connected to a reference frame"):
        load_study(p, check_files=False)


def test_cycle_and_double_registration_are_refused(tmp_path):
    text = GOOD.replace("reference: [mri, fluo]", "reference: [mri]").replace(
        '    - {moving: "msi:haem", fixed: "fluo:vessels", method: affine}\n',
        "    - {moving: msi, fixed: fluo}\n    - {moving: fluo, fixed: msi}\n")
    with pytest.raises(StudyError, match="cycle"):
        load_study(write(tmp_path, text), check_files=False)
    text = GOOD.replace('    - {moving: "msi:haem"', "    - {moving: pet, fixed: fluo}\n    - {moving: \"msi:haem\"")
    with pytest.raises(StudyError, match="registered twice"):
        load_study(write(tmp_path, text, "b.yaml"), check_files=False)


def test_pairs_across_frames_are_refused(tmp_path):
    text = GOOD.replace('pairs: [["msi:doxorubicin", "fluo:nanoparticle dye"]]', 'pairs: [["msi:doxorubicin", pet]]')
    with pytest.raises(StudyError, match="spans two reference frames"):
        load_study(write(tmp_path, text), check_files=False)


def test_chain_resolution_order(tmp_path):
    text = GOOD.replace("reference: [mri, fluo]", "reference: [mri]").replace(
        '{moving: "msi:haem", fixed: "fluo:vessels", method: affine}',
        '{moving: "msi:haem", fixed: "fluo:vessels", method: affine}\n    - {moving: fluo, fixed: mri, method: rigid}')
    text = text.replace('pairs: [["msi:doxorubicin", "fluo:nanoparticle dye"]]', 'pairs: [["msi:doxorubicin", pet]]')
    study = load_study(write(tmp_path, text), check_files=False)
    chain = chain_to_reference(study.subjects[0], "msi")
    assert [e.name for e in chain] == ["msi_to_fluo", "fluo_to_mri"]
    assert frames_of(study.subjects[0])["msi"] == "mri"


def test_parse_map_name():
    assert parse_map_name("fluo:nanoparticle dye") == ("fluo", "nanoparticle dye")
    assert parse_map_name("msi:544.18") == ("msi", "544.18")


def test_inputs_name_optional_roles(tmp_path):
    touch_inputs(tmp_path)
    text = GOOD.replace("{type: radial, maps: [pet], masks: [tumour],", "{type: radial, maps: [pet], masks: [tumour], "
                        "inputs: {vessels: tumour},")
    study = load_study(write(tmp_path, text))
    assert study.analyses[1].inputs == {"vessels": "tumour"}
    bad = GOOD.replace("{type: radial, maps: [pet], masks: [tumour],", "{type: radial, maps: [pet], masks: [tumour], "
                       "inputs: {vessels: \"fluo:vessels\"},")
    with pytest.raises(StudyError, match="lives in frame 'fluo'"):
        load_study(write(tmp_path, bad, "bad.yaml"))
