"""``multiscale view`` end to end without Qt: a fake ``napari`` module records what the command adds (issue 21).

The real napari path (``ViewerModel``) is ``tests/test_viewer_contrast.py``; this one runs everywhere.
"""

from __future__ import annotations

import sys
import types

import pytest

from multiscale.cli import EXIT_BAD_INPUT, EXIT_OK, main
from multiscale.io import save
from multiscale.viewer import map_sources

from .io.test_omezarr_labels import _stack


class _Bar:
    visible = False
    unit = None


class _Dims:
    ndim = 3
    axis_labels: tuple = ()


class _Layer:  # no ``units`` attribute: an old napari, so the scale bar gets the unit
    def __init__(self, kind, data, kwargs):
        self.kind, self.data, self.kwargs, self.ndim = kind, data, kwargs, data.ndim


class _FakeViewer:
    made: list[_FakeViewer] = []

    def __init__(self):
        self.layers, self.scale_bar, self.dims = [], _Bar(), _Dims()
        _FakeViewer.made.append(self)

    def add_image(self, data, **kwargs):
        self.layers.append(_Layer("image", data, kwargs))
        return self.layers[-1]

    def add_labels(self, data, **kwargs):
        self.layers.append(_Layer("labels", data, kwargs))
        return self.layers[-1]


@pytest.fixture
def fake_napari(monkeypatch):
    mod = types.ModuleType("napari")
    mod.Viewer = _FakeViewer
    mod.ran = []
    mod.run = lambda: mod.ran.append(True)
    monkeypatch.setitem(sys.modules, "napari", mod)
    _FakeViewer.made.clear()
    return mod


def _output(tmp_path):
    out = tmp_path / "out"
    save(_stack(), out / "subjects" / "m1" / "maps" / "mri.ome.zarr")
    return out


def test_view_an_output_folder_shows_every_map_in_mm(tmp_path, fake_napari):
    out = _output(tmp_path)
    assert main(["view", str(out)]) == EXIT_OK
    (viewer,) = _FakeViewer.made
    assert fake_napari.ran == [True]
    kinds = {la.kwargs["name"]: la.kind for la in viewer.layers}
    assert kinds == {"mri": "image", "pet": "image", "mask:tumour": "labels", "mask:vessels@fluorescence": "labels"}
    assert all(la.kwargs["scale"] == (2.0, 0.5, 0.5) and la.kwargs["translate"] == (1.0, -3.0, 4.0)
               for la in viewer.layers)
    assert viewer.scale_bar.visible and viewer.scale_bar.unit == "mm"
    assert viewer.dims.axis_labels == ("z", "y", "x")
    images = [la.kwargs for la in viewer.layers if la.kind == "image"]
    assert images[0]["contrast_limits"] != images[1]["contrast_limits"]  # each map its own window
    assert main(["view", str(out / "subjects" / "m1")]) == EXIT_OK  # a subject's folder too
    assert map_sources(out / "subjects" / "m1" / "maps" / "mri.ome.zarr") == [out / "subjects/m1/maps/mri.ome.zarr"]


def test_view_refuses_a_folder_without_maps_and_a_missing_napari(tmp_path, monkeypatch, fake_napari, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no OME-Zarr map"):
        map_sources(tmp_path / "empty")
    out = _output(tmp_path)
    monkeypatch.setitem(sys.modules, "napari", None)  # not installed: import fails
    assert main(["view", str(out)]) == EXIT_BAD_INPUT
    assert "pip install 'multiscale[viewer]'" in capsys.readouterr().err


def test_view_names_a_missing_path(tmp_path, fake_napari, capsys):
    assert main(["view", str(tmp_path / "nowhere")]) == EXIT_BAD_INPUT
    assert "nowhere: no such file or folder" in capsys.readouterr().err
    assert not any(v.layers for v in _FakeViewer.made)
