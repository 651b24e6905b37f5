"""Faults of a study run: stale or damaged outputs, someone else's folder, kills mid-write, full or read-only disks,
warnings on the way from the loaders to the report (issue 14)."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys

import pandas as pd
import pytest

from multiscale.errors import StudyError
from multiscale.pipeline import outputs
from multiscale.pipeline import wiring as tasks
from multiscale.pipeline.outputs import (
    COMPLETE,
    OUTPUT_MARKER,
    RUN_LOCK,
    SUCCESS_FILE,
    subject_is_complete,
    subject_status,
)
from multiscale.pipeline.provenance import file_sha256
from multiscale.pipeline.runner import SUBJECTS_COLUMNS, collect_results, run_study
from multiscale.pipeline.study import load_study

from ._study_data import SHIFTS, make_study, make_subject


def _subjects_csv(out):
    return pd.read_csv(out / "subjects.csv", keep_default_na=False).set_index("subject")


def _leftovers(out):
    top = [p.name for p in out.iterdir() if p.name.startswith(".") and p.name != OUTPUT_MARKER]
    sub = [p.name for p in (out / "subjects").iterdir() if p.name.startswith(".")] if (out / "subjects").is_dir() else []
    return top + sub


@pytest.fixture(scope="module")
def done_two(tmp_path_factory):
    """Two subjects (identity registration) run once, for the checks that change nothing."""
    root = tmp_path_factory.mktemp("two")
    path = make_study(root, subjects=("s1", "s2"), method="identity")
    run = run_study(path, progress=None)
    assert run.completed == ["s1", "s2"], run.failed
    return root, path


def _fresh(tmp_path):
    """Two subjects run into ``tmp_path/out`` (input checksums are by absolute path: a copy would be stale)."""
    path = make_study(tmp_path, subjects=("s1", "s2"), method="identity")
    run = run_study(path, progress=None)
    assert run.completed == ["s1", "s2"], run.failed
    return tmp_path, path


# -- 1. the cohort table holds only subjects computed from the current inputs and settings ------------------

def test_cohort_leaves_out_stale_and_failed_subjects_and_lists_them(tmp_path):
    path = make_study(tmp_path, subjects=("s1", "s2", "s3"), method="identity")
    first = run_study(path, progress=None)
    assert first.completed == ["s1", "s2", "s3"]
    out = tmp_path / "out"
    subj = _subjects_csv(out)
    assert list(subj.reset_index().columns) == list(SUBJECTS_COLUMNS)
    assert set(subj.status) == {"completed"} and subj.in_table.all()
    study = load_study(path)
    assert subj.loc["s1", "fingerprint"] == study.subject_fingerprint(study.subject("s1"))
    # results.csv keeps the schema's columns only
    assert "status" not in pd.read_csv(out / "results.csv").columns

    # s2's input changes; s3 is rerun alone and fails: neither may stay in the table
    make_subject(tmp_path / "data" / "s2", seed=42, shift=SHIFTS["s2"])
    (tmp_path / "data" / "s3" / "pet.nii.gz").write_bytes(b"not a NIfTI file")
    logs = []
    run = run_study(path, subjects=["s3"], progress=logs.append)
    assert list(run.failed) == ["s3"]
    assert (out / "subjects" / "s3" / SUCCESS_FILE).is_file()  # the old folder is still there, but not used
    table = pd.read_parquet(out / "results.parquet")
    assert sorted(table.subject.unique()) == ["s1"]
    subj = _subjects_csv(out)
    assert subj.loc["s1", "status"] == "from an earlier run" and subj.loc["s1", "in_table"]
    assert subj.loc["s2", "status"].startswith("stale: input files changed") and "s2/mri.nii.gz" in subj.loc["s2", "status"]
    assert subj.loc["s3", "status"] == "failed" and "pet.nii.gz" in subj.loc["s3", "error"]
    assert not subj.loc["s2", "in_table"] and not subj.loc["s3", "in_table"]
    assert any("left out of the table" in line and "s2" in line for line in logs)
    prov = json.loads((out / "provenance.json").read_text())
    assert {s["subject"]: s["status"] for s in prov["statuses"]}["s3"] == "failed"
    assert prov["results"]["subjects"] == ["s1"]
    html = (out / "report.html").read_text()
    assert "Subjects left out of the table" in html and "stale: input files changed" in html
    assert "id='s2'" not in html and "id='s3'" not in html and "id='s1'" in html
    # s3's old folder was computed from the pet.nii.gz that was since overwritten
    assert subject_status(study, study.subject("s3"), out).startswith("stale: input files changed")
    assert sorted(collect_results(study, out).subject.unique()) == ["s1"]


def test_changed_settings_make_every_subject_stale(tmp_path):
    root, path = _fresh(tmp_path)
    study = load_study(path)
    assert subject_status(study, study.subject("s1"), root / "out") == COMPLETE
    path.write_text(path.read_text().replace("n_boot: 50", "n_boot: 60"))
    changed = load_study(path)
    assert subject_status(changed, changed.subject("s1"), root / "out").startswith("stale: study settings changed")
    assert collect_results(changed, root / "out").empty


def test_truncated_or_changed_outputs_are_detected_and_recomputed(tmp_path):
    root, path = _fresh(tmp_path)
    out = root / "out"
    study = load_study(path)
    s1 = out / "subjects" / "s1"
    marker = json.loads((s1 / SUCCESS_FILE).read_text())
    assert marker["sizes"]["results.csv"] == (s1 / "results.csv").stat().st_size
    assert marker["sha256"]["results.parquet"] == file_sha256(s1 / "results.parquet")
    assert marker["sizes"]["maps/mri.ome.zarr"] > 0
    before = (out / "results.csv").read_bytes()

    fig = next((s1 / "figures").iterdir())
    fig.write_bytes(fig.read_bytes()[:100])  # truncated
    assert subject_status(study, study.subject("s1"), out).startswith(f"corrupt: figures/{fig.name} has 100 bytes")
    # a results.parquet of the same size but other bytes
    s2 = out / "subjects" / "s2" / "results.parquet"
    data = bytearray(s2.read_bytes())
    data[len(data) // 2] ^= 0xFF
    s2.write_bytes(bytes(data))
    assert subject_status(study, study.subject("s2"), out) == \
        "corrupt: results.parquet differs from what was written (sha256)"
    assert collect_results(study, out).empty
    run = run_study(path, resume=True, progress=None)
    assert run.completed == ["s1", "s2"] and run.skipped == []
    assert (out / "results.csv").read_bytes() == before


# -- 2. never overwrite a user's files; recover what a kill left -----------------------------------------------

def test_a_folder_with_someone_elses_results_is_refused(tmp_path, capsys):
    from multiscale.cli import main

    path = make_study(tmp_path, subjects=("s1",), method="identity")
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.csv").write_text("my,own\n1,2\n")
    with pytest.raises(StudyError, match=r"out: output folder already holds results\.csv that multiscale did "
                                         r"not write.*--output.*--force"):
        run_study(path, progress=None)
    assert main(["run", str(path), "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "--force" in err
    assert (out / "results.csv").read_text() == "my,own\n1,2\n" and sorted(p.name for p in out.iterdir()) == ["results.csv"]
    # --force writes over them, and marks the folder as multiscale's
    assert main(["run", str(path), "--workers", "0", "--force"]) == 0
    assert (out / OUTPUT_MARKER).is_file() and "subject" in (out / "results.csv").read_text()
    assert main(["run", str(path), "--workers", "0"]) == 0  # ours from now on


def test_an_output_folder_of_an_older_multiscale_is_adopted(tmp_path):
    root, path = _fresh(tmp_path)
    (root / "out" / OUTPUT_MARKER).unlink()  # written before the marker existed: its provenance.json is ours
    run = run_study(path, resume=True, progress=None)
    assert run.skipped == ["s1", "s2"] and (root / "out" / OUTPUT_MARKER).is_file()


def test_a_live_run_holds_the_folder_and_a_dead_runs_lock_is_taken_over(tmp_path):
    root, path = _fresh(tmp_path)
    lock = root / "out" / RUN_LOCK
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "token": "other"}))
    with pytest.raises(StudyError, match=rf"another multiscale run \(pid {os.getpid()}.*delete .*{RUN_LOCK}"):
        run_study(path, resume=True, progress=None)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock.write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname(), "token": "dead"}))
    run = run_study(path, resume=True, progress=None)
    assert run.skipped == ["s1", "s2"] and not lock.exists()


def test_a_kill_between_the_renames_of_a_swap_loses_no_subject(tmp_path, monkeypatch):
    """Killed after the previous folder was moved aside and before the new one went in: the next run puts it back,
    removes the dead run's staging and temporary files, and the table is the same."""
    root, path = _fresh(tmp_path)
    out = root / "out"
    before = (out / "results.csv").read_bytes()

    def killed_mid_swap(tmp, final):
        final.rename(final.parent / f".{final.name}.old-0123abcd")
        raise KeyboardInterrupt

    monkeypatch.setattr(outputs, "replace_folder", killed_mid_swap)
    with pytest.raises(KeyboardInterrupt):
        run_study(path, subjects=["s2"], progress=None)
    monkeypatch.undo()
    subjects = out / "subjects"
    assert not (subjects / "s2").exists() and (subjects / ".s2.old-0123abcd").is_dir()
    assert not (out / RUN_LOCK).exists()
    # what a SIGKILL would also leave: staging and temporary files of that run, and its lock
    (subjects / ".s2.k1l2m3n4.tmp").mkdir()
    (subjects / ".s1.staging-deadbeef.x9y8z7.tmp").mkdir()
    (out / ".results.tmp-0badf00d.parquet").write_bytes(b"half")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (out / RUN_LOCK).write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname(), "token": "x"}))
    logs = []
    run = run_study(path, resume=True, progress=logs.append)
    assert run.skipped == ["s1", "s2"] and run.completed == []
    assert any("restored s2 from .s2.old-0123abcd" in line for line in logs)
    assert _leftovers(out) == []
    assert (out / "results.csv").read_bytes() == before


