"""The six texture-matrix families against the IBSI manual's matrices for the digital phantom.

``texture_matrices.csv`` lists every matrix of the IBSI reference manual (chapter 3) for the digital
phantom in long format (section, table index, sparse entries). IBSI numbers directions in (x, y, z)
order, the first non-zero component positive, lexicographically; 2-D tables run over the four
directions, each over slices 1..4.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from multiscale.analysis.texture import glcm, gldzm, glrlm, glszm, ngldm, ngtdm
from multiscale.analysis.texture._aggregate import direction_offsets

sitk = pytest.importorskip("SimpleITK")

N_LEVELS = 6  # the phantom's grey levels are 1..6 inside the ROI


@pytest.fixture(scope="module")
def phantom(reference_data):
    from multiscale.image import from_sitk

    folder = reference_data / "ibsi-digital-phantom"
    image = from_sitk(sitk.ReadImage(str(folder / "phantom.nii.gz")))
    mask = from_sitk(sitk.ReadImage(str(folder / "mask.nii.gz")))
    q = np.where(mask.values > 0, image.values, 0).astype(np.int32)
    tables: dict[tuple[str, int], dict[tuple[float, float], float]] = {}
    csv = pd.read_csv(folder / "texture_matrices.csv")
    for (section, index), rows in csv.groupby(["section", "table_index"]):
        entries = [tuple(float(v) for v in s.split(";")) for s in rows["values"]]
        tables[(section, int(index))] = {(a, b): c for a, b, c in entries}
    return q, mask.values > 0, tables


def ibsi_directions_zyx(planar: bool) -> list[tuple[int, int, int]]:
    """IBSI's direction order, converted from (x, y, z) to numpy (z, y, x)."""
    xyz = [
        d
        for d in itertools.product((-1, 0, 1), repeat=3)
        if any(d) and next(c for c in d if c) > 0 and (not planar or d[2] == 0)
    ]
    return [tuple(reversed(d)) for d in sorted(xyz)]


def index_of(offsets: np.ndarray, direction: tuple[int, int, int]) -> int:
    """Row of ``offsets`` equal to ``direction`` or to its opposite."""
    for k, o in enumerate(offsets.tolist()):
        if tuple(o) == direction or tuple(-v for v in o) == direction:
            return k
    raise AssertionError(f"direction {direction} missing from {offsets.tolist()}")


def sparse(matrix: np.ndarray, columns: np.ndarray | None = None) -> dict[tuple[float, float], float]:
    """Non-zero entries keyed like the csv: (grey level, column value)."""
    cols = np.arange(1, matrix.shape[1] + 1) if columns is None else columns
    return {(float(i + 1), float(cols[j])): float(matrix[i, j]) for i, j in np.argwhere(matrix > 0)}


def assert_same(got: dict, expected: dict, what: str) -> None:
    assert set(got) == set(expected), f"{what}: entries differ: {sorted(set(got) ^ set(expected))}"
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-5), f"{what}: entry {key}"


def test_direction_order_covers_all_offsets():
    assert len(ibsi_directions_zyx(False)) == 13 and len(ibsi_directions_zyx(True)) == 4
    offsets = direction_offsets(1)
    assert sorted(index_of(offsets, d) for d in ibsi_directions_zyx(False)) == list(range(13))


@pytest.mark.parametrize(
    "section, build",
    [
        ("Grey level co-occurrence matrix", lambda q, planar: glcm.glcm_matrices(q, N_LEVELS, planar=planar)),
        ("Grey level run length matrix", lambda q, planar: glrlm.glrlm_matrices(q, N_LEVELS, planar=planar)),
    ],
)
def test_directional_matrices_per_slice_and_direction(phantom, section, build):
    q, _, tables = phantom
    offsets2 = direction_offsets(1, planar=True)
    for t, (direction, z) in enumerate(itertools.product(ibsi_directions_zyx(True), range(4)), start=1):
        got = build(q[z : z + 1], True)[index_of(offsets2, direction)]
        assert_same(sparse(got), tables[(f"{section} (2D)", t)], f"{section} 2D table {t}")
    offsets3 = direction_offsets(1)
    volume = build(q, False)
    for t, direction in enumerate(ibsi_directions_zyx(False), start=1):
        assert_same(sparse(volume[index_of(offsets3, direction)]), tables[(f"{section} (3D)", t)], f"3D table {t}")


@pytest.mark.parametrize(
    "section, build",
    [
        ("Grey level co-occurrence matrix", lambda q, planar: glcm.glcm_matrices(q, N_LEVELS, planar=planar)),
        ("Grey level run length matrix", lambda q, planar: glrlm.glrlm_matrices(q, N_LEVELS, planar=planar)),
    ],
)
def test_directional_matrices_merged(phantom, section, build):
    q, _, tables = phantom
    for z in range(4):
        merged = build(q[z : z + 1], True).sum(axis=0)
        assert_same(sparse(merged), tables[(f"{section} (2D, merged)", z + 1)], f"{section} 2D merged slice {z + 1}")
    assert_same(sparse(build(q, False).sum(axis=0)), tables[(f"{section} (3D, merged)", 1)], f"{section} 3D merged")


def test_size_zone_matrices(phantom):
    q, _, tables = phantom
    for z in range(4):
        m, sizes = glszm.glszm_matrix(q[z : z + 1], N_LEVELS, planar=True)
        assert_same(sparse(m, sizes), tables[("Grey level size zone matrix (2D)", z + 1)], f"GLSZM slice {z + 1}")
    m, sizes = glszm.glszm_matrix(q, N_LEVELS)
    assert_same(sparse(m, sizes), tables[("Grey level size zone matrix (3D)", 1)], "GLSZM 3D")


