"""Voxel-wise texture maps: kernel-centre values, chunking, geometry and bad input."""

from __future__ import annotations

import warnings

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage

from multiscale.analysis.texture import glcm, gldzm, glrlm, glszm, ngldm, ngtdm
from multiscale.analysis.texture._discretise import discretise
from multiscale.analysis.texture._roi import RoiError, TextureWarning
from multiscale.analysis.texture.maps import feature_map, map_features
from multiscale.image import spacing, spatial_image

MODULES = {"glcm": glcm, "glrlm": glrlm, "glszm": glszm, "gldzm": gldzm, "ngtdm": ngtdm, "ngldm": ngldm}


def volume(shape=(7, 9, 10), seed=0):
    rng = np.random.default_rng(seed)
    data = rng.normal(100.0, 20.0, size=shape)
    data[:, :, : shape[2] // 2] += 40.0  # two textures, so kernels differ
    return spatial_image(data, spacing=(2.0, 1.0, 0.5), origin=(-3.0, 4.0, 1.5), modality="CT", units="HU")


def ellipsoid_mask(image):
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in image.shape], indexing="ij")
    return image.copy(data=(z**2 + y**2 + x**2) < 1.1)


def kernel_reference(q, centre, radius, module, aggregation, planar=False):
    """Features of the kernel's own ROI: the crop of the grey-level volume around ``centre``."""
    box = tuple(slice(max(c - r, 0), c + r + 1) for c, r in zip(centre, radius))
    part = q[box]
    rows = module.family_features(part, int(q.max()), part > 0, (1.0, 1.0, 1.0), [aggregation], {})
    return np.array([r["value"] for r in rows])


@pytest.mark.parametrize("family", list(MODULES))
@pytest.mark.parametrize("masked_kernel", [False, True])
def test_map_at_kernel_centre_equals_features_of_the_kernel(family, masked_kernel):
    image = volume()
    mask = ellipsoid_mask(image)
    fmap = feature_map(image, mask, family=family, radius=(1, 2, 2), bins=6, masked_kernel=masked_kernel, chunks=4)
    values = fmap.values
    module = MODULES[family]
    # the map's discretisation: fixed bin number over the voxels that may enter a kernel: the mask,
    # or (unmasked kernels) the mask grown by the kernel box
    sample = mask.values if masked_kernel else ndimage.binary_dilation(mask.values, np.ones((3, 5, 5), bool))
    q = np.zeros(image.shape, np.int64)
    q[sample] = discretise(image.values[sample], "fbn", n_bins=6)
    assert fmap.attrs["provenance"]["texture_map"]["n_levels"] == 6
    agg = module.AGGREGATIONS[-1]
    centres = [(3, 4, 5), (0, 4, 5), (3, 0, 9), (6, 8, 0), (2, 6, 3)]
    checked = 0
    for centre in centres:
        if not mask.values[centre]:
            assert np.all(np.isnan(values[(slice(None),) + centre]))
            continue
        expected = kernel_reference(q, centre, (1, 2, 2), module, agg)
        np.testing.assert_allclose(values[(slice(None),) + centre], expected, rtol=2e-6, atol=1e-9, err_msg=str(centre))
        checked += 1
    assert checked >= 3
    outside = ~mask.values
    assert np.all(np.isnan(values[:, outside]))


@pytest.mark.parametrize("family", ["glcm", "gldzm"])
def test_map_equals_features_api_on_the_kernel_roi(family):
    """Same settings through the public ``features``: fixed bin size with an anchor and a range."""
    from multiscale.analysis.texture import features

    image = volume(seed=3)
    settings = dict(bin_width=25.0, resegment_range=(0.0, 250.0))
    fmap = feature_map(image, family=family, radius=1, **settings)
    for centre in [(3, 4, 5), (6, 0, 9)]:
        box = tuple(slice(max(c - 1, 0), c + 2) for c in centre)
        crop = image[box]
        df = features(crop, None, families=[family], aggregation="3D", **settings)
        expected = df.set_index("tag").loc[list(fmap.c.values), "value"].to_numpy(float)
        np.testing.assert_allclose(fmap.values[(slice(None),) + centre], expected, rtol=2e-6, atol=1e-9)


