"""Landmark transforms: least squares recovers known rigid, similarity and affine maps."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from multiscale.registration import TransformError, landmark_transform


def _matrix(dim, kind):
    r = Rotation.from_euler("xyz", [20, -35, 50], degrees=True).as_matrix() if dim == 3 else \
        np.array([[np.cos(0.7), -np.sin(0.7)], [np.sin(0.7), np.cos(0.7)]])
    if kind == "rigid":
        return r
    if kind == "similarity":
        return 1.7 * r
    return r @ np.diag([1.3, 0.8, 1.1][:dim]) + 0.1 * np.eye(dim)[::-1]


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("kind", ["rigid", "similarity", "affine"])
def test_exact_recovery(dim, kind):
    rng = np.random.default_rng(dim)
    f = rng.uniform(-20, 20, (7, dim))
    a = _matrix(dim, kind)
    b = rng.uniform(-5, 5, dim)
    t = landmark_transform(f, f @ a.T + b, kind=kind)
    probe = rng.uniform(-30, 30, (50, dim))
    np.testing.assert_allclose(t.transform_points(probe), probe @ a.T + b, atol=1e-9)
    assert t.info["landmark_residual_mm"]["max"] < 1e-9


def test_noisy_rigid_fit_is_least_squares():
    # with noise, the fitted rigid map beats the true one on the landmarks (it minimises their residual)
    rng = np.random.default_rng(0)
    f = rng.uniform(-10, 10, (12, 2))
    a = _matrix(2, "rigid")
    m_true = f @ a.T + [1.0, 2.0]
    m = m_true + rng.normal(0, 0.2, m_true.shape)
    t = landmark_transform(f, m, kind="rigid")
    fitted = ((t.transform_points(f) - m) ** 2).sum()
    truth = ((m_true - m) ** 2).sum()
    assert fitted <= truth
    # and stays close to the truth (noise 0.2 mm, 12 points)
    assert np.abs(t.transform_points(f) - m_true).max() < 0.3
    assert t.kind == "Euler2DTransform"


def test_bad_landmarks_refused():
    f = np.array([[0.0, 0.0], [1.0, 0.0]])
    with pytest.raises(TransformError, match="at least 3 point pairs, got 2"):
        landmark_transform(f, f)
    line = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    with pytest.raises(TransformError, match="degenerate.*collinear"):
        landmark_transform(line, line, kind="affine")
    with pytest.raises(TransformError, match="pair up"):
        landmark_transform(np.zeros((4, 2)), np.zeros((3, 2)))
    with pytest.raises(TransformError, match="kind='projective'"):
        landmark_transform(line, line, kind="projective")
    with pytest.raises(TransformError, match="NaN"):
        landmark_transform([[0, 0], [1, 0], [np.nan, 1]], [[0, 0], [1, 0], [0, 1]])
