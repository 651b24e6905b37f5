"""Sampling grids (private): references given as images, mappings or SimpleITK images.

Everything here is in numpy array order ``(z, y, x)`` except the ``*_xyz`` helpers, which hand
SimpleITK its ``(x, y, z)`` tuples by reversing, like :func:`multiscale.image.to_sitk` does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from multiscale import image as mi


@dataclass(frozen=True)
class Grid:
    """A sampling grid in array order: dims, shape, spacing (mm), origin (mm), direction."""

    dims: tuple[str, ...]
    shape: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: np.ndarray

    def embedded(self, thickness: float) -> Grid:
        """This 2-D grid as one slice at z = 0 of a 3-D grid (slice-to-volume)."""
        if len(self.dims) != 2:
            raise ValueError("only a 2-D grid can be embedded in 3-D")
        d = np.eye(3)
        d[1:, 1:] = self.direction
        return Grid(("z", "y", "x"), (1,) + self.shape, (float(thickness),) + self.spacing,
                    (0.0,) + self.origin, d)


def grid_from_reference(reference: Any) -> Grid:
    """A :class:`Grid` from an image, a ``grid_of``-style mapping or a SimpleITK image."""
    if isinstance(reference, Grid):
        return reference
    if isinstance(reference, xr.DataArray):
        g = mi.grid_of(mi.validate(reference))
        return Grid(tuple(g["dims"]), tuple(g["shape"]), tuple(g["spacing"]), tuple(g["origin"]),
                    np.asarray(g["direction"], dtype=float))
    if isinstance(reference, Mapping):
        shape = reference.get("shape", reference.get("size"))
        missing = [k for k, v in (("shape", shape), ("spacing", reference.get("spacing"))) if v is None]
        if missing:
            raise ValueError(
                f"reference grid mapping lacks {missing}; give shape (or size), spacing, origin "
                "[, direction, dims] in (z, y, x) order, as multiscale.image.grid_of returns"
            )
        shape = tuple(int(v) for v in np.atleast_1d(shape))
        n = len(shape)
        if n not in (2, 3):
            raise ValueError(f"reference grid shape {shape} must have 2 or 3 entries (z, y, x order)")
        sp = tuple(float(v) for v in np.broadcast_to(np.asarray(reference["spacing"], float), (n,)))
        if min(sp) <= 0:
            raise ValueError(f"reference grid spacing {sp} must be > 0 mm")
        org = tuple(float(v) for v in np.asarray(reference.get("origin", np.zeros(n)), float).reshape(n))
        d = np.asarray(reference.get("direction", np.eye(n)), dtype=float).reshape(n, n)
        dims = tuple(reference.get("dims", ("z", "y", "x")[3 - n:]))
        return Grid(dims, shape, sp, org, d)
    try:
        import SimpleITK as sitk
    except ImportError:  # pragma: no cover
        sitk = None
    if sitk is not None and isinstance(reference, sitk.Image):
        n = reference.GetDimension()
        d = np.asarray(reference.GetDirection(), float).reshape(n, n)[::-1, ::-1]
        return Grid(("z", "y", "x")[3 - n:], tuple(reference.GetSize())[::-1],
                    tuple(reference.GetSpacing())[::-1], tuple(reference.GetOrigin())[::-1], d)
    raise TypeError(
        f"reference must be an image, a grid mapping or a SimpleITK image, got {type(reference).__name__}"
    )


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
