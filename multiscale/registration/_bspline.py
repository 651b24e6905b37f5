"""B-spline stage with Mattes mutual information and a sparse Jacobian (private).

SimpleITK's ``ImageRegistrationMethod`` treats a B-spline transform as having global support: for
every metric sample it builds a dense ``dim x parameters`` Jacobian and accumulates into a
``bins x bins x parameters`` derivative array, so one evaluation costs samples x parameters
(a 10-interval 3-D mesh has 6,591 parameters: about a second per evaluation for 20,000 samples)
and memory grows with bins^2 x parameters. Each sample actually moves only the ``4^dim``
control points around it. This module evaluates the same metric (Mattes et al. 2003: a
zero-order Parzen window on the fixed intensity, a cubic one on the moving intensity, linear
interpolation of the moving image) and its exact gradient with that sparse Jacobian, as a
``samples x 4^dim`` sparse matrix built once per level, and optimises with SciPy's L-BFGS-B. The
cost per evaluation no longer depends on the mesh, so finer meshes, more samples and more
histogram bins become affordable.

Only the B-spline coefficients are optimised; the linear part found by the earlier stages is
applied after it (``p -> A (p + d(p)) + t``), as with ``SetMovingInitialTransform``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["optimise_bspline", "bspline_weights"]


def _cubic(u: np.ndarray) -> np.ndarray:
    """Cubic B-spline kernel beta3(u)."""
    a = np.abs(u)
    out = np.zeros_like(a)
    m1 = a < 1.0
    m2 = (a >= 1.0) & (a < 2.0)
    out[m1] = (4.0 - 6.0 * a[m1] ** 2 + 3.0 * a[m1] ** 3) / 6.0
    out[m2] = (2.0 - a[m2]) ** 3 / 6.0
    return out


def _parzen(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cubic B-spline weights of the 4 bins from floor(pos) - 1 for fractional part ``s``, and their
    derivatives with respect to pos."""
    s2, s3 = s * s, s * s * s
    w = np.stack([(1.0 - s) ** 3, 4.0 - 6.0 * s2 + 3.0 * s3, 1.0 + 3.0 * s + 3.0 * s2 - 3.0 * s3, s3], axis=1) / 6.0
    dw = np.stack([-0.5 * (1.0 - s) ** 2, -2.0 * s + 1.5 * s2, 0.5 + s - 1.5 * s2, 0.5 * s2], axis=1)
    return w, dw


def _index_matrix(image: Any) -> tuple[np.ndarray, np.ndarray]:
    """(origin, M) with physical = origin + M @ index, index in ITK (x, y[, z]) order."""
    d = image.GetDimension()
    direction = np.asarray(image.GetDirection(), float).reshape(d, d)
    return np.asarray(image.GetOrigin(), float), direction @ np.diag(np.asarray(image.GetSpacing(), float))


def bspline_weights(bsp: Any, points: np.ndarray) -> Any:
    """Sparse ``(n_points, n_control_points)`` matrix of cubic B-spline weights of ``bsp``'s grid.

    ``displacement = W @ coefficients`` with ``coefficients`` of shape ``(n_control_points, dim)``
    in SimpleITK's parameter order (x fastest, one block per displacement component). Points
    outside the transform domain get no weights (zero displacement), as in ITK.
    """
    import scipy.sparse as sp

    fp = np.asarray(bsp.GetFixedParameters(), float)
    d = bsp.GetDimension()
    size = fp[:d].astype(int)
    origin = fp[d:2 * d]
    spacing = fp[2 * d:3 * d]
    direction = fp[3 * d:].reshape(d, d)
    u = np.linalg.solve(direction @ np.diag(spacing), (points - origin).T).T  # continuous grid index
    start = np.floor(u).astype(np.int64) - 1
    frac = u - np.floor(u)
    inside = np.all((start >= 0) & (start + 3 <= size - 1), axis=1)
    # per-axis weights of the 4 supporting control points: beta3(frac + 1 - k)
    w_axis = [np.stack([_cubic(frac[:, a] + 1.0 - k) for k in range(4)], axis=1) for a in range(d)]
    strides = np.cumprod(np.concatenate([[1], size[:-1]]))
    offsets = np.array(np.meshgrid(*[np.arange(4)] * d, indexing="ij")).reshape(d, -1).T  # (4^d, d)
    cols = (start[:, None, :] + offsets[None, :, :]) @ strides  # (n, 4^d)
    vals = np.ones((len(points), 4**d))
    for a in range(d):
        vals *= w_axis[a][:, offsets[:, a]]
    vals[~inside] = 0.0
    cols = np.where(inside[:, None], cols, 0)
    n = len(points)
    rows = np.repeat(np.arange(n), 4**d)
    return sp.csr_matrix((vals.reshape(-1), (rows, cols.reshape(-1))), shape=(n, int(np.prod(size))))


