"""The report's figures are print-ready: 300-dpi PNGs, units on every axis, colour bars and scale bars.

Each figure is inspected as a matplotlib Figure (:func:`tests.pipeline._figure_checks.figure_problems`);
the PNGs' resolution is read from their ``pHYs`` chunk.
"""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from multiscale.analysis.figures import colocalisation_figure, feature_map_figure, new_figure, radial_profile_figure
from multiscale.analysis.histology import stain_figure
from multiscale.analysis.kinetics.change import FAMILY as CHANGE
from multiscale.analysis.kinetics.change import change_evaluate
from multiscale.analysis.kinetics.figures import curves_figure, dce_figure
from multiscale.analysis.msi.figures import cluster_map_figure, map_figure, pair_figure, top_hits_figure
from multiscale.analysis.spatial.hotspots import FAMILY as HOTSPOTS
from multiscale.analysis.spatial.hotspots import hotspots_evaluate
from multiscale.analysis.unmixing import oxygenation_figure
from multiscale.image import spatial_image
from multiscale.pipeline import report
from multiscale.pipeline.steps import figure_files, figure_png
from multiscale.registration import overlay_figure, quality_figure, registration_figure

from ._figure_checks import figure_problems, png_dpi

RNG = np.random.default_rng(0)


def _img(shape=(24, 24), spacing=0.1, units="SUVbw", **kw):
    return spatial_image(RNG.random(shape).astype(np.float32) + 0.1, spacing=spacing, units=units, **kw)


def _figures():
    """A representative figure of each kind the report shows."""
    a, b = _img(), _img()
    mask = spatial_image((np.hypot(*np.mgrid[-12:12, -12:12]) < 9).astype(np.uint8), spacing=0.1)
    stack = spatial_image(RNG.random((3, 16, 16)), spacing=0.05, dims=("c", "y", "x"), channels=[500.0, 600.0, 700.0],
                          units="counts")
    ranked = pd.DataFrame({"mz": [600.0, 700.0], "similarity": [0.9, 0.5], "q_value": [0.01, 0.2]})
    maps = {"ktrans": spatial_image(RNG.random((3, 8, 8)), spacing=0.5, dims=("z", "y", "x"), units="1/min"),
            "ve": spatial_image(RNG.random((3, 8, 8)), spacing=0.5, dims=("z", "y", "x"), units="")}
    t = np.linspace(0, 300, 20)
    hist = pd.DataFrame({"a_low": [0.0, 1.0], "a_high": [1.0, 2.0], "b_low": [0.0, 1.0], "b_high": [1.0, 2.0],
                         "count": [5, 3]})
    hist.attrs.update(a_units="counts", b_units="a.u.")
    yield "registration", registration_figure("pet_to_mri", a.values, b.values, "rigid", {}, pixel_mm=(0.1, 0.1))
    yield "overlay", overlay_figure([("mri", a), ("pet", b), ("dye", _img(units="a.u."))], [mask], title="frame mri")
    yield "feature map", feature_map_figure(spatial_image(RNG.random((2, 10, 10)), spacing=0.2, dims=("c", "y", "x"),
                                                          channels=["contrast", "energy"], units="1"))
    yield "msi top hits", top_hits_figure(stack, stack.isel(c=0, drop=True), ranked)
    yield "msi pair", pair_figure(stack.isel(c=1, drop=True), stack.isel(c=0, drop=True), 0.9)
    yield "msi map", map_figure(stack.isel(c=2, drop=True))
    yield "msi clusters", cluster_map_figure(spatial_image(RNG.integers(0, 3, (10, 10)), spacing=0.05))
    yield "stains", stain_figure(spatial_image(RNG.random((2, 8, 8)), spacing=0.1, dims=("c", "y", "x"),
                                               channels=["haematoxylin", "DAB"]))
    yield "sO2", oxygenation_figure(_img(units="1"), _img(units="a.u."))
    yield "change", CHANGE.figure(change_evaluate(_img(units="1/s"), _img(units="1/s"), mask), "r2*", ("pre", "post"))[0][1]
    yield "hotspots", HOTSPOTS.figure(hotspots_evaluate(_img((30, 30), units="SUVbw"), None), "pet")[0][1]
    yield "dce", dce_figure({"t": t, "mean": np.exp(-t / 100), "sd": 0.1 + 0 * t, "fit": np.exp(-t / 100),
                             "aif": np.exp(-t / 50), "model": "Tofts", "units": "mM", "maps": maps,
                             "truth": {"ktrans": np.ones((3, 8, 8))}})
    yield "curves", curves_figure(t, {"region": np.sin(t / 50)}, units="mM")
    yield "radial", radial_profile_figure(pd.DataFrame({"depth_mm": [0.5, 1.5], "mean": [4.0, 2.0],
                                                        "units": ["SUV", "SUV"]}))
    yield "coloc", colocalisation_figure(hist)
    yield "quality", quality_figure(a, b)


