"""Return conventions (ARCHITECTURE.md): metrics come back as a tidy DataFrame, or as a ``Metrics`` dict whose
``.to_frame()`` is one with the units its family's rows carry; maps as images. Enforced on the modules whose
functions were brought under the rule (a new plain-dict metric function there fails the sweep)."""

from __future__ import annotations

import importlib
import inspect
import pickle

import numpy as np
import pandas as pd
import pytest

from multiscale.analysis import coloc, fluorescence, histology, radial, uptake
from multiscale.analysis.metrics import METRIC_COLUMNS, Metrics
from multiscale.analysis.objects import tracking
from multiscale.analysis.spatial import distribution, points
from multiscale.analysis.unmixing import oxygenation
from multiscale.image import spatial_image

#: modules under the rule, and the functions in them allowed a plain dict (with the reason)
RULED = {
    "multiscale.analysis.uptake": {},
    "multiscale.analysis.coloc": {"costes_threshold": "a kernel on bare value arrays (no image, no units)"},
    "multiscale.analysis.radial": {},
    "multiscale.analysis.fluorescence": {},
    "multiscale.analysis.unmixing.oxygenation": {},
    "multiscale.analysis.spatial.points": {},
    "multiscale.analysis.spatial.distribution": {},
    "multiscale.analysis.histology": {},
    "multiscale.analysis.objects.tracking": {},
}


def _lesion():
    rng = np.random.default_rng(0)
    v = rng.gamma(4.0, 1.0, (12, 12, 12))
    v[4:8, 4:8, 4:8] += 6.0
    m = np.zeros(v.shape, bool)
    m[3:9, 3:9, 3:9] = True
    return spatial_image(v, spacing=2.0, units="SUVbw"), spatial_image(m, spacing=2.0)


def _calls():
    img, m = _lesion()
    rng = np.random.default_rng(1)
    a = spatial_image(rng.random((16, 16)) * 100, spacing=0.02, units="counts")
    b = spatial_image(2 * a.values + rng.random((16, 16)), spacing=0.02, units="a.u.")
    bg = spatial_image(~m.values, spacing=2.0)
    hb = spatial_image(np.stack([rng.random((6, 6)), rng.random((6, 6))]), spacing=0.1, dims=("c", "y", "x"),
                       channels=["HbO2", "Hb"], units="uM")
    xy = rng.random((60, 2)) * 2.0
    table = pd.DataFrame({"centroid_y_mm": xy[:, 0], "centroid_x_mm": xy[:, 1], "type": np.where(np.arange(60) % 3, "a", "b")})
    return {
        "uptake_metrics": lambda: uptake.uptake_metrics(img, m, peak_volume_ml=0.1),
        "suv_peak": lambda: uptake.suv_peak(img, m, 0.1),
        "colocalisation": lambda: coloc.colocalisation(a, b, threshold="none"),
        "radial_gradient": lambda: radial.radial_gradient(img, m),
        "rim_core_ratio": lambda: radial.rim_core_ratio(img, m, n_boot=20),
        "tumour_to_background": lambda: fluorescence.tumour_to_background(img, m, bg),
        "oxygenation_metrics": lambda: oxygenation.oxygenation_metrics(hb),
        "nearest_neighbour_table": lambda: points.nearest_neighbour_table(table, "b", "a", n_simulations=9),
        "spatial_autocorrelation": lambda: distribution.spatial_autocorrelation(img, m, method="neighbours"),
        "quadrat_dispersion": lambda: points.quadrat_dispersion(table, [(0.0, 2.0), (0.0, 2.0)], 0.5),
        "positive_fraction": lambda: histology.positive_fraction(
            spatial_image(rng.random((8, 8)), spacing=0.01, units="OD"), threshold=0.5),
        "diffusion_fit": lambda: tracking.diffusion_fit(
            pd.DataFrame({"lag_s": np.arange(1, 9) * 0.5, "msd_um2": 4 * 0.3 * np.arange(1, 9) * 0.5 + 0.01}), ndim=2),
    }


