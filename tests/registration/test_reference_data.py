"""Ground-truth transforms and landmark files: every JSON layout, and errors that name the file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from multiscale.errors import RegistrationError, TransformError
from multiscale.registration import Transform, read_landmarks, truth_transform

P = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [-4.0, 0.5, 2.0]])


@pytest.fixture
def truth_file(tmp_path):
    rot = sitk.Euler3DTransform((1.0, 1.0, 1.0), 0.1, -0.2, 0.3, (0.5, -1.0, 2.0))
    Transform(rot).save(tmp_path / "rot.tfm")
    a = np.array([[1.0, 0.1, 0.0], [0.0, 0.9, 0.0], [0.0, 0.0, 1.1]])
    b = np.array([1.0, 2.0, 3.0])
    h = np.eye(4)
    h[:3, :3], h[:3, 3] = a, b
    doc = {
        "transforms": {
            "by_name": "rot.tfm",
            "by_file": {"file": "rot.tfm"},
            "homogeneous": {"matrix_4x4": h.tolist()},
            "parts": {"matrix": a.tolist(), "translation_mm": b.tolist()},
            "centred": {"matrix": a.tolist(), "translation": b.tolist(), "centre_mm": [2.0, 0.0, 1.0]},
            "shift": {"translation_mm": [0.0, 0.0, 1.0]},
        },
        "nested": {"deeper": {"translation_mm": [1.0, 0.0, 0.0]}},
    }
    f = tmp_path / "truth.json"
    f.write_text(json.dumps(doc))
    return f, rot, a, b


def test_file_layouts_read_the_same_transform(truth_file):
    f, rot, _, _ = truth_file
    want = np.array([rot.TransformPoint(tuple(p)) for p in P])
    for key in ("by_name", "by_file", "transforms.by_name", "transforms.by_file"):
        np.testing.assert_allclose(truth_transform(f, key, 3).transform_points(P), want, atol=1e-12)


def test_matrix_layouts(truth_file):
    f, _, a, b = truth_file
    want = P @ a.T + b
    for key in ("homogeneous", "parts", "transforms.parts"):
        t = truth_transform(f, key, 3)
        np.testing.assert_allclose(t.transform_points(P), want, atol=1e-12)
        assert t.info == {"kind": "ground truth", "file": str(f), "key": key}
    c = np.array([2.0, 0.0, 1.0])  # ITK centred affine: A (p - c) + c + b
    np.testing.assert_allclose(truth_transform(f, "centred", 3).transform_points(P), (P - c) @ a.T + c + b, atol=1e-12)
    np.testing.assert_allclose(truth_transform(f, "shift", 3).transform_points(P), P + [0, 0, 1.0], atol=1e-12)
    np.testing.assert_allclose(truth_transform(f, "nested.deeper", 3).transform_points(P), P + [1.0, 0, 0], atol=1e-12)


def test_2d_homogeneous_matrix(tmp_path):
    f = tmp_path / "t.json"
    f.write_text(json.dumps({"transforms": {"s": {"matrix_3x3": [[0, -1, 1], [1, 0, 0], [0, 0, 1]]}}}))
    np.testing.assert_allclose(truth_transform(f, "s", 2).transform_points([[1.0, 0.0]]), [[1.0, 1.0]], atol=1e-12)


def test_missing_key_names_the_file_and_the_transforms(truth_file):
    f = truth_file[0]
    with pytest.raises(TransformError, match=r"truth\.json: no ground-truth transform 'missing'; transforms are "
                                             r"\['by_file', 'by_name', 'centred', 'homogeneous', 'parts', 'shift'\]"):
        truth_transform(f, "missing", 3)
    assert issubclass(TransformError, RegistrationError)


def test_bad_entries_and_files(tmp_path):
    f = tmp_path / "t.json"
    f.write_text(json.dumps({"transforms": {"bad": {"matrix": [1, 2, 3]}, "num": 3}}))
    with pytest.raises(TransformError, match=r"t\.json: ground-truth transform 'bad' does not make a 3-D transform"):
        truth_transform(f, "bad", 3)
    with pytest.raises(TransformError, match="'num' is a int"):
        truth_transform(f, "num", 3)
    g = tmp_path / "broken.json"
    g.write_text("{not json")
    with pytest.raises(TransformError, match=r"broken\.json: cannot read ground truth as JSON"):
        truth_transform(g, "a", 3)
    with pytest.raises(TransformError, match=r"absent\.json"):
        truth_transform(tmp_path / "absent.json", "a", 3)


def test_read_landmarks_by_name_and_by_position(tmp_path):
    f = tmp_path / "a.csv"
    f.write_text("z,name,y,x\n3,tip,2,1\n6,base,5,4\n")
    np.testing.assert_array_equal(read_landmarks(f, 3), [[1, 2, 3], [4, 5, 6]])  # columns by name, x y z order
    g = tmp_path / "b.csv"
    g.write_text("id,u,v\n1,0.5,1.5\n2,2.5,3.5\n")
    np.testing.assert_array_equal(read_landmarks(g, 2), [[0.5, 1.5], [2.5, 3.5]])  # the last numeric columns


def test_read_landmarks_errors(tmp_path):
    with pytest.raises(RegistrationError, match=r"missing\.csv: cannot read landmarks"):
        read_landmarks(tmp_path / "missing.csv", 3)
    f = tmp_path / "few.csv"
    f.write_text("name,x,y\ntip,1,2\n")
    with pytest.raises(RegistrationError, match=r"few\.csv: landmarks need 3 numeric columns named x, y, z \(mm\)"):
        read_landmarks(f, 3)
    e = tmp_path / "empty.csv"
    e.write_text("x,y\n")
    with pytest.raises(RegistrationError, match="at least one row"):
        read_landmarks(e, 2)
    t = tmp_path / "text.csv"
    t.write_text("x,y\n1,a\n")
    with pytest.raises(RegistrationError, match=r"text\.csv: landmark columns \['x', 'y'\] are not all numbers"):
        read_landmarks(t, 2)
