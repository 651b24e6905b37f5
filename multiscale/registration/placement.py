"""Placing a 2-D section in a 3-D volume from a rough height: a search over heights, then one refinement.

:func:`register_slice_to_volume` is a local optimiser: started more than a few voxels from the
section's true plane it settles in the wrong place. :func:`place_section` widens its capture range:
it starts a short, coarse rigid fit at every height of a grid around the given one, keeps the start
whose fit scored best, and refines that one at full resolution. The candidates and their scores are
kept in ``Transform.info["placement"]`` so a reader can see how clearly the chosen height won.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from multiscale import image as mi
from multiscale.errors import RegistrationError

from .slice_to_volume import register_slice_to_volume, section_pose
from .transform import Transform

__all__ = ["place_section", "section_pose_error"]


def place_section(
    section: xr.DataArray,
    volume: xr.DataArray,
    z_mm: float | None = None,
    *,
    index: int | None = None,
    search_mm: float = 1.0,
    step_mm: float | None = None,
    angles_deg: tuple[float, float, float] = (0.0, 0.0, 0.0),
    xy_offset: tuple[float, float] = (0.0, 0.0),
    coarse_spacing: float | None = None,
    **options: Any,
) -> Transform:
    """The rigid pose of a 2-D ``section`` in a 3-D ``volume``, searched around a rough height.

    Parameters
    ----------
    section : xarray.DataArray
        2-D image (``y``, ``x``; a ``c`` dim is reduced as in :func:`register_slice_to_volume`,
        see ``fixed_channel``). Fixed image.
    volume : xarray.DataArray
        3-D image. Moving image.
    z_mm : float, optional
        Rough height (mm, the volume's world z) of the section plane. Give this or ``index``.
    index : int, optional
        Rough height as a z index of ``volume``.
    search_mm : float
        Heights ``z_mm - search_mm`` to ``z_mm + search_mm`` are tried (0: no search).
    step_mm : float, optional
        Between tried heights; default the volume's z spacing or ``search_mm / 8``, whichever is larger.
    angles_deg, xy_offset : see :func:`section_pose`
        The rest of the rough pose.
    coarse_spacing : float, optional
        Working spacing (mm) of the short fits (one level, 25 iterations each); default the coarser of the
        two images' finest spacings (what :func:`register_slice_to_volume` works at).
    **options
        Passed to :func:`register_slice_to_volume` (``fixed_channel``, ``metric``, ``seed``, ...).

    Returns
    -------
    Transform
        Section points ``(x, y, 0)`` -> volume points (the ITK fixed -> moving direction).
        ``info["placement"]`` lists each tried height with its coarse score (lower is better) and
        the one kept.

    Raises
    ------
    RegistrationError
        Neither or both of ``z_mm`` and ``index``; a height outside the volume; a section that does
        not cut the volume at any tried height.

    Examples
    --------
    >>> # t = place_section(fluorescence, mri_vessels, z_mm=10.0, search_mm=1.0, fixed_channel="vessels")
    >>> # t.info["placement"]["chosen_z_mm"]
    """
    if (z_mm is None) == (index is None):
        raise RegistrationError("place_section: give the section's rough height as z_mm= (mm) or index= (voxels), "
                                "one of them")
    if len(mi.spatial_dims(volume)) != 3:
        raise RegistrationError(f"place_section: the volume must be 3-D, got dims {volume.dims}")
    zs = np.asarray(volume.coords["z"].values, dtype=float)
    if index is not None:
        if not 0 <= int(index) < zs.size:
            raise RegistrationError(f"place_section: index={index} is outside the volume's {zs.size} z slices "
                                    f"(0..{zs.size - 1})")
        z_mm = float(zs[int(index)])
    z_mm = float(z_mm)
    lo, hi = float(min(zs[0], zs[-1])), float(max(zs[0], zs[-1]))
    if not lo <= z_mm <= hi:
        raise RegistrationError(f"place_section: z_mm={z_mm:g} is outside the volume, whose slices span z "
                                f"{lo:g} to {hi:g} mm; give a height inside it")
    if search_mm < 0:
        raise RegistrationError(f"place_section: search_mm must be >= 0, got {search_mm}")
    zsp = float(mi.spacing(volume)[0])
    step = float(step_mm) if step_mm is not None else max(zsp, search_mm / 8.0, 1e-3)
    if step <= 0:
        raise RegistrationError(f"place_section: step_mm must be > 0, got {step_mm}")
    n = int(np.floor(search_mm / step + 1e-9))
    heights = [z_mm + k * step for k in range(-n, n + 1) if lo <= z_mm + k * step <= hi]
    centre = mi.bounding_box(section, xyz=True).mean(axis=0)[:2]

    def pose(z: float) -> Transform:
        return section_pose(z, angles_deg=angles_deg, xy_offset=xy_offset, center=tuple(centre))

    coarse = float(coarse_spacing or max(min(mi.spacing(section)), min(mi.spacing(volume))))
    scores: list[dict[str, float]] = []
    best: tuple[float, Transform] | None = None
    if len(heights) > 1:
        short = dict(options, levels=1, iterations=25, working_spacing=coarse)
        for z in heights:
            try:
                t = register_slice_to_volume(section, volume, initial=pose(z), **short)
            except RegistrationError:
                continue  # this height does not cut the volume
            score = float(t.info.get("metric_after", np.inf))
            scores.append({"z_mm": float(z), "score": score})
            if np.isfinite(score) and (best is None or score < best[0]):
                best = (score, t)
        if best is None:
            raise RegistrationError(f"place_section: the section cuts the volume at none of the heights "
                                    f"{[round(z, 3) for z in heights]} mm; check the section's and the volume's "
                                    "positions (origins) and z_mm")
        start = best[1]
    else:
        start = pose(z_mm)
    out = register_slice_to_volume(section, volume, initial=start, **options)
    ranked = sorted(s["score"] for s in scores)
    out.info["placement"] = {
        "z_mm": z_mm, "search_mm": float(search_mm), "step_mm": step, "tried": scores,
        "chosen_z_mm": float(out.transform_points([[*centre, 0.0]])[0][2]),
        "margin": float(ranked[1] - ranked[0]) if len(ranked) > 1 else None,
    }
    return out


def section_pose_error(section: xr.DataArray, recovered: Transform, truth: Transform, n: int = 12) -> dict[str, float]:
    """How far a recovered section pose puts the section from where the true pose does (mm).

    Points on an ``n`` x ``n`` lattice over the section's plane (``(x, y, 0)``) are sent into the
    volume by both transforms; the distances between the two images of each point are summarised.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> sec = spatial_image(np.zeros((10, 10)), spacing=0.1)
    >>> e = section_pose_error(sec, section_pose(10.2), section_pose(10.0))
    >>> round(e["pose_error_mean_mm"], 6), round(e["height_error_mm"], 6)
    (0.2, 0.2)
    """
    box = mi.bounding_box(section, xyz=True)
    xs = np.linspace(box[0, 0], box[1, 0], n)
    ys = np.linspace(box[0, 1], box[1, 1], n)
    pts = np.array([[x, y, 0.0] for y in ys for x in xs])
    a, b = recovered.transform_points(pts), truth.transform_points(pts)
    d = np.linalg.norm(a - b, axis=1)
    centre = pts.mean(axis=0, keepdims=True)
    return {"pose_error_mean_mm": float(d.mean()), "pose_error_max_mm": float(d.max()),
            "height_error_mm": float(abs(recovered.transform_points(centre)[0, 2] - truth.transform_points(centre)[0, 2])),
            "pose_error_points": int(d.size)}
