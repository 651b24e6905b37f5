"""napari layers with their own contrast (omero windows of our OME-Zarr), masks as labels, mm scale (issue 21)."""

from __future__ import annotations

import pytest

from multiscale.io import save
from multiscale.viewer import napari_layers

from .io.test_omezarr_labels import _stack


def test_each_map_has_its_own_contrast_and_masks_are_labels(tmp_path):
    img = _stack()
    path = save(img, tmp_path / "maps.ome.zarr")
    layers = {kw["name"]: (kw, kind) for _, kw, kind in napari_layers(path)}
    assert layers["mask:tumour"][1] == "labels" and layers["mask:vessels@fluorescence"][1] == "labels"
    mri, pet = layers["mri"][0], layers["pet"][0]
    lo, hi = mri["contrast_limits"]
    assert 800 < lo < hi < 1300  # the 1e6 hot pixel does not set MRI's range
    assert pet["contrast_limits"][1] < 6.0 and pet["contrast_limits"] != mri["contrast_limits"]
    assert mri["colormap"] == "gray" and pet["colormap"] != "gray"
    assert mri["scale"] == (2.0, 0.5, 0.5) and mri["metadata"]["space_units"] == "mm"
    # an image (no OME-Zarr) gets percentiles too
    direct = {kw["name"]: kw for _, kw, kind in napari_layers(img) if kind == "image"}
    assert 800 < direct["mri"]["contrast_limits"][0] < direct["mri"]["contrast_limits"][1] < 1300


def test_napari_model_gets_mm_units_and_no_deprecated_calls(tmp_path):
    """Runs where napari is installed (checked with napari 0.9.2 and a ViewerModel, no Qt needed)."""
    import warnings

    components = pytest.importorskip("napari.components")
    from multiscale.viewer import add_layers

    path = save(_stack(), tmp_path / "maps.ome.zarr")
    viewer = components.ViewerModel()
    with warnings.catch_warnings():
        warnings.filterwarnings("error", category=DeprecationWarning, module="multiscale")
        warnings.filterwarnings("error", category=FutureWarning, module="multiscale")
        layers = add_layers(viewer, path)
    assert [type(la).__name__ for la in layers] == ["Image", "Image", "Labels", "Labels"]
    assert all(str(u) in ("mm", "millimeter") for la in layers for u in la.units)
    assert tuple(viewer.dims.axis_labels) == ("z", "y", "x")
