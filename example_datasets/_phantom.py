"""The synthetic mouse-tumour phantom, defined in continuous world coordinates (mm).

Everything here is a function of world points ``(x, y, z)`` in millimetres (LPS, the MRI's world
frame), so the same phantom can be sampled on any grid: the MRI volume, the fluorescence section,
the MSI pixels. Random choices (lumps, vessel tree, texture) come from one ``numpy`` generator
seeded by the study seed, drawn in a fixed order so a seed always gives the same phantom.

Anatomy (world mm; ``body_centre`` is the body's centre):

* body: an ellipsoid (semi-axes 5.8 x 5.0 x 4.2 mm) cut flat on its posterior (+y) side, where
  the mouse lies on the bed; skin (0.08 mm) over a subcutaneous fat layer (0.25 mm);
* tumour: an ellipsoid (semi-axes 2.9 x 2.6 x 2.5 mm) with low-order lumps (+-4 %), off the body
  centre so that the body/tumour pair has no rotational symmetry;
* necrotic core: a smaller ellipsoid inside the tumour, off the tumour centre;
* vessels: a branching tree of straight tubes (radius 30-130 µm) growing from the tumour's
  surroundings into the viable rim, never into the necrotic core; most run roughly parallel to the
  section plane (their z component is damped), as in a subcutaneous tumour;
* texture: a sum of random plane waves (wavelengths 0.8-3 mm), used as a smooth heterogeneity.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# geometry of the phantom in mm, relative to the body centre (x, y, z)
BODY_SEMI_AXES = np.array([5.8, 5.0, 4.2])
BODY_FLAT_Y = 3.9  # the body is cut flat at y = +3.9 mm (posterior, on the bed)
SKIN_MM = 0.08
FAT_MM = 0.25
TUMOUR_SEMI_AXES = np.array([2.9, 2.6, 2.5])
TUMOUR_OFFSET = np.array([1.6, -0.9, 0.3])
TUMOUR_LUMP = 0.04
CORE_SEMI_AXES = np.array([1.5, 1.3, 1.35])
CORE_OFFSET_IN_TUMOUR = np.array([0.35, -0.25, 0.35])
#: the section plane is this far above the tumour centre (mm, world z)
SECTION_DZ = 0.9
#: excised tissue = body inside the tumour surface scaled by this factor (a ~0.3 mm margin)
TISSUE_MARGIN_SCALE = 1.1


@dataclass
class VesselTree:
    """Straight tube segments: ``start`` and ``end`` (n, 3) world xyz mm, ``radius`` (n,) mm."""

    start: np.ndarray
    end: np.ndarray
    radius: np.ndarray

    def __len__(self) -> int:
        return int(self.radius.size)


@dataclass
class Phantom:
    """A seeded phantom. Build with :func:`make_phantom`."""

    seed: int
    body_centre: np.ndarray
    tumour_centre: np.ndarray
    core_centre: np.ndarray
    lump_dirs: np.ndarray
    lump_amps: np.ndarray
    wave_k: np.ndarray
    wave_phase: np.ndarray
    wave_amp: np.ndarray
    vessels: VesselTree = field(repr=False)

    # ---------------------------------------------------------------- regions
    def body_inside(self, p: np.ndarray) -> np.ndarray:
        """True inside the body (skin included). ``p``: (..., 3) world xyz mm."""
        q = (p - self.body_centre) / BODY_SEMI_AXES
        return (np.einsum("...i,...i->...", q, q) < 1.0) & (p[..., 1] - self.body_centre[1] < BODY_FLAT_Y)

    def tumour_rho(self, p: np.ndarray) -> np.ndarray:
        """Normalised tumour radius: < 1 inside the tumour, 1 on its (lumpy) surface."""
        q = (p - self.tumour_centre) / TUMOUR_SEMI_AXES
        r = np.sqrt(np.einsum("...i,...i->...", q, q))
        u = q / np.maximum(r, 1e-9)[..., None]
        lump = np.zeros_like(r)
        for d, a in zip(self.lump_dirs, self.lump_amps):
            c = u @ d
            lump += a * (2.0 * c * c - 1.0)  # a smooth quadrupole-like bump per direction
        return r / (1.0 + lump)

    def tumour_inside(self, p: np.ndarray) -> np.ndarray:
        """True inside the tumour."""
        return self.body_inside(p) & (self.tumour_rho(p) < 1.0)

    def core_inside(self, p: np.ndarray) -> np.ndarray:
        """True inside the necrotic core (always inside the tumour)."""
        q = (p - self.core_centre) / CORE_SEMI_AXES
        return (np.einsum("...i,...i->...", q, q) < 1.0) & self.tumour_inside(p)

    def tissue_inside(self, p: np.ndarray) -> np.ndarray:
        """True inside the excised tissue block that was sectioned (tumour plus a margin)."""
        return self.body_inside(p) & (self.tumour_rho(p) < TISSUE_MARGIN_SCALE)

    def texture(self, p: np.ndarray) -> np.ndarray:
        """Smooth heterogeneity field with zero mean and unit-order amplitude."""
        out = np.zeros(p.shape[:-1], dtype=np.float64)
        for k, ph, a in zip(self.wave_k, self.wave_phase, self.wave_amp):
            out += a * np.cos(p @ k + ph)
        return out

    def texture_on_grid(self, xs: np.ndarray, ys: np.ndarray, zs: np.ndarray, dz: float = 0.0) -> np.ndarray:
        """:meth:`texture` on the grid ``(zs, ys, xs)`` (shape (nz, ny, nx)), ``z`` shifted by ``dz``.

        Each plane wave is separable on a grid (a product of three complex exponentials), which is
        much cheaper than evaluating ``cos(k . p)`` at every point; equal to :meth:`texture` to float32
        precision.
        """
        out = np.zeros((len(zs), len(ys), len(xs)), dtype=np.float32)
        for k, ph, a in zip(self.wave_k, self.wave_phase, self.wave_amp):
            ex = np.exp(1j * k[0] * np.asarray(xs)).astype(np.complex64)
            ey = np.exp(1j * k[1] * np.asarray(ys)).astype(np.complex64)
            ez = (a * np.exp(1j * (k[2] * (np.asarray(zs) + dz) + ph))).astype(np.complex64)
            out += ((ez[:, None] * ey[None, :])[:, :, None] * ex[None, None, :]).real
        return out

    def regions(self, p: np.ndarray) -> dict[str, np.ndarray]:
        """Boolean maps ``body``, ``tumour``, ``core``, ``tissue`` at points ``p`` (..., 3), each
        computed once (the tumour radius is shared)."""
        body = self.body_inside(p)
        rho = self.tumour_rho(p)
        tumour = body & (rho < 1.0)
        q = (p - self.core_centre) / CORE_SEMI_AXES
        core = tumour & (np.einsum("...i,...i->...", q, q) < 1.0)
        tissue = body & (rho < TISSUE_MARGIN_SCALE)
        return {"body": body, "tumour": tumour, "core": core, "tissue": tissue}

    @property
    def section_z0(self) -> float:
        """World z (mm) of the histology section plane."""
        return float(self.tumour_centre[2] + SECTION_DZ)


def _grow_vessels(rng: np.random.Generator, ph: Phantom) -> VesselTree:
    """Grow a vessel tree: roots around the tumour near the section plane, growing inwards."""
    starts, ends, radii = [], [], []
    stack: list = []
    tc = ph.tumour_centre
    # 8 roots around the tumour near the section plane (evenly spread in angle), 6 through its height
    n_near, n_far = 8, 6
    angles = np.concatenate([
        (np.arange(n_near) + rng.uniform(-0.3, 0.3, n_near)) * 2 * np.pi / n_near,
        rng.uniform(0, 2 * np.pi, n_far),
    ])
    z_levels = np.concatenate([
        ph.section_z0 + rng.uniform(-0.4, 0.4, n_near),
        tc[2] + rng.uniform(-0.8, 0.8, n_far) * TUMOUR_SEMI_AXES[2],
    ])
    for ang, z in zip(angles, z_levels):
        r0 = 1.2
        pos = np.array([tc[0] + r0 * TUMOUR_SEMI_AXES[0] * np.cos(ang),
                        tc[1] + r0 * TUMOUR_SEMI_AXES[1] * np.sin(ang), z])
        if not ph.body_inside(pos[None, :])[0]:  # the tumour is near the skin: start just inside
            pos = tc + 0.92 * (pos - tc) / max(float(ph.tumour_rho(pos[None, :])[0]), 1e-9)
        inward = tc - pos
        inward[2] *= 0.2
        tang = np.array([-np.sin(ang), np.cos(ang), 0.0]) * rng.choice([-1.0, 1.0])
        direction = inward / np.linalg.norm(inward) + 0.8 * tang
        stack.append((pos, direction / np.linalg.norm(direction), rng.uniform(0.09, 0.13), 0))
    max_segments = 260
    while stack and len(radii) < max_segments:
        pos, d, rad, depth = stack.pop(0)
        length = rng.uniform(0.35, 0.7)
        turn = rng.normal(0, 0.45, 3)
        turn[2] *= 0.25
        d = d + turn
        d[2] *= 0.5
        d /= np.linalg.norm(d)
        new = pos + length * d
        p = new[None, :]
        if not ph.body_inside(p)[0] or ph.tumour_rho(p)[0] > 1.45:
            continue
        if ph.core_inside(p)[0]:
            continue  # necrotic: no perfused vessels
        starts.append(pos)
        ends.append(new)
        radii.append(rad)
        if depth >= 7 or rad < 0.035:
            continue
        if rng.uniform() < 0.45:  # branch: two thinner children
            for sign in (-1.0, 1.0):
                side = np.cross(d, [0.0, 0.0, 1.0])
                side /= max(np.linalg.norm(side), 1e-9)
                nd = d + sign * rng.uniform(0.4, 0.9) * side
                stack.append((new, nd / np.linalg.norm(nd), rad * 0.78, depth + 1))
        else:
            stack.append((new, d, rad * 0.95, depth + 1))
    return VesselTree(np.array(starts).reshape(-1, 3), np.array(ends).reshape(-1, 3), np.array(radii))


def make_phantom(seed: int, tumour_centre: np.ndarray | tuple[float, float, float] = (0.0, 0.0, 0.0)) -> Phantom:
    """Build the phantom for ``seed`` with its tumour centred at ``tumour_centre`` (world xyz mm).

    Examples
    --------
    >>> ph = make_phantom(0, tumour_centre=(3.25, 3.0, 9.1))
    >>> bool(ph.tumour_inside(ph.tumour_centre[None, :])[0])
    True
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 20261125]))
    tumour_centre = np.asarray(tumour_centre, dtype=float)
    body_centre = tumour_centre - TUMOUR_OFFSET
    core_centre = tumour_centre + CORE_OFFSET_IN_TUMOUR + rng.uniform(-0.08, 0.08, 3)
    lump_dirs = rng.normal(size=(3, 3))
    lump_dirs /= np.linalg.norm(lump_dirs, axis=1, keepdims=True)
    lump_amps = rng.uniform(0.5, 1.0, 3) * TUMOUR_LUMP / 2.0
    n_waves = 10
    kdir = rng.normal(size=(n_waves, 3))
    kdir /= np.linalg.norm(kdir, axis=1, keepdims=True)
    wavelength = rng.uniform(0.8, 3.0, n_waves)
    wave_k = kdir * (2 * np.pi / wavelength)[:, None]
    wave_phase = rng.uniform(0, 2 * np.pi, n_waves)
    wave_amp = np.full(n_waves, np.sqrt(2.0 / n_waves))  # unit variance overall
    ph = Phantom(seed, body_centre, tumour_centre, core_centre, lump_dirs, lump_amps,
                 wave_k, wave_phase, wave_amp, VesselTree(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0)))
    ph.vessels = _grow_vessels(rng, ph)
    return ph


