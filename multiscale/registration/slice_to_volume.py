"""2-D sections in 3-D: slice-to-volume registration (serial-section stacks: :mod:`.stacks`).

A 2-D section lives in its own plane ``z = 0``: its pixel at ``(x, y)`` mm is the 3-D point
``(x, y, 0)``. Slice-to-volume finds the rigid 3-D transform taking that plane into the volume
(fixed = section, moving = volume, like every other registration here), so
``resample(volume, section, t)`` cuts the matching oblique slice out of the volume.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from multiscale import image as mi
from multiscale.errors import RegistrationError

from ._multires import channel_image, embed_section, to_working
from ._optimiser import METRICS, Context, IterationCounter, usable_levels
from .transform import Transform, linear_parts

__all__ = ["register_slice_to_volume", "section_pose"]


def section_pose(
    z: float,
    angles_deg: Sequence[float] = (0.0, 0.0, 0.0),
    xy_offset: Sequence[float] = (0.0, 0.0),
    center: Sequence[float] = (0.0, 0.0),
) -> Transform:
    """A rigid placement of a section's plane in a volume, to start slice-to-volume registration.

    The section point ``(x, y, 0)`` goes to ``R (p - c) + c + (dx, dy, z)`` with ``c = (cx, cy, 0)``
    and ``R`` the rotation by ``angles_deg`` about x, y and z (applied in that order).

    Parameters
    ----------
    z : float
        Height (mm) of the section plane in the volume's frame.
    angles_deg : (rx, ry, rz)
        Tilt about x and y, in-plane rotation about z, degrees.
    xy_offset : (dx, dy)
        In-plane shift (mm).
    center : (cx, cy)
        Point of the section (mm) the rotation turns about, e.g. the section's centre.

    Examples
    --------
    >>> t = section_pose(z=12.5, xy_offset=(1.0, 0.0))
    >>> t.transform_points([0.0, 0.0, 0.0]).tolist()
    [1.0, 0.0, 12.5]
    """
    import SimpleITK as sitk

    t = sitk.Euler3DTransform()
    t.SetCenter((float(center[0]), float(center[1]), 0.0))
    rx, ry, rz = (float(np.deg2rad(a)) for a in angles_deg)
    t.SetRotation(rx, ry, rz)
    t.SetTranslation((float(xy_offset[0]), float(xy_offset[1]), float(z)))
    return Transform(t, {"kind": "section pose", "z_mm": float(z), "angles_deg": [float(a) for a in angles_deg]})


def register_slice_to_volume(
    section: xr.DataArray,
    volume: xr.DataArray,
    initial: Transform | None = None,
    metric: str = "mattes_mi",
    seed: int = 0,
    fixed_mask: xr.DataArray | None = None,
    *,
    fixed_channel: Any = None,
    moving_channel: Any = None,
    working_spacing: float | None = None,
    levels: int = 3,
    iterations: int = 300,
    sampling: float = 0.25,
    bins: int = 32,
    threads: int | None = None,
    section_thickness: float | None = None,
    verbose: bool = False,
) -> Transform:
    """Rigid 3-D pose of a 2-D section in a volume (fixed = section, moving = volume).

    Parameters
    ----------
    section : xarray.DataArray
        2-D image (``y``, ``x``), possibly multichannel (see ``fixed_channel``).
    volume : xarray.DataArray
        3-D image.
    initial : Transform, optional
        Starting pose (3-D, section plane -> volume), e.g. :func:`section_pose`. Default: the
        section's centre at the volume's centre, no rotation.
    metric, seed, fixed_channel, moving_channel, working_spacing, levels, iterations, sampling,
    bins, threads : see :func:`multiscale.registration.register`.
    fixed_mask : xarray.DataArray, optional
        On the section's grid.
    section_thickness : float, optional
        Slab (mm) the section samples; default the working spacing.

    Returns
    -------
    Transform
        3-D Euler transform mapping section points ``(x, y, 0)`` into the volume.

    Examples
    --------
    >>> # t = register_slice_to_volume(section, mri, initial=section_pose(z=4.0))
    >>> # slice_of_mri = resample(mri, section, t)
    """
    import SimpleITK as sitk

    t_start = time.perf_counter()
    if metric not in METRICS:
        raise RegistrationError(f"metric={metric!r} is not one of {METRICS}")
    if len(mi.spatial_dims(section)) != 2 or len(mi.spatial_dims(volume)) != 3:
        raise RegistrationError(
            f"slice-to-volume needs a 2-D section (fixed) and a 3-D volume (moving), got "
            f"{len(mi.spatial_dims(section))}-D and {len(mi.spatial_dims(volume))}-D"
        )
    sec1 = channel_image(section, fixed_channel, name="fixed")
    vol1 = channel_image(volume, moving_channel, name="moving")
    if fixed_mask is not None and not mi.same_grid(fixed_mask, sec1):
        raise RegistrationError(
            "fixed_mask is not on the section's grid; bring it there with resample(mask, section, "
            "interpolation='nearest')"
        )
    ws = float(working_spacing or max(min(mi.spacing(sec1)), min(mi.spacing(vol1))))
    thick = float(section_thickness or ws)
    f2 = to_working(sec1, ws)
    f3 = embed_section(f2, thick)
    m3 = to_working(vol1, ws)
    fm3 = embed_section(to_working(fixed_mask, ws, nearest=True), thick) if fixed_mask is not None else None

    size = np.asarray(f3.GetSize(), float)
    sec_center = np.asarray(f3.TransformContinuousIndexToPhysicalPoint(tuple((size - 1) / 2.0)), float)
    sec_center[2] = 0.0
    if initial is None:
        vsize = np.asarray(m3.GetSize(), float)
        vol_center = np.asarray(m3.TransformContinuousIndexToPhysicalPoint(tuple((vsize - 1) / 2.0)), float)
        initial = section_pose(0.0, center=sec_center[:2])
        t0 = sitk.Euler3DTransform()
        t0.SetCenter(tuple(sec_center))
        t0.SetTranslation(tuple(vol_center - sec_center))
        initial = Transform(t0, {"kind": "centre on centre"})
    if not isinstance(initial, Transform) or initial.dimension != 3 or not initial.is_linear:
        raise RegistrationError("initial must be a linear 3-D Transform (section plane -> volume), e.g. section_pose()")
    _check_section_inside(sec1, vol1, initial)

    a, b = linear_parts(initial)
    u, _, vt = np.linalg.svd(a)
    r = u @ vt
    t = sitk.Euler3DTransform()
    t.SetCenter(tuple(sec_center))
    t.SetMatrix(tuple(r.reshape(-1)))
    t.SetTranslation(tuple(a @ sec_center + b - sec_center))

    ctx = Context(f3, m3, fm3, None, metric, seed, {"bins": bins}, threads)
    metric_before = ctx.evaluate(t)
    records = []
    levels = usable_levels(f2.GetSize(), int(levels), skip_singleton=False)
    for level in range(levels - 1, -1, -1):
        factor = 2**level
        lt0 = time.perf_counter()
        f_l, m_l = f3, m3
        if factor > 1:
            f_l = embed_section(to_working(_as_image(f2), ws * factor, normalise=False), thick * factor)
            m_l = to_working(_as_image(m3), ws * factor, normalise=False)
        n_px = int(np.prod(f_l.GetSize()))
        reg = ctx.method(sampling if n_px * sampling >= 20000 else min(1.0, 20000 / n_px))
        if fm3 is not None:
            reg.SetMetricFixedMask(sitk.Resample(fm3, f_l, sitk.Transform(), sitk.sitkNearestNeighbor, 0))
        reg.SetOptimizerAsRegularStepGradientDescent(
            learningRate=1.0, minStep=1e-4, numberOfIterations=int(iterations), relaxationFactor=0.5,
            gradientMagnitudeTolerance=1e-8, estimateLearningRate=reg.Once,
            maximumStepSizeInPhysicalUnits=ws * factor,
        )
        reg.SetOptimizerScalesFromPhysicalShift()
        reg.SetInitialTransform(t, inPlace=True)
        counter = IterationCounter(reg)
        try:
            reg.Execute(f_l, m_l)
            stop = reg.GetOptimizerStopConditionDescription()
        except RuntimeError as exc:
            stop = f"failed: {str(exc).strip().splitlines()[-1][:200]}"
        rec = {"level_spacing_mm": ws * factor, "iterations": counter.n, "time_s": time.perf_counter() - lt0,
               "stop": stop}
        records.append(rec)
        if verbose:
            print(f"slice-to-volume: {rec}")
    metric_after = ctx.evaluate(t)
    info = {
        "method": "multiscale.registration.register_slice_to_volume",
        "direction": "section plane (x, y, 0) -> volume (points); resample(volume, section, t) cuts the slice",
        "metric": metric,
        "seed": int(seed),
        "metric_before": float(metric_before),
        "metric_after": float(metric_after),
        "stages": [{"stage": "rigid (slice-to-volume)", "kept": True, "levels": records,
                    "iterations": int(sum(r["iterations"] for r in records))}],
        "stages_kept": ["rigid"],
        "iterations": int(sum(r["iterations"] for r in records)),
        "time_s": float(time.perf_counter() - t_start),
        "working_spacing_mm": ws,
        "section_thickness_mm": thick,
    }
    return Transform(t, info)


def _as_image(s: Any) -> xr.DataArray:
    return mi.from_sitk(s)


def _check_section_inside(section: xr.DataArray, volume: xr.DataArray, pose: Transform) -> None:
    box = mi.bounding_box(section, xyz=True)
    corners = np.array([[box[i, 0], box[j, 1], 0.0] for i in (0, 1) for j in (0, 1)])
    mapped = pose.transform_points(corners)
    vbox = mi.bounding_box(volume, xyz=True)
    lo = np.maximum(mapped.min(0), vbox[0])
    hi = np.minimum(mapped.max(0), vbox[1])
    if np.any(hi[:2] <= lo[:2]) or hi[2] < lo[2]:
        raise RegistrationError(
            "the section, placed by the initial pose, does not cut the volume: section corners map to "
            f"{np.round(mapped, 3).tolist()} mm but the volume spans {np.round(vbox, 3).tolist()} mm (x, y, z); "
            "give initial=section_pose(z=...) inside the volume"
        )
