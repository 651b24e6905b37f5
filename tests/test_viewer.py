"""Optional napari viewing: layer data in physical scale, without importing napari or Qt."""

from __future__ import annotations

import sys

import numpy as np

from multiscale.image import spatial_image
from multiscale.viewer import napari_layers


def test_layers_in_physical_scale_from_an_omezarr(tmp_path):
    from multiscale import io

    img = spatial_image(np.random.default_rng(0).random((3, 4, 6, 8)).astype(np.float32),
                        spacing=(2.0, 0.5, 0.25), origin=(10.0, -3.0, 4.0), dims=("c", "z", "y", "x"),
                        channels=["mri", "pet", "mask:tumour"])
    img.attrs["channel_units"] = {"mri": "a.u.", "pet": "SUVbw", "mask:tumour": ""}
    path = io.save(img, tmp_path / "maps.ome.zarr")
    layers = napari_layers(path)
    assert [(kw["name"], kind) for _, kw, kind in layers] == [("mri", "image"), ("pet", "image"),
                                                               ("mask:tumour", "labels")]
    for data, kw, _ in layers:
        np.testing.assert_allclose(kw["scale"], (2.0, 0.5, 0.25))
        np.testing.assert_allclose(kw["translate"], (10.0, -3.0, 4.0))
        assert tuple(data.shape) == (4, 6, 8)
    assert layers[1][1]["metadata"]["units"] == "SUVbw"
    assert layers[1][1]["blending"] == "additive"
    np.testing.assert_allclose(np.asarray(layers[1][0]), img.sel(c="pet").values, rtol=1e-6)
    assert "napari" not in sys.modules and "PyQt5" not in sys.modules


def test_oblique_images_carry_their_rotation():
    d = np.array([[1.0, 0.0], [0.0, 1.0]])[::-1]
    img = spatial_image(np.zeros((4, 5)), spacing=(0.5, 0.5), direction=d)
    (_, kw, _), = napari_layers(img)
    np.testing.assert_allclose(kw["rotate"], d)
