"""Export of OME-Zarr maps to spatialdata (issue 21): what is exported, in mm; with spatialdata when installed."""

from __future__ import annotations

import numpy as np
import pytest

from multiscale.image import index_to_world
from multiscale.io import save
from multiscale.io.spatialdata_export import spatialdata_elements

from .test_omezarr_labels import _stack


def test_elements_from_our_omezarr_maps(tmp_path):
    img = _stack()
    path = save(img, tmp_path / "mri.ome.zarr")
    el = spatialdata_elements(path)
    assert el["coordinate_system"] == "global" and el["space_units"] == "mm"
    assert list(el["images"]) == ["mri"]
    maps = el["images"]["mri"]
    assert maps["dims"] == ("c", "z", "y", "x") and maps["channels"] == ["mri", "pet"]
    assert tuple(maps["data"].shape) == (2, 6, 40, 50)
    assert sorted(el["labels"]) == ["mri_tumour", "mri_vessels_fluorescence"]
    lab = el["labels"]["mri_tumour"]
    assert lab["dims"] == ("z", "y", "x") and np.issubdtype(lab["data"].dtype, np.integer)
    np.testing.assert_array_equal(np.asarray(lab["data"]), img.sel(c="mask:tumour").values.astype(int))
    # the affine maps voxel indices to the same mm positions as the image's own coordinates
    idx = np.array([[0, 0, 0], [5, 39, 49], [2, 7, 11]], dtype=float)
    world = (maps["affine"] @ np.c_[idx, np.ones(3)].T).T[:, :3]
    np.testing.assert_allclose(world, index_to_world(img, idx), atol=1e-9)


def test_to_spatialdata_when_installed(tmp_path):
    """Run where spatialdata installs (an env of its own: it pins distributed < 2026.1.2); checked with 0.7.3."""
    sd = pytest.importorskip("spatialdata")
    from spatialdata.transformations import get_transformation

    from multiscale.io.spatialdata_export import write_spatialdata

    img = _stack()
    out = write_spatialdata(save(img, tmp_path / "mri.ome.zarr"), tmp_path / "study.zarr")
    sdata = sd.read_zarr(out)
    assert set(sdata.images) == {"mri"} and set(sdata.labels) == {"mri_tumour", "mri_vessels_fluorescence"}
    assert list(sdata.images["mri"].coords["c"].values) == ["mri", "pet"]
    for element in (sdata.images["mri"], sdata.labels["mri_tumour"]):
        affine = get_transformation(element, to_coordinate_system="global").to_affine_matrix(
            input_axes=("z", "y", "x"), output_axes=("z", "y", "x"))
        idx = np.array([[0, 0, 0, 1], [5, 39, 49, 1]], dtype=float)
        np.testing.assert_allclose((affine @ idx.T).T[:, :3], index_to_world(img, idx[:, :3]), atol=1e-9)
    np.testing.assert_array_equal(np.asarray(sdata.labels["mri_tumour"]), img.sel(c="mask:tumour").values)
