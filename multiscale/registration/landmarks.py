"""Landmark-based transforms: rigid, similarity or affine by least squares."""

from __future__ import annotations

from typing import Any

import numpy as np

from .transform import Transform, TransformError, points_array

__all__ = ["landmark_transform", "LANDMARK_KINDS"]

LANDMARK_KINDS = ("rigid", "similarity", "affine")


def landmark_transform(fixed_points: Any, moving_points: Any, kind: str = "rigid") -> Transform:
    """Least-squares transform taking fixed-frame landmarks onto their moving-frame partners.

    Parameters
    ----------
    fixed_points, moving_points : array_like, shape (n, d)
        Corresponding positions in mm, rows in ITK ``(x, y[, z])`` order, ``n >= 3``.
    kind : {"rigid", "similarity", "affine"}
        Rigid and similarity use the SVD solution of Umeyama (1991, IEEE TPAMI 13:376) with the
        reflection excluded; affine is ordinary least squares (needs points not all on a line, or
        in 3-D not all on a plane).

    Returns
    -------
    Transform
        Maps fixed points to moving points; ``info`` holds the landmark residuals (mm).

    Examples
    --------
    >>> f = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> t = landmark_transform(f, f + [2.0, 1.0])
    >>> np.round(t.transform_points([[5.0, 5.0]]), 9).tolist()
    [[7.0, 6.0]]
    """

    f = np.asarray(fixed_points, dtype=float)
    m = np.asarray(moving_points, dtype=float)
    if f.ndim != 2 or f.shape[1] not in (2, 3):
        raise TransformError(f"fixed_points must be an (n, 2) or (n, 3) array in (x, y[, z]) order, got {f.shape}")
    d = f.shape[1]
    f = points_array(f, d, "fixed_points")
    m = points_array(m, d, "moving_points")
    if f.shape != m.shape:
        raise TransformError(
            f"fixed_points {f.shape} and moving_points {m.shape} must pair up row by row (same shape)"
        )
    if len(f) < 3:
        raise TransformError(
            f"landmark registration needs at least 3 point pairs, got {len(f)}; add landmarks or use "
            "intensity registration"
        )
    if kind not in LANDMARK_KINDS:
        raise TransformError(f"kind={kind!r} is not one of {LANDMARK_KINDS}")
    fc, mc = f.mean(0), m.mean(0)
    f0, m0 = f - fc, m - mc
    rank = np.linalg.matrix_rank(f0, tol=1e-9 * max(float(np.abs(f0).max()), 1e-12))
    if rank < (d if kind == "affine" else d - 1) or rank == 0:
        raise TransformError(
            f"fixed landmarks are degenerate for a {kind} fit (coincident"
            + (", collinear" if kind == "affine" or d == 3 else "")
            + (" or coplanar" if kind == "affine" and d == 3 else "")
            + "); spread the landmarks out"
        )
    if kind == "affine":
        sol, *_ = np.linalg.lstsq(np.c_[f0, np.ones(len(f))], m0, rcond=None)
        a = sol[:d].T
        b = mc + sol[d] - a @ fc
    else:
        cov = m0.T @ f0 / len(f)
        u, s, vt = np.linalg.svd(cov)
        sign = np.ones(d)
        if np.linalg.det(u) * np.linalg.det(vt) < 0:
            sign[-1] = -1.0
        r = u @ np.diag(sign) @ vt
        scale = 1.0
        if kind == "similarity":
            var_f = (f0**2).sum() / len(f)
            scale = float((s * sign).sum() / var_f)
        a = scale * r
        b = mc - a @ fc
    t = _sitk_linear(a, b, fc, kind)
    residual = np.linalg.norm(f @ a.T + b - m, axis=1)
    info = {
        "method": f"landmarks ({kind}, least squares)",
        "n_landmarks": int(len(f)),
        "landmark_residual_mm": {"mean": float(residual.mean()), "max": float(residual.max())},
    }
    return Transform(t, info)


def _sitk_linear(a: np.ndarray, b: np.ndarray, center: np.ndarray, kind: str) -> Any:
    """A SimpleITK transform of the right family for ``y = a x + b``, centred at ``center``."""
    import SimpleITK as sitk

    d = len(b)
    trans = a @ center + b - center  # y = a (x - c) + c + t
    if kind == "rigid":
        if d == 2:
            t = sitk.Euler2DTransform()
        else:
            t = sitk.Euler3DTransform()
    elif kind == "similarity":
        t = sitk.Similarity2DTransform() if d == 2 else sitk.Similarity3DTransform()
    else:
        t = sitk.AffineTransform(d)
    t.SetCenter(tuple(float(v) for v in center))
    if kind == "similarity" and d == 2:
        scale = float(np.sqrt(abs(np.linalg.det(a))))
        t.SetScale(scale)
        t.SetAngle(float(np.arctan2(a[1, 0], a[0, 0])))
    elif kind == "similarity":
        scale = float(np.cbrt(np.linalg.det(a)))
        rot = a / scale
        t.SetMatrix(tuple(rot.reshape(-1)))
        t.SetScale(scale)
    else:
        t.SetMatrix(tuple(float(v) for v in a.reshape(-1)))
    t.SetTranslation(tuple(float(v) for v in trans))
    return t
