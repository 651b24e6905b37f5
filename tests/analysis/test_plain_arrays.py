"""Analysis functions take plain numpy arrays with ``spacing=`` as scikit-image does (issue 21), and uptake
metrics warn when the image is not in SUV."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from multiscale.analysis.coloc import colocalisation
from multiscale.analysis.radial import penetration_depth, radial_gradient, radial_profile, rim_core_ratio
from multiscale.analysis.texture import features
from multiscale.analysis.uptake import uptake_metrics
from multiscale.errors import ImageError, MultiscaleWarning, UnitsWarning
from multiscale.image import spatial_image


def _ball():
    z, y, x = np.meshgrid(*[np.arange(21.0) - 10] * 3, indexing="ij")
    r = np.sqrt(z * z + y * y + x * x)
    return np.exp(-(9 - r) / 3.0), r <= 9


def test_arrays_with_spacing_equal_images():
    v, m = _ball()
    sp = (1.5, 1.0, 1.0)
    img = spatial_image(v, spacing=sp)
    a = radial_profile(v, m, shells=4, n_boot=0, spacing=sp)
    b = radial_profile(img, m, shells=4, n_boot=0)
    assert a.drop(columns="units").equals(b.drop(columns="units"))
    assert radial_gradient(v, m, spacing=sp)["slope_per_mm"] == radial_gradient(img, m)["slope_per_mm"]
    assert rim_core_ratio(v, m, n_boot=0, spacing=sp)["rim_core_ratio"] == rim_core_ratio(img, m, n_boot=0)["rim_core_ratio"]
    assert penetration_depth(v, m, spacing=sp) == penetration_depth(img, m)
    rng = np.random.default_rng(0)
    p, q = rng.random((2, 30, 30)) * 1000
    c1 = colocalisation(p, p + q, threshold="none", spacing=0.5)
    c2 = colocalisation(spatial_image(p, spacing=0.5), spatial_image(p + q, spacing=0.5), threshold="none")
    assert c1["pearson"] == c2["pearson"]
    assert features(v, m, families="stat", spacing=sp).equals(features(img, m, families="stat"))
    with pytest.raises(ImageError, match="contradicts the image's own spacing"):
        radial_profile(img, m, spacing=(9.0, 9.0, 9.0))


def test_uptake_on_a_non_suv_image_warns():
    v, m = _ball()
    assert issubclass(UnitsWarning, MultiscaleWarning)
    with pytest.warns(UnitsWarning, match="units are 'a.u.', not SUV"):
        uptake_metrics(spatial_image(v, spacing=2.0, units="a.u."), m)
    with pytest.warns(UnitsWarning, match="units are none"):
        uptake_metrics(spatial_image(v, spacing=2.0), m)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnitsWarning)
        for units in ("SUVbw", "SUVlbm", "g/ml"):
            uptake_metrics(spatial_image(v, spacing=2.0, units=units), m)
        uptake_metrics(spatial_image(v, spacing=2.0, units="Bq/ml"), m, injected_dose_bq=1e7)
        u = uptake_metrics(v, m, spacing=2.0)  # a plain array is taken as SUV
    assert u["units"] == "SUV" and u["volume_ml"] == pytest.approx(m.sum() * 8 / 1000)
