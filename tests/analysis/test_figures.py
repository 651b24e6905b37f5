"""Figures: built from the analysis tables, drawn on the Agg canvas, saved as PNG."""

from __future__ import annotations

import numpy as np
import pytest

from multiscale.analysis._masks import AnalysisError
from multiscale.analysis.coloc import colocalisation, joint_histogram
from multiscale.analysis.figures import colocalisation_figure, radial_profile_figure
from multiscale.analysis.radial import radial_profile
from multiscale.image import spatial_image


def _sphere_profile(scale: float):
    zz, yy, xx = np.mgrid[:17, :17, :17] - 8.0
    r = np.sqrt(zz**2 + yy**2 + xx**2)
    img = spatial_image(scale * (10 + r), spacing=0.5, units="SUV")
    return radial_profile(img, spatial_image(r <= 7, spacing=0.5), shells=4, n_boot=50)


def test_radial_profile_figure_plots_the_table(tmp_path):
    prof = _sphere_profile(1.0)
    fig = radial_profile_figure(prof, title="tumour 1")
    ax = fig.axes[0]
    mean_line = ax.lines[0]
    assert np.allclose(mean_line.get_xdata(), prof["depth_mm"])
    assert np.allclose(mean_line.get_ydata(), prof["mean"])
    assert ax.get_ylabel() == "signal (SUV)" and ax.get_title() == "tumour 1"
    two = radial_profile_figure({"drug": prof, "carrier": _sphere_profile(2.0)}, x="normalised_depth")
    assert len(two.axes[0].lines) == 4 and two.axes[0].get_xlabel().startswith("normalised")
    out = tmp_path / "profile.png"
    fig.savefig(out, dpi=60)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_colocalisation_figure_from_histogram_and_result(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 200, (40, 40)).astype(float)
    y = np.clip(x + rng.normal(0, 10, x.shape), 0, 255).round()
    a, b = spatial_image(x, spacing=0.2), spatial_image(y, spacing=0.2)
    hist = joint_histogram(a, b, bins=32)
    res = colocalisation(a, b)
    fig = colocalisation_figure(hist, res, labels=("drug", "carrier"))
    ax = fig.axes[0]
    assert ax.get_xlabel() == "drug" and "Pearson" in ax.get_title()
    xs, ys = ax.lines[0].get_xdata(), ax.lines[0].get_ydata()
    assert np.allclose(ys, res["costes_slope"] * xs + res["costes_intercept"])
    assert ax.lines[1].get_xdata()[0] == res["threshold_a"]
    scatter = colocalisation_figure(hist, kind="scatter", log=False)
    assert len(scatter.axes[0].collections[0].get_offsets()) == len(hist)
    out = tmp_path / "coloc.png"
    fig.savefig(out, dpi=60)
    assert out.stat().st_size > 0


def test_figures_refuse_wrong_tables():
    with pytest.raises(AnalysisError, match="columns"):
        colocalisation_figure(_sphere_profile(1.0))
    with pytest.raises(AnalysisError, match="lacks the columns"):
        radial_profile_figure(_sphere_profile(1.0).drop(columns=["mean"]))
    with pytest.raises(AnalysisError, match="kind"):
        colocalisation_figure(joint_histogram(spatial_image(np.eye(4), spacing=1.0),
                                              spatial_image(np.eye(4), spacing=1.0)), kind="violin")