def test_chunked_map_equals_unchunked():
    image = volume(shape=(6, 11, 13), seed=1)
    mask = ellipsoid_mask(image)
    for family in ("glcm", "gldzm"):
        one = feature_map(image, mask, family=family, radius=2, bins=8, chunks=(6, 11, 13)).values
        many = feature_map(image, mask, family=family, radius=2, bins=8, chunks=(3, 4, 5)).values
        np.testing.assert_array_equal(one, many)


def test_two_dimensional_image_uses_in_plane_kernels():
    rng = np.random.default_rng(2)
    image = spatial_image(rng.random((9, 11)), spacing=(0.5, 0.5))
    fmap = feature_map(image, family="glrlm", radius=2, bins=5, chunks=4)
    assert fmap.dims == ("c", "y", "x") and fmap.c.values[0] == "rlm_sre_2D_comb"
    q = discretise(image.values, "fbn", n_bins=5)[None]
    expected = kernel_reference(q, (0, 4, 6), (0, 2, 2), glrlm, "2D_comb")
    np.testing.assert_allclose(fmap.values[:, 4, 6], expected, rtol=2e-6)
    ngl = feature_map(image, family="ngldm", features=["ngl_hde"], radius=1, bins=5)
    assert ngl.c.values.tolist() == ["ngl_hde_2D"]
    hde = kernel_reference(q, (0, 4, 6), (0, 1, 1), ngldm, "2D")[1]
    assert ngl.values[0, 4, 6] == pytest.approx(hde, rel=2e-6)
    assert np.nanmax(ngl.values) <= 9**2  # dependence at most 8 in-plane neighbours + the voxel


def test_geometry_attrs_and_provenance_are_kept():
    image = volume()
    fmap = feature_map(image, family="glcm", features=["joint_avg", "cm_contrast_3D_comb"], radius_mm=2.0, bins=4)
    assert isinstance(fmap.data, da.Array)  # lazy until asked
    assert fmap.dims == ("c", "z", "y", "x")
    assert fmap.c.values.tolist() == ["cm_joint_avg_3D_comb", "cm_contrast_3D_comb"]
    for d in ("z", "y", "x"):
        np.testing.assert_array_equal(fmap[d].values, image[d].values)
    assert spacing(fmap) == spacing(image)
    assert fmap.attrs["direction"] == image.attrs["direction"] and fmap.attrs["modality"] == "CT"
    assert fmap.attrs["units"] == ""
    prov = fmap.attrs["provenance"]["texture_map"]
    assert prov["radius_voxels"] == (1, 2, 4)  # 2 mm over spacings (2, 1, 0.5) mm
    assert prov["family"] == "glcm" and prov["discretisation"] == "fbn" and prov["n_levels"] == 4
    joint_avg = fmap.sel(c="cm_joint_avg_3D_comb").values
    assert np.all((joint_avg >= 1) & (joint_avg <= 4))


def test_empty_roi_warns_and_gives_nan():
    image = volume()
    with pytest.warns(TextureWarning, match="ROI is empty"):
        fmap = feature_map(image, np.zeros(image.shape, bool), family="ngtdm", radius=1)
    assert np.all(np.isnan(fmap.values))


def test_nan_inside_the_roi_is_left_out_and_warned():
    image = volume()
    data = image.values.copy()
    data[3, 4, 5] = np.nan
    broken = image.copy(data=data)
    with pytest.warns(TextureWarning, match="1 NaN voxels"):
        fmap = feature_map(broken, family="glszm", radius=1, bins=6)
    values = fmap.values
    assert np.all(np.isnan(values[:, 3, 4, 5]))
    assert np.all(np.isfinite(values[:, 3, 4, 6]))  # the neighbour's kernel just lacks the NaN voxel
    q = np.zeros(image.shape, np.int64)
    finite = np.isfinite(data)
    q[finite] = discretise(data[finite], "fbn", n_bins=6)
    np.testing.assert_allclose(values[:, 3, 4, 6], kernel_reference(q, (3, 4, 6), (1, 1, 1), glszm, "3D"), rtol=2e-6)


def test_constant_intensity_warns_and_is_defined():
    image = spatial_image(np.full((4, 5, 5), 7.0), spacing=1.0)
    with pytest.warns(TextureWarning, match="constant intensity"):
        fmap = feature_map(image, family="glcm", features=["joint_max", "corr"], radius=1)
    assert np.all(fmap.sel(c="cm_joint_max_3D_comb").values == 1.0)
    assert np.all(np.isnan(fmap.sel(c="cm_corr_3D_comb").values))