@pytest.mark.parametrize("name", sorted(_calls()))
def test_metric_functions_return_a_dict_with_its_tidy_frame(name):
    res = _calls()[name]()
    assert isinstance(res, Metrics) and isinstance(res, dict)
    frame = res.to_frame()
    assert isinstance(frame, pd.DataFrame) and tuple(frame.columns) == METRIC_COLUMNS and len(frame)
    assert frame["units"].map(lambda u: isinstance(u, str) and u != "").all()
    numbers = {k: float(v) for k, v in res.items() if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)}
    assert set(frame["metric"]) == set(numbers)
    for row in frame.itertuples():
        assert row.value == pytest.approx(numbers[row.metric], nan_ok=True)
    back = pickle.loads(pickle.dumps(res))
    assert back.to_frame().equals(frame) and back.units == res.units and back.keys() == res.keys()


def test_frames_carry_the_units_of_the_family_rows():
    img, m = _lesion()
    rows = {r["metric"]: r["units"] for r in uptake.uptake_table(img, m, peak_volume_ml=0.1)}
    frame = uptake.uptake_metrics(img, m, peak_volume_ml=0.1).to_frame()
    assert dict(zip(frame["metric"], frame["units"])) == rows
    rng = np.random.default_rng(2)
    a = spatial_image(rng.random((10, 10)) * 1000, spacing=0.1, units="counts")
    b = spatial_image(rng.random((10, 10)) * 1000, spacing=0.1, units="a.u.")
    rows = {r["metric"]: r["units"] for r in coloc.colocalisation_table(a, b)}
    frame = coloc.colocalisation(a, b).to_frame()
    assert dict(zip(frame["metric"], frame["units"])) == rows
    g = {r["metric"][len("gradient_"):]: r["units"] for r in radial.radial_table(img, m, shells=2, n_boot=10)
         if r["metric"].startswith("gradient_")}
    assert dict(zip(*radial.radial_gradient(img, m).to_frame()[["metric", "units"]].T.values)) == g


def test_stain_and_diffusion_metrics_carry_their_family_units():
    dab = spatial_image(np.array([[0.0, 0.1], [0.5, 0.8]]), spacing=0.1, units="OD")
    rows = {r["metric"]: r["units"] for r in histology.stains_table(dab, threshold=0.3)}
    frame = histology.positive_fraction(dab, threshold=0.3).to_frame()
    assert {f"DAB_{k}": u for k, u in zip(frame["metric"], frame["units"])} == rows
    fit = tracking.diffusion_fit(pd.DataFrame({"lag_s": [0.1, 0.2, 0.3], "msd_um2": [0.2, 0.4, 0.6]}), ndim=2)
    assert fit.units["D_um2_per_s"] == "µm²/s" and fit["D_um2_per_s"] == pytest.approx(0.5)


def test_a_metric_without_a_unit_is_refused():
    with pytest.raises(KeyError, match="no unit"):
        Metrics({"x": 1.0}, {})
    with pytest.raises(KeyError, match="radial: no unit"):
        radial.radial_unit("curvature", "a.u.")


@pytest.mark.parametrize("module", sorted(RULED))
def test_no_plain_dict_of_metrics_in_ruled_modules(module):
    mod = importlib.import_module(module)
    bad = []
    for name in getattr(mod, "__all__", []):
        f = getattr(mod, name)
        if not inspect.isfunction(f):
            continue
        ret = str(inspect.signature(f).return_annotation).replace(" ", "")
        if ret in ("dict[str,float]", "dict[str,Any]", "dict") and name not in RULED[module]:
            bad.append(f"{name} -> {ret}")
    assert not bad, f"{module}: metrics must be a DataFrame or a Metrics (see ARCHITECTURE.md): {bad}"
