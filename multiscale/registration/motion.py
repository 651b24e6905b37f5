"""Motion correction of a time series: every frame registered to a reference frame, resampled once.

:func:`motion_correct` registers each frame of an image with a ``t`` dim to a reference (a frame index, or
the time-mean) with :func:`multiscale.registration.register` (rigid by default), then resamples each frame
once onto the reference's grid with :func:`multiscale.registration.resample`. The frame times and every
other coord along ``t`` are kept; the per-frame transforms and their translation/rotation are returned.

Examples
--------
>>> import numpy as np
>>> from multiscale.image import spatial_image
>>> yy, xx = np.mgrid[:48, :48]
>>> frames = np.stack([np.exp(-((yy - 24) ** 2 + (xx - 24 - s) ** 2) / 40.0) for s in (0.0, 2.0)])
>>> series = spatial_image(frames, spacing=1.0, dims=("t", "y", "x")).assign_coords(t=[0.0, 5.0])
>>> out = motion_correct(series, reference=0, transform="translation", metric="mean_squares")
>>> abs(out.motion["shift_x_mm"][1] - 2.0) < 0.1
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from multiscale.errors import RegistrationError

from .methods import register
from .resample import resample
from .transform import Transform

__all__ = ["motion_correct", "MotionCorrected"]


@dataclass
class MotionCorrected:
    """The corrected series, one transform per frame (reference -> frame) and the per-frame motion table."""

    image: xr.DataArray
    transforms: list[Transform]
    motion: dict[str, list[float]] = field(default_factory=dict)


def _motion_row(t: Transform, centre_xyz: np.ndarray) -> dict[str, float]:
    """Displacement of the reference's centre (mm, x y z) and rotation angle (deg) of one frame's transform."""
    dim = centre_xyz.size
    moved = np.asarray(t.sitk.TransformPoint(tuple(float(v) for v in centre_xyz)), float)
    shift = moved - centre_xyz
    angle = 0.0
    if hasattr(t.sitk, "GetMatrix") and dim in (2, 3):
        m = np.asarray(t.sitk.GetMatrix(), float).reshape(dim, dim)
        angle = float(np.degrees(np.arccos(np.clip((np.trace(m) - (dim - 2)) / 2.0, -1, 1))))
    row = {f"shift_{a}_mm": float(v) for a, v in zip("xyz", shift)}
    row["rotation_deg"] = angle
    row["displacement_mm"] = float(np.linalg.norm(shift))
    return row


def motion_correct(
    series: xr.DataArray,
    *,
    reference: int | str = "mean",
    transform: str = "rigid",
    metric: str = "ncc",
    interpolation: str = "linear",
    **options: Any,
) -> MotionCorrected:
    """Register every frame of ``series`` to ``reference`` and resample it once; returns :class:`MotionCorrected`.

    Parameters
    ----------
    series : xarray.DataArray
        An image with a ``t`` dim (and no ``c``: select a channel first).
    reference : int or "mean"
        A frame index, or ``"mean"`` (the time-mean: no single noisy or enhancing frame drives the motion).
    transform, metric, **options
        Passed to :func:`multiscale.registration.register` (``"rigid"`` and ``"ncc"`` for a series of one
        modality; ``"mattes_mi"`` when the contrast changes strongly over time, as in DCE). The 2-D rotation
        search of ``register`` is off unless ``rotation_search=True`` is passed.
    """
    if "t" not in series.dims:
        raise RegistrationError("motion_correct needs a time series (a 't' dim); for two images use register()")
    if "c" in series.dims:
        raise RegistrationError(
            "motion_correct: the series has channels; select one (series.sel(c=...)) or "
            "register the channel that moves and apply its transforms to the others"
        )
    n = series.sizes["t"]
    if reference == "mean":
        ref = series.mean("t", keep_attrs=True)
    elif isinstance(reference, (int, np.integer)) and -n <= int(reference) < n:
        ref = series.isel(t=int(reference), drop=True)
    else:
        raise RegistrationError(f"reference must be a frame index in 0..{n - 1} or 'mean', got {reference!r}")
    ref = ref.copy(data=np.asarray(ref.data.compute() if hasattr(ref.data, "compute") else ref.data))
    sd = [d for d in ref.dims if d in ("z", "y", "x")]
    centre = np.array([float(ref[d].values.mean()) for d in sd][::-1])  # (x, y[, z]) mm
    options.setdefault("rotation_search", False)  # frames of one series start aligned: no 2-D rotation search
    frames, transforms, rows = [], [], []
    for i in range(n):
        frame = series.isel(t=i, drop=True)
        frame = frame.copy(data=np.asarray(frame.data.compute() if hasattr(frame.data, "compute") else frame.data))
        if reference != "mean" and i == int(reference) % n:
            from .transform import identity

            t = identity(len([d for d in frame.dims if d in "zyx"]))
        else:
            try:
                t = register(ref, frame, transform=transform, metric=metric, **options)
            except Exception as exc:
                exc.add_note(f"while registering frame {i} of {n} to the reference ({reference})")
                raise
        transforms.append(t)
        rows.append(_motion_row(t, centre))
        frames.append(resample(frame, ref, t, interpolation=interpolation))
    out = xr.concat(frames, dim="t", coords="minimal", compat="override", combine_attrs="override")
    out = out.transpose("t", *[d for d in ref.dims])
    out = out.assign_coords({name: co for name, co in series.coords.items() if "t" in co.dims})
    out.attrs = dict(series.attrs)
    prov = dict(out.attrs.get("provenance") or {})
    prov["motion_corrected"] = {
        "reference": reference,
        "transform": transform,
        "metric": metric,
        "max_displacement_mm": max(r["displacement_mm"] for r in rows),
    }
    out.attrs["provenance"] = prov
    motion = {k: [r[k] for r in rows] for k in rows[0]}
    return MotionCorrected(image=out, transforms=transforms, motion=motion)
