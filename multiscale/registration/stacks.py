"""Serial sections: rebuild a volume from 2-D sections registered to their neighbours."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from multiscale import image as mi
from multiscale.errors import RegistrationError

from .methods import register
from .resample import resample
from .transform import Transform, identity

__all__ = ["reconstruct_stack"]


def reconstruct_stack(
    sections: Sequence[xr.DataArray],
    spacing_z: float,
    transform: str | Sequence[str] = "rigid",
    metric: str = "mattes_mi",
    reference_index: int | None = None,
    interpolation: str = "linear",
    z0: float = 0.0,
    positions_mm: Sequence[float] | None = None,
    allow_gaps: bool = False,
    **options: Any,
) -> tuple[xr.DataArray, list[Transform]]:
    """Rebuild a volume from serial sections: each registered to its neighbour, chains composed.

    Section ``i`` is registered to its neighbour towards the reference section; the pairwise
    transforms are composed into one transform per section (reference frame -> section ``i``), and
    each section is resampled **once** onto the reference section's grid.

    Parameters
    ----------
    sections : sequence of xarray.DataArray
        2-D images in cutting order, possibly multichannel (all with the same channels).
    spacing_z : float
        Distance between consecutive sections (mm).
    transform, metric, **options
        Passed to :func:`multiscale.registration.register` for each neighbouring pair.
    reference_index : int, optional
        The section that stays put; default the middle one.
    interpolation : str
        For the final resampling.
    z0 : float
        z (mm) of the first section in the output volume.
    positions_mm : sequence of float, optional
        Each section's cutting position (mm, increasing). Sections must then sit ``spacing_z`` apart;
        a missing section (a gap of two or more spacings) is an error unless ``allow_gaps``.
    allow_gaps : bool
        With ``positions_mm``: leave a missing section's plane empty (NaN) instead of refusing, and
        record it in ``attrs["warnings"]``; neighbours across a gap are registered to each other.

    Returns
    -------
    volume : xarray.DataArray
        ``(z, y, x)`` (or ``(c, z, y, x)``) image on the reference section's in-plane grid.
    transforms : list of Transform
        One per section, reference-section frame -> that section's frame (identity for the reference).

    Examples
    --------
    >>> # volume, transforms = reconstruct_stack([s0, s1, s2, s3], spacing_z=0.05)
    """
    secs = list(sections)
    missing = [i for i, s in enumerate(secs) if s is None]
    if missing:
        raise RegistrationError(f"reconstruct_stack: section(s) {missing} are missing (None); drop them and pass "
                                "positions_mm= with each remaining section's cutting position (and allow_gaps=True "
                                "to leave their planes empty)")
    if len(secs) < 2:
        raise RegistrationError("reconstruct_stack needs at least two sections")
    slots = list(range(len(secs)))
    if positions_mm is not None:
        pos = np.asarray(positions_mm, dtype=float)
        if pos.shape != (len(secs),) or not np.all(np.isfinite(pos)):
            raise RegistrationError(f"positions_mm must give one finite position per section ({len(secs)}), got "
                                    f"{list(positions_mm)}")
        if np.any(np.diff(pos) <= 0):
            raise RegistrationError(f"positions_mm must increase in cutting order, got {pos.tolist()}")
        steps = (pos - pos[0]) / float(spacing_z) if spacing_z > 0 else pos * 0
        slots = [int(round(v)) for v in steps]
        off = [i for i, (v, k) in enumerate(zip(steps, slots)) if abs(v - k) > 0.25]
        if off:
            raise RegistrationError(f"sections {off} are not on the {spacing_z:g} mm spacing from the first "
                                    f"(positions {pos.tolist()} mm); check positions_mm or spacing_z")
        gaps = sorted(set(range(slots[-1] + 1)) - set(slots))
        if gaps and not allow_gaps:
            raise RegistrationError(f"reconstruct_stack: {len(gaps)} section(s) missing from the stack at "
                                    f"{[round(float(pos[0]) + g * spacing_z, 6) for g in gaps]} mm (slots {gaps}); "
                                    "pass allow_gaps=True to leave their planes empty, or supply the sections")
    for i, s in enumerate(secs):
        if len(mi.spatial_dims(mi.validate(s))) != 2:
            raise RegistrationError(f"section {i} is not 2-D (dims {s.dims})")
    if spacing_z <= 0:
        raise RegistrationError(f"spacing_z must be > 0 mm, got {spacing_z}")
    ref = len(secs) // 2 if reference_index is None else int(reference_index)
    if not 0 <= ref < len(secs):
        raise RegistrationError(f"reference_index {ref} is outside 0..{len(secs) - 1}")
    chains: list[Transform | None] = [None] * len(secs)
    chains[ref] = identity(2)
    for i in list(range(ref + 1, len(secs))) + list(range(ref - 1, -1, -1)):
        nb = i - 1 if i > ref else i + 1
        pair = register(secs[nb], secs[i], transform=transform, metric=metric, **options)
        chains[i] = chains[nb].compose(pair)
        chains[i].info["pair"] = {"fixed_section": nb, "moving_section": i, "info": pair.info}
    reference = secs[ref]
    planes = [resample(s, reference, chains[i], interpolation=interpolation) for i, s in enumerate(secs)]
    gap_slots = sorted(set(range(slots[-1] + 1)) - set(slots))
    if gap_slots:
        empty = planes[0].astype(np.float32) * np.nan
        by_slot = dict(zip(slots, [p.astype(np.float32) for p in planes]))
        planes = [by_slot.get(k, empty) for k in range(slots[-1] + 1)]
    stacked = xr.concat(planes, dim="z")
    lead = [d for d in stacked.dims if d not in mi.SPATIAL_DIMS]
    stacked = stacked.transpose(*lead, "z", "y", "x")
    d2 = mi.direction(reference)
    d3 = np.eye(3)
    d3[1:, 1:] = d2
    attrs = dict(planes[0].attrs)
    attrs.pop("spacing", None)
    attrs.pop("direction", None)
    channels = list(stacked.coords["c"].values) if "c" in stacked.coords else None
    vol = mi.spatial_image(
        stacked.data,
        spacing=(float(spacing_z),) + mi.spacing(reference),
        origin=(float(z0),) + mi.origin(reference),
        direction=d3,
        dims=tuple(stacked.dims),
        channels=channels,
        **{k: v for k, v in attrs.items() if k not in ("direction", "spacing")},
    )
    vol.attrs["provenance"] = {**dict(attrs.get("provenance") or {}),
                               "reconstructed": {"sections": len(secs), "reference_index": ref,
                                                 "spacing_z_mm": float(spacing_z), "transform": transform,
                                                 "empty_slots": gap_slots}}
    if gap_slots:
        vol.attrs["warnings"] = list(vol.attrs.get("warnings", [])) + [
            f"reconstruct_stack: planes {gap_slots} are empty (NaN): no section was cut there"]
    return vol, [c for c in chains if c is not None]