def test_one_voxel_roi_with_masked_kernel():
    image = volume()
    mask = np.zeros(image.shape, bool)
    mask[3, 4, 5] = True
    with pytest.warns(TextureWarning, match="one voxel"):
        fmap = feature_map(image, mask, family="glcm", radius=1, masked_kernel=True)
    assert np.all(np.isnan(fmap.values))  # no pair of voxels: the GLCM is empty
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TextureWarning)
        zones = feature_map(image, mask, family="glszm", radius=1, masked_kernel=True)
    assert zones.sel(c="szm_z_perc_3D").values[3, 4, 5] == 1.0


def test_mask_on_another_grid_is_refused():
    image = volume()
    shifted = spatial_image(np.ones(image.shape), spacing=(2.0, 1.0, 0.5), origin=(0.0, 0.0, 0.0))
    with pytest.raises(RoiError, match="another grid"):
        feature_map(image, shifted, family="glcm")
    with pytest.raises(RoiError, match="shape"):
        feature_map(image, np.ones((3, 3, 3), bool), family="glcm")


def test_bad_arguments_are_refused():
    image = volume()
    with pytest.raises(ValueError, match="unknown family"):
        feature_map(image, family="lbp")
    with pytest.raises(ValueError, match="has no feature 'cm_nonsense'"):
        feature_map(image, family="glcm", features=["cm_nonsense"])
    with pytest.raises(ValueError, match="single voxel"):
        feature_map(image, family="glcm", radius=0)
    with pytest.raises(ValueError, match="single voxel"):
        feature_map(image, family="glcm", radius_mm=0.4)
    with pytest.raises(RoiError, match="along 'c'"):
        feature_map(spatial_image(np.zeros((2, 4, 4, 4)), spacing=1.0), family="glcm")
    with pytest.raises(RoiError, match="spatial image"):
        feature_map(np.zeros((4, 4, 4)), family="glcm")


def test_map_features_worker_on_a_padded_block():
    q = np.pad(np.array([[[1, 2, 1], [2, 1, 2], [1, 2, 1]]], np.int32), 1)
    out = map_features(q, q > 0, "glcm", (1, 1, 1), 2, features=[11], dtype=np.float32)  # contrast
    assert out.shape == (1, 1, 3, 3)
    # centre voxel: its 3x3 kernel is the whole checkerboard; every in-plane neighbour pair along
    # x and y differs (contrast 1), diagonals agree (contrast 0): 24 of 40 pair counts differ
    assert out[0, 0, 1, 1] == pytest.approx(24 / 40)


def test_in_plane_kernels_on_a_volume():
    image = volume(seed=4)
    fmap = feature_map(image, family="glszm", radius=2, bins=6, aggregation="2D")
    assert fmap.c.values[0] == "szm_sze_2D"
    assert fmap.attrs["provenance"]["texture_map"]["radius_voxels"] == (0, 2, 2)
    q = discretise(image.values.ravel(), "fbn", n_bins=6).reshape(image.shape)
    expected = kernel_reference(q[3:4], (0, 4, 5), (0, 2, 2), glszm, "2D")
    np.testing.assert_allclose(fmap.values[:, 3, 4, 5], expected, rtol=2e-6)
    with pytest.raises(ValueError, match="aggregation"):
        feature_map(spatial_image(np.zeros((5, 5)), spacing=1.0), family="glcm", aggregation="3D")


def test_cropped_map_is_the_full_map_on_the_roi_box():
    image = volume(shape=(8, 12, 12), seed=5)
    mask = np.zeros(image.shape, bool)
    mask[3:5, 4:7, 5:8] = True
    full = feature_map(image, mask, family="ngtdm", radius=1, bins=8)
    crop = feature_map(image, mask, family="ngtdm", radius=1, bins=8, crop=True)
    assert crop.shape == (5, 4, 5, 5)  # box grown by the radius on each side
    np.testing.assert_array_equal(crop.z.values, image.z.values[2:6])
    np.testing.assert_array_equal(crop.x.values, image.x.values[4:9])
    np.testing.assert_array_equal(crop.values, full.values[:, 2:6, 3:8, 4:9])
    assert np.all(np.isnan(full.values[:, :2])) and crop.attrs["provenance"]["texture_map"]["cropped_to_roi_box"]


