"""``motion:`` on a time-series image: every frame registered to the reference and resampled once, in a study."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from multiscale import io
from multiscale.image import spatial_image
from multiscale.pipeline.spec import ImageSpec
from multiscale.pipeline.steps import load_image_step
from multiscale.pipeline.study import StudyError, load_study

SHIFTS_MM = [0.0, 1.5, -1.0, 0.5]  # planted x shift of each frame (1 mm voxels)


def _series(path: Path) -> Path:
    z, y, x = np.mgrid[:8, :32, :32].astype(float)
    frames = []
    for s in SHIFTS_MM:
        blob = np.exp(-((y - 15.5) ** 2 + (x - 14.0 - s) ** 2) / 30.0 - (z - 3.5) ** 2 / 8.0)
        frames.append(100.0 * blob + 20.0 * np.exp(-((y - 22.0) ** 2 + (x - 22.0 - s) ** 2) / 12.0))
    img = spatial_image(np.stack(frames).astype(np.float32), spacing=1.0, dims=("t", "z", "y", "x"))
    img = img.assign_coords(t=[0.0, 10.0, 20.0, 30.0])
    io.save(img, path)
    return path


def test_motion_corrected_series_is_aligned_and_reports_its_motion(tmp_path):
    path = _series(tmp_path / "series.nii.gz")
    spec = ImageSpec(key="dyn", path=path, modality="MR", motion={"reference": 0, "transform": "rigid",
                                                                   "metric": "mean_squares"})
    out = load_image_step(spec)
    shifts = np.asarray(out.attrs["motion"]["shift_x_mm"])
    np.testing.assert_allclose(shifts, SHIFTS_MM, atol=0.1)
    first = out.isel(t=0).values
    for i in range(1, len(SHIFTS_MM)):  # every frame now lies on the first
        assert np.abs(out.isel(t=i).values - first).max() < 0.1 * first.max()
    np.testing.assert_allclose(out.t.values, [0.0, 10.0, 20.0, 30.0])  # frame times kept
    assert any("moved 1.5" in w for w in out.attrs["warnings"])  # more than a voxel: recorded for the flags
    assert out.attrs["provenance"]["motion_corrected"]["reference"] == 0


def test_motion_on_a_single_frame_image_is_refused(tmp_path):
    img = spatial_image(np.zeros((4, 8, 8), np.float32), spacing=1.0)
    io.save(img, tmp_path / "still.nii.gz")
    spec = ImageSpec(key="still", path=tmp_path / "still.nii.gz", modality="MR", motion={"reference": "mean"},
                     line=7)
    with pytest.raises(StudyError, match=r"study line 7: images\.still\.motion: .* not a time series"):
        load_image_step(spec)


STUDY = """\
name: m
output: out
reference: dyn
defaults:
  images:
    dyn: {path: series.nii.gz, modality: MR, motion: MOTION}
subjects: [{id: s1}]
analyses: []
"""


@pytest.mark.parametrize("motion, expected", [
    ("true", {"reference": "mean", "transform": "rigid", "metric": "ncc"}),
    ("translation", {"reference": "mean", "transform": "translation", "metric": "ncc"}),
    ("{reference: 2, metric: mattes_mi}", {"reference": 2, "transform": "rigid", "metric": "mattes_mi"}),
    ("false", {}),
])
def test_study_motion_field_parses(tmp_path, motion, expected):
    (tmp_path / "series.nii.gz").write_bytes(b"x")
    p = tmp_path / "study.yaml"
    p.write_text(textwrap.dedent(STUDY).replace("MOTION", motion))
    study = load_study(p, check_files=False)
    assert study.subjects[0].images["dyn"].motion == expected


@pytest.mark.parametrize("motion, message", [
    ("{transform: bspline}", r"study\.yaml:6: .*motion\.transform: transform must be one of"),
    ("{refrence: 0}", r"study\.yaml:6: .*motion\.refrence: unknown motion setting; accepted: reference"),
    ("{reference: last}", r"motion\.reference: reference must be 'mean' or a frame index"),
    ("3", r"motion: motion must be true, a transform"),
])
def test_study_motion_field_errors_name_the_line_and_field(tmp_path, motion, message):
    (tmp_path / "series.nii.gz").write_bytes(b"x")
    p = tmp_path / "study.yaml"
    p.write_text(textwrap.dedent(STUDY).replace("MOTION", motion))
    with pytest.raises(StudyError, match=message):
        load_study(p, check_files=False)