def test_killed_after_staging_then_resumed_gives_the_same_table(tmp_path, monkeypatch):
    root, path = _fresh(tmp_path)
    reference = (root / "out" / "results.csv").read_bytes()
    import shutil

    shutil.rmtree(root / "out")
    real = tasks.write_subject_step

    def killed(study, subject, output, *args, **kwargs):
        stores = args[-1]
        assert stores and all(p.is_dir() for p in stores.values())  # the maps were staged
        if subject.id == "s2":
            raise SystemExit("killed")
        return real(study, subject, output, *args, **kwargs)

    monkeypatch.setattr(tasks, "write_subject_step", killed)
    with pytest.raises(SystemExit):
        run_study(path, progress=None)
    monkeypatch.undo()
    out = root / "out"
    assert (out / "subjects" / "s1" / SUCCESS_FILE).is_file() and not (out / "subjects" / "s2").exists()
    assert _leftovers(out) == []
    run = run_study(path, resume=True, progress=None)
    assert run.skipped == ["s1"] and run.completed == ["s2"]
    assert (out / "results.csv").read_bytes() == reference


def test_the_report_and_provenance_name_the_table_they_describe(done_two):
    root, _ = done_two
    out = root / "out"
    prov = json.loads((out / "provenance.json").read_text())
    sha = file_sha256(out / "results.csv")
    assert prov["results"]["sha256"] == sha and prov["results"]["parquet_sha256"] == file_sha256(out / "results.parquet")
    assert prov["results"]["rows"] == len(pd.read_csv(out / "results.csv"))
    html = (out / "report.html").read_text()
    assert sha in html and f"of {prov['results']['rows']} rows" in html
    assert [p.name for p in out.iterdir() if p.name.startswith(".cohort")] == []


