"""The six texture-matrix families' feature values against IBSI's consensus values for the phantom.

Each family module is called directly (the contract ``family_features(q, n_levels, morph_mask,
spacing, aggregations, settings)``); the values are compared as IBSI prescribes: rounded to 3
significant digits, within the listed tolerance.
"""

from __future__ import annotations

import importlib

import numpy as np
import pandas as pd
import pytest

sitk = pytest.importorskip("SimpleITK")

FAMILIES = {"glcm": "cm", "glrlm": "rlm", "glszm": "szm", "gldzm": "dzm", "ngtdm": "ngt", "ngldm": "ngl"}
PHANTOM_SETTINGS = {"glcm_distance": 1, "glcm_symmetric": True, "ngldm_alpha": 0, "ngldm_distance": 1, "ngtdm_distance": 1}


def module(family: str):
    return importlib.import_module(f"multiscale.analysis.texture.{family}")


@pytest.fixture(scope="module")
def phantom(reference_data):
    from multiscale.image import from_sitk

    folder = reference_data / "ibsi-digital-phantom"
    image = from_sitk(sitk.ReadImage(str(folder / "phantom.nii.gz")))
    mask = from_sitk(sitk.ReadImage(str(folder / "mask.nii.gz")))
    morph = mask.values > 0
    q = np.where(morph, image.values, 0).astype(np.int64)  # grey levels already 1..6: no discretisation
    reference = pd.read_csv(folder / "reference_values.csv")
    return q, morph, reference


def round3(x: float) -> float:
    return float(f"{x:.3g}")


@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_matches_ibsi_phantom(phantom, family):
    q, morph, reference = phantom
    mod = module(family)
    rows = mod.family_features(q, 6, morph, (2.0, 2.0, 2.0), mod.AGGREGATIONS, PHANTOM_SETTINGS)
    expected = reference[reference["tag"].str.startswith(FAMILIES[family] + "_")].set_index("tag")
    got = {r["tag"]: r for r in rows}
    assert set(got) == set(expected.index), f"{family}: tags differ: {sorted(set(got) ^ set(expected.index))}"
    failures = []
    for tag, ref in expected.iterrows():
        row = got[tag]
        assert row["ibsi_id"] == ref["ibsi_feature_id"], tag
        assert row["aggregation"] == ref["aggregation"], tag
        assert row["family"] == family
        value = row["value"]
        if not (np.isfinite(value) and abs(round3(value) - ref["value"]) <= ref["tolerance"] + 1e-12):
            failures.append((tag, value, ref["value"], ref["tolerance"]))
    assert not failures, f"{family}: {len(failures)} values off IBSI: {failures[:10]}"


def test_phantom_covers_all_matrix_tags(phantom):
    _, _, reference = phantom
    n = reference["tag"].str.match(r"^(cm|rlm|szm|dzm|ngt|ngl)_").sum()
    total = sum(len(module(f).FEATURES) * len(module(f).AGGREGATIONS) for f in FAMILIES)
    assert total == n == 408


@pytest.mark.parametrize("family", list(FAMILIES))
def test_empty_roi_gives_nan(family):
    mod = module(family)
    q = np.zeros((2, 3, 3), dtype=np.int64)
    rows = mod.family_features(q, 4, q > 0, (1.0, 1.0, 1.0), None, {})
    assert rows and all(np.isnan(r["value"]) for r in rows)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_single_slice_input_gives_2d_and_3d_rows(family):
    mod = module(family)
    q = np.array([[1, 2, 2], [1, 1, 2], [3, 3, 1]])  # a 2-D image arrives as one slice
    rows = mod.family_features(q, 3, None, (1.0, 1.0, 1.0), None, {})
    values = {r["tag"]: r["value"] for r in rows}
    assert len(values) == len(mod.FEATURES) * len(mod.AGGREGATIONS)
    short = mod.FEATURES[0][0]
    two_d = [v for t, v in values.items() if t.startswith(f"{mod.PREFIX}_{short}_2D")]
    assert two_d and all(np.isfinite(two_d))


@pytest.mark.parametrize("family", list(FAMILIES))
def test_bad_grey_levels_are_refused(family):
    mod = module(family)
    with pytest.raises(ValueError, match="grey levels must lie in 1..3"):
        mod.family_features(np.array([[[1, 5]]]), 3, None, (1.0, 1.0, 1.0), None, {})
    with pytest.raises(TypeError, match="integer grey levels"):
        mod.family_features(np.array([[[1.5, 2.0]]]), 3, None, (1.0, 1.0, 1.0), None, {})
    with pytest.raises(ValueError, match="unknown aggregation"):
        mod.family_features(np.array([[[1, 2]]]), 3, None, (1.0, 1.0, 1.0), ["4D"], {})


def test_glcm_symmetry_and_distance_settings():
    glcm = module("glcm")
    q = np.array([[[1, 2, 3, 1]]])
    asym = glcm.glcm_matrices(q, 3, symmetric=False, planar=True)[0]
    sym = glcm.glcm_matrices(q, 3, symmetric=True, planar=True)[0]
    assert asym.tolist() == [[0, 1, 0], [0, 0, 1], [1, 0, 0]]
    np.testing.assert_array_equal(sym, asym + asym.T)
    far = glcm.glcm_matrices(q, 3, distance=2, planar=True)[0]  # pairs (1,3) and (2,1), both ways
    assert far.tolist() == [[0, 1, 1], [1, 0, 0], [1, 0, 0]]
    rows_1 = glcm.family_features(q, 3, None, (1, 1, 1), ["2D_avg"], {"glcm_distance": 1})
    rows_2 = glcm.family_features(q, 3, None, (1, 1, 1), ["2D_avg"], {"glcm_distance": 2})
    assert rows_1[11]["feature"] == "Contrast" and rows_1[11]["value"] != rows_2[11]["value"]


def test_ngldm_coarseness_counts_similar_neighbours():
    ngldm = module("ngldm")
    q = np.array([[[1, 2, 4]]])
    strict = ngldm.ngldm_matrix(q, 4, alpha=0, planar=True)
    loose = ngldm.ngldm_matrix(q, 4, alpha=1, planar=True)
    assert strict[:, 0].tolist() == [1, 1, 0, 1]  # every voxel alone
    assert loose[0, 1] == 1 and loose[1, 1] == 1 and loose[3, 0] == 1  # 1 and 2 now depend on each other


def test_constant_region_has_defined_values():
    # one grey level: GLCM correlation and NGTDM ratios are undefined (NaN), the rest defined
    q = np.ones((3, 3, 3), dtype=np.int64)
    cm = {r["tag"]: r["value"] for r in module("glcm").family_features(q, 1, None, (1, 1, 1), ["3D_comb"], {})}
    assert cm["cm_joint_max_3D_comb"] == 1.0 and np.isnan(cm["cm_corr_3D_comb"])
    ngt = {r["tag"]: r["value"] for r in module("ngtdm").family_features(q, 1, None, (1, 1, 1), ["3D"], {})}
    assert np.isnan(ngt["ngt_coarseness_3D"]) and ngt["ngt_complexity_3D"] == 0.0
    szm = {r["tag"]: r["value"] for r in module("glszm").family_features(q, 1, None, (1, 1, 1), ["3D"], {})}
    assert szm["szm_lze_3D"] == 27.0**2 and szm["szm_z_perc_3D"] == 1 / 27
