"""Sampling grids (private): ITK-order geometry of :class:`multiscale.image.Grid` and of images.

Everything here is in numpy array order ``(z, y, x)`` except the ``*_xyz`` helpers, which hand
SimpleITK its ``(x, y, z)`` tuples by reversing, like :func:`multiscale.image.to_sitk` does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from multiscale import image as mi
from multiscale.image import Grid

__all__ = ["Grid", "grid_from_reference", "grid_xyz", "sitk_geometry", "grid_box_xyz"]


def grid_from_reference(reference: Any) -> Grid:
    """A :class:`~multiscale.image.Grid` from an image, a ``grid_of``-style mapping or a SimpleITK image.

    The same as :meth:`multiscale.image.Grid.of`.
    """
    return Grid.of(reference)


def grid_xyz(grid: Grid) -> tuple[tuple[int, ...], tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    """ITK-order (size, spacing, origin, flat direction) of a grid."""
    d = np.asarray(grid.direction, float)[::-1, ::-1]
    return (tuple(int(v) for v in grid.shape[::-1]), tuple(float(v) for v in grid.spacing[::-1]),
            tuple(float(v) for v in grid.origin[::-1]), tuple(float(v) for v in d.reshape(-1)))


def sitk_geometry(image: xr.DataArray) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    """ITK-order (spacing, origin, flat direction) of an image."""
    d = mi.direction(image)[::-1, ::-1]
    return (tuple(float(v) for v in mi.spacing(image)[::-1]), tuple(float(v) for v in mi.origin(image)[::-1]),
            tuple(float(v) for v in d.reshape(-1)))


def grid_box_xyz(grid: Grid) -> np.ndarray:
    """Axis-aligned physical box (2, n) of a grid's voxel edges, ITK (x, y, z) order."""
    sh = np.asarray(grid.shape, float)
    n = sh.size
    corners = np.array(np.meshgrid(*[[-0.5, s - 0.5] for s in sh], indexing="ij")).reshape(n, -1).T
    world = np.asarray(grid.origin) + (corners * np.asarray(grid.spacing)) @ np.asarray(grid.direction).T
    box = np.stack([world.min(0), world.max(0)])
    return mi.zyx_to_xyz(box)
