"""How sure a registration is: transforms drawn around the result, and the spread they imply in mm.

Registration reports one transform, but the optimum it found is only as sharp as the images allow.
:func:`transform_samples` re-runs the final linear fit from starts perturbed around the result, each
with its own metric sampling seed (bootstrapped metric samples and perturbed starts at once), and
returns the transforms it lands on. :func:`uncertainty_mm` summarises how far apart they send points
of the fixed image: a target-registration-error estimate without landmarks. With landmarks,
:func:`landmark_uncertainty_mm` gives the residual error instead. The study pipeline recomputes
metrics that compare maps across frames under these samples and reports the interval they span.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from multiscale import image as mi
from multiscale.errors import RegistrationError

from .methods import register as register_default
from .transform import Transform, linear_parts

__all__ = ["transform_samples", "uncertainty_mm", "landmark_uncertainty_mm", "lattice_points"]


def lattice_points(image: xr.DataArray, n: int = 8, mask: xr.DataArray | None = None) -> np.ndarray:
    """World points (ITK ``x, y[, z]`` order, mm) on an ``n``-per-axis lattice over ``image`` (inside ``mask``).

    Examples
    --------
    >>> from multiscale.image import spatial_image
    >>> lattice_points(spatial_image(np.zeros((4, 5)), spacing=0.5), n=2).tolist()
    [[0.0, 0.0], [2.0, 0.0], [0.0, 1.5], [2.0, 1.5]]
    """
    sh = mi.shape(image)
    axes = [np.linspace(0, s - 1, min(n, s)) for s in sh]
    idx = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(sh))
    if mask is not None:
        m = np.asarray(mask.data) > 0
        keep = m[tuple(np.round(idx).astype(int).T)]
        if keep.any():
            idx = idx[keep]
    return mi.index_to_world(image, idx, xyz=False)[:, ::-1]


def _perturbed(transform: Transform, rng: np.random.Generator, shift_mm: float, angle_deg: float,
               centre: np.ndarray) -> Transform:
    """``transform`` after a small random rigid motion of the fixed frame about ``centre``."""
    import SimpleITK as sitk

    a, b = linear_parts(transform)
    dim = a.shape[0]
    if dim == 2:
        th = np.deg2rad(rng.normal(0.0, angle_deg))
        r = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    else:
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        r = np.asarray(sitk.VersorTransform(tuple(axis), float(np.deg2rad(rng.normal(0.0, angle_deg)))).GetMatrix())
        r = r.reshape(3, 3)
    d = rng.normal(0.0, shift_mm, size=dim)
    # x -> a (r (x - c) + c + d) + b
    a2 = a @ r
    b2 = a @ (centre - r @ centre + d) + b
    t = sitk.AffineTransform(dim)
    t.SetMatrix(tuple(a2.reshape(-1)))
    t.SetTranslation(tuple(b2))
    return Transform(t, {"kind": "perturbed start"})


def transform_samples(
    fixed: xr.DataArray,
    moving: xr.DataArray,
    transform: Transform,
    n: int = 4,
    seed: int = 0,
    *,
    kind: str | None = None,
    shift_mm: float | None = None,
    angle_deg: float = 1.0,
    register: Any = None,
    **options: Any,
) -> list[Transform]:
    """``n`` transforms a registration could as well have found: refits from perturbed starts, each with its own seed.

    Parameters
    ----------
    fixed, moving : xarray.DataArray
        The images that were registered (fixed -> moving points, as ``transform``).
    transform : Transform
        The registration's (linear) result.
    n : int
        How many samples.
    seed : int
        Seeds the perturbations and each refit's metric sampling (sample ``k`` uses ``seed + k + 1``).
    kind : {"rigid", "affine", "similarity", "translation"}, optional
        The refit's transform; default ``transform.info["stages_kept"][-1]`` or ``"affine"``.
    shift_mm : float, optional
        SD of the start's random shift; default one voxel of the coarser image.
    angle_deg : float
        SD of the start's random rotation.
    register : callable, optional
        The registration function (default :func:`multiscale.registration.register`); for a 2-D
        section in a 3-D volume pass :func:`register_slice_to_volume`-like callables.
    **options
        Passed to the registration (``fixed_channel``, ``metric``, ...).

    Returns
    -------
    list of Transform
        Each with ``info["sample"] = k``.

    Examples
    --------
    >>> # samples = transform_samples(fluo, msi, t, n=4)
    >>> # uncertainty_mm(samples, t, lattice_points(fluo))["tre_estimate_mm"]
    """
    if n < 1:
        raise RegistrationError(f"transform_samples: n must be >= 1, got {n}")
    if not transform.is_linear:
        raise RegistrationError("transform_samples: the transform is not linear; sample the linear part (the "
                                "B-spline stage is not re-fitted)")
    register_fn = register if register is not None else register_default
    stages = (transform.info or {}).get("stages_kept") or []
    kind = kind or next((s for s in reversed(stages) if s in ("rigid", "affine", "similarity", "translation")),
                        "affine")
    coarse = max(max(mi.spacing(fixed)), max(mi.spacing(moving)))
    shift = float(shift_mm if shift_mm is not None else coarse)
    pts = lattice_points(fixed, n=3)
    centre = pts.mean(axis=0)
    if len(centre) != transform.dimension:  # a 2-D section placed in a 3-D volume: rotate in its plane
        centre = np.concatenate([centre, np.zeros(transform.dimension - len(centre))])
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        start = _perturbed(transform, rng, shift, angle_deg, centre)
        if register is None:
            t = register_fn(fixed, moving, transform=kind, initial=start, seed=seed + k + 1, **options)
        else:
            t = register_fn(fixed, moving, initial=start, seed=seed + k + 1, **options)
        t.info["sample"] = k
        out.append(t)
    return out


def uncertainty_mm(samples: Sequence[Transform], transform: Transform, points: np.ndarray) -> dict[str, float]:
    """How far the samples send ``points`` from where ``transform`` does (mm): the registration's TRE estimate.

    ``tre_estimate_mm`` is the root mean square over points and samples of the distance,
    ``tre_estimate_max_mm`` the largest.

    Examples
    --------
    >>> from multiscale.registration import identity
    >>> import SimpleITK as sitk
    >>> shifted = [Transform(sitk.TranslationTransform(2, (0.3, 0.4)))]
    >>> uncertainty_mm(shifted, identity(2), np.zeros((3, 2)))["tre_estimate_mm"]
    0.5
    """
    pts = np.asarray(points, dtype=float)
    if pts.shape[1] != transform.dimension:
        pts = np.concatenate([pts, np.zeros((len(pts), transform.dimension - pts.shape[1]))], axis=1)
    ref = transform.transform_points(pts)
    d = np.stack([np.linalg.norm(s.transform_points(pts) - ref, axis=1) for s in samples])
    return {"tre_estimate_mm": float(np.sqrt(np.mean(d**2))), "tre_estimate_max_mm": float(d.max()),
            "tre_estimate_samples": int(len(samples))}


def landmark_uncertainty_mm(fixed_points: Any, moving_points: Any, transform: Transform) -> dict[str, float]:
    """The registration's error at landmarks not used to fit it: RMS and max distance (mm).

    Examples
    --------
    >>> from multiscale.registration import identity
    >>> landmark_uncertainty_mm([[0.0, 0.0]], [[0.3, 0.4]], identity(2))["tre_estimate_mm"]
    0.5
    """
    f = np.asarray(fixed_points, dtype=float)
    m = np.asarray(moving_points, dtype=float)
    d = np.linalg.norm(transform.transform_points(f) - m, axis=1)
    return {"tre_estimate_mm": float(np.sqrt(np.mean(d**2))), "tre_estimate_max_mm": float(d.max()),
            "tre_estimate_landmarks": int(d.size)}
