"""IBSI image processing in ``texture.features`` (issue 21): interpolation grid, rounding, ROI re-interpolation,
re-segmentation, and the IBSI CT-phantom configurations A-E as one call each.

References: the IBSI documentation (theibsi/ibsi-doc, ``docs/03_Image_processing.rst``: *align grid centres*
example 4 x 4 at 3 mm -> 6 x 6 at 2 mm; fixed bin size counted from the re-segmentation lower bound;
``docs/05_Reference_data_sets.rst``: configurations A-E) and the IBSI digital phantom's reference values.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from multiscale.analysis.texture import IBSI_CT_CONFIGURATIONS, features
from multiscale.analysis.texture.processing import interpolate_image, interpolate_mask, interpolation_grid
from multiscale.errors import TextureSettingsError
from multiscale.image import spacing, spatial_image
from tests.conftest import REFERENCE_DATA

PHANTOM = REFERENCE_DATA / "ibsi-digital-phantom"


def _values(df):
    return dict(zip(df["tag"], df["value"]))


def test_align_grid_centres_example_of_the_ibsi_manual():
    img = spatial_image(np.zeros((4, 4)), spacing=3.0, origin=(10.0, -4.0))
    g = interpolation_grid(img, 2.0)
    assert g["shape"] == (6, 6) and g["spacing"] == (2.0, 2.0)
    # both grids centred: (n_a - 1) s_a / 2 = 4.5 mm from the first original centre = 5 s_b / 2
    np.testing.assert_allclose(g["origin"], (10.0 - 0.5, -4.0 - 0.5), atol=1e-12)
    centre_a = np.array((10.0, -4.0)) + 1.5 * 3.0
    centre_b = np.array(g["origin"]) + 2.5 * 2.0
    np.testing.assert_allclose(centre_a, centre_b, atol=1e-12)
    # n_b = ceil(n_a s_a / s_b): 5 voxels of 1.5 mm at 2 mm -> 4 (3.75 rounded up)
    assert interpolation_grid(spatial_image(np.zeros((5,)), spacing=1.5, dims=("x",)), 2.0)["shape"] == (4,)


def test_linear_and_cubic_interpolation_reproduce_a_ramp_inside_the_grid():
    n = (16, 16, 18)
    z, y, x = np.meshgrid(*[np.arange(float(k)) for k in n], indexing="ij")
    ramp = 3.0 * x - 2.0 * y + 0.5 * z + 7.0
    sp, org = (3.0, 1.2, 0.9), (1.0, 2.0, 3.0)
    img = spatial_image(ramp, spacing=sp, origin=org)
    for method, margin, tol in (("linear", 1, 1e-9), ("cubic", 5, 2e-3)):
        out = interpolate_image(img, 1.0, method)
        np.testing.assert_allclose(spacing(out), (1.0, 1.0, 1.0), rtol=1e-12)
        zz, yy, xx = (out.coords[d].values for d in ("z", "y", "x"))
        iz, iy, ix = ((c - o) / s for c, o, s in zip((zz, yy, xx), org, sp))  # world -> original index
        want = 3.0 * ix[None, None, :] - 2.0 * iy[None, :, None] + 0.5 * iz[:, None, None] + 7.0
        # inside the original grid (cubic: away from the padded boundary, whose nearest-value padding bends it)
        inside = [(i >= margin) & (i <= k - 1 - margin) for i, k in zip((iz, iy, ix), n)]
        sel = inside[0][:, None, None] & inside[1][None, :, None] & inside[2][None, None, :]
        assert sel.sum() > 100
        np.testing.assert_allclose(out.values[sel], want[sel], atol=tol)
    rounded = interpolate_image(img, 1.0, "linear", round_intensities=True).values
    assert np.array_equal(rounded, np.round(rounded))


def test_in_plane_interpolation_keeps_the_slices():
    img = spatial_image(np.arange(3 * 4 * 5, dtype=float).reshape(3, 4, 5), spacing=(5.0, 0.8, 0.8))
    out = interpolate_image(img, (None, 2.0, 2.0), "linear")
    np.testing.assert_allclose(spacing(out), (5.0, 2.0, 2.0), rtol=1e-12)
    assert out.shape == (3, 2, 2)
    np.testing.assert_allclose(out.coords["z"].values, img.coords["z"].values)


def test_mask_partial_volume_threshold():
    img = spatial_image(np.zeros((1, 1, 4)), spacing=(1.0, 1.0, 2.0))
    m = np.array([[[0, 1, 1, 0]]])
    assert interpolate_mask(m, img, (None, None, 1.0)).values[0, 0].tolist() == [0, 0, 1, 1, 1, 1, 0, 0]
    # fractions 0.25 and 0.75 beside the edge: a threshold of 0.8 keeps only the full voxels
    assert interpolate_mask(m, img, (None, None, 1.0), partial_volume=0.8).values[0, 0].tolist() == \
        [0, 0, 0, 1, 1, 0, 0, 0]
    assert interpolate_mask(m, img, (None, None, 1.0), "nearest").values[0, 0].tolist() == [0, 0, 1, 1, 1, 1, 0, 0]
    # a ball keeps its volume within a few per cent through 1 -> 2 mm
    z, y, x = np.meshgrid(*[np.arange(30.0) - 14.5] * 3, indexing="ij")
    ball = (z * z + y * y + x * x <= 10.0 ** 2).astype(np.uint8)
    vol = interpolate_mask(ball, spatial_image(ball.astype(float), spacing=1.0), 2.0).values.sum() * 8.0
    assert vol == pytest.approx(4 / 3 * np.pi * 1000, rel=0.03)
    with pytest.raises(TextureSettingsError, match="partial_volume"):
        features(spatial_image(np.zeros((4, 4, 4)), spacing=1.0), None, resample_spacing=2.0, partial_volume=0)
    with pytest.raises(TextureSettingsError, match="interpolation='quintic'"):
        features(spatial_image(np.zeros((4, 4, 4)), spacing=1.0), None, resample_spacing=2.0, interpolation="quintic")


@pytest.fixture(scope="module")
def phantom(reference_data):
    sitk = pytest.importorskip("SimpleITK")
    from multiscale.image import from_sitk

    folder = reference_data / "ibsi-digital-phantom"
    return (from_sitk(sitk.ReadImage(str(folder / "phantom.nii.gz"))),
            from_sitk(sitk.ReadImage(str(folder / "mask.nii.gz"))))


def test_digital_phantom_through_the_processing(phantom):
    image, mask = phantom
    ref = _values(features(image, mask, families=["stat", "morph"], ibsi_phantom=True))
    assert ref["stat_mean"] == pytest.approx(2.15, abs=0.005)  # the IBSI reference value (3 s.d.)
    # resampling at its own 2 mm spacing is the identity
    same = features(image, mask, families=["stat", "morph", "glcm"], ibsi_phantom=True, resample_spacing=2.0,
                    interpolation="linear", round_intensities=True)
    direct = _values(features(image, mask, families=["stat", "morph", "glcm"], ibsi_phantom=True))
    assert same.attrs["resampled"]["shape"] == tuple(image.shape)
    for tag, value in _values(same).items():
        assert value == pytest.approx(direct[tag], rel=1e-12, abs=1e-12), tag
    # nearest neighbour to 1 mm: every voxel becomes 8; intensity statistics and volume are unchanged
    fine = features(image, mask, families=["stat", "morph"], ibsi_phantom=True, resample_spacing=1.0,
                    interpolation="nearest", mask_interpolation="nearest")
    assert fine.attrs["resampled"]["shape"] == tuple(2 * n for n in image.shape)
    assert fine.attrs["n_voxels"] == 8 * 74
    got = _values(fine)
    for tag in ("stat_mean", "stat_var", "stat_skew", "stat_kurt", "stat_median", "stat_min", "stat_max",
                "stat_energy", "morph_vol_approx"):
        factor = 8.0 if tag == "stat_energy" else 1.0
        assert got[tag] == pytest.approx(factor * ref[tag], rel=1e-12), tag


def _ct_like():
    """A CT-like volume in HU (air, soft tissue, a denser core) with a tumour mask, 0.98 x 0.98 x 3 mm."""
    z, y, x = np.meshgrid(np.arange(12.0), np.arange(40.0), np.arange(40.0), indexing="ij")
    r = np.sqrt(((z - 5.5) * 3.0) ** 2 + ((y - 19.5) * 0.98) ** 2 + ((x - 19.5) * 0.98) ** 2)
    hu = np.where(r < 12.0, 40.0 + 8.0 * np.cos(x) * np.sin(y / 2), -1000.0 + 3.0 * np.sin(x + y))
    hu = np.where(r < 5.0, 150.0 + 30.0 * np.sin(x * y / 5), hu)
    hu = np.round(hu - 300.0 * (r > 10.5) * (r < 12.0))  # a rim of -260 HU voxels inside the mask
    return spatial_image(hu, spacing=(3.0, 0.98, 0.98), units="HU", modality="CT"), (r < 12.0).astype(np.uint8)


def test_each_ibsi_ct_configuration_is_one_call():
    image, mask = _ct_like()
    for name, settings in IBSI_CT_CONFIGURATIONS.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            df = features(image, mask, families=["stat", "ih", "ivh", "glcm", "szm"], **settings)
        tags = set(df["tag"])
        if name in ("A", "B"):
            assert "cm_joint_max_2D_avg" in tags and "cm_joint_max_3D_avg" not in tags, name
        else:
            assert "cm_joint_max_3D_avg" in tags and "cm_joint_max_2D_avg" not in tags, name
        v = _values(df)
        if name == "A":
            assert "resampled" not in df.attrs
            assert df.attrs["n_levels"] == 36  # [-500, 400] HU in 25 HU bins from -500
        else:
            sp = df.attrs["resampled"]["spacing"]
            assert sp == ((3.0, 2.0, 2.0) if name == "B" else (2.0, 2.0, 2.0)), name
        if name == "C":
            assert df.attrs["n_levels"] == 56 and df.attrs["min_anchor"] == -1000.0  # [-1000, 400]: 56 bins
        if name in ("B", "D", "E"):
            assert df.attrs["n_levels"] == 32
        # rounding after interpolation: integer HU in every configuration
        assert float(v["stat_min"]) == round(v["stat_min"]) and float(v["stat_max"]) == round(v["stat_max"])
        if name in ("A", "B"):
            assert v["stat_min"] >= -500  # the -1000 HU air outside is re-segmented away


def test_fixed_bin_size_level_count_follows_the_ibsi_definition():
    # bins counted from the re-segmentation lower bound: [-500, 400] at 25 HU is 36 bins (not 37)
    values = np.array([-480.0, -20.0, 10.0, 399.0, 120.0, -500.0, 0.0, 7.0]).reshape(2, 2, 2)
    img = spatial_image(values, spacing=1.0)
    df = features(img, None, families="ih", bin_width=25.0, resegment_range=(-500.0, 400.0))
    assert df.attrs["n_levels"] == 36
    assert _values(df)["ih_max"] == 36  # 399 HU: floor(899 / 25) + 1
    # a voxel exactly on the upper bound falls in the bin starting there (floor(900 / 25) + 1 = 37): counted
    values[0, 0, 0] = 400.0
    df = features(spatial_image(values, spacing=1.0), None, families="ih", bin_width=25.0,
                  resegment_range=(-500.0, 400.0))
    assert df.attrs["n_levels"] == 37 and _values(df)["ih_max"] == 37
    # a range that is not a whole number of bins: ceil(900 / 35) = 26 bins, the last one partly outside
    df = features(spatial_image(values, spacing=1.0), None, families="ih", bin_width=35.0,
                  resegment_range=(-500.0, 400.0))
    assert df.attrs["n_levels"] == 26


def test_plain_array_with_spacing():
    values = np.arange(27.0).reshape(3, 3, 3)
    a = _values(features(values, values > 4, families="stat", spacing=(2.0, 1.0, 1.0)))
    b = _values(features(spatial_image(values, spacing=(2.0, 1.0, 1.0)), values > 4, families="stat"))
    assert a == b


def test_maps_and_regional_features_refuse_processing_they_do_not_apply():
    from multiscale.analysis.texture import feature_map, regional_features

    img = spatial_image(np.arange(64.0).reshape(4, 4, 4), spacing=1.0)
    with pytest.raises(TextureSettingsError, match="feature_map does not apply resample_spacing"):
        feature_map(img, family="glcm", radius=1, bins=4, resample_spacing=2.0)
    with pytest.raises(TextureSettingsError, match="regional_features does not apply binning"):
        regional_features(img, (img.values > 10).astype(int), binning="pyradiomics")
