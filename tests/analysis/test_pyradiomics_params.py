"""pyradiomics parity (issue 21): a pyradiomics parameter file gives pyradiomics 3.0.1's values under its names.

The reference values were computed with pyradiomics 3.0.1 itself and typed into ``_pyradiomics_reference.py`` (see
its docstring for the source); pyradiomics is not needed here. Tolerance: 1e-6 relative (1e-12 absolute for values
that are 0 up to pyradiomics' epsilon), 1 % for shape features (mesh).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from multiscale.analysis.texture import features
from multiscale.analysis.texture._discretise import pyradiomics_bins
from multiscale.analysis.texture.pyradiomics import (
    FLAT_VALUES,
    PYRADIOMICS_TAGS,
    pyradiomics_features,
    read_params,
)
from multiscale.errors import TextureSettingsError
from multiscale.image import spatial_image
from tests.conftest import REFERENCE_DATA

from ._pyradiomics_reference import REFERENCE

#: pyradiomics features this package leaves out: none of the 107 pyradiomics 3.0.1 computes by default
NOT_REPRODUCED: set[str] = set()
STS019 = REFERENCE_DATA / "ibsi-sts019" / "nifti" / "STS_019"


def _texture_case():
    """A 14 x 16 x 18 texture (no random numbers) in an ellipsoid (label 1) with one voxel of label 2."""
    shape = (14, 16, 18)
    z, y, x = np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij")
    img = ((x * 7 + y * 13 + z * 29) % 17) * 6.5 + 25.0 * np.sin(x / 2.0) + 3.0 * z - 20.0
    c = [(n - 1) / 2 for n in shape]
    mask = (((z - c[0]) / 5.5) ** 2 + ((y - c[1]) / 6.5) ** 2 + ((x - c[2]) / 7.5) ** 2 <= 1).astype(np.uint8)
    mask[3, 8, 9] = 2
    return np.round(img, 3), mask, (2.0, 0.9, 0.8), (-10.0, 5.0, 3.0)


def _flat_case():
    img = np.full((6, 7, 8), 42.0)
    img[0] = 7.0
    mask = np.zeros((6, 7, 8), np.uint8)
    mask[1:5, 1:6, 2:7] = 1
    return img, mask, (1.5, 1.0, 1.0), (0.0, 0.0, 0.0)


def _inputs(kind: str):
    if kind == "sts019":
        sitk = pytest.importorskip("SimpleITK")
        if not (STS019 / "CT_image.nii.gz").is_file():
            pytest.skip("reference data absent")
        from multiscale.image import from_sitk

        return (from_sitk(sitk.ReadImage(str(STS019 / "CT_image.nii.gz"))),
                from_sitk(sitk.ReadImage(str(STS019 / "CT_mask.nii.gz"))).values)
    img, mask, sp, org = _texture_case() if kind == "texture" else _flat_case()
    return spatial_image(img, spacing=sp, origin=org), mask


def _close(name: str, got: float, want: float) -> bool:
    if "_shape_" in name:
        return abs(got - want) <= 0.01 * abs(want)
    if abs(want) < 1e-12:
        return abs(got - want) <= 1e-12
    return abs(got - want) <= 1e-6 * abs(want)


@pytest.mark.parametrize("case", sorted(REFERENCE))
def test_values_equal_pyradiomics(case):
    ref = REFERENCE[case]
    image, mask = _inputs(ref["image"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing left out, nothing undefined
        df = pyradiomics_features(image, mask, ref["params"])
    got = dict(zip(df["pyradiomics"], df["value"]))
    expected = {k: v for k, v in ref["values"].items() if k not in NOT_REPRODUCED}
    assert set(got) == set(expected), set(got) ^ set(expected)
    wrong = {k: (got[k], v) for k, v in expected.items() if not _close(k, got[k], v)}
    assert not wrong, wrong


def test_pyradiomics_names_and_ibsi_tags_are_columns():
    image, mask = _inputs("texture")
    df = pyradiomics_features(image, mask, {"featureClass": {"glcm": ["Idmn", "Correlation"],
                                                             "firstorder": ["Kurtosis", "Energy"]}})
    rows = df.set_index("pyradiomics")
    assert rows.loc["original_glcm_Idmn", "tag"] == "cm_inv_diff_mom_norm_3D_avg"
    assert rows.loc["original_firstorder_Kurtosis", "tag"] == ""  # pyradiomics' own definition (not excess)
    assert list(df.columns) == ["pyradiomics", "feature_class", "feature", "tag", "value"]
    ibsi = features(image, mask, families="stat", label=1).set_index("tag")["value"]
    assert rows.loc["original_firstorder_Kurtosis", "value"] == pytest.approx(ibsi["stat_kurt"] + 3, rel=1e-12)


def test_flat_region_values_are_pyradiomics_numbers_not_nan():
    image, mask = _inputs("flat")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ibsi = features(image, mask, families=["glcm", "ngtdm"], aggregation=["3D_avg", "3D"]).set_index("tag")
        df = pyradiomics_features(image, mask, None).set_index("pyradiomics")
    assert math.isnan(ibsi.loc["cm_corr_3D_avg", "value"]) and math.isnan(ibsi.loc["ngt_coarseness_3D", "value"])
    for (cls, name), value in FLAT_VALUES.items():
        assert df.loc[f"original_{cls}_{name}", "value"] == value
    assert not df["value"].isna().any()


def test_bin_anchoring_is_pyradiomics_not_ibsi():
    # pyradiomics' docstring example: values 54..166, binWidth 25 -> edges 50, 75, ..., 175 (+ one)
    q, edges = pyradiomics_bins(np.array([54.0, 60.0, 75.0, 166.0]), bin_width=25.0)
    assert q.tolist() == [1, 1, 2, 5] and edges[0] == 50.0
    # the same values with IBSI FBS anchored at the ROI minimum: 54 + 25 k edges
    ibsi = features(spatial_image(np.array([[[54.0, 60.0], [75.0, 166.0]]]), spacing=1.0), None, families="ih",
                    bin_width=25.0, min_anchor=54.0)
    assert ibsi.attrs["n_levels"] == 5 and ibsi.set_index("tag").loc["ih_min", "value"] == 1
    image, mask = _inputs("texture")
    df = pyradiomics_features(image, mask, {"setting": {"binWidth": 25}})
    lo = image.values[mask == 1].min()
    assert df.attrs["bin_anchor"] == math.floor(lo / 25) * 25 == -50


def test_parameter_file_from_yaml_and_bad_files(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("imageType:\n  Original: {}\nfeatureClass:\n  glcm: [Idmn]\nsetting:\n  binWidth: 10\n"
                    "  label: 1\n  geometryTolerance: 0.001\n")
    p = read_params(path)
    assert p.settings["binWidth"] == 10 and p.feature_classes == {"glcm": ["Idmn"]}
    assert p.texture_settings()["binning"] == "pyradiomics"
    bad = {
        "setting:\n  binWdth: 10\n": "setting.binWdth: unknown pyradiomics setting",
        "imageType:\n  Wavelet: {}\n": "imageType Wavelet: only Original",
        "featureClass:\n  glcm: [Idmnn]\n": "featureClass.glcm: unknown feature",
        "featureClass:\n  shape2D:\n": "shape2D",
        "setting:\n  force2D: true\n": "setting.force2D",
        "setting:\n  resegmentMode: relative\n  resegmentRange: [0.1]\n": "resegmentMode",
    }
    for text, message in bad.items():
        path.write_text(text)
        with pytest.raises(TextureSettingsError, match=message) as exc:
            read_params(path)
        assert str(path) in str(exc.value)
    image, mask = _inputs("texture")
    with pytest.raises(TextureSettingsError, match="label 7 is not in the mask"):
        pyradiomics_features(image, mask, {"setting": {"label": 7}})


def test_every_default_feature_has_a_mapping():
    n = sum(len(v) for v in PYRADIOMICS_TAGS.values())
    assert n == 111  # pyradiomics 3.0.1: 107 on by default + StandardDeviation, Compactness1/2, SphericalDisproportion


def test_plain_arrays_with_spacing():
    img, mask, sp, _ = _texture_case()
    a = pyradiomics_features(img, mask, {"featureClass": {"shape": ["VoxelVolume"]}}, spacing=sp)
    assert a["value"].iloc[0] == pytest.approx(int((mask == 1).sum()) * np.prod(sp))
