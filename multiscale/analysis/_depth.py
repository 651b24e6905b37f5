"""Distances in millimetres inside masks: depth from a mask's boundary, distance to the nearest vessel.

The boundary of a binary mask is a staircase; distances to the staircase flatten near the rim (every
voxel touching the outside is half a voxel deep, whatever its true depth), which biases gradients by
3-5 % on a voxelised sphere. Depth is therefore measured to an anti-aliased boundary: the 0.5
level of the mask smoothed by a Gaussian of one voxel (sigma in voxels per axis). The level is
located between voxel centres by linear interpolation along every grid edge it crosses, and each
voxel's depth is its exact Euclidean distance in mm (anisotropic voxels honoured) to the nearest of
these sub-voxel boundary points (a k-d tree, :class:`scipy.spatial.cKDTree`).

Why not fast marching (scikit-fmm, used before): it built from source for this one function (a compiler
needed on a fresh machine). Measured on voxelised spheres (``benchmarks/depth_maps.py``, ``benchmarks/RESULTS.md``)
the k-d tree is as accurate: R = 12 mm at 1 mm voxels, slope of depth against ``R - r`` 0.987 (fast marching
0.985, distance to the staircase 0.969), mean error 0.11 mm (0.10; 0.44); R = 10 mm at 2 x 0.7 x 0.7 mm, slope
0.983 (0.965; 0.979). It is slower on large masks (the example study's 75,520-voxel tumour: 1.7 s vs 0.38 s,
depths 0.005 mm apart on average); depth maps are cached per mask.

Voxels lost to the smoothing (structures about one voxel thin) keep the distance to their voxel faces:
the exact Euclidean distance transform (``sampling=spacing``) to the nearest outside voxel, minus the
part of that segment inside the outside voxel's box. Outside the image counts as outside the mask.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np
from scipy import ndimage as ndi

#: the last few depth maps, keyed by mask content and spacing: a radial profile, its gradient and
#: its rim/core ratio on the same mask (as the pipeline asks for) compute the depth once
_DEPTH_CACHE: OrderedDict[tuple, np.ndarray] = OrderedDict()
_DEPTH_CACHE_SIZE = 4

__all__ = ["inside_depth_mm", "signed_depth_mm", "distance_to_mask_mm", "face_distance_mm"]


def face_distance_mm(inside: np.ndarray, sp: np.ndarray, border_inside: bool = False) -> np.ndarray:
    """Distance (mm) from each True voxel centre to the nearest face of a False voxel (0 on False voxels).

    The exact Euclidean distance transform (``sampling=spacing``) to the nearest outside voxel centre,
    minus the part of that segment inside the outside voxel's box. Beyond the array counts as outside
    (False), or as inside with ``border_inside=True`` (distances to vessels: no vessel beyond the image).

    Examples
    --------
    >>> import numpy as np
    >>> np.round(face_distance_mm(np.array([0, 1, 1, 1, 0], bool), np.array([2.0])), 6).tolist()
    [0.0, 1.0, 3.0, 1.0, 0.0]
    """
    inside = np.asarray(inside, bool)
    sp = np.asarray(sp, dtype=float)
    out = np.zeros(inside.shape, dtype=np.float64)
    if not inside.any():
        return out
    if border_inside:
        if inside.all():
            return np.full(inside.shape, np.inf)
        dist, idx = ndi.distance_transform_edt(inside, sampling=sp, return_indices=True)
        pos = np.nonzero(inside)
        vec = np.stack([(idx[k][pos] - pos[k]) * sp[k] for k in range(inside.ndim)], axis=-1)
        d = dist[pos]
        with np.errstate(divide="ignore", invalid="ignore"):
            u = np.abs(vec) / d[:, None]
            half = np.where(u > 0, (sp / 2.0)[None, :] / u, np.inf).min(axis=1)
        out[pos] = d - half
        return out
    padded = np.pad(inside, 1, constant_values=False)
    dist, idx = ndi.distance_transform_edt(padded, sampling=sp, return_indices=True)
    core = tuple(slice(1, -1) for _ in range(inside.ndim))
    pos = np.nonzero(inside)
    vec = np.stack([(idx[k][core][pos] - 1 - pos[k]) * sp[k] for k in range(inside.ndim)], axis=-1)
    d = dist[core][pos]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.abs(vec) / d[:, None]
        half = np.where(u > 0, (sp / 2.0)[None, :] / u, np.inf).min(axis=1)
    out[pos] = d - half
    return out


def _edt_to_face(inside: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Distance (mm) from each True voxel to the nearest box of a False voxel; 0 on False voxels."""
    return face_distance_mm(inside, spacing)