class _Level:
    """One pyramid level: fixed samples, their spline weights and the moving image + gradient."""

    def __init__(self, f: Any, m: Any, bsp: Any, linear: np.ndarray, offset: np.ndarray, n_samples: int,
                 bins: int, rng: np.random.Generator, fixed_mask: Any = None, moving_mask: Any = None) -> None:
        import SimpleITK as sitk
        from scipy import ndimage as ndi

        d = f.GetDimension()
        self.d = d
        farr = sitk.GetArrayViewFromImage(f).astype(np.float64)  # (z, y, x)
        shape = np.asarray(farr.shape)[::-1]  # (x, y, z)
        if fixed_mask is not None:
            marr = sitk.GetArrayViewFromImage(fixed_mask) > 0
            cand = np.flatnonzero(marr.reshape(-1))
        else:
            cand = None
        n_vox = int(np.prod(shape)) if cand is None else len(cand)
        n = int(min(n_samples, n_vox))
        flat = rng.choice(n_vox, size=n, replace=False) if n < n_vox else np.arange(n_vox)
        if cand is not None:
            flat = cand[flat]
        idx_zyx = np.array(np.unravel_index(flat, farr.shape), float).T
        # jitter inside the voxel (no grid-aligned bias), staying inside the image
        idx_zyx = idx_zyx + rng.uniform(-0.5, 0.5, size=idx_zyx.shape)
        idx_zyx = np.clip(idx_zyx, 0.0, np.asarray(farr.shape, float) - 1.0)
        fvals = ndi.map_coordinates(farr, idx_zyx.T, order=1, mode="nearest")
        org_f, mat_f = _index_matrix(f)
        self.points = org_f + idx_zyx[:, ::-1] @ mat_f.T  # physical (x, y, z)
        self.W = bspline_weights(bsp, self.points)
        self.WT = self.W.T.tocsr()
        # Mattes binning as in ITK: range of the whole image, two padding bins on each side
        fmin, fmax = float(farr.min()), float(farr.max())
        marr_m = sitk.GetArrayViewFromImage(m).astype(np.float64)
        mmin, mmax = float(marr_m.min()), float(marr_m.max())
        self.bins = int(bins)
        pad = 2
        self.fbs = max((fmax - fmin) / (bins - 2 * pad), 1e-12)
        self.mbs = max((mmax - mmin) / (bins - 2 * pad), 1e-12)
        self.fmin, self.mmin = fmin, mmin
        fpos = (fvals - fmin) / self.fbs + pad
        self.fbin = np.clip(np.floor(fpos).astype(np.int64), pad, bins - pad - 1)
        # moving value and gradient (d/d index along z, y, x) in one array: one interpolation serves both
        self.stack = np.stack([marr_m] + [np.gradient(marr_m, axis=ax) for ax in range(d)], axis=-1)
        self.stack = np.ascontiguousarray(self.stack.reshape(-1, d + 1), dtype=np.float32)  # halves memory
        self.strides = np.cumprod(np.concatenate([[1], np.asarray(marr_m.shape[::-1][:-1])]))[::-1].astype(np.int64)
        self.corners = np.array(np.meshgrid(*[np.arange(2)] * d, indexing="ij")).reshape(d, -1).T  # (2^d, d) zyx
        org_m, mat_m = _index_matrix(m)
        self.org_m = org_m
        self.inv_m = np.linalg.inv(mat_m)
        self.mshape = np.asarray(marr_m.shape, float)
        self.mm = sitk.GetArrayViewFromImage(moving_mask) > 0 if moving_mask is not None else None
        self.A = np.asarray(linear, float)
        self.t = np.asarray(offset, float)
        self.evaluations = 0

    def _interpolate(self, idx_zyx: np.ndarray) -> np.ndarray:
        """Linear interpolation of the moving value and gradient at continuous (z, y, x) indices."""
        hi = self.mshape - 2.0
        i0 = np.clip(np.floor(idx_zyx), 0.0, np.maximum(hi, 0.0))
        fr = idx_zyx - i0
        base = i0.astype(np.int64) @ self.strides
        out = np.zeros((len(idx_zyx), self.d + 1))
        for corner in self.corners:
            wgt = np.prod(np.where(corner[None, :] == 1, fr, 1.0 - fr), axis=1)
            out += wgt[:, None] * self.stack[base + int(corner @ self.strides)]
        return out

    def value_and_gradient(self, coeffs: np.ndarray) -> tuple[float, np.ndarray]:
        """-MI and its gradient with respect to the coefficients, shape ``(n_control, dim)``."""
        self.evaluations += 1
        d, bins = self.d, self.bins
        y = self.points + self.W @ coeffs
        z = y @ self.A.T + self.t
        idx = (z - self.org_m) @ self.inv_m.T  # (x, y, z) continuous index
        idx_zyx = idx[:, ::-1]
        valid = np.all((idx_zyx >= 0.0) & (idx_zyx <= self.mshape - 1.0), axis=1)
        if self.mm is not None:
            near = np.clip(np.rint(idx_zyx), 0, self.mshape - 1).astype(np.int64)
            valid &= self.mm[tuple(near.T)]
        nv = int(valid.sum())
        if nv < max(16, len(valid) // 16):
            raise RuntimeError(f"only {nv} of {len(valid)} metric samples map inside the moving image")
        sampled = self._interpolate(idx_zyx[valid])
        mv = sampled[:, 0]
        g_phys = sampled[:, :0:-1] @ self.inv_m  # (x, y, z) index derivatives, chained: d/dz = (d/didx) inv_m
        # cubic Parzen window on the moving intensity: 4 bins from floor(pos) - 1
        mpos = np.clip((mv - self.mmin) / self.mbs + 2.0, 2.0, bins - 2.0 - 1e-9)
        base = np.floor(mpos)
        mstart = base.astype(np.int64) - 1
        w, dw = _parzen(mpos - base)
        fb = self.fbin[valid]
        cols = mstart[:, None] + np.arange(4)[None, :]
        flat = (fb[:, None] * bins + cols).reshape(-1)
        joint = np.bincount(flat, weights=w.reshape(-1), minlength=bins * bins).reshape(bins, bins)
        total = joint.sum()
        p = joint / total
        pf = p.sum(axis=1)
        pm = p.sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(p > 0, np.log(p / (pf[:, None] * pm[None, :])), 0.0)
        mi_val = float(np.sum(p[p > 0] * ratio[p > 0]))
        # dMI/dmpos_i = (1/total) sum_k dw_k log(p / (pf pm)) at (fb_i, mstart_i + k)
        dmi_dpos = np.sum(dw * ratio.reshape(-1)[flat].reshape(-1, 4), axis=1) / total
        g_point = (dmi_dpos / self.mbs)[:, None] * (g_phys @ self.A)  # dMI/dy, per valid sample
        g_full = np.zeros((len(valid), d))
        g_full[valid] = g_point
        grad = -(self.WT @ g_full)  # minimise -MI
        return -mi_val, grad


def optimise_bspline(levels: list[tuple[Any, Any]], bsp: Any, linear: np.ndarray, offset: np.ndarray, *,
                     samples: int, bins: int, iterations: int, seed: int, fixed_mask: Any = None,
                     moving_mask: Any = None, unit: float = 1.0, memory: int = 5) -> tuple[int, str]:
    """Optimise ``bsp``'s coefficients in place over ``levels`` (coarse to fine (fixed, moving) pairs).

    ``unit`` (mm, typically the working pixel) scales the coefficients the optimiser sees, so its
    first step and tolerances mean the same thing whatever the physical units of the images.
    Returns (function evaluations, last stop message).
    """
    from scipy.optimize import minimize

    d = bsp.GetDimension()
    n_ctrl = len(bsp.GetParameters()) // d
    coeffs = np.asarray(bsp.GetParameters(), float).reshape(d, n_ctrl).T.copy()
    total, message = 0, ""
    for k, (f_l, m_l) in enumerate(levels):
        rng = np.random.default_rng([int(seed), 104729, k])
        fm = _mask_for(fixed_mask, f_l)
        lev = _Level(f_l, m_l, bsp, linear, offset, samples, bins, rng, fm, _mask_for(moving_mask, m_l))

        def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
            val, g = lev.value_and_gradient(x.reshape(n_ctrl, d) * unit)  # noqa: B023 - used only by this level's minimize
            return val, g.reshape(-1) * unit

        res = minimize(fun, coeffs.reshape(-1) / unit, jac=True, method="L-BFGS-B",
                       options={"maxiter": int(iterations), "maxcor": int(memory), "ftol": 1e-7, "gtol": 1e-6})
        coeffs = res.x.reshape(n_ctrl, d) * unit
        total += lev.evaluations
        message = str(res.message)
    bsp.SetParameters(tuple(coeffs.T.reshape(-1)))
    return total, message


def _mask_for(mask: Any, image: Any) -> Any:
    """A mask on a level's grid (nearest neighbour), or None."""
    if mask is None:
        return None
    import SimpleITK as sitk

    if mask.GetSize() == image.GetSize() and np.allclose(mask.GetSpacing(), image.GetSpacing()):
        return mask
    return sitk.Resample(mask, image, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
