"""Small geometry helpers for the generator (homogeneous matrices on (x, y[, z]) points)."""

from __future__ import annotations

import numpy as np


def rotation_matrix(axis: np.ndarray, angle_rad: float) -> np.ndarray:
    """3x3 rotation by ``angle_rad`` about the unit ``axis`` (right-hand rule, Rodrigues' formula)."""
    a = np.asarray(axis, dtype=float)
    a = a / np.linalg.norm(a)
    K = np.array([[0.0, -a[2], a[1]], [a[2], 0.0, -a[0]], [-a[1], a[0], 0.0]])
    return np.eye(3) + np.sin(angle_rad) * K + (1 - np.cos(angle_rad)) * (K @ K)


def rotation_matrix2d(theta: float) -> np.ndarray:
    """2x2 counter-clockwise rotation by ``theta`` radians (x towards y)."""
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s], [s, c]])


def homogeneous(matrix: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """(n+1)x(n+1) homogeneous matrix of ``p -> matrix @ p + translation``."""
    n = matrix.shape[0]
    H = np.eye(n + 1)
    H[:n, :n] = matrix
    H[:n, n] = translation
    return H


def apply_h(H: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply the homogeneous ``H`` to points of shape (..., n)."""
    n = H.shape[0] - 1
    p = np.asarray(points, dtype=float)
    return p @ H[:n, :n].T + H[:n, n]


def affine2d_inverse(H: np.ndarray) -> np.ndarray:
    """Inverse of a homogeneous affine matrix."""
    return np.linalg.inv(H)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two flat arrays (float64)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    a = a - a.mean()
    b = b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else float("nan")
