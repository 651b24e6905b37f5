"""Synthetic registration pairs with a known transform (private; tests and benchmarks).

The phantom is an analytic function of physical position (mm), so it can be sampled on any grid
at any resolution: the moving image is ``remap(phantom(T_true^-1(q)))`` on its own grid, hence
``moving(T_true(p))`` shows what ``fixed(p)`` shows and the error of an estimate ``T`` is exactly
``|T(p) - T_true(p)|`` for every point ``p``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from multiscale import image as mi


class Phantom:
    """Smooth blobs and soft-edged ellipses in a box of ``extent`` mm (x, y[, z]) centred at ``center``."""

    def __init__(self, dim: int, extent: float, seed: int = 0, n_blobs: int = 24, n_shapes: int = 6,
                 center: Sequence[float] | None = None) -> None:
        rng = np.random.default_rng(seed)
        self.dim = dim
        self.center = np.zeros(dim) if center is None else np.asarray(center, float)
        half = extent / 2.0
        self.blob_c = rng.uniform(-0.7 * half, 0.7 * half, (n_blobs, dim)) + self.center
        self.blob_s = rng.uniform(0.03, 0.12, n_blobs) * extent
        self.blob_a = rng.uniform(0.3, 1.0, n_blobs)
        self.shape_c = rng.uniform(-0.5 * half, 0.5 * half, (n_shapes, dim)) + self.center
        self.shape_r = rng.uniform(0.08, 0.25, (n_shapes, dim)) * extent
        self.shape_a = rng.uniform(-0.6, 0.8, n_shapes)
        self.edge = 0.01 * extent
        # a body outline so that the tissue has an edge against background
        self.body_r = np.full(dim, 0.42 * extent)

    def __call__(self, pts: np.ndarray) -> np.ndarray:
        pts = np.asarray(pts, float)
        v = np.zeros(pts.shape[0])
        for c, s, a in zip(self.blob_c, self.blob_s, self.blob_a):
            v += a * np.exp(-((pts - c) ** 2).sum(1) / (2 * s * s))
        for c, r, a in zip(self.shape_c, self.shape_r, self.shape_a):
            rho = np.sqrt((((pts - c) / r) ** 2).sum(1))
            v += a * 0.5 * (1 - np.tanh((rho - 1) * r.min() / self.edge))
        rho = np.sqrt((((pts - self.center) / self.body_r) ** 2).sum(1))
        body = 0.5 * (1 - np.tanh((rho - 1) * self.body_r.min() / self.edge))
        return (0.4 + v) * body


def grid_points(shape: Sequence[int], spacing: Sequence[float], origin: Sequence[float]) -> np.ndarray:
    """Voxel-centre positions (n, d) in ITK (x, y[, z]) order for a (z, y, x)-ordered grid."""
    axes = [o + np.arange(n) * s for n, s, o in zip(shape, spacing, origin)]
    mesh = np.meshgrid(*axes, indexing="ij")
    return mi.zyx_to_xyz(np.stack([m.reshape(-1) for m in mesh], axis=1))


def sample_image(fn: Callable[[np.ndarray], np.ndarray], shape: Sequence[int], spacing: Sequence[float],
                 origin: Sequence[float] | None = None, inverse: Callable[[np.ndarray], np.ndarray] | None = None,
                 remap: Callable[[np.ndarray], np.ndarray] | None = None, supersample: int = 1,
                 noise: float = 0.0, seed: int = 0, **attrs: Any):
    """An image of ``remap(fn(inverse(q)))`` on a grid, averaging ``supersample**d`` points per pixel."""
    shape = tuple(int(v) for v in shape)
    spacing = tuple(float(v) for v in spacing)
    d = len(shape)
    origin = tuple(float(v) for v in (origin if origin is not None else np.zeros(d)))
    acc = np.zeros(int(np.prod(shape)))
    offs = (np.arange(supersample) + 0.5) / supersample - 0.5
    for off in np.array(np.meshgrid(*[offs] * d, indexing="ij")).reshape(d, -1).T:
        q = grid_points(shape, spacing, np.asarray(origin) + off * np.asarray(spacing))
        p = inverse(q) if inverse is not None else q
        acc += fn(p)
    val = acc / supersample**d
    if remap is not None:
        val = remap(val)
    if noise:
        val = val + np.random.default_rng(seed).normal(0, noise, val.shape)
    return mi.spatial_image(val.reshape(shape).astype(np.float32), spacing=spacing, origin=origin, **attrs)


def affine_true(dim: int, angle_deg: float | Sequence[float], translation: Sequence[float],
                center: Sequence[float], scale: Sequence[float] | float = 1.0, shear: float = 0.0):
    """A known fixed -> moving affine ``p -> A (p - c) + c + t`` and its inverse, as point functions."""
    from scipy.spatial.transform import Rotation

    c = np.asarray(center, float)
    if dim == 2:
        a = np.deg2rad(float(angle_deg))
        r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    else:
        r = Rotation.from_euler("xyz", np.asarray(angle_deg, float), degrees=True).as_matrix()
    sh = np.eye(dim)
    sh[0, 1] = shear
    mat = r @ sh @ np.diag(np.broadcast_to(np.asarray(scale, float), (dim,)))
    t = np.asarray(translation, float)
    inv = np.linalg.inv(mat)

    def forward(p: np.ndarray) -> np.ndarray:
        return (np.asarray(p) - c) @ mat.T + c + t

    def backward(q: np.ndarray) -> np.ndarray:
        return (np.asarray(q) - c - t) @ inv.T + c

    return forward, backward


def warp_true(dim: int, amplitude: float, wavelength: float, center: Sequence[float], affine=None):
    """A smooth non-linear fixed -> moving map ``p -> affine(p + u(p))`` and a numerical inverse."""
    c = np.asarray(center, float)
    k = 2 * np.pi / wavelength
    fwd_aff, inv_aff = affine if affine is not None else ((lambda p: p), (lambda q: q))

    def u(p: np.ndarray) -> np.ndarray:
        x = np.asarray(p) - c
        out = np.zeros_like(x)
        for i in range(dim):
            j = (i + 1) % dim
            out[:, i] = amplitude * np.sin(k * x[:, j]) * np.exp(-(x ** 2).sum(1) / (2 * (2 * wavelength) ** 2))
        return out

    def forward(p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, float)
        return fwd_aff(p + u(p))

    def backward(q: np.ndarray) -> np.ndarray:
        y = inv_aff(np.asarray(q, float))
        p = y.copy()
        for _ in range(30):  # fixed point of p = y - u(p); contracting for small amplitude * k
            p = y - u(p)
        return p

    return forward, backward


def mean_error(estimate, truth: Callable[[np.ndarray], np.ndarray], points: np.ndarray) -> float:
    """Mean distance (mm) between ``estimate.transform_points(p)`` and ``truth(p)``."""
    return float(np.linalg.norm(estimate.transform_points(points) - truth(points), axis=1).mean())


def remap_multimodal(v: np.ndarray) -> np.ndarray:
    """A non-monotonic intensity mapping: a second modality that only mutual information can match."""
    v = np.asarray(v, float)
    return np.sin(2.2 * v) ** 2 + 0.3 * v


class Section:
    """A 2-D tissue section: an asymmetric textured outline (a body, a lobe and a notch).

    ``value(p)`` is a tissue density in [0, 1] (0 outside); :func:`section_pair` turns it into a
    bright-background (histology: tissue darker than the glass) or dark-background (fluorescence,
    MSI) image. The outline has no symmetry, so every rotation and mirror is distinguishable.
    """

    def __init__(self, extent: float, seed: int = 0) -> None:
        self.extent = float(extent)
        self.texture = Phantom(2, extent, seed=seed, n_blobs=40, n_shapes=8)
        self.edge = 0.008 * extent

    def _soft(self, rho: np.ndarray, r: float) -> np.ndarray:
        return 0.5 * (1 - np.tanh((rho - 1) * r / self.edge))

    def __call__(self, pts: np.ndarray) -> np.ndarray:
        p = np.asarray(pts, float)
        e = self.extent

        def ellipse(cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
            rho = np.sqrt((((p - np.array([cx, cy]) * e) / (np.array([rx, ry]) * e)) ** 2).sum(1))
            return self._soft(rho, min(rx, ry) * e)

        body = ellipse(-0.05, 0.02, 0.26, 0.18)
        lobe = ellipse(0.17, -0.15, 0.09, 0.07)
        notch = ellipse(-0.2, 0.16, 0.08, 0.06)
        shape = np.clip(np.maximum(body, lobe) - notch, 0.0, 1.0)
        tex = self.texture(p)
        tex = tex / (np.abs(tex).max() + 1e-9) if tex.size else tex
        return shape * (0.35 + 0.65 * np.clip(tex, 0.0, 1.0))


def rigid_true(angle_deg: float, translation: Sequence[float] = (0.0, 0.0), center: Sequence[float] = (0.0, 0.0),
               flip: bool = False):
    """A known 2-D fixed -> moving map ``p -> R F (p - c) + c + t`` (``F`` mirrors x when ``flip``)."""
    a = np.deg2rad(float(angle_deg))
    r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    mat = r @ np.diag([-1.0, 1.0]) if flip else r
    c, t = np.asarray(center, float), np.asarray(translation, float)
    inv = np.linalg.inv(mat)
    return (lambda p: (np.asarray(p) - c) @ mat.T + c + t), (lambda q: (np.asarray(q) - c - t) @ inv.T + c)


def section_pair(angle_deg: float = 0.0, translation: Sequence[float] = (0.0, 0.0), flip: bool = False,
                 n: int = 128, extent: float = 5.12, background: str = "bright", seed: int = 4,
                 noise: float = 0.01):
    """Fixed and moving sections (``n`` x ``n``, ``extent`` mm) related by :func:`rigid_true`.

    ``background="bright"``: both look like brightfield histology (glass ~0.92, tissue darker;
    the moving one another stain: a different contrast curve). ``"dark"``: the fixed is
    fluorescence-like (tissue bright on black) and the moving MSI-like (another remap, noisier).
    Returns ``(fixed, moving, truth, points)``; points lie inside the tissue.
    """
    sec = Section(extent, seed=seed)
    fwd, inv = rigid_true(angle_deg, translation, (0.0, 0.0), flip)
    sp = extent / n
    org = (-extent / 2 + sp / 2,) * 2
    if background == "bright":
        rf = lambda v: 0.92 - 0.75 * v  # noqa: E731
        rm = lambda v: 0.95 - 0.6 * np.sqrt(np.clip(v, 0, None))  # noqa: E731
        mods = ("HISTO", "HISTO")
    else:
        rf = lambda v: 0.05 + v  # noqa: E731
        rm = lambda v: 0.02 + 0.5 * v + 0.5 * v**2  # noqa: E731
        mods = ("FLUO", "MSI")
    fixed = sample_image(sec, (n, n), (sp, sp), org, remap=rf, noise=noise, seed=seed + 1, modality=mods[0])
    moving = sample_image(sec, (n, n), (sp, sp), org, inverse=inv, remap=rm, noise=noise, seed=seed + 2,
                          modality=mods[1])
    pts = grid_points((8, 8), (0.05 * extent, 0.05 * extent), (-0.2 * extent, -0.2 * extent))
    pts = pts[sec(pts) > 0.2]
    return fixed, moving, fwd, pts
