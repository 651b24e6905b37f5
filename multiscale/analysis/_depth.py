"""Distances in millimetres inside masks: depth from a mask's boundary, distance to the nearest vessel.

The boundary of a binary mask is a staircase; distances to the staircase flatten near the rim (every
voxel touching the outside is half a voxel deep, whatever its true depth), which biases gradients by
3-5 % on a voxelised sphere. Depth is therefore measured to an anti-aliased boundary: the 0.5
level of the mask smoothed by a Gaussian of one voxel (sigma in voxels per axis), from which a
signed distance in mm is computed by second-order fast marching (scikit-fmm, ``dx=spacing``, so
anisotropic voxels are honoured; linear interpolation locates the level between voxel centres). On
voxelised spheres of 10-15 mm this recovers ``R - r`` with a slope within 1 % (tested within 2 %),
where distances to the staircase are 3-7 % off. Voxels lost to the smoothing (structures about one
voxel thin) keep the distance to their voxel faces: the exact Euclidean distance transform
(``sampling=spacing``) to the nearest outside voxel, minus the part of that segment inside the outside
voxel's box. Outside the image counts as outside the mask.
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


def _smoothed_depth(mask: np.ndarray, spacing: np.ndarray, sigma_vox: float = 1.0) -> np.ndarray | None:
    """Signed distance (mm, positive inside) to the 0.5 level of the smoothed mask, or None."""
    try:
        import skfmm
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ImportError(
            "depth maps need scikit-fmm (fast marching, sub-voxel signed distances); "
            "install it with `pip install scikit-fmm`"
        ) from exc
    pad = 2 + int(np.ceil(3 * sigma_vox))
    phi = ndi.gaussian_filter(np.pad(mask, pad).astype(np.float64), sigma_vox) - 0.5
    if phi.max() <= 0 or phi.min() >= 0:
        return None
    d = np.asarray(skfmm.distance(phi, dx=[float(v) for v in spacing], order=2), dtype=np.float64)
    return d[tuple(slice(pad, -pad) for _ in range(mask.ndim))]


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
    d = _smoothed_depth(sub, sp)
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
    d = _smoothed_depth(mask, sp)
    if d is not None:
        outside = np.where(~mask & (d < 0), -d, outside)
    return np.where(mask, inside, -outside)


def distance_to_mask_mm(target: np.ndarray, spacing) -> np.ndarray:
    """Distance (mm) from every voxel centre to the nearest voxel centre of ``target`` (0 on it)."""
    target = np.asarray(target, dtype=bool)
    return ndi.distance_transform_edt(~target, sampling=np.asarray(spacing, dtype=float))
