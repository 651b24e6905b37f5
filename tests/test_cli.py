"""The ``multiscale`` command: validate, run (in process and on a LocalCluster), demo, info."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from multiscale.cli import example_study_path, main
from multiscale.pipeline.study import load_study

from .pipeline._study_data import make_study


def test_validate_good_study(tmp_path, capsys):
    path = make_study(tmp_path, subjects=("s1", "s2"))
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "valid study 'toy'" in out and "pet -> mri (rigid)" in out and "subject s2" in out


def test_validate_malformed_study_names_the_line(tmp_path, capsys):
    path = make_study(tmp_path, subjects=("s1",))
    text = path.read_text().replace("modality: PT", "modality: PETCT")
    path.write_text(text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "PETCT" in t)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:{line}: defaults.images.pet.modality: unknown modality 'PETCT'" in err


def test_validate_missing_input_file(tmp_path, capsys):
    path = make_study(tmp_path, subjects=("s1", "s2"))
    (tmp_path / "data" / "s2" / "tumour.nii.gz").unlink()
    assert main(["validate", str(path)]) == 2
    assert re.search(r"file not found: .*s2/tumour\.nii\.gz", capsys.readouterr().err)


def test_run_subjects_option_and_unknown_subject(tmp_path, capsys):
    path = make_study(tmp_path, subjects=("s1", "s2"), method="identity")
    assert main(["run", str(path), "--workers", "0", "--subjects", "s2"]) == 0
    assert [p.name for p in (tmp_path / "out" / "subjects").iterdir()] == ["s2"]
    assert main(["run", str(path), "--workers", "0", "--subjects", "nobody"]) == 2
    assert "no subject 'nobody'" in capsys.readouterr().err


def test_run_on_a_localcluster_of_two_worker_processes(tmp_path, capsys):
    """The issue's LocalCluster test (worker processes): a broken subject fails, the other completes."""
    path = make_study(tmp_path, subjects=("s1", "s2"), method="identity")
    (tmp_path / "data" / "s1" / "mri.nii.gz").write_bytes(b"broken")
    assert main(["run", str(path), "--workers", "2"]) == 1
    out = capsys.readouterr().out
    assert "LocalCluster with 2 worker process(es)" in out
    assert re.search(r"dashboard http://127\.0\.0\.1:\d+/", out)  # this machine only
    assert re.search(r"\[\d/2\] s1: FAILED .*mri\.nii\.gz", out)
    assert re.search(r"\[\d/2\] s2: done", out)
    prov = json.loads((tmp_path / "out" / "provenance.json").read_text())
    assert prov["scheduler"] == "distributed" and prov["workers"] == 2
    assert [s["status"] for s in prov["statuses"]] == ["failed", "completed"]
    assert set(pd.read_parquet(tmp_path / "out" / "results.parquet").subject) == {"s2"}
    # the cohort figures were drawn on the workers and embedded in the study report
    assert "Radial profiles of pet in tumour" in (tmp_path / "out" / "report.html").read_text()
    # resume: the complete subject is skipped, the broken one is tried again (and fails again)
    assert main(["run", str(path), "--workers", "0", "--resume"]) == 1
    out = capsys.readouterr().out
    assert "skip  s2: outputs complete (resume)" in out and "s1: FAILED" in out


def test_example_study_file_is_valid():
    study = load_study(example_study_path(), check_files=False)
    s = study.subjects[0]
    assert set(s.images) == {"mri", "pet", "fluorescence", "msi", "dce", "dce_truth", "r2star_pre", "r2star_post",
                             "oa", "ihc", "cells", "intravital"}
    assert {e.name for e in s.edges} >= {"pet_to_mri", "msi_to_fluorescence"}
    assert {a.type for a in study.analyses} >= {"uptake", "radial", "colocalisation", "texture", "dce", "curves",
                                                "change", "unmixing", "stains", "msi_colocalisation",
                                                "msi_segmentation", "cells", "cell_patterns", "hotspots",
                                                "vessels", "perivascular"}