# ------------------------------------------------------------------ vessel distance on grids
def vessel_surface_distance(
    axes_xyz: tuple[np.ndarray, np.ndarray, np.ndarray], tree: VesselTree, reach: float
) -> np.ndarray:
    """Distance (mm) from each grid point to the nearest vessel surface (negative inside a vessel).

    The grid is the outer product of 1-D world coordinate axes ``(xs, ys, zs)``; the result has
    shape ``(len(zs), len(ys), len(xs))``. Points farther than ``reach`` mm from every vessel get
    ``reach`` (only the neighbourhood of each tube is evaluated, so this is cheap).
    """
    xs, ys, zs = (np.asarray(a, dtype=float) for a in axes_xyz)
    out = np.full((zs.size, ys.size, xs.size), float(reach), dtype=np.float32)

    def index_range(axis: np.ndarray, lo: float, hi: float) -> slice:
        if axis.size == 1:
            return slice(0, 1) if lo <= axis[0] <= hi else slice(0, 0)
        step = axis[1] - axis[0]
        i0 = int(np.clip(np.floor((lo - axis[0]) / step), 0, axis.size))
        i1 = int(np.clip(np.ceil((hi - axis[0]) / step) + 1, 0, axis.size))
        return slice(i0, i1)

    for a, b, r in zip(tree.start, tree.end, tree.radius):
        m = r + reach
        lo = np.minimum(a, b) - m
        hi = np.maximum(a, b) + m
        sx, sy, sz = index_range(xs, lo[0], hi[0]), index_range(ys, lo[1], hi[1]), index_range(zs, lo[2], hi[2])
        if sx.stop <= sx.start or sy.stop <= sy.start or sz.stop <= sz.start:
            continue
        X = xs[sx][None, None, :]
        Y = ys[sy][None, :, None]
        Z = zs[sz][:, None, None]
        ab = b - a
        L2 = float(ab @ ab)
        t = ((X - a[0]) * ab[0] + (Y - a[1]) * ab[1] + (Z - a[2]) * ab[2]) / L2
        t = np.clip(t, 0.0, 1.0)
        dx = X - (a[0] + t * ab[0])
        dy = Y - (a[1] + t * ab[1])
        dz = Z - (a[2] + t * ab[2])
        d = np.sqrt(dx * dx + dy * dy + dz * dz) - r
        view = out[sz, sy, sx]
        np.minimum(view, d.astype(np.float32), out=view)
    return out
