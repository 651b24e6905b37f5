"""QuPath GeoJSON annotations: polygons to labels on a slide's grid at any level, holes, classes, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from multiscale.errors import LoadError
from multiscale.io import load, sniff
from multiscale.io.geojson import annotation_labels, read_annotations


def _feature(cls, rings, name=""):
    geom = {"type": "Polygon", "coordinates": rings}
    props = {"objectType": "annotation", "classification": {"name": cls, "color": [255, 0, 0]}}
    if name:
        props["name"] = name
    return {"type": "Feature", "id": "x", "geometry": geom, "properties": props}


def _rect(x0, y0, x1, y1):
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]


@pytest.fixture()
def slide(tmp_path):
    base = np.full((128, 160, 3), 230, np.uint8)
    p = tmp_path / "s.tif"
    with tifffile.TiffWriter(p) as tw:  # 0.5 um pixels, 2 levels
        tw.write(base, subifds=1, tile=(32, 32), photometric="rgb", resolution=(2e4, 2e4), resolutionunit="CENTIMETER")
        tw.write(base[::2, ::2], subfiletype=1, tile=(32, 32), photometric="rgb")
    return p


def _write(tmp_path, features, name="a.geojson"):
    p = tmp_path / name
    p.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return p


def test_classes_become_labels_on_the_slide_grid_at_any_level(tmp_path, slide):
    ann = _write(tmp_path, [
        _feature("Necrosis", [_rect(10, 20, 50, 60)]),
        _feature("Tumor", [_rect(80, 20, 140, 100), _rect(100, 40, 120, 60)]),  # with a hole
        _feature("Necrosis", [_rect(20, 90, 40, 110)], name="second"),
    ])
    assert sniff(ann) == "geojson"
    lvl0 = load(slide)
    lab = load(ann, reference=lvl0)
    assert lab.attrs["labels"] == {"Necrosis": 1, "Tumor": 2} and lab.shape == (128, 160)
    # QuPath continuous coords: [10, 50) x [20, 60) covers pixels 10..49 x 20..59 (centres inside)
    assert (lab.values == 1).sum() == 40 * 40 + 20 * 20
    assert (lab.values == 2).sum() == 60 * 80 - 20 * 20
    assert lab.values[50, 110] == 0 and lab.values[30, 90] == 2
    lvl1 = load(slide, level=1)
    lab1 = annotation_labels(ann, lvl1)
    assert (lab1.values == 1).sum() == 20 * 20 + 10 * 10
    # the same physical area at both levels
    area0 = (lab.values == 2).sum() * 0.0005**2
    area1 = (lab1.values == 2).sum() * 0.001**2
    assert area1 == pytest.approx(area0)
    only = annotation_labels(ann, lvl0, classes=["Tumor"])
    assert only.attrs["labels"] == {"Tumor": 1} and (only.values == 1).sum() == 60 * 80 - 20 * 20


def test_mm_coordinates_and_multipolygons(tmp_path, slide):
    f = {"type": "Feature", "properties": {"classification": "Stroma"},
         "geometry": {"type": "MultiPolygon", "coordinates": [[_rect(0.00425, 0.00425, 0.00925, 0.00925)],
                                                              [_rect(0.02025, 0.02025, 0.02525, 0.02525)]]}}
    ann = tmp_path / "mm.json"
    ann.write_text(json.dumps([f]))
    lab = annotation_labels(ann, load(slide), coordinates="mm")
    assert lab.attrs["labels"] == {"Stroma": 1}
    assert (lab.values == 1).sum() == 10 * 10 + 10 * 10
    assert read_annotations(ann)[0]["class"] == "Stroma"


def test_annotation_outside_the_slide_is_a_clear_error(tmp_path, slide):
    ann = _write(tmp_path, [_feature("Necrosis", [_rect(10, 10, 20, 20)]),
                            _feature("Tumor", [_rect(5000, 5000, 5100, 5100)], name="far away")])
    with pytest.raises(LoadError, match=r"features\[1\] \(Tumor, far away\): lies wholly outside the slide"):
        load(ann, reference=load(slide))


def test_annotation_crossing_the_edge_is_clipped_with_a_warning(tmp_path, slide):
    ann = _write(tmp_path, [_feature("Tumor", [_rect(150, 120, 170, 140)])])
    with pytest.warns(UserWarning, match="crosses the slide's edge"):
        lab = load(ann, reference=load(slide))
    assert (lab.values == 1).sum() == 10 * 8
    assert lab.attrs["warnings"]


def test_bad_files(tmp_path, slide):
    bad = tmp_path / "bad.geojson"
    bad.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Pol')
    with pytest.raises(LoadError, match="bad.geojson: JSON"):
        load(bad, reference=load(slide))
    ok = _write(tmp_path, [_feature("Tumor", [_rect(1, 1, 4, 4)])])
    with pytest.raises(LoadError, match="reference="):
        load(ok)
    from multiscale.image import spatial_image

    with pytest.raises(LoadError, match="pixel_size_um="):
        load(ok, reference=spatial_image(np.zeros((8, 8)), spacing=0.001))
