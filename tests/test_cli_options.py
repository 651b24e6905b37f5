"""The ``multiscale`` command's global options, ``info --json``, cluster errors and step progress (issue 21)."""

from __future__ import annotations

import json
import re

import pytest

from multiscale import __version__, cli
from multiscale.cli import EXIT_BAD_INPUT, EXIT_NO_CLUSTER, main

from .pipeline._study_data import make_study


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"multiscale {__version__}"


def test_negative_workers_is_a_clear_argument_error(tmp_path, capsys):
    path = make_study(tmp_path, subjects=("s1",), method="identity")
    with pytest.raises(SystemExit) as exc:
        main(["run", str(path), "--workers", "-1"])
    assert exc.value.code == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "--workers" in err and "give 0 (run in this process) or a positive number" in err


def test_unreachable_scheduler_has_its_own_exit_code(tmp_path, capsys, monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr(cli, "SCHEDULER_TIMEOUT_S", 1.0)
    path = make_study(tmp_path, subjects=("s1",), method="identity")
    assert main(["run", str(path), "--scheduler", "tcp://127.0.0.1:9"]) == EXIT_NO_CLUSTER
    err = capsys.readouterr().err
    assert "cannot reach the dask scheduler at 'tcp://127.0.0.1:9'" in err and "--scheduler" in err
    assert not (tmp_path / "out" / "results.csv").exists()


def test_verbose_reports_each_step_quiet_reports_nothing_and_the_log_file_has_all(tmp_path, capsys):
    path = make_study(tmp_path, subjects=("s1",), method="identity")
    log = tmp_path / "run.log"
    assert main(["-v", "--log-file", str(log), "run", str(path), "--workers", "0"]) == 0
    out = capsys.readouterr().out
    steps = re.findall(r"^step (\S+) done in [\d.]+ s \[(\d+)/(\d+)\]$", out, flags=re.M)
    names = [s[0] for s in steps]
    assert any(n.startswith("load-") for n in names) and any(n.startswith("register-") for n in names)
    assert int(steps[-1][1]) == int(steps[-1][2]) == len(steps)  # counted in steps, the last is the total
    assert "[1/1] s1: done" in out
    text = log.read_text()
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ DEBUG multiscale: step load-", text, flags=re.M)
    assert "INFO multiscale: [1/1] s1: done" in text

    assert main(["-q", "run", str(path), "--workers", "0", "--output", str(tmp_path / "out2")]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_step_progress_on_a_distributed_scheduler(tmp_path, capsys):
    distributed = pytest.importorskip("distributed")
    path = make_study(tmp_path, subjects=("s1",), method="identity")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster:
        assert main(["-v", "run", str(path), "--scheduler", cluster.scheduler_address]) == 0
    out = capsys.readouterr().out
    names = re.findall(r"^step (\S+) done", out, flags=re.M)
    assert any(n.startswith("load-") for n in names) and any(n.startswith("write-s1") for n in names)


def test_info_json(tmp_path, capsys):
    make_study(tmp_path, subjects=("s1",))
    f = tmp_path / "data" / "s1" / "mri.nii.gz"
    assert main(["info", "--json", str(f)]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["path"] == str(f) and d["format"] == "nifti"
    assert len(d["spacing"]) == len(d["shape"]) == 3 and all(v > 0 for v in d["spacing"])
    assert main(["info", "--json", str(f), str(f)]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2


def test_step_names_drop_the_run_token():
    assert cli._step_of("register-ct_to_mri-s01-0123456789abcdef0123") == "register-ct_to_mri-s01"
    assert cli._step_of("load-mri-s01") == "load-mri-s01"
    assert cli._step_of("write-s1-eaa98ee8") == "write-s1"


def test_demo_without_pyimzml_names_the_extra(tmp_path, monkeypatch, capsys):
    import sys
    import uuid

    from example_datasets import _writers

    monkeypatch.setitem(sys.modules, "pyimzml", None)
    monkeypatch.setitem(sys.modules, "pyimzml.ImzMLWriter", None)
    with pytest.raises(ImportError, match=r"pip install 'multiscale\[example\]'"):
        _writers.write_imzml(tmp_path / "x.imzML", iter(()), (10.0, 10.0), (1, 1), uuid.uuid4())
    monkeypatch.setattr(cli, "ensure_example_data", lambda *a, **k: _writers.write_imzml(
        tmp_path / "x.imzML", iter(()), 0.1, (1, 1), uuid.uuid4()))
    assert main(["demo", "--output", str(tmp_path / "out")]) == EXIT_BAD_INPUT
    assert "multiscale[example]" in capsys.readouterr().err
