"""Hostile study files: masks off their image's grid, path-hostile names, YAML bombs and other input that
used to crash or give a silently wrong result. Each is refused with ``file:line: field: problem; fix`` (or
gives the correct result)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from multiscale import image as mi
from multiscale.errors import LoadError, StudyError
from multiscale.pipeline import study as study_module
from multiscale.pipeline.spec import MaskSpec
from multiscale.pipeline.steps import MAX_GRID_VOXELS, grid_step, load_image_step, load_mask_step
from multiscale.pipeline.study import check_output, load_study
from multiscale.pipeline.wiring import run_subject

from ._study_data import make_study
from .test_study import GOOD, line_of, touch_inputs, write

EXAMPLE = Path(__file__).resolve().parents[2] / "example_datasets" / "study.yaml"


def refused(path: Path, needle_text: str, needle: str, *words: str, check_files: bool = False) -> str:
    """Load ``path``: a StudyError that starts with ``path:line`` of ``needle`` and contains ``words``."""
    with pytest.raises(StudyError) as info:
        load_study(path, check_files=check_files)
    msg = str(info.value)
    assert msg.startswith(f"{path}:{line_of(needle_text, needle)}:"), msg
    for w in words:
        assert w in msg, msg
    return msg


# ---------------------------------------------------------------------------------------------
# 1. a mask must sit on its `on` image's grid, unless the study says `resample: true`
# ---------------------------------------------------------------------------------------------


def shift_mask(folder: Path, dx_mm: float) -> np.ndarray:
    """Move ``tumour.nii.gz``'s origin by ``dx_mm`` along x (same voxels); return the original voxels."""
    im = sitk.ReadImage(str(folder / "tumour.nii.gz"))
    arr = sitk.GetArrayFromImage(im)
    ox, oy, oz = im.GetOrigin()
    im.SetOrigin((ox + dx_mm, oy, oz))
    sitk.WriteImage(im, str(folder / "tumour.nii.gz"))
    return arr


def test_mask_off_its_image_grid_is_refused(tmp_path):
    path = make_study(tmp_path, subjects=("s1",))
    shift_mask(tmp_path / "data" / "s1", 2.0)
    study = load_study(path)
    with pytest.raises(LoadError) as info:
        run_subject(study, study.subjects[0], tmp_path / "out")
    text = str(info.value) + "\n" + "\n".join(getattr(info.value, "__notes__", []))
    for w in ("tumour.nii.gz", "masks.tumour.on", "'mri'", "origin (0.0, 0.0, 2.0)", "origin (0.0, 0.0, 0.0)",
              "resample: true"):
        assert w in text, text
    assert not (tmp_path / "out" / "subjects" / "s1").exists()


def test_mask_resample_true_resamples_onto_the_image_grid(tmp_path):
    path = make_study(tmp_path, subjects=("s1",))
    original = shift_mask(tmp_path / "data" / "s1", 2.0)  # 4 voxels of 0.5 mm along x
    text = path.read_text().replace("on: mri}", "on: mri, resample: true}")
    path.write_text(text)
    subject = load_study(path).subjects[0]
    spec = subject.masks["tumour"]
    assert spec.resample is True
    mri = load_image_step(subject.images["mri"])
    mask = load_mask_step(spec, mri)
    assert mi.same_grid(mask, mri)
    expected = np.zeros_like(original)
    expected[:, :, 4:] = original[:, :, :-4]
    assert np.array_equal(mask.values, expected)


def test_mask_on_its_image_grid_loads_as_before(tmp_path):
    path = make_study(tmp_path, subjects=("s1",))
    subject = load_study(path).subjects[0]
    spec = subject.masks["tumour"]
    assert spec.resample is False
    mri = load_image_step(subject.images["mri"])
    alone, on = load_mask_step(spec), load_mask_step(spec, mri)
    assert np.array_equal(alone.values, on.values)
    assert all(np.array_equal(alone[d].values, on[d].values) for d in alone.dims)