def test_demo_small_end_to_end(tmp_path, capsys):
    """The demo at reduced size: every output, the figures, and recovered vs true transforms.

    Tolerances (mean distance between recovered and true transforms over the tumour's / section's
    voxels): PET -> MRI within one PET voxel (0.8 mm), because the PET's 1.5 mm FWHM and 0.8 mm
    voxels bound what a rigid registration can see; MSI -> fluorescence within one MSI pixel of
    the small example (0.15 mm).
    """
    out = tmp_path / "out"
    code = main(["demo", "--size", "small", "--data", str(tmp_path / "data"), "--output", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert f"Open the report: {out / 'report.html'}" in printed
    table = pd.read_csv(out / "results.csv")
    assert {"pet_uptake", "pet_radial", "dye_radial", "drug_vs_carrier", "first_order",
            "pet_texture_map"} <= set(table.analysis)
    assert (out / "results.parquet").is_file() and (out / "provenance.json").is_file()
    subject = out / "subjects" / "mouse01"
    for f in ("maps/mri.ome.zarr", "maps/fluorescence.ome.zarr", "transforms/pet_to_mri.tfm",
              "transforms/msi_to_fluorescence.tfm", "provenance.json", "report.html"):
        assert (subject / f).exists(), f
    figures = sorted(p.name for p in (subject / "figures").glob("*.png"))
    assert {"overlay_mri.png", "overlay_fluorescence.png", "registration_pet_to_mri.png",
            "registration_msi_to_fluorescence.png"} <= set(figures)
    assert sum(f.startswith("radial_") for f in figures) == 2
    assert sum(f.startswith("colocalisation_") for f in figures) == 5
    assert "texture_map_pet_texture_map_pet_tumour_map.png" in figures
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= len(figures)
    assert "recovered vs true" in html
    reg = json.loads((subject / "registration.json").read_text())
    assert reg["pet_to_mri"]["quality"]["truth_error_mean_mm_in_tumour"] < 0.8
    assert reg["msi_to_fluorescence"]["quality"]["truth_error_mean_mm_in_section"] < 0.15
    # the section is placed in the MRI (searched from 0.4 mm off) within one MRI voxel of the truth (the small
    # example's MRI has 0.25 mm voxels; 0.15 mm here; the full-size example gets 0.04 mm with 0.1 mm voxels)
    assert reg["vessels_in_fluorescence"]["quality"]["pose_error_mean_mm"] < 0.25
    assert abs(reg["vessels_in_fluorescence"]["quality"]["section_z_mm"] - 10.0) < 0.25
    assert {"drug_vs_pet"} <= set(table.analysis)
    assert "registration_vessels_in_fluorescence.png" in figures
    # designed correlations (ground truth: MSI as written vs the noiseless section), recovered after
    # registration and resampling onto the analysis grid: within 0.05 for the drug and the lipid vs
    # the liposome dye; haem vs vessels only positive (thin vessels blur at the small example's pixel)
    r = table[(table.analysis == "drug_vs_carrier") & (table.metric == "pearson")].set_index("map").value
    truth = json.loads((tmp_path / "data" / "ground_truth.json").read_text())["correlations"]["msi_as_written"]
    assert abs(r["msi:doxorubicin ~ fluorescence:nanoparticle dye"] - truth["doxorubicin_vs_dye"]) < 0.05
    assert abs(r["msi:DSPC ~ fluorescence:nanoparticle dye"] - truth["DSPC_vs_dye"]) < 0.05
    assert r["msi:haem ~ fluorescence:vessels"] > 0.6


def test_info_describes_a_file(tmp_path, capsys):
    pytest.importorskip("multiscale.io.info")
    make_study(tmp_path, subjects=("s1",))
    f = tmp_path / "data" / "s1" / "mri.nii.gz"
    assert main(["info", str(f)]) == 0
    assert "mri.nii.gz" in capsys.readouterr().out
    assert main(["info", str(tmp_path / "nothing.nii.gz")]) == 2


def test_run_against_an_existing_scheduler(tmp_path, capsys):
    distributed = pytest.importorskip("distributed")
    path = make_study(tmp_path, subjects=("s1",), method="identity")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster:
        assert main(["run", str(path), "--scheduler", cluster.scheduler_address]) == 0
    out = capsys.readouterr().out
    assert f"dask.distributed: {cluster.scheduler_address}" in out and "[1/1] s1: done" in out
    assert json.loads((tmp_path / "out" / "provenance.json").read_text())["workers"] == 1


def test_validate_checks_channel_names_in_the_files(tmp_path, capsys):
    import numpy as np

    from multiscale import io
    from multiscale.image import spatial_image

    fluo = spatial_image(np.ones((2, 8, 8), np.uint16), spacing=0.005, dims=("c", "y", "x"),
                         channels=["vessels", "nanoparticle dye"], modality="FLUO")
    io.save(fluo, tmp_path / "fluo.ome.tif")
    text = """\
reference: fluo
subjects: [{id: a}]
defaults:
  images:
    fluo: {path: fluo.ome.tif, modality: FLUO}
analyses:
  - {type: radial, maps: ["fluo:nanoparticle dye"]}
  - {type: uptake, maps: ["fluo:dapi"]}
"""
    path = tmp_path / "study.yaml"
    path.write_text(text)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:8: analysis uptake1: map 'fluo:dapi'" in err and "['vessels', 'nanoparticle dye']" in err
    path.write_text(text.replace("fluo:dapi", "fluo:vessels"))
    assert main(["validate", str(path)]) == 0


def test_the_local_cluster_assumes_local_bandwidth_between_its_workers():
    distributed = pytest.importorskip("distributed")
    from dask.utils import parse_bytes

    from multiscale.cli import LOCAL_BANDWIDTH, local_cluster

    with local_cluster(1) as cluster, distributed.Client(cluster) as client:
        assert client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.bandwidth) == parse_bytes(LOCAL_BANDWIDTH)
        assert list(client.nthreads().values()) == [1]


def test_the_local_dashboard_listens_on_loopback_only():
    """``multiscale run``'s LocalCluster: the dashboard binds 127.0.0.1 unless --dashboard-address says otherwise."""
    from multiscale.cli import DASHBOARD_ADDRESS, _dashboard, build_parser, local_cluster

    cluster = local_cluster(1, processes=False)
    try:
        server = cluster.scheduler.http_server
        hosts = {sock.getsockname()[0] for sock in server._sockets.values()}
        assert hosts == {"127.0.0.1"}
        assert cluster.scheduler.address.startswith(("inproc://", "tcp://127.0.0.1"))
    finally:
        cluster.close()
    assert _dashboard(None) == DASHBOARD_ADDRESS == "127.0.0.1:0"
    assert _dashboard("8787") == "127.0.0.1:8787"
    assert _dashboard("0.0.0.0:8787") == "0.0.0.0:8787"
    assert _dashboard("none") is None
    args = build_parser().parse_args(["run", "study.yaml", "--dashboard-address", "0.0.0.0:8787", "--force"])
    assert args.dashboard_address == "0.0.0.0:8787" and args.force


def test_demo_data_never_go_into_an_installed_package(tmp_path, monkeypatch):
    """From a source checkout the example data go to example_datasets/generated; from an installed package
    (site-packages) to the user data folder, so the demo never writes into the installation."""
    from multiscale import cli

    monkeypatch.delenv("MULTISCALE_DATA_DIR", raising=False)
    assert cli.default_example_folder() == cli.example_study_path().parent / "generated"
    fake = tmp_path / "lib" / "python3.11" / "site-packages" / "example_datasets" / "study.yaml"
    monkeypatch.setattr(cli, "example_study_path", lambda: fake)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert cli.default_example_folder() == tmp_path / "data" / "multiscale" / "example"
    monkeypatch.setenv("MULTISCALE_DATA_DIR", str(tmp_path / "mine"))
    assert cli.default_example_folder() == tmp_path / "mine" / "example"
