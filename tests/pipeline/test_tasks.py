"""Per-subject steps: chain composition, channel selection, tidy rows, truth transforms."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from multiscale.image import spatial_image
from multiscale.pipeline.results import COLUMNS, read_results, results_frame, rows_from_result, write_results
from multiscale.pipeline.tasks import _load_truth, compose_chain, select_map
from multiscale.registration import Transform


def test_chain_composition_equals_sequential_application():
    # edge a->b: t_ab maps b points to a points; edge b->ref: t_bref maps ref points to b points
    t_ab = Transform(sitk.Euler3DTransform((1.0, 2.0, 3.0), 0.1, -0.2, 0.3, (0.5, -1.0, 2.0)))
    aff = sitk.AffineTransform(3)
    aff.SetMatrix((1.1, 0.05, 0.0, -0.02, 0.95, 0.1, 0.0, 0.03, 1.02))
    aff.SetTranslation((-2.0, 0.4, 1.5))
    t_bref = Transform(aff)
    chain = compose_chain([t_ab, t_bref])
    rng = np.random.default_rng(0)
    pts = rng.uniform(-20, 20, (50, 3))
    expected = t_ab.transform_points(t_bref.transform_points(pts))  # reference -> b -> a
    np.testing.assert_allclose(chain.transform_points(pts), expected, atol=1e-9)
    # and it is not the other order
    wrong = t_bref.transform_points(t_ab.transform_points(pts))
    assert np.abs(chain.transform_points(pts) - wrong).max() > 0.1
    assert compose_chain([t_ab]) is t_ab and compose_chain([]) is None


def test_truth_transform_from_homogeneous_matrix_and_centre_form(tmp_path):
    r = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    centre, t = np.array([1.0, 2.0, 3.0]), np.array([0.5, 0.0, -0.5])
    h = np.eye(4)
    h[:3, :3] = r
    h[:3, 3] = t + centre - r @ centre
    gt = {"transforms": {"a": {"matrix_4x4": h.tolist()},
                         "b": {"rotation_matrix": r.tolist(), "matrix": r.tolist(), "translation_mm": t.tolist(),
                               "centre_mm": centre.tolist()}}}
    f = tmp_path / "gt.json"
    f.write_text(json.dumps(gt))
    p = np.array([[4.0, -1.0, 2.0], [0.0, 0.0, 0.0]])
    want = (r @ (p - centre).T).T + centre + t
    np.testing.assert_allclose(_load_truth(f, "transforms.a", 3).transform_points(p), want, atol=1e-12)
    np.testing.assert_allclose(_load_truth(f, "b", 3).transform_points(p), want, atol=1e-12)
    with pytest.raises(KeyError, match="no ground-truth transform 'c'"):
        _load_truth(f, "c", 3)


def test_select_map_by_name_mz_and_errors():
    img = spatial_image(np.arange(24.0).reshape(2, 3, 4), spacing=0.05, dims=("c", "y", "x"),
                        channels=[544.1813, 790.632], units="counts")
    assert float(select_map(img, "790.632")[0, 0]) == 12.0
    assert float(select_map(img, "544.18")[0, 1]) == 1.0  # nearest m/z within 0.01
    assert select_map(img, "544.18").attrs["units"] == "counts"
    with pytest.raises(KeyError, match="no channel at m/z 600"):
        select_map(img, "600")
    named = img.assign_coords(c=["dox", "dspc"])
    with pytest.raises(KeyError, match="no channel 'haem'"):
        select_map(named, "haem")
    with pytest.raises(KeyError, match="without channels"):
        select_map(named.isel(c=0, drop=True), "dox")


def test_rows_from_results_and_table_round_trip(tmp_path):
    base = {"subject": "m1", "region": "tumour", "map": "pet", "analysis": "uptake"}
    rows = rows_from_result({"suv_max": np.float32(3.5), "method": "text is skipped", "nested": {"a": 1}},
                            base, {"suv_max": "SUVbw"})
    assert [(r["metric"], r["value"], r["units"]) for r in rows] == [("suv_max", 3.5, "SUVbw"), ("nested.a", 1.0, "")]
    prof = pd.DataFrame({"mean": [3.0, 2.0], "n": [10, 20]})
    prow = rows_from_result(prof, base, {"n": "voxels"})
    assert [(r["metric"], r["bin"]) for r in prow] == [("mean", 0), ("n", 0), ("mean", 1), ("n", 1)]
    table = results_frame(rows + prow)
    assert list(table.columns) == list(COLUMNS)
    pq, csv = write_results(table, tmp_path)
    for p in (pq, csv):
        back = read_results(p)
        assert back[["metric", "value", "units"]].values.tolist() == table[["metric", "value", "units"]].values.tolist()
        assert back["bin"].isna().tolist() == table["bin"].isna().tolist()
    assert not list(tmp_path.glob(".*"))  # atomic writes leave no temporary files


def test_dask_sizes_a_step_output_by_its_images():
    """The scheduler places tasks and the workers account memory by dask's sizeof; a step's output must
    weigh what its images weigh, not the 56 bytes of the wrapper object."""
    from dask.sizeof import sizeof

    from multiscale.pipeline.tasks import StepOutput

    img = spatial_image(np.zeros((20, 30, 40)), spacing=0.1)
    assert sizeof(StepOutput(img, {"load": 0.1})) >= img.nbytes
    assert sizeof(StepOutput({"a": img, "b": [img, img]})) >= 3 * img.nbytes