def test_mask_resample_field_is_checked(tmp_path):
    touch_inputs(tmp_path)
    text = GOOD.replace('on: mri}', 'on: mri, resample: yes}')
    refused(write(tmp_path, text), text, "resample: yes", "masks.tumour.resample", "true or false")
    text = GOOD.replace('on: mri}', 'on: mri, options: {resample: true}}')
    refused(write(tmp_path, text, "b.yaml"), text, "options: {resample", "options.resample", "resample: true")


# ---------------------------------------------------------------------------------------------
# 2. names become file and folder names: path-hostile ones are refused when the study is read
# ---------------------------------------------------------------------------------------------

HOSTILE = ["../evil", "a/b", "a\\\\b", ".hidden", "x" * 300, "a\\0b", "..", "a b", "trailing.", "CON", "é"]


@pytest.mark.parametrize("bad", HOSTILE)
@pytest.mark.parametrize("where", ["subject", "image", "mask", "analysis", "reference", "grid"])
def test_path_hostile_names_are_refused(tmp_path, where, bad):
    quoted = f'"{bad}"'
    if where == "subject":
        text, needle = GOOD.replace("  - id: m1\n", f"  - id: {quoted}\n"), f"id: {quoted}"
    elif where == "image":
        text = GOOD.replace("    mri: {path:", f"    {quoted}: {{path:")
        needle = f"{quoted}: {{path:"
    elif where == "mask":
        text, needle = GOOD.replace("    tumour: {path:", f"    {quoted}: {{path:"), f"{quoted}: {{path:"
    elif where == "analysis":
        text = GOOD.replace("{type: uptake, maps", f"{{type: uptake, name: {quoted}, maps")
        needle = f"name: {quoted}"
    elif where == "reference":
        text, needle = GOOD.replace("reference: [mri, fluo]", f"reference: [mri, {quoted}]"), "reference: [mri"
    else:
        text = GOOD.replace("subjects:\n", f"  grids:\n    {quoted}: {{spacing: 1}}\nsubjects:\n", 1)
        needle = f"{quoted}: {{spacing"
    assert text != GOOD
    p = write(tmp_path, text)
    msg = refused(p, text, needle, "is not a usable name", "letters, digits")
    assert len(msg) < 1000


def test_example_study_names_are_valid():
    study = load_study(EXAMPLE, check_files=False)
    assert [s.id for s in study.subjects] == ["mouse01"]


def test_names_equal_up_to_case_are_refused(tmp_path):
    text = GOOD.replace("  - id: m2\n", "  - id: M1\n")
    refused(write(tmp_path, text), text, "id: M1", "'M1' and 'm1' differ only in case")
    text = GOOD.replace("{type: uptake, maps", "{type: uptake, name: Pet, maps").replace(
        "{type: radial, maps", "{type: radial, name: pet, maps")
    refused(write(tmp_path, text, "b.yaml"), text, "name: pet", "differ only in case")


# ---------------------------------------------------------------------------------------------
# 3. YAML bombs, recursive aliases, huge files
# ---------------------------------------------------------------------------------------------


def test_billion_laughs_is_refused_quickly(tmp_path):
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]")
    text = "\n".join(lines) + "\nsubjects: *a9\n"
    p = write(tmp_path, text)
    t0 = time.perf_counter()
    with pytest.raises(StudyError, match=r"(more than 100 YAML alias uses|more than 100000 YAML nodes)"):
        load_study(p, check_files=False)
    assert time.perf_counter() - t0 < 5


def test_many_aliases_are_refused_and_a_few_are_fine(tmp_path):
    many = "x: &x {path: a}\nlist:\n" + "".join("  - *x\n" for _ in range(101))
    p = write(tmp_path, many)
    with pytest.raises(StudyError, match=r"study.yaml:\d+: list\[100\]: more than 100 YAML alias uses"):
        load_study(p, check_files=False)
    # a few aliases (each expanding a whole mapping) are an ordinary use of YAML
    text = GOOD.replace("    tumour: {path:", "    tumour: &t {path:").replace(
        "  registration:", "    rim: *t\n  registration:")
    study = load_study(write(tmp_path, text, "b.yaml"), check_files=False)
    assert study.subjects[0].masks["rim"].path == study.subjects[0].masks["tumour"].path