def test_distance_zone_matrices(phantom):
    q, morph, tables = phantom
    for z in range(4):
        m, dist = gldzm.gldzm_matrix(q[z : z + 1], N_LEVELS, morph[z : z + 1], planar=True)
        assert_same(sparse(m, dist), tables[("Grey level distance zone matrix (2D)", z + 1)], f"GLDZM slice {z + 1}")
    m, dist = gldzm.gldzm_matrix(q, N_LEVELS, morph)
    assert_same(sparse(m, dist), tables[("Grey level distance zone matrix (3D)", 1)], "GLDZM 3D")


def ngtdm_entries(s: np.ndarray, n: np.ndarray) -> dict[tuple[float, float], float]:
    # the csv lists (level, s_i) -> n_i for occupied levels
    return {(float(i + 1), round(float(s[i]), 6)): float(n[i]) for i in np.flatnonzero(n)}


def test_neighbourhood_grey_tone_difference_matrices(phantom):
    q, _, tables = phantom
    for z in range(4):
        s, n = ngtdm.ngtdm_matrix(q[z : z + 1], N_LEVELS, planar=True)
        expected = {(a, round(b, 6)): c for (a, b), c in tables[("Neighbourhood grey tone difference matrix (2D)", z + 1)].items()}
        got = ngtdm_entries(s, n)
        assert sorted(got.values()) == sorted(expected.values())
        for (level, s_i), n_i in expected.items():
            idx = int(level) - 1
            assert n[idx] == n_i and s[idx] == pytest.approx(s_i, abs=1e-5), f"NGTDM slice {z + 1} level {level}"
    s, n = ngtdm.ngtdm_matrix(q, N_LEVELS)
    table = tables[("Neighbourhood grey tone difference matrix (3D)", 1)]
    assert int(n.sum()) == int(sum(table.values()))
    for (level, s_i), n_i in table.items():
        idx = int(level) - 1
        assert n[idx] == n_i and s[idx] == pytest.approx(s_i, abs=1e-5), f"NGTDM 3D level {level}"


def test_neighbouring_grey_level_dependence_matrices(phantom):
    q, _, tables = phantom
    for z in range(4):
        m = ngldm.ngldm_matrix(q[z : z + 1], N_LEVELS, planar=True)
        assert_same(sparse(m), tables[("Neighbouring grey level dependence matrix (2D)", z + 1)], f"NGLDM slice {z + 1}")
    m = ngldm.ngldm_matrix(q, N_LEVELS)
    assert_same(sparse(m), tables[("Neighbouring grey level dependence matrix (3D)", 1)], "NGLDM 3D")


def test_matrices_on_a_hand_counted_example():
    # 1 1 2
    # 2 2 1     levels in one slice; counts checked by hand
    q = np.array([[[1, 1, 2], [2, 2, 1]]])
    along_x = glcm.glcm_matrices(q, 2, planar=True)[index_of(direction_offsets(1, True), (0, 0, 1))]
    assert along_x.tolist() == [[2.0, 2.0], [2.0, 2.0]]  # pairs (1,1) (1,2) | (2,2) (2,1), symmetric
    runs_x = glrlm.glrlm_matrices(q, 2, planar=True)[index_of(direction_offsets(1, True), (0, 0, 1))]
    assert runs_x[:, :2].tolist() == [[1.0, 1.0], [1.0, 1.0]]
    # 8-connected in 2-D: the 1s at (0,0) (0,1) (1,2) form one zone (diagonal touch), the 2s another
    m, sizes = glszm.glszm_matrix(q, 2, planar=True)
    assert sparse(m, sizes) == {(1.0, 3.0): 1.0, (2.0, 3.0): 1.0}
    # in 3-D, two slices apart are not connected: 26-connectivity reaches one voxel only
    m, sizes = glszm.glszm_matrix(np.array([[[1]], [[0]], [[1]]]), 1)
    assert sparse(m, sizes) == {(1.0, 1.0): 2.0}
    assert gldzm.distance_map(np.ones((1, 3, 4), bool), planar=True)[0].tolist() == [
        [1, 1, 1, 1],
        [1, 2, 2, 1],
        [1, 1, 1, 1],
    ]
    s, n = ngtdm.ngtdm_matrix(np.array([[[1, 2]]]), 2, planar=True)
    assert s.tolist() == [1.0, 1.0] and n.tolist() == [1.0, 1.0]


@pytest.mark.parametrize("planar", [False, True])
def test_zones_match_scipy_labelling(planar):
    """Zone levels, sizes and smallest distances agree with scipy.ndimage.label on random volumes."""
    from scipy import ndimage

    from multiscale.analysis.texture._aggregate import label_zones, neighbourhood_offsets

    rng = np.random.default_rng(7 if planar else 8)
    structure = np.zeros((3, 3, 3), bool)
    structure[1 if planar else slice(None)] = True  # 8- or 26-connectivity
    for _ in range(5):
        q = rng.integers(0, 4, size=(4, 9, 11)).astype(np.int32)
        dist = rng.integers(1, 5, size=q.shape).astype(np.int32)
        levels, sizes, mind = label_zones(q, neighbourhood_offsets(1, planar), dist)
        expected = []
        for g in range(1, 4):
            lab, n = ndimage.label(q == g, structure=structure)
            for k in range(1, n + 1):
                inside = lab == k
                expected.append((g, int(inside.sum()), int(dist[inside].min())))
        assert sorted(zip(levels.tolist(), sizes.tolist(), mind.tolist())) == sorted(expected)
