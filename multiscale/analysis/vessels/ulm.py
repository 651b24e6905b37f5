"""Ultrasound localisation microscopy: microbubble localisations (or tracks) to density and velocity maps.

Localisations are a table of positions in mm (columns ``y``, ``x`` and, in 3-D, ``z``), with the frame
index (``frame``) and, when already tracked, a track id (``track``). Untracked localisations are linked
into tracks with :func:`trackpy.link` (``search_mm``: the farthest a bubble moves between frames;
``memory``: frames a bubble may vanish). The maps are on a chosen grid (a template image, or a spacing
and the localisations' bounding box): the **density** (localisations per pixel), and from consecutive
localisations of a track the **velocity** (displacement / time, in mm/s, assigned to the pixel of the
displacement's midpoint): its mean components, the mean speed and (2-D) the direction of the mean
velocity. The density map is then a vessel image like any other: segment it with
:func:`~multiscale.analysis.vessels.segment_vessels` and describe it with
:func:`~multiscale.analysis.vessels.vessel_graph`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from multiscale.errors import AnalysisError
from multiscale.image import spacing as image_spacing
from multiscale.image import spatial_dims, spatial_image

__all__ = ["link_tracks", "localisation_maps"]


def _axes(points: pd.DataFrame) -> list[str]:
    axes = [a for a in ("z", "y", "x") if a in points.columns]
    if axes not in (["y", "x"], ["z", "y", "x"]):
        raise AnalysisError(f"localisations need columns y, x (and z in 3-D) in mm; got {list(points.columns)}")
    return axes


def link_tracks(points: pd.DataFrame, *, search_mm: float, memory: int = 0) -> pd.DataFrame:
    """Link localisations into tracks with :func:`trackpy.link`; adds a ``track`` column.

    Examples
    --------
    >>> import pandas as pd
    >>> pts = pd.DataFrame({"frame": [0, 1, 2, 0, 1, 2], "y": [0.0, 0.01, 0.02, 1.0, 1.0, 1.0],
    ...                     "x": [0.0, 0.0, 0.0, 1.0, 1.01, 1.02]})
    >>> link_tracks(pts, search_mm=0.05)["track"].nunique()
    2
    """
    import trackpy

    axes = _axes(points)
    if "frame" not in points.columns:
        raise AnalysisError("linking localisations into tracks needs a 'frame' column (the frame index)")
    trackpy.quiet()
    linked = trackpy.link(points.copy(), search_range=float(search_mm), memory=int(memory), pos_columns=axes,
                          t_column="frame")
    return linked.rename(columns={"particle": "track"})


def localisation_maps(
    points: pd.DataFrame,
    template: xr.DataArray | None = None,
    *,
    spacing_mm: float | Sequence[float] | None = None,
    frame_rate_hz: float | None = None,
    search_mm: float | None = None,
    memory: int = 0,
) -> dict[str, xr.DataArray]:
    """Density and velocity maps of ULM localisations on a grid.

    Parameters
    ----------
    points : pandas.DataFrame
        ``y``, ``x`` (``z``) in mm; ``frame`` (index); optional ``track``.
    template : xarray.DataArray, optional
        The grid of the maps (its coords); otherwise ``spacing_mm`` over the points' bounding box.
    frame_rate_hz : float, optional
        Frames per second; velocity maps need it (and tracks: ``track`` or ``search_mm`` to link them).

    Returns
    -------
    dict of xarray.DataArray
        ``density`` (localisations per pixel, ``units="localisations"``); with tracks and a frame rate
        also ``speed`` (mean of the speeds, mm/s), ``velocity_<axis>`` (mean components, mm/s), and in
        2-D ``direction_deg`` (angle of the mean velocity from +x, degrees), ``n_displacements``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> f = np.arange(50)
    >>> pts = pd.DataFrame({"frame": f, "track": 0, "y": 0.5 + 0 * f, "x": 0.02 * f})  # 0.02 mm per frame
    >>> maps = localisation_maps(pts, spacing_mm=0.1, frame_rate_hz=500.0)
    >>> round(float(np.nanmax(maps["speed"].values)), 6), int(maps["density"].sum())
    (10.0, 50)
    """
    axes = _axes(points)
    pts = points.copy()
    if template is not None:
        sd = spatial_dims(template)
        if list(sd) != axes:
            raise AnalysisError(f"localisations are {len(axes)}-D ({axes}) but the template's dims are {sd}")
        sp = np.asarray(image_spacing(template), float)
        org = np.array([float(template.coords[d].values[0]) for d in sd])
        shape = np.array([template.sizes[d] for d in sd])
    else:
        if spacing_mm is None:
            raise AnalysisError("give a template image or spacing_mm for the maps' grid")
        sp = np.broadcast_to(np.asarray(spacing_mm, float), (len(axes),)).copy()
        lo = pts[axes].min().to_numpy(float)
        hi = pts[axes].max().to_numpy(float)
        org = np.round(lo / sp) * sp
        shape = np.round((hi - org) / sp).astype(int) + 1
    edges = [org[k] - sp[k] / 2 + np.arange(shape[k] + 1) * sp[k] for k in range(len(axes))]
    dens, _ = np.histogramdd(pts[axes].to_numpy(float), bins=edges)

    def image(data: np.ndarray, units: str, aspect: str) -> xr.DataArray:
        return spatial_image(data, spacing=tuple(sp), origin=tuple(org), units=units, aspect=aspect, modality="US")

    out = {"density": image(dens, "localisations", "ULM density")}
    if frame_rate_hz is None:
        return out
    if "track" not in pts.columns:
        if search_mm is None:
            return out
        pts = link_tracks(pts, search_mm=search_mm, memory=memory)
    pts = pts.sort_values(["track", "frame"])
    same = pts["track"].to_numpy()[1:] == pts["track"].to_numpy()[:-1]
    p = pts[axes].to_numpy(float)
    dt = np.diff(pts["frame"].to_numpy(float)) / float(frame_rate_hz)
    ok = same & (dt > 0)
    disp = (p[1:] - p[:-1])[ok]
    vel = disp / dt[ok, None]
    mid = 0.5 * (p[1:] + p[:-1])[ok]
    n, _ = np.histogramdd(mid, bins=edges)
    with np.errstate(invalid="ignore", divide="ignore"):
        speed = np.histogramdd(mid, bins=edges, weights=np.linalg.norm(vel, axis=1))[0] / n
        comps = [np.histogramdd(mid, bins=edges, weights=vel[:, k])[0] / n for k in range(len(axes))]
    out["speed"] = image(speed, "mm/s", "ULM speed")
    for a, c in zip(axes, comps):
        out[f"velocity_{a}"] = image(c, "mm/s", f"ULM velocity {a}")
    out["n_displacements"] = image(n, "count", "ULM displacements")
    if len(axes) == 2:
        out["direction_deg"] = image(np.degrees(np.arctan2(comps[0], comps[1])), "deg", "ULM flow direction")
    return out