def test_replace_folder_keeps_the_previous_folder_when_the_new_cannot_go_in(tmp_path):
    from multiscale._util import recover_replaced_folders, replace_folder

    final = tmp_path / "s1"
    final.mkdir()
    (final / "a").write_text("old")
    staged = tmp_path / ".s1.x.tmp"
    staged.mkdir()
    staged.rmdir()  # vanished: the second rename fails
    with pytest.raises(FileNotFoundError):
        replace_folder(staged, final)
    assert (final / "a").read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["s1"]
    (tmp_path / ".s1.old-00000000").mkdir()  # a finished swap's leftover beside an existing folder
    assert recover_replaced_folders(tmp_path) == ["removed .s1.old-00000000"]


# -- 4. disk full, read-only ------------------------------------------------------------------------------------

def _probe_fails(monkeypatch, code):
    real = os.open

    def fake(path, *args, **kwargs):
        if ".multiscale-probe-" in str(path):
            raise OSError(code, os.strerror(code), str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake)


@pytest.mark.parametrize(("code", "words"), [(errno.ENOSPC, "disk full"), (errno.EROFS, "read-only")])
def test_an_unwritable_output_folder_fails_before_computing(tmp_path, monkeypatch, capsys, code, words):
    from multiscale.cli import main

    path = make_study(tmp_path, subjects=("s1",), method="identity")
    from multiscale.pipeline import runner

    called = []
    monkeypatch.setattr(runner, "subject_graph", lambda *a, **k: called.append(a))
    _probe_fails(monkeypatch, code)
    with pytest.raises(StudyError, match=rf"{tmp_path / 'out'}: output folder is not writable \({words}"):
        run_study(path, progress=None)
    assert main(["run", str(path), "--workers", "0"]) == 2
    assert words in capsys.readouterr().err
    assert called == []


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores folder permissions")
def test_a_read_only_output_folder_is_refused(tmp_path):
    path = make_study(tmp_path, subjects=("s1",), method="identity")
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o555)
    try:
        with pytest.raises(StudyError, match=rf"{out}: output folder is not writable \(read-only"):
            run_study(path, progress=None)
    finally:
        out.chmod(0o755)


