"""Distances in millimetres inside masks: depth from a mask's boundary, distance to the nearest vessel.

The boundary of a binary mask is a staircase; distances to the staircase flatten near the rim (every
voxel touching the outside is half a voxel deep, whatever its true depth), which biases gradients by
3-5 % on a voxelised sphere. Depth is therefore measured to an anti-aliased boundary: the 0.5
iso-surface of the mask smoothed by a Gaussian of one voxel (sigma in voxels per axis, so anisotropic
spacing is honoured), extracted with marching cubes (2-D: marching squares) in mm and densified with
the triangles' centroids and edge midpoints; the depth of a voxel is the distance from its centre to
the nearest surface point (KD-tree). On a voxelised sphere this recovers ``R - r`` with a slope within
1 % (tested). Masks too thin to survive the smoothing (and 1-D masks) fall back to the distance to the
voxel faces (exact Euclidean distance transform to the nearest outside voxel box). Outside the image
counts as outside the mask.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = ["inside_depth_mm", "signed_depth_mm", "distance_to_mask_mm"]


def _edt_to_face(inside: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Distance (mm) from each True voxel to the nearest box of a False voxel; 0 on False voxels."""
    padded = np.pad(inside, 1, constant_values=False)
    dist, idx = ndi.distance_transform_edt(padded, sampling=spacing, return_indices=True)
    core = tuple(slice(1, -1) for _ in range(inside.ndim))
    dist = dist[core]
    out = np.zeros(inside.shape, dtype=np.float64)
    sel = inside
    if not sel.any():
        return out
    pos = np.nonzero(sel)
    vec = np.stack([(idx[k][core][pos] - 1 - pos[k]) * spacing[k] for k in range(inside.ndim)], axis=-1)
    d = dist[pos]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.abs(vec) / d[:, None]
        half = np.where(u > 0, (spacing / 2.0)[None, :] / u, np.inf).min(axis=1)
    out[pos] = d - half
    return out


def _surface_points(mask: np.ndarray, spacing: np.ndarray, sigma_vox: float = 1.0) -> np.ndarray | None:
    """Points (mm, in the mask array's frame) on the 0.5 iso-surface of the smoothed mask, or None."""
    if mask.ndim not in (2, 3):
        return None
    pad = 2 + int(np.ceil(3 * sigma_vox))
    f = ndi.gaussian_filter(np.pad(mask, pad).astype(np.float64), sigma_vox)
    if f.max() <= 0.5 or f.min() >= 0.5:
        return None
    shift = pad * spacing
    if mask.ndim == 3:
        from skimage.measure import marching_cubes

        verts, faces, _, _ = marching_cubes(f, 0.5, spacing=tuple(float(s) for s in spacing))
        tri = verts[faces]
        pts = np.concatenate([verts, tri.mean(axis=1), (tri[:, 0] + tri[:, 1]) / 2,
                              (tri[:, 1] + tri[:, 2]) / 2, (tri[:, 0] + tri[:, 2]) / 2])
    else:
        from skimage.measure import find_contours

        parts = []
        for c in find_contours(f, 0.5):
            c = c * spacing
            seg0, seg1 = c[:-1], c[1:]
            parts += [c, (seg0 + seg1) / 2, 0.75 * seg0 + 0.25 * seg1, 0.25 * seg0 + 0.75 * seg1]
        pts = np.concatenate(parts)
    return pts - shift


def _nearest_distance(points: np.ndarray, query: np.ndarray, batch: int = 1_000_000) -> np.ndarray:
    from scipy.spatial import cKDTree

    tree = cKDTree(points)
    out = np.empty(query.shape[0])
    for start in range(0, query.shape[0], batch):
        out[start : start + batch] = tree.query(query[start : start + batch])[0]
    return out


def inside_depth_mm(mask: np.ndarray, spacing) -> np.ndarray:
    """Depth (mm) of every mask voxel below the mask's boundary (0 outside the mask).

    Only the mask's bounding box (plus one voxel) is transformed, so a small tumour in a large
    field of view costs little.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.array([0, 1, 1, 1, 0], bool)  # 1-D: distance to the voxel faces
    >>> inside_depth_mm(m, (2.0,)).tolist()
    [0.0, 1.0, 3.0, 1.0, 0.0]
    """
    mask = np.asarray(mask, dtype=bool)
    sp = np.asarray(spacing, dtype=float)
    out = np.zeros(mask.shape, dtype=np.float64)
    if not mask.any():
        return out
    box = []
    for ax in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != ax)
        nz = np.flatnonzero(mask.any(axis=other))
        box.append(slice(int(nz[0]), int(nz[-1]) + 1))
    box = tuple(box)
    sub = mask[box]
    pts = _surface_points(sub, sp)
    if pts is None:
        out[box] = _edt_to_face(sub, sp)
        return out
    pos = np.stack(np.nonzero(sub), axis=-1) * sp
    vals = np.zeros(sub.shape)
    vals[sub] = _nearest_distance(pts, pos)
    out[box] = vals
    return out


def signed_depth_mm(mask: np.ndarray, spacing) -> np.ndarray:
    """Signed distance (mm) to the mask's boundary: positive inside (depth), negative outside."""
    mask = np.asarray(mask, dtype=bool)
    sp = np.asarray(spacing, dtype=float)
    if not mask.any():
        raise ValueError("mask is empty")
    pts = _surface_points(mask, sp)
    if pts is None:
        inside = inside_depth_mm(mask, sp)
        if mask.all():
            return inside
        return np.where(mask, inside, -_edt_to_face(~mask, sp))
    grid = np.indices(mask.shape).reshape(mask.ndim, -1).T * sp
    d = _nearest_distance(pts, grid).reshape(mask.shape)
    return np.where(mask, d, -d)


def distance_to_mask_mm(target: np.ndarray, spacing) -> np.ndarray:
    """Distance (mm) from every voxel centre to the nearest voxel centre of ``target`` (0 on it)."""
    target = np.asarray(target, dtype=bool)
    return ndi.distance_transform_edt(~target, sampling=np.asarray(spacing, dtype=float))
