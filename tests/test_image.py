"""The image object: construction, validation, SimpleITK round trips, coordinates."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import SimpleITK as sitk

import multiscale as ms
from multiscale import image as im


def _rotation_zyx(angle_deg: float, axis: int = 0) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    c, s = np.cos(a), np.sin(a)
    r = np.eye(3)
    i, j = [k for k in range(3) if k != axis]
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def test_build_infers_dims_and_coords_in_mm():
    img = ms.spatial_image(np.zeros((4, 5, 6)), spacing=(2.0, 0.5, 0.25), origin=(1.0, 2.0, 3.0), modality="MR")
    assert img.dims == ("z", "y", "x")
    assert img.x.values[1] - img.x.values[0] == pytest.approx(0.25)
    assert img.z.values[0] == 1.0
    assert im.spacing(img) == (2.0, 0.5, 0.25)
    assert im.origin(img) == (1.0, 2.0, 3.0)
    assert img.attrs["modality"] == "MR"
    img2 = ms.spatial_image(np.zeros((4, 5)), spacing=0.02)
    assert img2.dims == ("y", "x") and im.spacing(img2) == (0.02, 0.02)


def test_dask_stays_lazy():
    arr = da.zeros((8, 16, 16), chunks=(4, 8, 8))
    img = ms.spatial_image(arr, spacing=(1, 1, 1))
    assert isinstance(img.data, da.Array)


@pytest.mark.parametrize(
    "shape,spacing,origin,direction",
    [
        ((7, 9), (0.5, 0.02), (-3.3, 11.1), None),
        ((7, 9), (0.1, 0.3), (1.0, 2.0), [[0.6, -0.8], [0.8, 0.6]]),
        ((5, 7, 9), (3.27, 0.977, 0.9765625), (-120.5, 33.3, -7.1), None),
        ((5, 7, 9), (2.0, 0.3, 0.1), (10.0, -20.0, 30.0), "oblique"),
    ],
)
def test_sitk_round_trip_is_exact(shape, spacing, origin, direction):
    if direction == "oblique":
        direction = _rotation_zyx(17.0, 0) @ _rotation_zyx(-31.0, 2)
    rng = np.random.default_rng(0)
    data = rng.random(shape).astype(np.float32)
    img = ms.spatial_image(data, spacing=spacing, origin=origin, direction=direction, units="HU")
    s = ms.to_sitk(img)
    assert s.GetSpacing() == tuple(float(v) for v in spacing[::-1])
    assert s.GetOrigin() == tuple(float(v) for v in origin[::-1])
    back = ms.from_sitk(s, units="HU")
    assert im.spacing(back) == tuple(float(v) for v in spacing)
    assert im.origin(back) == tuple(float(v) for v in origin)
    np.testing.assert_array_equal(im.direction(back), im.direction(img))
    np.testing.assert_array_equal(back.values, data)
    # and sitk -> ours -> sitk
    s2 = ms.to_sitk(back)
    assert s2.GetDirection() == s.GetDirection() and s2.GetOrigin() == s.GetOrigin()


def test_sitk_world_positions_agree_with_ours():
    d = _rotation_zyx(25.0, 1)
    img = ms.spatial_image(np.zeros((4, 5, 6), np.float32), spacing=(2.0, 0.7, 0.3), origin=(5, -4, 3), direction=d)
    s = ms.to_sitk(img)
    idx_zyx = np.array([3, 1, 4])
    ours = ms.index_to_world(img, idx_zyx, xyz=False)
    theirs = np.array(s.TransformContinuousIndexToPhysicalPoint(tuple(float(v) for v in idx_zyx[::-1])))
    np.testing.assert_allclose(ours[::-1], theirs, atol=1e-12)
    np.testing.assert_allclose(ms.world_to_index(img, ours), idx_zyx, atol=1e-12)
    np.testing.assert_allclose(ms.index_to_world(img, idx_zyx[::-1], xyz=True), theirs, atol=1e-12)


def test_vector_image_round_trip_via_c_dim():
    data = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    img = ms.spatial_image(data, spacing=(1, 2, 3), channels=["vessels", "dye"])
    s = ms.to_sitk(img)
    assert s.GetNumberOfComponentsPerPixel() == 2
    back = ms.from_sitk(s, channels=["vessels", "dye"])
    assert back.dims == ("c", "z", "y", "x")
    np.testing.assert_array_equal(back.values, data)
    assert list(back.c.values) == ["vessels", "dye"]
    one = ms.to_sitk(img, channel="dye")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(one), data[1])


def test_bounding_box_covers_voxel_edges():
    img = ms.spatial_image(np.zeros((2, 4)), spacing=(1.0, 0.5), origin=(10.0, 0.0))
    box = ms.bounding_box(img)
    np.testing.assert_allclose(box, [[9.5, -0.25], [11.5, 1.75]])
    np.testing.assert_allclose(ms.bounding_box(img, xyz=True), [[-0.25, 9.5], [1.75, 11.5]])


def test_spacing_follows_coords_after_strided_slicing():
    img = ms.spatial_image(np.zeros((10, 10)), spacing=(0.1, 0.1))
    sub = img[::2, ::5]
    assert im.spacing(sub) == pytest.approx((0.2, 0.5))
    one = img.isel(y=slice(0, 1))
    assert im.spacing(one) == (0.1, 0.1)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(data=np.zeros((3, 3)), spacing=(-1, 1)), "spacing"),
        (dict(data=np.zeros((3, 3)), spacing=(0, 1)), "spacing"),
        (dict(data=np.zeros((3, 3)), spacing=(1, 1, 1)), "spacing has 3 values"),
        (dict(data=np.zeros((3, 3)), spacing=(1, 1), dims=("x", "y")), "order"),
        (dict(data=np.zeros((3, 3)), spacing=(1, 1), dims=("q", "x")), "unknown dims"),
        (dict(data=np.zeros((3, 3, 3)), spacing=(1, 1), dims=("y", "x")), "name 2 axes"),
        (dict(data=np.zeros((3, 3)), spacing=(1, 1), direction=[[1, 0.5], [0, 1]]), "orthonormal"),
        (dict(data=np.zeros((3, 3)), spacing=(1, 1), direction=np.eye(3)), "2x2"),
        (dict(data=np.zeros((2, 3, 3)), spacing=(1, 1), dims=("c", "y", "x"), channels=["a"]), "channel"),
        (dict(data=np.zeros((3, 3)), spacing=(1, np.nan)), "NaN"),
    ],
)
def test_bad_input_is_refused_clearly(kwargs, match):
    with pytest.raises(ms.ImageError, match=match):
        ms.spatial_image(**kwargs)


def test_uneven_coords_are_refused():
    img = ms.spatial_image(np.zeros((4,)), spacing=1.0, dims=("x",))
    bad = img.assign_coords(x=[0.0, 1.0, 2.5, 3.0])
    with pytest.raises(ms.ImageError, match="evenly"):
        im.validate(bad)


def test_like_keeps_geometry():
    a = ms.spatial_image(np.ones((3, 4)), spacing=(0.5, 0.25), origin=(1, 2), units="SUVbw")
    b = ms.like(a, np.zeros((2, 3, 4)), dims=("c", "y", "x"))
    assert im.spacing(b) == (0.5, 0.25) and b.attrs["units"] == "SUVbw"
    with pytest.raises(ms.ImageError):
        ms.like(a, np.zeros((5, 5)))


# ---------------------------------------------------------------------------------------------
# vocabulary, Grid, select_channel
# ---------------------------------------------------------------------------------------------


def test_vocabulary():
    assert im.MODALITIES[:3] == ("PT", "CT", "MR") and {"MSI", "HISTO", "FLUO", "IMC"} <= set(im.MODALITIES)
    assert im.ASPECTS == ("drug", "nanoparticle", "environment", "anatomy", "mask", "")


def _msi():
    img = ms.spatial_image(np.arange(24.0).reshape(3, 2, 4), spacing=0.02, dims=("c", "y", "x"),
                           channels=[544.18, 790.632, 600.0], units="counts")
    img.attrs["targets_mz"] = {"doxorubicin": 544.18, "haem": 616.18}
    return img


def test_select_channel_by_name_and_mz():
    img = ms.spatial_image(np.arange(24.0).reshape(2, 3, 4), spacing=1.0, dims=("c", "y", "x"), channels=["a", "b"])
    b = im.select_channel(img, "b")
    assert b.dims == ("y", "x") and float(b[0, 0]) == 12.0 and b.attrs["channel"] == "b"
    msi = _msi()
    assert float(im.select_channel(msi, "790.632")[0, 0]) == 8.0
    near = im.select_channel(msi, "544.189")  # nearest m/z within 0.01
    assert float(near[0, 1]) == 1.0 and near.attrs["units"] == "counts" and near.attrs["channel"] == "544.189"
    assert "c" not in near.coords


def test_select_channel_none():
    msi = _msi()
    assert im.select_channel(msi, None) is msi
    one = msi.isel(c=[1])
    assert im.select_channel(one, None).dims == ("y", "x")
    plain = one.isel(c=0, drop=True)
    assert im.select_channel(plain, None) is plain


def test_select_channel_errors_name_channels_and_targets():
    msi = _msi()
    with pytest.raises(ms.ImageError, match=r"msi:600\.5: no channel at m/z 600\.5; channels are \['544\.18', '790\.632', '600\.0'\]"):
        im.select_channel(msi, "600.5", what="msi:600.5")
    with pytest.raises(ms.ImageError, match=r"no channel 'haem'; .*\(targets \['doxorubicin', 'haem'\]\)"):
        im.select_channel(msi, "haem")
    with pytest.raises(ms.ImageError, match="asked of an image without channels"):
        im.select_channel(msi.isel(c=0, drop=True), "dox")
    with pytest.raises(ValueError):  # ImageError is a ValueError
        im.select_channel(msi, "nope")


def test_grid_of_image_mapping_and_sitk():
    img = ms.spatial_image(np.zeros((3, 4, 5)), spacing=(2.0, 1.0, 0.5), origin=(1.0, 2.0, 3.0))
    g = im.Grid.of(img)
    assert g.dims == ("z", "y", "x") and g.shape == (3, 4, 5) and g.spacing == (2.0, 1.0, 0.5)
    assert g.origin == (1.0, 2.0, 3.0) and np.array_equal(g.direction, np.eye(3))
    assert im.Grid.of(g) is g
    from_map = im.Grid.of(im.grid_of(img))
    assert (from_map.dims, from_map.shape, from_map.spacing, from_map.origin) == (g.dims, g.shape, g.spacing, g.origin)
    from_sitk = im.Grid.of(im.to_sitk(img))
    assert (from_sitk.shape, from_sitk.spacing, from_sitk.origin) == (g.shape, g.spacing, g.origin)
    small = im.Grid.of({"size": (4, 6), "spacing": 0.5})
    assert small.dims == ("y", "x") and small.spacing == (0.5, 0.5) and small.origin == (0.0, 0.0)
    emb = small.embedded(0.1)
    assert emb.shape == (1, 4, 6) and emb.spacing == (0.1, 0.5, 0.5)


def test_grid_errors():
    with pytest.raises(ms.ImageError, match=r"lacks \['spacing'\]"):
        im.Grid.of({"shape": (4, 4)})
    with pytest.raises(ms.ImageError, match="2 or 3 entries"):
        im.Grid.of({"shape": (4,), "spacing": 1.0})
    with pytest.raises(ms.ImageError, match="> 0 mm"):
        im.Grid.of({"shape": (4, 4), "spacing": (1.0, 0.0)})
    with pytest.raises(TypeError, match="got int"):
        im.Grid.of(3)
    with pytest.raises(ms.ImageError, match="only a 2-D grid"):
        im.Grid.of({"shape": (2, 2, 2), "spacing": 1.0}).embedded(1.0)


def test_registration_uses_the_same_grid():
    from multiscale.registration import _grids

    img = ms.spatial_image(np.zeros((3, 4)), spacing=1.0)
    assert _grids.Grid is im.Grid
    a, b = _grids.grid_from_reference(img), im.Grid.of(img)
    assert (a.dims, a.shape, a.spacing, a.origin) == (b.dims, b.shape, b.spacing, b.origin)
    assert np.array_equal(a.direction, b.direction)
