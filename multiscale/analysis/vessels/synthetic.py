"""Synthetic vessel trees with known centrelines, radii and branch points (for tests, benchmarks, demos).

A tree is a list of tubes; each tube is a polyline of centreline points (mm, array order ``(z, y, x)``
or ``(y, x)``) with one radius. A voxel is inside when its centre lies within the radius of any
segment of any polyline (capsules: round caps), so the true centreline length is the polylines'
length and the true distance from a point to the vessels is ``min(distance to axis - radius)``.

Examples
--------
>>> import numpy as np
>>> tree = VesselTree([Tube(np.array([[1.0, 1.0], [1.0, 4.0]]), 0.3)])
>>> tree.total_length_mm
3.0
>>> m = tree.mask((20, 50), spacing=0.1)
>>> int(m[10].sum())  # the tube's row: x from 0.7 to 4.3 mm
37
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Tube", "VesselTree", "helix", "branching_tree", "vessel_intensity"]


@dataclass
class Tube:
    """One vessel: centreline ``points`` (n, ndim) in mm (array order) and a ``radius`` in mm."""

    points: np.ndarray
    radius: float

    @property
    def length_mm(self) -> float:
        """Length of the centreline polyline (mm)."""
        return float(np.linalg.norm(np.diff(np.asarray(self.points, float), axis=0), axis=1).sum())


@dataclass
class VesselTree:
    """Tubes and their known branch points (mm)."""

    tubes: list[Tube]
    branch_points: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))

    def clearance_mm(self) -> float:
        """Smallest wall-to-wall gap (mm) between tubes that do not share an end point (inf for one tube).

        A tree is *clean* (every junction planted, none made by tubes touching) when this is a few voxels.
        """
        best = np.inf
        samples = []
        for t in self.tubes:
            p = np.asarray(t.points, float)
            fine = [p[0]]
            for a, b in zip(p[:-1], p[1:]):
                n = max(int(np.ceil(np.linalg.norm(b - a) / (t.radius / 4))), 1)
                fine.extend(a + (b - a) * (np.arange(1, n + 1) / n)[:, None])
            samples.append(np.asarray(fine))
        for i in range(len(self.tubes)):
            for j in range(i + 1, len(self.tubes)):
                pi, pj = np.asarray(self.tubes[i].points), np.asarray(self.tubes[j].points)
                ends_i, ends_j = pi[[0, -1]], pj[[0, -1]]
                if np.min(np.linalg.norm(ends_i[:, None] - ends_j[None], axis=-1)) < 1e-9:
                    continue  # neighbours in the tree
                dmin = np.min(np.linalg.norm(samples[i][:, None] - samples[j][None], axis=-1))
                best = min(best, float(dmin) - self.tubes[i].radius - self.tubes[j].radius)
        return best

    @property
    def total_length_mm(self) -> float:
        """Sum of the centreline lengths (mm)."""
        return float(sum(t.length_mm for t in self.tubes))

    def axis_distance(self, shape: Sequence[int], spacing: Sequence[float] | float,
                      origin: Sequence[float] | None = None, reach: float | None = None) -> np.ndarray:
        """Distance (mm) from every voxel centre to the nearest tube *surface* (negative inside).

        Voxels farther than ``reach`` (default: the largest radius plus 4 voxels) from every tube get ``reach``.
        """
        shape = tuple(int(s) for s in shape)
        sp = np.broadcast_to(np.asarray(spacing, float), (len(shape),))
        org = np.zeros(len(shape)) if origin is None else np.asarray(origin, float)
        rmax = max(t.radius for t in self.tubes) if self.tubes else 0.0
        reach = float(reach) if reach is not None else rmax + 4 * float(sp.max())
        out = np.full(shape, reach, np.float64)
        axes = [org[k] + np.arange(shape[k]) * sp[k] for k in range(len(shape))]
        for t in self.tubes:
            pts = np.asarray(t.points, float)
            for a, b in zip(pts[:-1], pts[1:]):
                lo = np.minimum(a, b) - t.radius - reach
                hi = np.maximum(a, b) + t.radius + reach
                sl = []
                for k in range(len(shape)):
                    i0 = int(np.clip(np.floor((lo[k] - org[k]) / sp[k]), 0, shape[k]))
                    i1 = int(np.clip(np.ceil((hi[k] - org[k]) / sp[k]) + 1, 0, shape[k]))
                    sl.append(slice(i0, i1))
                if any(s.stop <= s.start for s in sl):
                    continue
                grids = np.meshgrid(*[axes[k][sl[k]] for k in range(len(shape))], indexing="ij")
                ab = b - a
                L2 = float(ab @ ab)
                tt = sum((grids[k] - a[k]) * ab[k] for k in range(len(shape))) / (L2 if L2 > 0 else 1.0)
                tt = np.clip(tt, 0.0, 1.0)
                d2 = sum((grids[k] - (a[k] + tt * ab[k])) ** 2 for k in range(len(shape)))
                d = np.sqrt(d2) - t.radius
                view = out[tuple(sl)]
                np.minimum(view, d, out=view)
        return out

    def mask(self, shape: Sequence[int], spacing: Sequence[float] | float,
             origin: Sequence[float] | None = None) -> np.ndarray:
        """Boolean mask: voxel centres within a tube's radius of its centreline."""
        return self.axis_distance(shape, spacing, origin, reach=1.0) < 0