@pytest.fixture(scope="module")
def figures():
    import matplotlib.pyplot as plt

    drawn = list(_figures())
    yield drawn
    plt.close(dict(drawn)["quality"])    # the one pyplot figure


def test_every_figure_has_units_colour_bars_and_scale_bars(figures):
    assert len(figures) == 16
    for name, fig in figures:
        assert figure_problems(fig) == [], name
    # the image panels of the overlay: in mm, each with a colour bar in the map's units and a scale bar
    overlay = dict(figures)["overlay"]
    panels = [ax for ax in overlay.axes if ax.images]
    assert [ax.get_xlabel() for ax in panels] == ["x (mm)", "x (mm)"]
    assert sorted(im.colorbar.ax.get_ylabel() for ax in panels for im in ax.images if im.colorbar) == ["SUVbw", "a.u."]
    bars = [a for ax in panels for a in ax.artists if type(a).__name__ == "AnchoredSizeBar"]
    assert [b.txt_label.get_text() for b in bars] == ["200 µm", "200 µm"]   # 2.4 mm across: 1-2-5 bar <= a fifth


def test_the_checks_catch_a_figure_that_is_not_print_ready():
    fig = new_figure((3, 3))
    ax = fig.add_subplot()
    ax.imshow(np.ones((4, 4)), extent=(0, 4, 4, 0))
    ax.set_xlabel("x (mm)")
    ax.set_ylabel("signal")
    assert figure_problems(fig) == ["axes: y label 'signal' without units", "axes: an image without a colour bar",
                                    "axes: an image in mm without a scale bar"]


def test_subject_figures_are_300_dpi_pngs_and_svgs_on_request(figures):
    fig = dict(figures)["registration"]
    files = figure_files(fig, "registration_pet_to_mri", ("png", "svg"))
    assert sorted(files) == ["registration_pet_to_mri.png", "registration_pet_to_mri.svg"]
    png = files["registration_pet_to_mri.png"]
    assert png_dpi(png) == pytest.approx(300, abs=0.01) and report.png_dpi(png) == pytest.approx(300, abs=0.01)
    assert b"<svg" in files["registration_pet_to_mri.svg"][:400]
    width = int.from_bytes(png[16:20], "big")
    assert width == pytest.approx(7.0 * 300, abs=2)                                 # 7 in across: a page's width
    # the web copy a one-file report embeds: same pixels and dpi, far fewer bytes
    small = report.web_png(png)
    assert int.from_bytes(small[16:20], "big") == width and png_dpi(small) == pytest.approx(300, abs=0.01)
    assert len(small) < 0.6 * len(png)


def _subject_output(root, figures):
    sub = root / "subjects" / "s1" / "figures"
    sub.mkdir(parents=True)
    fig = dict(figures)["overlay"]
    files = figure_files(fig, "overlay_mri", ("png", "svg"))
    for name, data in files.items():
        (sub / name).write_bytes(data)
    (sub / "registration_pet_to_mri.png").write_bytes(figure_png(dict(figures)["registration"]))
    (root / "subjects" / "s1" / "registration.json").write_text(json.dumps({"pet_to_mri": {"method": "rigid",
                                                                                           "quality": {}}}))
    return files["overlay_mri.png"]


def test_reports_show_subject_figures_at_their_print_size(tmp_path, figures):
    png = _subject_output(tmp_path, figures)
    table = pd.DataFrame([{"subject": "s1", "analysis": "u", "map": "pet", "region": "t", "metric": "suv_mean",
                           "value": 1.0, "units": "SUVbw", "bin": np.nan, "flags": ""}])
    statuses = [{"subject": "s1", "status": "completed", "in_table": True, "rows": 1, "seconds": 1.0}]
    study = SimpleNamespace(name="s", path=tmp_path / "s.yaml", report={}, design=None, subjects=(), analyses=())
    html = report.study_report_html(study, table, statuses, tmp_path)
    drawn_in = round(int.from_bytes(png[16:20], "big") * 96 / 300)
    assert re.search(rf'<img src="data:image/png;base64,[^"]+" alt="Maps after registration[^"]*" width="{drawn_in}"',
                      html)
    folder = SimpleNamespace(**{**vars(study), "report": {"mode": "folder"}})
    html = report.study_report_html(folder, table, statuses, tmp_path)
    assert "data:image/png" not in html
    assert 'href="subjects/s1/figures/overlay_mri.svg" download="overlay_mri.svg"' in html
    assert 'href="subjects/s1/figures/overlay_mri.png" download="overlay_mri.png">PNG 300 dpi' in html
    assert 'href="subjects/s1/figures/registration_pet_to_mri.png" download' in html
    assert "registration_pet_to_mri.svg" not in html                           # no SVG where none was drawn