def _level_points(phi: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Points (mm) where ``phi`` crosses 0 along the grid edges, by linear interpolation."""
    pts = []
    for ax in range(phi.ndim):
        lo = [slice(None)] * phi.ndim
        hi = [slice(None)] * phi.ndim
        lo[ax], hi[ax] = slice(0, -1), slice(1, None)
        p0, p1 = phi[tuple(lo)], phi[tuple(hi)]
        idx = np.nonzero((p0 > 0) != (p1 > 0))
        a, b = p0[idx], p1[idx]
        at = np.stack(idx, axis=-1).astype(np.float64)
        at[:, ax] += a / (a - b)
        pts.append(at * spacing)
    return np.concatenate(pts, axis=0)


def _smoothed_depth(mask: np.ndarray, spacing: np.ndarray, sigma_vox: float = 1.0,
                    where: np.ndarray | None = None) -> np.ndarray | None:
    """Signed distance (mm, positive inside) to the 0.5 level of the smoothed mask, or None.

    Only the voxels of ``where`` (default: all) are measured; the others are 0.
    """
    from scipy.spatial import cKDTree

    pad = 2 + int(np.ceil(3 * sigma_vox))
    phi = ndi.gaussian_filter(np.pad(mask, pad).astype(np.float64), sigma_vox) - 0.5
    if phi.max() <= 0 or phi.min() >= 0:
        return None
    core = tuple(slice(pad, -pad) for _ in range(mask.ndim))
    # an unbalanced tree answers these queries (most from deep inside, far from every boundary point) about
    # twice as fast as the default balanced one (0.32 vs 0.65 s for the example's 75,520-voxel tumour); the
    # nearest point, hence the distance, is the same
    tree = cKDTree(_level_points(phi, spacing), balanced_tree=False, compact_nodes=False)
    sub = phi[core]
    sel = np.ones(sub.shape, dtype=bool) if where is None else np.asarray(where, dtype=bool)
    points = (np.stack(np.nonzero(sel), axis=-1) + pad) * spacing
    d, _ = tree.query(points)
    out = np.zeros(sub.shape, dtype=np.float64)
    out[sel] = np.where(sub[sel] > 0, 1.0, -1.0) * d
    return out


def inside_depth_mm(mask: np.ndarray, spacing) -> np.ndarray:
    """Depth (mm) of every mask voxel below the mask's boundary (0 outside the mask).

    Only the mask's bounding box (plus one voxel) is transformed, so a small tumour in a large
    field of view costs little.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.array([0, 1, 1, 1, 1, 1, 1, 0], bool)  # 2 mm voxels: rim voxels are 1 mm deep
    >>> np.round(inside_depth_mm(m, (2.0,)), 6).tolist()
    [0.0, 1.0, 3.0, 5.0, 5.0, 3.0, 1.0, 0.0]
    """
    mask = np.asarray(mask, dtype=bool)
    sp = np.asarray(spacing, dtype=float)
    key = (mask.shape, tuple(sp.tolist()), hashlib.blake2b(np.packbits(mask).tobytes(), digest_size=16).digest())
    if key in _DEPTH_CACHE:
        _DEPTH_CACHE.move_to_end(key)
        return _DEPTH_CACHE[key].copy()
    out = _inside_depth_mm(mask, sp)
    _DEPTH_CACHE[key] = out.copy()
    if len(_DEPTH_CACHE) > _DEPTH_CACHE_SIZE:
        _DEPTH_CACHE.popitem(last=False)
    return out


def _inside_depth_mm(mask: np.ndarray, sp: np.ndarray) -> np.ndarray:
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
    d = _smoothed_depth(sub, sp, where=sub)
    face = _edt_to_face(sub, sp)
    if d is not None:
        # voxels lost to the smoothing (structures about a voxel thin) keep their face distance
        face = np.where(sub & (d > 0), d, face)
    out[box] = np.where(sub, face, 0.0)
    return out


def signed_depth_mm(mask: np.ndarray, spacing) -> np.ndarray:
    """Signed distance (mm) to the mask's boundary: positive inside (depth), negative outside."""
    mask = np.asarray(mask, dtype=bool)
    sp = np.asarray(spacing, dtype=float)
    if not mask.any():
        raise ValueError("mask is empty")
    inside = inside_depth_mm(mask, sp)
    if mask.all():
        return inside
    outside = _edt_to_face(~mask, sp)
    d = _smoothed_depth(mask, sp, where=~mask)
    if d is not None:
        outside = np.where(~mask & (d < 0), -d, outside)
    return np.where(mask, inside, -outside)


def distance_to_mask_mm(target: np.ndarray, spacing) -> np.ndarray:
    """Distance (mm) from every voxel centre to the nearest voxel centre of ``target`` (0 on it)."""
    target = np.asarray(target, dtype=bool)
    return ndi.distance_transform_edt(~target, sampling=np.asarray(spacing, dtype=float))
