"""Segmentation: synthetic nuclei with known count and areas (touching pairs included), cells, spots, the hook."""

from __future__ import annotations

import numpy as np
import pytest

from multiscale.analysis.objects import detect_spots, object_table, segment_cells, segment_nuclei
from multiscale.errors import AnalysisError
from multiscale.image import spacing, spatial_image

from ._synth import nuclei_image, nuclei_truth


def _area_errors(seg: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Relative area error of the segmented object that overlaps each true nucleus most."""
    true_area = np.bincount(truth.ravel())
    seg_area = np.bincount(seg.ravel())
    out = []
    for k in range(1, truth.max() + 1):
        ov = np.bincount(seg[truth == k], minlength=seg.max() + 1)
        ov[0] = 0
        out.append(seg_area[ov.argmax()] / true_area[k] - 1.0)
    return np.array(out)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nuclei_count_and_areas(seed):
    truth, discs = nuclei_truth(seed)          # 20 nuclei in touching pairs (15 % overlap), 40 isolated
    img = nuclei_image(truth, seed)
    labels = segment_nuclei(img, channel="DNA", sigma_um=0.5, diameter_um=10.0)
    assert labels.dims == ("y", "x") and spacing(labels) == spacing(img)
    np.testing.assert_array_equal(labels.x.values, img.x.values)
    n_true, n_found = int(truth.max()), int(labels.max())
    assert abs(n_found - n_true) <= 0.02 * n_true
    err = _area_errors(labels.values, truth)
    assert np.abs(err[20:]).max() < 0.05                     # isolated nuclei: every area within 5 %
    assert np.abs(err).mean() < 0.02                         # all nuclei: mean area error under 2 %
    # touching pairs: the pair's total within 5 %, and each half within 5 % (touching round nuclei are split
    # along the radical axis of their fitted circles, i.e. their common chord, not the distance-map ridge)
    pair_true = truth[:, :].copy()
    for k in range(1, 21, 2):
        both = (truth == k) | (truth == k + 1)
        ids = np.unique(labels.values[both])
        ids = ids[ids > 0]
        found = np.isin(labels.values, ids).sum()
        assert abs(found / both.sum() - 1) < 0.05
    assert np.abs(err[:20]).max() < 0.05
    assert pair_true.max() == n_true


def test_table_areas_are_in_square_micrometres_and_centroids_in_mm():
    truth, discs = nuclei_truth(0, n_single=10, n_pairs=0)
    img = nuclei_image(truth, 0, spacing_mm=0.0005)
    labels = segment_nuclei(img, sigma_um=0.5, diameter_um=10.0)
    t = object_table(labels, img)
    assert len(t) == 10 and t.attrs["units"]["area_um2"] == "µm²"
    for y, x, r in discs:
        cy, cx = 2.0 + y * 0.0005, 3.0 + x * 0.0005      # world mm (origin (2, 3), 0.5 µm pixels)
        k = np.argmin(np.hypot(t["centroid_y_mm"] - cy, t["centroid_x_mm"] - cx))
        assert np.hypot(t["centroid_y_mm"][k] - cy, t["centroid_x_mm"][k] - cx) < 0.0005
        true_um2 = np.pi * (r * 0.5) ** 2
        assert abs(t["area_um2"][k] / true_um2 - 1) < 0.05


def test_nuclei_in_3d_count_and_volume():
    zz, yy, xx = np.mgrid[:24, :48, :48]
    centres = [(8, 12, 12), (12, 30, 14), (14, 20, 34), (12, 36, 36)]
    truth = np.zeros(zz.shape, np.int32)
    for k, (z, y, x) in enumerate(centres, 1):
        # 1 µm z steps, 0.5 µm in-plane: a ball of radius 5 µm is 5 slices and 10 pixels
        truth[((zz - z) * 1.0) ** 2 + ((yy - y) * 0.5) ** 2 + ((xx - x) * 0.5) ** 2 <= 25] = k
    noisy = (truth > 0) + np.random.default_rng(0).normal(0, 0.05, truth.shape)
    img = spatial_image(noisy, spacing=(0.001, 0.0005, 0.0005))
    labels = segment_nuclei(img, sigma_um=0.4, diameter_um=10.0)
    t = object_table(labels, img)
    assert len(t) == 4 and t.attrs["units"]["volume_um3"] == "µm³"
    true_um3 = np.bincount(truth.ravel())[1:] * 1.0 * 0.5 * 0.5          # voxel counts x voxel volume
    order = [int(truth[tuple(np.rint(np.array([z * 1.0, y * 0.5, x * 0.5]) / [1.0, 0.5, 0.5]).astype(int))]) - 1
             for z, y, x in (t[["centroid_z_mm", "centroid_y_mm", "centroid_x_mm"]].to_numpy() * 1000)]
    np.testing.assert_allclose(t["volume_um3"].to_numpy(), true_um3[order], rtol=0.05)


def test_no_objects_gives_empty_labels_and_an_empty_table():
    img = spatial_image(np.full((30, 30), 5.0), spacing=0.001, channel="DNA")
    labels = segment_nuclei(img)
    assert int(labels.max()) == 0
    t = object_table(labels, img)
    assert len(t) == 0 and "area_um2" in t.columns and "mean_DNA" in t.columns


def test_unknown_channel_lists_the_channels():
    img = spatial_image(np.zeros((2, 8, 8)), spacing=0.001, dims=("c", "y", "x"), channels=["DNA", "CD68"])
    with pytest.raises(AnalysisError, match=r"no channel 'H3'; channels are \['DNA', 'CD68'\]"):
        segment_nuclei(img, channel="H3")
    with pytest.raises(AnalysisError, match="name the one to use"):
        segment_nuclei(img)
    with pytest.raises(AnalysisError, match=r"channels are \['DNA', 'CD68'\]"):
        object_table(spatial_image(np.zeros((8, 8), np.int32), spacing=0.001), img, channels=["H3"])


def test_cells_expand_without_overlap_and_follow_a_membrane():
    nuc = np.zeros((30, 40), np.int32)
    nuc[13:17, 8:12] = 1
    nuc[13:17, 28:32] = 2
    nuclei = spatial_image(nuc, spacing=0.001)
    cells = segment_cells(nuclei, expand_um=12.0).values
    assert set(np.unique(cells)) == {0, 1, 2}
    boundary = np.flatnonzero(np.diff(cells[15]) != 0)
    assert boundary.tolist() == [19]          # the two cells meet half-way between x = 11 and x = 28
    membrane = np.zeros((30, 40))
    membrane[:, 24] = 10.0                    # a membrane closer to cell 2
    cells_m = segment_cells(nuclei, expand_um=12.0, membrane=spatial_image(membrane, spacing=0.001), sigma_um=0).values
    row = cells_m[15]
    assert row[23] == 1 and row[25] == 2


def test_spots_are_found_where_planted():
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:120, :120]
    pos = rng.uniform(8, 112, (25, 2))
    pos = pos[np.all(np.linalg.norm(pos[:, None] - pos[None], axis=2) + np.eye(len(pos)) * 99 > 8, axis=1)]
    img = sum(np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * 1.5 ** 2)) for y, x in pos)
    img = spatial_image(img + rng.normal(0, 0.02, img.shape), spacing=0.0002)     # 0.2 µm pixels
    spots = detect_spots(img, radius_um=(0.2, 1.0), num_sigma=17, threshold=0.1, threshold_rel=None)
    assert len(spots) == len(pos)
    found = spots[["centroid_y_mm", "centroid_x_mm"]].to_numpy() / 0.0002
    d = np.linalg.norm(found[:, None] - pos[None], axis=2).min(axis=1)
    assert d.max() < 1.0
    # sigma 1.5 px = 0.3 µm: LoG radius sigma * sqrt(2) = 0.42 µm
    assert np.allclose(spots["radius_um"], 0.3 * np.sqrt(2), rtol=0.1)


def test_deep_learning_hook_takes_a_callable_and_names_missing_packages():
    img = spatial_image(np.zeros((10, 10)), spacing=0.001)

    def segmenter(array, pixel_um):
        assert pixel_um == (1.0, 1.0)
        out = np.zeros(array.shape, int)
        out[2:4, 2:4] = 7
        return out

    labels = segment_nuclei(img, method=segmenter)
    assert int(labels.max()) == 1 and int((labels.values == 1).sum()) == 4
    try:
        import cellpose  # noqa: F401
    except ImportError:
        with pytest.raises(AnalysisError, match="pip install cellpose"):
            segment_nuclei(img, method="cellpose")
    with pytest.raises(AnalysisError, match="method="):
        segment_nuclei(img, method="magic")


@pytest.mark.parametrize("r_small, r_large", [(3.0, 6.0), (4.0, 5.0), (5.0, 5.0)])
def test_unequal_touching_nuclei_split_along_their_common_chord(r_small, r_large):
    """Two overlapping discs of unequal size: the watershed ridge of the distance map cuts into the smaller
    one; the radical-axis split (the chord through the intersection points) gives each its own area."""
    yy, xx = np.mgrid[:60, :80].astype(float) * 0.25          # 0.25 µm pixels (um coordinates)
    ca, cb = (7.5, 6.5), (7.5, 6.5 + 0.85 * (r_small + r_large))
    a = (yy - ca[0]) ** 2 + (xx - ca[1]) ** 2 <= r_small ** 2
    b = (yy - cb[0]) ** 2 + (xx - cb[1]) ** 2 <= r_large ** 2
    # the truth splits the overlap along the chord: power distance |x - c|^2 - r^2
    power_a = (yy - ca[0]) ** 2 + (xx - ca[1]) ** 2 - r_small ** 2
    power_b = (yy - cb[0]) ** 2 + (xx - cb[1]) ** 2 - r_large ** 2
    truth_a = a & (~b | (power_a <= power_b))
    truth_b = b & ~truth_a
    img = spatial_image((a | b) * 100.0, spacing=0.00025, dims=("y", "x"))
    labels = segment_nuclei(img, sigma_um=0.25, diameter_um=2 * r_small).values
    assert labels.max() == 2
    for truth in (truth_a, truth_b):
        k = np.bincount(labels[truth]).argmax()
        assert abs((labels == k).sum() / truth.sum() - 1.0) < 0.05


def test_touching_non_round_objects_keep_the_watershed_split():
    """Where a shape is not round (a bar touching a disc), no circle is trusted: the split is the watershed's."""
    yy, xx = np.mgrid[:60, :90].astype(float)
    disc = (yy - 30) ** 2 + (xx - 20) ** 2 <= 12 ** 2
    bar = (np.abs(yy - 30) <= 5) & (xx >= 30) & (xx <= 85)
    img = spatial_image((disc | bar) * 100.0, spacing=0.001, dims=("y", "x"))
    labels = segment_nuclei(img, sigma_um=0.5, diameter_um=20.0).values
    assert labels.max() >= 1 and ((labels > 0) == (disc | bar)).mean() > 0.97
