"""Private geometry helpers for loaders that receive xyz-ordered headers (NIfTI affines, DICOM vectors).

:mod:`multiscale.image` owns the zyx/xyz conversions for points (``xyz_to_zyx``/``zyx_to_xyz``);
this module adds the one thing it lacks: the same reordering for a direction matrix given in
ITK ``(x, y, z)`` order (rows: world axes, columns: array axes, both reversed).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from multiscale.image import xyz_to_zyx, zyx_to_xyz

from ._common import fail


def direction_xyz_to_zyx(d_xyz: Any) -> np.ndarray:
    """Direction matrix from ITK ``(x, y, z)`` order to numpy ``(z, y, x)`` order (both axes reversed)."""
    d = np.asarray(d_xyz, dtype=float)
    return xyz_to_zyx(xyz_to_zyx(d).T).T


def direction_zyx_to_xyz(d_zyx: Any) -> np.ndarray:
    """Inverse of :func:`direction_xyz_to_zyx`."""
    d = np.asarray(d_zyx, dtype=float)
    return zyx_to_xyz(zyx_to_xyz(d).T).T


def split_affine_xyz(matrix: Any, path: Any, field: str, tol: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """Split a 3x3 linear part (columns = array axes i, j, k in world x, y, z) into spacing and direction.

    Raises a :class:`LoadError` naming ``field`` when a column is zero (zero spacing) or when the
    columns are not perpendicular (shear: a non-orthonormal direction).
    """
    m = np.asarray(matrix, dtype=float)
    sp = np.linalg.norm(m, axis=0)
    if not np.all(np.isfinite(m)):
        raise fail(path, field, f"contains NaN or infinity: {m.tolist()}", "repair the header")
    if np.any(sp <= 1e-12):
        axes = [("x", "y", "z")[i] for i in np.flatnonzero(sp <= 1e-12)]
        raise fail(path, field, f"zero spacing along array axis {', '.join(axes)}",
                   "write the voxel size into the header or pass spacing=(dz, dy, dx)")
    d = m / sp
    err = float(np.abs(d.T @ d - np.eye(d.shape[1])).max())
    if err > tol:
        raise fail(path, field, f"direction is not orthonormal (sheared axes, |D^T D - I| = {err:.3g})",
                   "resample the image onto an orthogonal grid (e.g. with SimpleITK) before loading")
    return sp, d