def test_recursive_alias_and_deep_nesting_are_refused(tmp_path):
    with pytest.raises(StudyError, match="recursive YAML alias"):
        load_study(write(tmp_path, "a: &a [1, *a]\n"), check_files=False)
    with pytest.raises(StudyError, match="nested too deeply"):
        load_study(write(tmp_path, "a: " + "[" * 5000 + "]" * 5000 + "\n", "b.yaml"), check_files=False)


def test_huge_and_binary_study_files_are_refused(tmp_path):
    p = tmp_path / "big.yaml"
    p.write_bytes(b"# padding\n" * (study_module.MAX_STUDY_BYTES // 10 + 1))
    with pytest.raises(StudyError, match="bytes \\(at most 5242880\\)"):
        load_study(p, check_files=False)
    p = tmp_path / "latin1.yaml"
    p.write_bytes(b"name: toy\ndescription: caf\xe9\n")
    with pytest.raises(StudyError, match=r"latin1\.yaml:2: not UTF-8 text"):
        load_study(p, check_files=False)


# ---------------------------------------------------------------------------------------------
# 4. other hostile input
# ---------------------------------------------------------------------------------------------


def test_dates_stay_strings(tmp_path):
    """YAML 1.1 timestamps (``2024-01-01``) stay strings, as in YAML 1.2: an agent or id may look like a date."""
    text = GOOD.replace("modality: MR, aspect: anatomy}", "modality: MR, aspect: anatomy, agent: 2024-01-01}").replace(
        "  - id: m2\n", "  - id: 2024-05-06\n")
    study = load_study(write(tmp_path, text), check_files=False)
    assert study.subjects[0].images["mri"].agent == "2024-01-01"
    assert study.subjects[1].id == "2024-05-06"
    study.subject_fingerprint(study.subjects[1])


def test_numbers_where_names_are_expected_keep_their_text(tmp_path):
    text = GOOD.replace("  - id: m1\n", "  - id: 007\n").replace(
        "{type: uptake, maps", "{type: uptake, name: 1.10, maps")
    study = load_study(write(tmp_path, text), check_files=False)
    assert study.subjects[0].id == "007"
    assert study.subjects[0].images["mri"].path.parent.name == "007"
    assert study.analyses[0].name == "1.10"


def test_non_string_keys_are_refused(tmp_path):
    text = GOOD.replace("    mri: {path:", "    1: {path:")
    refused(write(tmp_path, text), text, "    1: {path:", "defaults.images: key '1' is not a string", "quote it")
    text = GOOD.replace("targets: {doxorubicin: 544.1813,", "targets: {null: 544.1813,")
    refused(write(tmp_path, text, "b.yaml"), text, "targets: {null", "key 'null' is not a string")


@pytest.mark.parametrize(
    "old, new, needle, words",
    [
        ("maps: [pet], masks: [tumour]}", "maps: [pet, pet], masks: [tumour]}", "maps: [pet, pet]",
         ["map 'pet' is already named", "repeated"]),
        ('pairs: [["msi:doxorubicin", "fluo:nanoparticle dye"]]', 'pairs: [["msi:haem", " msi:haem"]]',
         "pairs: [[", ["pair (msi:haem,  msi:haem) compares a map with itself"]),
        ('pairs: [["msi:doxorubicin", "fluo:nanoparticle dye"]]', 'pairs: [["msi:haem", fluo], [fluo, "msi:haem"]]',
         "pairs: [[", ["is named twice"]),
        ("maps: [pet], masks: [tumour]}", "maps: [pet], masks: [tumour, tumour]}", "masks: [tumour, tumour]",
         ["mask 'tumour' is named twice"]),
        ("targets: {doxorubicin: 544.1813, haem: 616.1767}", "targets: {doxorubicin: 544.1813, dox2: 544.1813}",
         "targets: {doxorubicin", ["targets 'doxorubicin' and 'dox2' have the same m/z"]),
        ("targets: {doxorubicin: 544.1813,", "targets: {doxorubicin: .nan,", "targets: {doxorubicin",
         ["m/z of target 'doxorubicin' must be a positive number"]),
        ("tumour: {path: \"{subject}/tumour.nii.gz\", on: mri}", "tumour: {path: \"{subject}/tumour.nii.gz\", on: mri, "
         "label: 0}", "label: 0", ["masks.tumour.label", "background"]),
        ("reference: [mri, fluo]", "reference: [mri, fluo, mri]", "reference: [mri", ["listed twice"]),
        ("- {moving: pet, fixed: mri, method: rigid}", "- {moving: pet, fixed: \"pet:x\", method: rigid}",
         "moving: pet, fixed", ["registers 'pet' to itself"]),
        ("subjects:\n", "  grids:\n    mri: {spacing: .nan}\nsubjects:\n", "spacing: .nan", ["positive number"]),
        ("subjects:\n", "  grids: [mri]\nsubjects:\n", "grids: [mri]", ["grids must map"]),
        ("{path: \"{subject}/mri.nii.gz\",", "{path: \"\",", 'path: ""', ["images.mri.path", "empty"]),
        ("{path: \"{subject}/mri.nii.gz\",", "{path: \"a\\0b\",", 'path: "a', ["images.mri.path", "NUL"]),
    ],
)
def test_hostile_fields_are_refused_with_their_line(tmp_path, old, new, needle, words):
    text = GOOD.replace(old, new, 1)
    assert text != GOOD
    refused(write(tmp_path, text), text, needle, *words)


def test_empty_and_missing_analysis_masks_mean_the_same(tmp_path):
    a = load_study(write(tmp_path, GOOD.replace("{type: uptake, maps: [pet], masks: [tumour]}",
                                                "{type: uptake, maps: [pet], masks: []}")), check_files=False)
    b = load_study(write(tmp_path, GOOD.replace("{type: uptake, maps: [pet], masks: [tumour]}",
                                                "{type: uptake, maps: [pet]}"), "b.yaml"), check_files=False)
    assert a.analyses[0].masks == b.analyses[0].masks == ()


def test_a_grid_above_the_voxel_cap_is_refused_before_it_is_allocated():
    ref = mi.spatial_image(np.zeros((10, 10, 10), np.float32), spacing=1.0)
    with pytest.raises(StudyError, match=r"grids\.mri\.spacing: 1e-05 mm .* voxels \(at most 2147483648\)"):
        grid_step(ref, 1e-5, "mri")
    assert MAX_GRID_VOXELS == 2**31
    assert grid_step(ref, 2.0, "mri").shape == (5, 5, 5)


def test_output_that_would_replace_inputs_is_refused(tmp_path):
    """A subject's outputs replace ``<output>/subjects/<id>``: inputs there would be deleted by the run."""
    text = GOOD.replace("output: out", "output: .").replace('"{subject}/', '"subjects/{subject}/')
    p = write(tmp_path, text)
    msg = refused(p, text, "output: .", "output: input file", "subjects/m1/mri.nii.gz", "choose another output")
    assert "would delete" in msg
    study = load_study(write(tmp_path, GOOD, "ok.yaml"), check_files=False)
    check_output(study, tmp_path)  # inputs in <output>/m1, outputs in <output>/subjects/m1: fine
    # an output given at run time (multiscale run --output) is checked the same way
    inner = tmp_path / "subjects"
    inner.mkdir()
    study = load_study(write(inner, GOOD), check_files=False)  # inputs in subjects/m1/...
    with pytest.raises(StudyError, match="lies in .*subjects/m1, which the run replaces"):
        check_output(study, tmp_path)
def test_mask_spec_resample_defaults_to_false():
    assert MaskSpec("m", Path("m.nii.gz"), "mri").resample is False