def test_fixed_bin_size_needs_a_sensible_anchor_and_width():
    image = volume()
    with pytest.warns(TextureWarning, match="FBS anchored at the minimum"):
        fmap = feature_map(image, family="ngtdm", radius=1, bin_width=20.0)
    prov = fmap.attrs["provenance"]["texture_map"]
    assert prov["discretisation"] == "fbs" and prov["min_anchor"] == pytest.approx(float(image.values.min()))
    with pytest.raises(ValueError, match="below the FBS anchor"):
        feature_map(image, family="ngtdm", radius=1, bin_width=20.0, min_anchor=1000.0)
    with pytest.raises(ValueError, match="grey levels"):
        feature_map(image, family="ngtdm", radius=1, bin_width=1e-3, resegment_range=(0.0, 400.0))


def _two_blobs(shape=(16, 40, 40)):
    mask = np.zeros(shape, bool)
    mask[2:4, 2:4, 2:4] = True  # one chunk of 8^3
    mask[12:14, 30:33, 30:33] = True  # four chunks (across y = 32 and x = 32)
    return mask


@pytest.mark.parametrize("family", ["glcm", "gldzm"])
def test_chunks_without_roi_voxels_skip_the_kernel(family, monkeypatch):
    import multiscale.analysis.texture.maps as maps

    image = volume(shape=(16, 40, 40), seed=7)
    mask = _two_blobs()
    calls = []
    worker = maps.map_features

    def counting(q, centres, *args, **kwargs):
        calls.append(q.shape)
        return worker(q, centres, *args, **kwargs)

    monkeypatch.setattr(maps, "map_features", counting)
    fmap = feature_map(image, mask, family=family, radius=1, bins=8, chunks=8)
    skipped = fmap.values
    # the ROI box (z 1..15, y/x 1..34) holds 2 x 5 x 5 = 50 chunks; only those with ROI voxels run the kernel
    assert len(calls) == len({(z // 8, y // 8, x // 8) for z, y, x in zip(*np.nonzero(mask))}) == 5
    assert np.isnan(skipped[:, ~mask]).all() and np.isfinite(skipped[:, mask]).any()

    calls.clear()
    monkeypatch.setattr(maps, "_any_block", lambda b: np.ones((1,) * b.ndim, bool))  # no skipping
    every = feature_map(image, mask, family=family, radius=1, bins=8, chunks=8).values
    assert len(calls) == 50
    np.testing.assert_array_equal(skipped, every)
    one = feature_map(image, mask, family=family, radius=1, bins=8, chunks=(16, 40, 40)).values
    np.testing.assert_array_equal(skipped, one)


def test_small_roi_in_a_large_volume_costs_its_box():
    image = volume(shape=(16, 40, 40), seed=8)
    mask = _two_blobs()
    mask[12:14, 30:33, 30:33] = False  # one blob: its box, not the grid, is computed
    dmask = da.from_array(mask, chunks=8)
    ref = feature_map(image, mask, family="ngtdm", radius=1, bins=8, chunks=(16, 40, 40))
    for m in (mask, dmask):
        fmap = feature_map(image, m, family="ngtdm", radius=1, bins=8, chunks=8)
        assert fmap.shape == ref.shape and fmap.attrs["provenance"]["texture_map"]["n_roi_voxels"] == 8
        np.testing.assert_array_equal(fmap.values, ref.values)
        # outside the box the map is NaN blocks (broadcast scalars); only the box's chunks are computed
        crop = feature_map(image, m, family="ngtdm", radius=1, bins=8, chunks=8, crop=True)
        assert crop.shape == (5, 4, 4, 4)
        np.testing.assert_array_equal(crop.values, ref.values[:, 1:5, 1:5, 1:5])
        pad = fmap.data.blocks[(0,) + tuple(n - 1 for n in fmap.data.numblocks[1:])].compute()
        assert np.isnan(pad).all()


def test_uncropped_map_keeps_the_grid_chunks_so_zarr_streams_it():
    """A small ROI's map padded back to the grid has the grid's regular chunks (to_zarr needs no rechunk,
    which would hold many blocks at once), with the same values as the cropped map."""
    rng = np.random.default_rng(3)
    img = spatial_image(rng.integers(0, 50, (20, 40, 40)).astype(np.int16), spacing=1.0)
    mask = np.zeros((20, 40, 40), bool)
    mask[7:12, 13:22, 25:31] = True
    full = feature_map(img, mask, family="glcm", features=["joint_avg"], radius=1, bins=8, chunks=8)
    cropped = feature_map(img, mask, family="glcm", features=["joint_avg"], radius=1, bins=8, chunks=8, crop=True)
    assert full.data.chunks == da.zeros((1, 20, 40, 40), chunks=(1, 8, 8, 8)).chunks
    values = full.values
    z0, y0, x0 = (int(np.argmin(np.abs(full.coords[d].values - cropped.coords[d].values[0]))) for d in "zyx")
    sub = values[:, z0:z0 + cropped.sizes["z"], y0:y0 + cropped.sizes["y"], x0:x0 + cropped.sizes["x"]]
    np.testing.assert_array_equal(sub[:, mask[z0:z0 + cropped.sizes["z"], y0:y0 + cropped.sizes["y"],
                                             x0:x0 + cropped.sizes["x"]]],
                                  cropped.values[:, mask[z0:z0 + cropped.sizes["z"], y0:y0 + cropped.sizes["y"],
                                                         x0:x0 + cropped.sizes["x"]]])
    assert np.isfinite(values[:, mask]).all()


def test_sliding_glcm_kernel_equals_a_full_recount_at_every_voxel():
    """The GLCM map's sliding update (pairs of the leaving plane out, of the entering plane in) gives the
    same matrix, hence the same features, as recounting every pair of each box, across ROI gaps."""
    from multiscale.analysis.texture import maps as M
    from multiscale.analysis.texture._aggregate import direction_offsets

    rng = np.random.default_rng(11)
    q = rng.integers(0, 9, (9, 10, 14)).astype(np.int32)  # 0 = outside the ROI (holes inside kernels too)
    centres = rng.random(q.shape) < 0.6  # runs of centres broken by gaps
    box, sel = (3, 5, 5), np.arange(25)
    for symmetric in (True, False):
        offsets = direction_offsets(1, False)
        nb = M._box_neighbours(box, offsets)
        z1 = np.zeros(1, np.int64)
        shape = (25, q.shape[0] - 2, q.shape[1] - 4, q.shape[2] - 4)
        full = np.full(shape, np.nan)
        M._kernel_block(q, centres, 1, 2, 2, 0, 8, nb, z1, z1, len(offsets), nb, z1, symmetric, 0.0, sel, full)
        pairs, leave, enter = (M._flat_pairs(a, q.shape) for a in M._box_pairs(box, offsets))
        slid = np.full(shape, np.nan)
        M._glcm_sliding_block(q, centres, 1, 2, 2, 8, pairs, leave, enter, symmetric, sel, slid)
        assert np.isfinite(slid).sum() > 1000
        np.testing.assert_allclose(slid, full, rtol=1e-12, atol=1e-12, equal_nan=True)


def _generic_map(q, centres, family, radius, n_levels, planar=False, **settings):
    """The generic kernel (``_kernel_block``: every neighbour of every box voxel looked up again)."""
    from multiscale.analysis.texture import maps as M
    from multiscale.analysis.texture._aggregate import face_offsets

    s = M._family_settings(settings)
    offsets, flag, alpha = M._family_offsets(family, planar, s)
    box = tuple(2 * r + 1 for r in radius)
    sel = np.arange(len(MODULES[family].FEATURES))
    out = np.full((len(sel),) + tuple(n - 2 * r for n, r in zip(q.shape, radius)), np.nan)
    faces = face_offsets(planar)
    lines, ptr = M._box_lines(box, offsets)
    M._kernel_block(q, centres, *radius, M.MAP_FAMILIES[family], n_levels, M._box_neighbours(box, offsets), lines, ptr,
                    len(offsets), M._box_neighbours(box, faces), M._full_box_distance(box, faces), flag, alpha, sel,
                    out)
    return out


@pytest.mark.parametrize("family", list(MODULES))
@pytest.mark.parametrize("case", ["3d", "planar", "holes", "settings", "corner"])
def test_map_kernels_equal_the_generic_kernel_at_every_voxel(family, case):
    """The per-voxel-table kernels (neighbour bits, forward runs, class sums, sliding GLCM), run on the
    centres' bounding box only, give the generic kernel's maps: the same matrices; features equal to
    rounding (NGTDM: the same arithmetic, bit-identical)."""
    rng = np.random.default_rng(12)
    shape, radius, planar, settings, n_levels = (8, 11, 13), (1, 2, 2), False, {}, 6
    if case == "planar":
        shape, radius, planar = (3, 12, 12), (0, 2, 2), True
    if case == "settings":  # wider neighbourhoods, coarser dependence, a 5^3 box
        radius, settings = (2, 2, 2), {"ngtdm_distance": 2, "ngldm_alpha": 1}
    q = rng.integers(1, n_levels + 1, shape).astype(np.int32)
    q = np.where(rng.random(shape) < 0.5, q, np.roll(q, 1, axis=2))  # runs and zones longer than one voxel
    if case == "holes":  # voxels that may not enter a kernel, inside boxes
        q[rng.random(shape) < 0.25] = 0
    centres = rng.random(shape) < 0.7
    if case == "corner":  # centres in one corner of the block: only that box and its halo are read
        centres[:, :, : shape[2] // 2] = False
        centres[: shape[0] // 2] = False
    fast = map_features(q, centres, family, radius, n_levels, planar, settings=settings)
    ref = _generic_map(q, centres, family, radius, n_levels, planar, **settings)
    assert np.isfinite(fast).any()
    np.testing.assert_array_equal(np.isnan(fast), np.isnan(ref))
    if family == "ngtdm":
        np.testing.assert_array_equal(fast, ref)
    else:
        np.testing.assert_allclose(fast, ref, rtol=1e-12, atol=1e-12, equal_nan=True)


def test_cell_features_equal_count_matrix_features():
    """``_map_kernels.cell_features`` (features from the listed non-zero cells, integer moments, tables) against
    the family code's ``_aggregate.count_matrix_features`` on random count matrices."""
    from multiscale.analysis.texture import _map_kernels as mk
    from multiscale.analysis.texture._aggregate import count_features

    rng = np.random.default_rng(5)
    n_levels, n_cols = 16, 30
    mat = np.zeros((n_levels, n_cols))
    ci, cj = np.empty(n_levels * n_cols, np.int64), np.empty(n_levels * n_cols, np.int64)
    rows, cols = np.zeros(n_levels), np.zeros(n_cols)
    ig2, ic2, clog = mk.inverse_squares(n_levels), mk.inverse_squares(n_cols), mk.count_log_table(200)
    out = np.empty(17)
    for trial in range(300):
        m = rng.integers(0, 300 if trial % 3 else 4, (n_levels, n_cols)).astype(float)
        m[rng.random(m.shape) < rng.uniform(0.3, 0.99)] = 0.0
        if trial < 3:  # one cell; one row; empty
            m[:] = 0.0
            m[trial, :trial + 1] = 7.0 if trial < 2 else 0.0
        i, j = np.nonzero(m)
        order = rng.permutation(len(i))  # cells listed in any order
        ci[:len(i)], cj[:len(i)] = i[order], j[order]
        mat[:] = m
        mk.cell_features(mat, ci, cj, len(i), 1000.0, rows, cols, ig2, ic2, clog, out)
        ref = count_features(m, np.arange(1.0, n_cols + 1), 1000.0)
        np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-15, equal_nan=True, err_msg=str(trial))
        assert not mat.any() and not rows.any() and not cols.any()  # work arrays left zero


@pytest.mark.parametrize("family", list(MODULES))
def test_in_memory_box_equals_the_chunked_dask_path(family, monkeypatch):
    """Small ROI boxes are prepared with numpy (one task per chunk); the dask path gives the same map."""
    import multiscale.analysis.texture.maps as maps

    image = volume(shape=(12, 20, 22), seed=9)
    mask = ellipsoid_mask(image)
    runs = [dict(chunks=6), dict(chunks=7, crop=True, masked_kernel=True), dict(chunks=8, outlier_sigma=1.5)]
    eager = [feature_map(image, mask, family=family, radius=1, bins=8, **kw) for kw in runs]
    monkeypatch.setattr(maps, "EAGER_VOXELS", 0)
    for kw, a in zip(runs, eager):
        b = feature_map(image, mask, family=family, radius=1, bins=8, **kw)
        assert a.data.chunks == b.data.chunks and a.attrs == b.attrs
        np.testing.assert_array_equal(a.values, b.values)
