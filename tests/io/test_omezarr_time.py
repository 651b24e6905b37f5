"""Time series in OME-Zarr: frame times (s) and every coord along ``t`` survive writing and reading."""

from __future__ import annotations

import json

import numpy as np
import pytest

from multiscale.image import spatial_image
from multiscale.io import load, save


def _series(times, **coords):
    img = spatial_image(np.arange(len(times) * 2 * 3 * 4, dtype=np.float32).reshape(len(times), 2, 3, 4),
                        spacing=0.5, dims=("t", "z", "y", "x"))
    return img.assign_coords(t=list(times), **{k: ("t", v) for k, v in coords.items()})


def test_even_frame_times_are_the_ngff_time_axis(tmp_path):
    p = save(_series([1.0, 3.0, 5.0]), tmp_path / "even.ome.zarr")
    ms = json.loads((p / "zarr.json").read_text())["attributes"]["ome"]["multiscales"][0]
    assert ms["axes"][0] == {"name": "t", "type": "time", "unit": "second"}
    ct = ms["datasets"][0]["coordinateTransformations"]
    assert ct[0]["scale"][0] == 2.0 and ct[1]["translation"][0] == 1.0
    np.testing.assert_array_equal(load(p).t.values, [1.0, 3.0, 5.0])


def test_uneven_times_and_other_t_coords_round_trip(tmp_path):
    # a dynamic PET protocol: frames of 10 s, 10 s, 30 s, 60 s (mid-times uneven)
    img = _series([5.0, 15.0, 35.0, 80.0], frame_duration=[10.0, 10.0, 30.0, 60.0])
    p = save(img, tmp_path / "pet.ome.zarr")
    ms = json.loads((p / "zarr.json").read_text())["attributes"]["ome"]["multiscales"][0]
    assert "unit" not in ms["axes"][0]  # NGFF cannot say uneven times: no false regular axis
    back = load(p)
    np.testing.assert_array_equal(back.t.values, [5.0, 15.0, 35.0, 80.0])
    np.testing.assert_array_equal(back.frame_duration.values, [10.0, 10.0, 30.0, 60.0])
    np.testing.assert_array_equal(back.values, img.values)


def test_foreign_store_with_a_time_unit_gets_frame_times(tmp_path):
    """A store written by another tool (no multiscale metadata) with a time axis in minutes."""
    p = save(_series([0.0, 60.0, 120.0]), tmp_path / "foreign.ome.zarr")
    meta = json.loads((p / "zarr.json").read_text())
    meta["attributes"].pop("multiscale", None)
    ms = meta["attributes"]["ome"]["multiscales"][0]
    ms["axes"][0]["unit"] = "minute"
    ms["datasets"][0]["coordinateTransformations"][0]["scale"][0] = 1.0
    ms["datasets"][0]["coordinateTransformations"][1]["translation"][0] = 0.0
    (p / "zarr.json").write_text(json.dumps(meta))
    np.testing.assert_array_equal(load(p).t.values, [0.0, 60.0, 120.0])


def test_time_series_store_validates_as_ngff_05(tmp_path):
    models = pytest.importorskip("ome_zarr_models.v05")
    zarr = pytest.importorskip("zarr")
    p = save(_series([0.0, 2.5, 5.0]), tmp_path / "t.ome.zarr")
    models.Image.from_zarr(zarr.open_group(str(p), mode="r"))
