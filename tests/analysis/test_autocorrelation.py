"""Moran's I and Geary's C (IBSI morph_moran_i / morph_geary_c definitions)."""

from __future__ import annotations

import numpy as np
import pytest

from multiscale.analysis import _autocorrelation as ac


def _brute(values: np.ndarray, pos: np.ndarray) -> tuple[float, float]:
    """Direct double loop over ordered pairs i != j, weights 1/d (the definition)."""
    n = values.size
    m = values.mean()
    w_sum = cross = sq = 0.0
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            w = 1.0 / np.linalg.norm(pos[i] - pos[j])
            w_sum += w
            cross += w * (values[i] - m) * (values[j] - m)
            sq += w * (values[i] - values[j]) ** 2
    den = ((values - m) ** 2).sum()
    return n / w_sum * cross / den, (n - 1) / (2 * w_sum) * sq / den


def test_matches_definition_on_scattered_points():
    rng = np.random.default_rng(3)
    pos = rng.random((40, 3)) * np.array([10.0, 4.0, 7.0])
    values = pos[:, 0] + rng.normal(scale=2.0, size=40)
    i_ref, c_ref = _brute(values, pos)
    assert ac.morans_i(values, pos) == pytest.approx(i_ref, rel=1e-12)
    assert ac.gearys_c(values, pos) == pytest.approx(c_ref, rel=1e-12)


def test_blocks_do_not_change_the_result(monkeypatch):
    rng = np.random.default_rng(4)
    pos = rng.random((57, 2))
    values = rng.normal(size=57)
    whole = ac.morans_i(values, pos), ac.gearys_c(values, pos)
    monkeypatch.setattr(ac, "_BLOCK_ELEMENTS", 100)  # blocks of one or two rows
    assert ac.morans_i(values, pos) == pytest.approx(whole[0], rel=1e-12)
    assert ac.gearys_c(values, pos) == pytest.approx(whole[1], rel=1e-12)


def test_grid_version_equals_pairwise_with_anisotropic_spacing():
    rng = np.random.default_rng(5)
    img = rng.normal(size=(5, 8, 9))
    img[:, :4] += 2.0  # spatial structure: positive autocorrelation
    mask = rng.random(img.shape) > 0.25
    spacing = (3.0, 0.7, 1.1)
    pos = np.argwhere(mask) * np.asarray(spacing)
    i_grid, c_grid = ac.grid_autocorrelation(img, mask, spacing)
    assert i_grid == pytest.approx(ac.morans_i(img[mask], pos), rel=1e-9)
    assert c_grid == pytest.approx(ac.gearys_c(img[mask], pos), rel=1e-9)
    assert i_grid > 0 and c_grid < 1


def test_checkerboard_is_negatively_autocorrelated():
    z, y, x = np.indices((4, 4, 4))
    img = ((z + y + x) % 2).astype(float)
    i, c = ac.grid_autocorrelation(img, np.ones(img.shape, bool), (1.0, 1.0, 1.0))
    assert i < 0 and c > 1


def test_degenerate_inputs_give_nan():
    pos = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert np.isnan(ac.morans_i(np.ones(3), pos))  # constant
    assert np.isnan(ac.gearys_c(np.array([2.0]), pos[:1]))  # one value
    assert all(np.isnan(ac.grid_autocorrelation(np.ones((2, 2)), np.ones((2, 2), bool), (1.0, 1.0))))


def test_bad_input_errors():
    with pytest.raises(ValueError, match="positions_mm must have shape"):
        ac.morans_i(np.ones(3), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="finite"):
        ac.gearys_c(np.array([1.0, np.nan]), np.zeros((2, 3)))
    img = np.array([[1.0, np.nan, 2.0]])
    with pytest.raises(ValueError, match="NaN"):
        ac.grid_autocorrelation(img, np.ones(img.shape, bool), (1.0, 1.0))
