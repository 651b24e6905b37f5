"""Per-subject steps and the tidy table: rows with units, table round trips, dask sizes of step outputs."""

from __future__ import annotations

import numpy as np
import pytest

from multiscale.analysis.family import tidy_rows
from multiscale.image import spatial_image
from multiscale.pipeline.results import COLUMNS, read_results, results_frame, write_results


def test_tidy_rows_and_table_round_trip(tmp_path):
    base = {"subject": "m1", "region": "tumour", "map": "pet", "analysis": "uptake"}
    rows = tidy_rows({"suv_max": np.float32(3.5), "method": "text is skipped", "nested": {"a": 1}},
                     {"suv_max": "SUVbw", "a": "1"}, **base)
    assert [(r["metric"], r["value"], r["units"]) for r in rows] == [("suv_max", 3.5, "SUVbw"), ("nested.a", 1.0, "1")]
    with pytest.raises(KeyError, match="no unit defined for metric 'other'"):
        tidy_rows({"other": 1.0}, {"suv_max": "SUVbw"})
    prow = [dict(base, metric="shell_mean", value=v, units="SUVbw", bin=i, bin_lo=i, bin_hi=i + 1, bin_units="mm")
            for i, v in enumerate((3.0, 2.0))]
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

    from multiscale.pipeline.wiring import StepOutput

    img = spatial_image(np.zeros((20, 30, 40)), spacing=0.1)
    assert sizeof(StepOutput(img, {"load": 0.1})) >= img.nbytes
    assert sizeof(StepOutput({"a": img, "b": [img, img]})) >= 3 * img.nbytes


def test_loader_and_registration_warnings_reach_the_rows_flags():
    """A map's recorded warnings (from its loader, or the registrations of its chain) are in every row it gives."""
    from multiscale.pipeline.spec import AnalysisSpec
    from multiscale.pipeline.steps import analysis_step, resample_step
    from multiscale.registration import identity

    z, y, x = np.mgrid[:8, :8, :8]
    pet = spatial_image(1.0 + z + 0.1 * x, spacing=1.0, units="SUVbw")
    pet.attrs["warnings"] = ["pet.dcm: CorrectedImage lacks DECY"]
    t = identity(3)
    t.info["warnings"] = ["worse than the initial pose; kept the initial pose"]
    moved = resample_step(pet, pet, [{"edge": "pet_to_mri", "transform": t}])
    assert moved.attrs["warnings"] == ["pet.dcm: CorrectedImage lacks DECY",
                                       "registration pet_to_mri: worse than the initial pose; kept the initial pose"]
    mask = spatial_image(((z > 1) & (z < 6)).astype(np.uint8), spacing=1.0)
    spec = AnalysisSpec(type="uptake", name="u", maps=("pet",), masks=("tumour",), params={"peak_volume_ml": 0.001})
    out = analysis_step("m1", spec, {"pet": moved}, {"tumour": mask})
    flags = {r["flags"] for r in out["rows"]}
    assert len(flags) == 1
    (flag,) = flags
    assert "CorrectedImage lacks DECY" in flag and "registration pet_to_mri" in flag


def test_registration_range_spans_the_values_under_alternative_maps():
    """With maps resampled under transforms drawn around a registration, each row gets the range of its value."""
    from multiscale.pipeline.spec import AnalysisSpec
    from multiscale.pipeline.steps import analysis_step

    z, y, x = np.mgrid[:8, :8, :8]
    pet = spatial_image(1.0 + z + 0.1 * x, spacing=1.0, units="SUVbw")
    shifted = [spatial_image(c + z + 0.1 * x, spacing=1.0, units="SUVbw") for c in (0.5, 1.5)]
    mask = spatial_image(((z > 1) & (z < 6)).astype(np.uint8), spacing=1.0)
    spec = AnalysisSpec(type="uptake", name="u", maps=("pet",), masks=("tumour",),
                        params={"peak_volume_ml": 0.001}, uncertainty=True)
    out = analysis_step("m1", spec, {"pet": pet}, {"tumour": mask}, [({"pet": s}, {"tumour": mask}) for s in shifted])
    rows = {r["metric"]: r for r in out["rows"]}
    assert rows["suv_max"]["value"] == pytest.approx(6.7)
    assert (rows["suv_max"]["registration_lo"], rows["suv_max"]["registration_hi"]) == pytest.approx((6.2, 7.2))
    assert rows["suv_sd"]["registration_lo"] == pytest.approx(rows["suv_sd"]["registration_hi"])  # a shift moves no SD
    assert "registration range over 2 transform samples" in rows["suv_max"]["detail"]
    plain = analysis_step("m1", spec, {"pet": pet}, {"tumour": mask})
    assert "registration_lo" not in plain["rows"][0]
