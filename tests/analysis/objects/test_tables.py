"""Per-object tables: intensities against scikit-image's regionprops, gating, ratios with mixtures, compartments."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from multiscale.analysis.objects import (
    FAMILY,
    compartment_table,
    gate_objects,
    object_table,
    ratio_populations,
)
from multiscale.errors import AnalysisError
from multiscale.image import spatial_image


def _labels_and_image():
    rng = np.random.default_rng(0)
    lab = np.zeros((40, 50), np.int32)
    lab[2:10, 3:15] = 1
    lab[15:30, 20:28] = 2
    lab[32:38, 40:48] = 3
    img = rng.random((3, 40, 50)) * [[[1.0]], [[5.0]], [[20.0]]]
    labels = spatial_image(lab, spacing=(0.002, 0.001), origin=(1.0, 2.0))
    image = spatial_image(img, spacing=(0.002, 0.001), origin=(1.0, 2.0), dims=("c", "y", "x"),
                          channels=["DNA", "CD68", "NP"], units="counts")
    return labels, image


def test_intensities_and_shapes_match_regionprops():
    from skimage.measure import regionprops_table

    labels, image = _labels_and_image()
    t = object_table(labels, image)
    ref = regionprops_table(labels.values, np.moveaxis(image.values, 0, -1),
                            properties=("label", "area", "intensity_mean", "centroid"))
    for k, ch in enumerate(["DNA", "CD68", "NP"]):
        np.testing.assert_allclose(t[f"mean_{ch}"], ref[f"intensity_mean-{k}"], rtol=1e-12)
        np.testing.assert_allclose(t[f"integrated_{ch}"], ref[f"intensity_mean-{k}"] * ref["area"] * 2.0)
    np.testing.assert_allclose(t["area_um2"], ref["area"] * 2.0 * 1.0)          # 2 µm x 1 µm pixels
    np.testing.assert_allclose(t["centroid_y_mm"], 1.0 + ref["centroid-0"] * 0.002)
    np.testing.assert_allclose(t["centroid_x_mm"], 2.0 + ref["centroid-1"] * 0.001)
    assert t["perimeter_um"].isna().all()                  # not defined by scikit-image for non-square pixels
    assert t.attrs["units"]["mean_NP"] == "counts" and t.attrs["units"]["centroid_x_mm"] == "mm"


def test_gates_thresholds_and_errors():
    t = pd.DataFrame({"mean_CD68": [5.0, 0.1, 4.0, 0.2], "mean_PanCK": [0.1, 4.0, 3.0, 0.3]})
    types = gate_objects(t, {"macrophage": "CD68 > 1 & PanCK < 1", "tumour": "PanCK >= 1"})
    assert types.tolist() == ["macrophage", "tumour", "tumour", "other"]
    auto = gate_objects(t, {"macrophage": "CD68 > otsu"})
    assert auto.tolist() == ["macrophage", "other", "macrophage", "other"]
    assert 0.2 < auto.attrs["thresholds"]["macrophage: CD68 > otsu"] < 4.0
    with pytest.raises(AnalysisError, match=r"no channel 'CD3'; channels are \['CD68', 'PanCK'\]"):
        gate_objects(t, {"t_cell": "CD3 > 1"})
    with pytest.raises(AnalysisError, match="cannot read"):
        gate_objects(t, {"x": "CD68 is high"})


def test_ratio_sub_populations_are_recovered():
    rng = np.random.default_rng(2)
    lipid = rng.uniform(50, 150, 600)
    ratio = np.r_[10 ** rng.normal(-1.0, 0.08, 400), 10 ** rng.normal(0.0, 0.08, 200)]   # ten-fold apart
    t = pd.DataFrame({"label": np.arange(600.0), "mean_protein": ratio * lipid, "integrated_protein": ratio * lipid,
                      "mean_lipid": lipid, "integrated_lipid": lipid})
    per, pops = ratio_populations(t, "protein", "lipid")
    assert pops["n"].tolist() == [400, 200]
    np.testing.assert_allclose(pops["ratio_median"], [0.1, 1.0], rtol=0.05)
    np.testing.assert_allclose(pops["weight"], [2 / 3, 1 / 3], atol=0.02)
    assert (per["population"].to_numpy()[:400] == 0).all()
    with pytest.raises(AnalysisError, match="channels are"):
        ratio_populations(t, "protein", "DNA")


def test_compartments_report_the_bias_of_the_global_mean():
    drug = np.zeros((10, 10))
    nucleus = np.zeros((10, 10), bool)
    nucleus[2:5, 2:5] = True
    cyto = np.zeros((10, 10), bool)
    cyto[1:6, 1:6] = True
    cyto &= ~nucleus
    drug[cyto] = 8.0                                       # the drug stays out of nuclei
    t = compartment_table(spatial_image(drug, spacing=0.001), {"nucleus": nucleus, "cytoplasm": cyto})
    t = t.set_index("compartment")
    g = 8.0 * cyto.sum() / 100
    assert t.loc["all", "mean"] == pytest.approx(g)
    assert t.loc["cytoplasm", "mean"] == 8.0 and t.loc["cytoplasm", "global_mean_bias"] == pytest.approx(g / 8 - 1)
    assert t.loc["cytoplasm", "share"] == 1.0 and t.loc["nucleus", "share"] == 0.0


def test_family_on_an_image_without_objects_gives_zero_objects_not_a_crash():
    flat = spatial_image(np.full((30, 30), 3.0), spacing=0.001, channel="NP", units="counts")
    res = FAMILY.evaluate({"image": flat, "mask": None}, {"gates": {"macrophage": "NP > 1"}})
    rows = res.rows.set_index("metric")
    assert rows.loc["n_objects", "value"] == 0 and np.isnan(rows.loc["uptake_mean", "value"])
    assert len(res.tables["objects"]) == 0


def test_family_gate_on_a_missing_channel_lists_the_channels():
    img = spatial_image(np.random.default_rng(0).random((30, 30)), spacing=0.001, channel="NP")
    dna = spatial_image((np.hypot(*np.mgrid[-15:15, -15:15]) < 5) * 10.0, spacing=0.001, channel="DNA")
    with pytest.raises(AnalysisError, match=r"no channel 'CD68'; channels are \['NP', 'DNA'\]"):
        FAMILY.evaluate({"image": img, "mask": None, "nuclei": dna}, {"gates": {"macrophage": "CD68 > 1"}})


def test_family_ratio_and_spots():
    """Liposomes as LoG spots of the lipid channel; protein / lipid per liposome in two sub-populations."""
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[:120, :120]
    pos = [(y, x) for y in range(10, 115, 15) for x in range(10, 115, 15)]           # 49 liposomes
    factor = np.where(np.arange(len(pos)) % 3 == 0, 10.0, 1.0) * 10 ** rng.normal(0, 0.03, len(pos))
    blobs = [np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 8.0) for y, x in pos]
    img_l = spatial_image(sum(blobs) * 100, spacing=0.0002, channel="lipid")
    img_p = spatial_image(sum(b * f for b, f in zip(blobs, factor)) * 10, spacing=0.0002, channel="protein")
    res = FAMILY.evaluate({"image": img_p, "mask": None, "nuclei": img_l},
                          {"objects": "spots", "diameter_um": 1.6, "ratio_to": "lipid"})
    rows = res.rows.set_index("metric")
    assert rows.loc["n_objects", "value"] == len(pos)
    assert rows.loc["ratio.population_0.n", "value"] == 32 and rows.loc["ratio.population_1.n", "value"] == 17
    ratio = rows.loc["ratio.population_1.ratio_median", "value"] / rows.loc["ratio.population_0.ratio_median", "value"]
    assert ratio == pytest.approx(10.0, rel=0.05)
    assert "population" in res.tables["objects"].columns


def test_family_pixel_compartments_collagen_beside_cells():
    """Cisplatin bound to collagen: a pixel compartment from a collagen threshold, with the global mean's bias."""
    yy, xx = np.mgrid[:60, :60]
    dna = spatial_image(((yy - 15) ** 2 + (xx - 15) ** 2 < 16) * 20.0, spacing=0.001, channel="DNA")
    collagen = np.zeros((60, 60))
    collagen[40:55, :] = 10.0
    drug = np.where(collagen > 5, 6.0, 1.0)
    res = FAMILY.evaluate({"image": spatial_image(drug, spacing=0.001, channel="Pt195", units="counts"), "mask": None,
                           "nuclei": dna, "marker_1": spatial_image(collagen, spacing=0.001, channel="Collagen")},
                          {"diameter_um": 8.0, "compartments": {"collagen": "Collagen > 5"}})
    rows = res.rows.set_index("metric")["value"]
    assert rows["compartment.collagen_pixels.mean"] == 6.0
    g = (15 * 60 * 6.0 + 45 * 60 * 1.0) / 3600
    assert rows["compartment.all.mean"] == pytest.approx(g)
    assert rows["compartment.collagen_pixels.global_mean_bias"] == pytest.approx(g / 6.0 - 1)
    with pytest.raises(AnalysisError, match=r"no channel 'Col1'; channels are \['Pt195', 'DNA', 'Collagen'\]"):
        FAMILY.evaluate({"image": spatial_image(drug, spacing=0.001, channel="Pt195"), "mask": None, "nuclei": dna,
                         "marker_1": spatial_image(collagen, spacing=0.001, channel="Collagen")},
                        {"compartments": {"collagen": "Col1 > 5"}})