@pytest.mark.parametrize(("code", "words"), [(errno.ENOSPC, "disk full"), (errno.EROFS, "read-only file system")])
def test_a_write_failing_mid_run_fails_that_subject_cleanly(tmp_path, monkeypatch, code, words):
    path = make_study(tmp_path, subjects=("s1", "s2", "s3"), method="identity")
    real = outputs.write_results

    def full(table, folder, *args, **kwargs):
        if folder.name.startswith(".s2."):
            raise OSError(code, os.strerror(code), str(folder / "results.parquet"))
        return real(table, folder, *args, **kwargs)

    monkeypatch.setattr(outputs, "write_results", full)
    logs = []
    run = run_study(path, progress=logs.append)
    out = tmp_path / "out"
    assert run.completed == ["s1", "s3"] and list(run.failed) == ["s2"]
    assert f"{words} while writing the outputs of subject 's2' into {out / 'subjects'}" in run.failed["s2"]
    assert any(line.startswith("[2/3] s2: FAILED OSError") and words in line for line in logs)
    assert sorted(p.name for p in (out / "subjects").iterdir()) == ["s1", "s3"]
    for sid in ("s1", "s3"):
        assert subject_is_complete(load_study(path), load_study(path).subject(sid), out)
    assert sorted(pd.read_parquet(out / "results.parquet").subject.unique()) == ["s1", "s3"]


def test_disk_full_while_staging_maps_or_swapping_in(tmp_path, monkeypatch):
    path = make_study(tmp_path, subjects=("s1", "s2"), method="identity")
    real = os.replace

    def full(src, dst, *args, **kwargs):
        if ".s2.staging-" in str(src):
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", full)
    run = run_study(path, progress=None)
    out = tmp_path / "out"
    assert run.completed == ["s1"] and list(run.failed) == ["s2"]
    assert "disk full while writing" in run.failed["s2"] and "subject 's2'" in run.failed["s2"]
    assert sorted(p.name for p in (out / "subjects").iterdir()) == ["s1"]


def test_disk_full_while_writing_the_cohort_outputs_keeps_the_subjects(tmp_path, monkeypatch):
    from multiscale.pipeline import runner

    root, path = _fresh(tmp_path)
    out = root / "out"
    real = os.replace

    def full(src, dst, *args, **kwargs):
        if ".cohort-" in str(src):
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(runner.os, "replace", full)
    with pytest.raises(OSError) as info:
        run_study(path, resume=True, progress=None)
    assert any("disk full while writing the cohort table and report into" in n for n in info.value.__notes__)
    assert _leftovers(out) == [] and not (out / RUN_LOCK).exists()
    study = load_study(path)
    assert all(subject_is_complete(study, s, out) for s in study.subjects)


# -- 3. warnings reach provenance and the reports ---------------------------------------------------------------

def test_loader_warnings_reach_provenance_and_the_reports(tmp_path, monkeypatch):
    from multiscale import io

    path = make_study(tmp_path, subjects=("s1", "s2"), method="identity")
    real = io.load

    def load(p, *args, **kwargs):
        img = real(p, *args, **kwargs)
        if "s2" in str(p) and str(p).endswith("pet.nii.gz"):
            img.attrs["warnings"] = ["no calibration: spacing 1 mm assumed"]
        return img

    monkeypatch.setattr(io, "load", load)
    run = run_study(path, progress=None)
    assert run.completed == ["s1", "s2"], run.failed
    out = tmp_path / "out"
    prov = json.loads((out / "subjects" / "s2" / "provenance.json").read_text())
    assert prov["warnings"] == ["image pet: no calibration: spacing 1 mm assumed"]
    assert json.loads((out / "subjects" / "s1" / "provenance.json").read_text())["warnings"] == []
    sub = (out / "subjects" / "s2" / "report.html").read_text()
    assert "<h3>Warnings</h3>" in sub and "image pet: no calibration: spacing 1 mm assumed" in sub
    html = (out / "report.html").read_text()
    assert "Subjects with warnings" in html and "<a href='#s2'>s2</a>: image pet: no calibration" in html
    assert "<a href='#s1'>" not in html
    assert _subjects_csv(out).loc["s2", "warnings"] == "image pet: no calibration: spacing 1 mm assumed"


def test_gather_warnings_from_images_masks_and_registrations():
    import numpy as np

    from multiscale import image as mi

    img = mi.spatial_image(np.zeros((2, 2)), spacing=1.0)
    img.attrs["warnings"] = ["a", "a"]
    mask = mi.spatial_image(np.ones((2, 2)), spacing=1.0)
    mask.attrs["warnings"] = "b"

    class T:
        info = {"warnings": ["did not converge"]}

    got = outputs.gather_warnings({"mri": img}, {"tumour": mask}, {"pet_to_mri": {"transform": T(), "warnings": []}})
    assert got == ["image mri: a", "mask tumour: b", "registration pet_to_mri: did not converge"]
