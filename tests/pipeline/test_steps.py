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