def helix(radius: float, pitch: float, turns: float, centre: Sequence[float], step: float | None = None) -> np.ndarray:
    """Points (z, y, x) of a helix along z: ``radius`` and ``pitch`` in mm, starting at angle 0.

    Its tortuosity (length over chord) is ``sqrt((2 pi radius)^2 + pitch^2) / pitch`` for whole turns.

    Examples
    --------
    >>> p = helix(1.0, 4.0, 2, (0, 0, 0))
    >>> round(float(np.linalg.norm(np.diff(p, axis=0), axis=1).sum()) / 8.0, 3)
    1.862
    """
    step = step if step is not None else 2 * np.pi * radius / 400
    per_turn = np.hypot(2 * np.pi * radius, pitch)
    n = max(int(np.ceil(turns * per_turn / step)), 8)
    phi = np.linspace(0.0, 2 * np.pi * turns, n + 1)
    c = np.asarray(centre, float)
    return np.stack([c[0] + pitch * phi / (2 * np.pi), c[1] + radius * np.sin(phi), c[2] + radius * np.cos(phi)], 1)


def branching_tree(extent_mm: Sequence[float], *, depth: int = 3, root_radius: float, seed: int = 0,
                   segment_mm: float | None = None, margin_mm: float | None = None) -> VesselTree:
    """A random binary tree of straight tubes inside a box (2-D or 3-D), with its branch points.

    The root starts at the middle of the box's low face along the last axis and runs inwards; every
    tube splits into two thinner children (radius x 0.8) at angles of 25-45 degrees, ``depth`` times.
    Children leaving the box (less ``margin_mm``) are shortened to stay in it.

    Examples
    --------
    >>> t = branching_tree((4.0, 4.0), depth=2, root_radius=0.08, seed=1)
    >>> len(t.tubes), len(t.branch_points)
    (7, 3)
    """
    rng = np.random.default_rng(seed)
    ext = np.asarray(extent_mm, float)
    nd = ext.size
    seg = segment_mm if segment_mm is not None else float(ext.min()) / (depth + 1.5)
    margin = margin_mm if margin_mm is not None else 2.5 * root_radius
    start = ext / 2.0
    start[-1] = margin
    direction = np.zeros(nd)
    direction[-1] = 1.0
    tubes: list[Tube] = []
    branches: list[np.ndarray] = []

    def clip_end(a: np.ndarray, d: np.ndarray, length: float) -> np.ndarray:
        t = length
        for k in range(nd):
            if d[k] > 1e-12:
                t = min(t, (ext[k] - margin - a[k]) / d[k])
            elif d[k] < -1e-12:
                t = min(t, (margin - a[k]) / d[k])
        return a + max(t, 0.0) * d

    def grow(a: np.ndarray, d: np.ndarray, r: float, level: int) -> None:
        b = clip_end(a, d, seg * rng.uniform(0.85, 1.15))
        if np.linalg.norm(b - a) < 4 * r:
            return
        tubes.append(Tube(np.stack([a, b]), r))
        if level >= depth:
            return
        kids = []
        perp = None
        if nd == 3:
            perp = np.cross(d, rng.normal(size=3))
            perp /= np.linalg.norm(perp)
        for sign in (-1.0, 1.0):
            ang = np.deg2rad(rng.uniform(25, 45)) * sign
            if nd == 2:
                c, s = np.cos(ang), np.sin(ang)
                nd_ = np.array([c * d[0] - s * d[1], s * d[0] + c * d[1]])
            else:
                nd_ = np.cos(ang) * d + np.sin(ang) * perp
            kids.append(nd_ / np.linalg.norm(nd_))
        ends = [clip_end(b, k, seg) for k in kids]
        if all(np.linalg.norm(e - b) >= 4 * r * 0.8 for e in ends):
            branches.append(b)
            for k in kids:
                grow(b, k, r * 0.8, level + 1)

    grow(start, direction, root_radius, 0)
    return VesselTree(tubes, np.array(branches).reshape(-1, nd))


def vessel_intensity(tree: VesselTree, shape: Sequence[int], spacing: Sequence[float] | float, *,
                     contrast: float = 1.0, background: float = 0.1, noise: float = 0.0, blur_mm: float = 0.0,
                     seed: int = 0) -> np.ndarray:
    """A vessel-stain-like image: partial-volume tubes (``contrast``) on a ``background``, blurred, with noise."""
    from scipy import ndimage as ndi

    sp = np.broadcast_to(np.asarray(spacing, float), (len(shape),))
    d = tree.axis_distance(shape, sp)
    img = background + contrast * np.clip(0.5 - d / float(sp.min()), 0.0, 1.0)
    if blur_mm > 0:
        img = ndi.gaussian_filter(img, blur_mm / sp)
    if noise > 0:
        img = img + np.random.default_rng(seed).normal(0, noise, img.shape)
    return img.astype(np.float32)
