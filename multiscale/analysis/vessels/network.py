"""The study family ``vessels``: find the vessels in a channel (or take a given mask) and describe them per region.

Rows per region: the graph summary of :func:`~multiscale.analysis.vessels.vessel_graph` (total length,
branch points, segment lengths, diameters, tortuosity), the vessel volume (2-D: area) fraction, the
length density (mm/mm^3, 2-D mm/mm^2), branch points per mm^3 (mm^2), the mean and 90th-percentile
distance from tissue to the nearest vessel wall, the mean inter-vessel distance (twice the mean distance
to the nearest vessel, the spacing of a regular network with that mean) and the avascular fraction
(the share of the region farther than ``avascular_mm`` from every vessel). Saved maps: the vessel mask,
the skeleton, the distance to the vessels and the radius map.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from multiscale.image import like, spacing, spatial_dims

from .._masks import check_mask, to_numpy
from ..family import Family, FamilyResult
from .distance import distance_array, vessel_mask_on
from .graph import SUMMARY_UNITS, vessel_graph
from .segment import radius_map, segment_vessels

__all__ = ["vessel_mask_of", "vessel_metrics", "vessels_evaluate", "vessels_table", "vessels_figure", "FAMILY"]


def _is_mask(image: xr.DataArray) -> bool:
    arr = to_numpy(image)
    if arr.dtype == bool:
        return True
    u = np.unique(arr[np.isfinite(arr)] if np.issubdtype(arr.dtype, np.floating) else arr)
    return u.size <= 2 and set(u.tolist()) <= {0, 1}


def vessel_mask_of(image: xr.DataArray, vessels: xr.DataArray | None = None, *,
                   scales_mm: Sequence[float] | None = None, method: str = "frangi",
                   threshold: str | float = "otsu", min_size: float | None = None, grow: bool = False) -> xr.DataArray:
    """The vessel mask to analyse: ``vessels`` if it is a mask, else the segmentation of ``vessels`` (a vessel
    channel) or of ``image``, with :func:`~multiscale.analysis.vessels.segment_vessels`.

    ``scales_mm`` defaults to 1, 2 and 3 voxels (the smallest spacing).
    """
    src = vessels if vessels is not None else image
    if _is_mask(src):
        return src
    if scales_mm is None:
        s = float(min(spacing(src)))
        scales_mm = [s, 2 * s, 3 * s]
    return segment_vessels(src, scales_mm=scales_mm, method=method, threshold=threshold, min_size=min_size, grow=grow)


def vessel_metrics(vessels: xr.DataArray, region: xr.DataArray | None = None, *, avascular_mm: float = 0.1,
                   smooth: float = 1.5, spur_factor: float = 2.0) -> dict[str, Any]:
    """Graph summary and region metrics of a vessel mask inside a region (see the module docstring).

    Returns a dict with ``summary`` (metric -> value), ``units`` (metric -> unit), ``graph`` (the
    :class:`~multiscale.analysis.vessels.VesselGraph`) and ``distance`` (numpy, mm).

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> v = np.zeros((50, 50), np.uint8); v[24:27, 5:45] = 1
    >>> r = vessel_metrics(spatial_image(v, spacing=0.1), avascular_mm=1.0)
    >>> round(r["summary"]["length_density_mm_per_mm2"], 3), round(r["summary"]["avascular_fraction"], 2)
    (0.155, 0.54)
    """
    _, m = check_mask(vessels, region)
    v = vessel_mask_on(vessels, vessels) & m
    sp = np.asarray(spacing(vessels), float)
    nd = len(sp)
    sub = like(vessels, v.astype(np.uint8), units="")
    g = vessel_graph(sub, smooth=smooth, spur_factor=spur_factor)
    summ = dict(zip(g.summary["metric"], g.summary["value"]))
    units = dict(SUMMARY_UNITS)
    vol = float(m.sum() * np.prod(sp))
    dist = distance_array(v, sp, "wall")
    tissue = m & ~v
    u_vol = "mm3" if nd == 3 else "mm2"
    summ["region_volume_mm3" if nd == 3 else "region_area_mm2"] = vol
    units["region_volume_mm3"], units["region_area_mm2"] = "mm3", "mm2"
    summ["vessel_fraction"] = float(v.sum() / m.sum())
    units["vessel_fraction"] = "1"
    name_ld = "length_density_mm_per_mm3" if nd == 3 else "length_density_mm_per_mm2"
    summ[name_ld] = summ["total_length_mm"] / vol
    units[name_ld] = f"mm/{u_vol}"
    name_bd = "branch_point_density_per_mm3" if nd == 3 else "branch_point_density_per_mm2"
    summ[name_bd] = summ["n_branch_points"] / vol
    units[name_bd] = f"1/{u_vol}"
    if v.any() and tissue.any():
        dt = dist[tissue]
        summ["mean_distance_to_vessel_mm"] = float(dt.mean())
        summ["p90_distance_to_vessel_mm"] = float(np.percentile(dt, 90))
        summ["intervessel_distance_mm"] = 2.0 * float(dt.mean())
        summ["avascular_fraction"] = float((dist[m] > avascular_mm).mean())
    else:
        for k in ("mean_distance_to_vessel_mm", "p90_distance_to_vessel_mm", "intervessel_distance_mm"):
            summ[k] = np.nan
        summ["avascular_fraction"] = 1.0 if not v.any() else 0.0
    units.update(mean_distance_to_vessel_mm="mm", p90_distance_to_vessel_mm="mm", intervessel_distance_mm="mm",
                 avascular_fraction="1")
    return {"summary": summ, "units": units, "graph": g, "distance": dist}


def vessels_evaluate(
    image: xr.DataArray,
    mask: xr.DataArray,
    vessels: xr.DataArray | None = None,
    *,
    scales_mm: Sequence[float] | None = None,
    method: str = "frangi",
    threshold: str | float = "otsu",
    min_size: float | None = None,
    grow: bool = False,
    avascular_mm: float = 0.1,
    smooth: float = 1.5,
    spur_factor: float = 2.0,
) -> FamilyResult:
    """Rows, maps and figure data of the ``vessels`` family (see :func:`vessels_table`)."""
    image, m = check_mask(image, mask)
    vm = vessel_mask_of(image, vessels, scales_mm=scales_mm, method=method, threshold=threshold, min_size=min_size,
                        grow=grow)
    vessel_mask_on(vm, image)
    res = vessel_metrics(vm, mask, avascular_mm=avascular_mm, smooth=smooth, spur_factor=spur_factor)
    source = "given vessel mask" if vessels is not None and _is_mask(vessels) else \
        f"segmented ({method}, threshold {threshold})"
    rows = [{"metric": k, "value": float(v), "units": res["units"][k], "detail": source}
            for k, v in res["summary"].items()]
    g = res["graph"]
    if len(g.segments):
        for col, unit in (("length_mm", "mm"), ("mean_diameter_mm", "mm"), ("tortuosity", "1")):
            vals = g.segments[col].to_numpy(float)
            vals = vals[np.isfinite(vals)]
            if vals.size:
                for q in (10, 50, 90):
                    rows.append({"metric": f"segment_{col}_p{q}", "value": float(np.percentile(vals, q)),
                                 "units": unit, "detail": f"over {vals.size} segments"})
    vmask = like(image, (vessel_mask_on(vm, image) & m).astype(np.uint8), units="", aspect="vessels")
    images = {"vessel_mask": vmask,
              "distance_to_vessels": like(image, np.where(m, res["distance"], np.nan), units="mm",
                                          aspect="distance to vessels"),
              "vessel_radius": radius_map(vmask)}
    if g.skeleton is not None:
        images["vessel_skeleton"] = g.skeleton
    data = {"image": image, "vessel_mask": vmask, "nodes": g.nodes, "skeleton": g.skeleton, "segments": g.segments}
    return FamilyResult(rows=pd.DataFrame(rows), images=images, data=data)


def vessels_table(
    image: xr.DataArray,
    mask: xr.DataArray,
    vessels: xr.DataArray | None = None,
    *,
    scales_mm: Sequence[float] | None = None,
    method: str = "frangi",
    threshold: str | float = "otsu",
    min_size: float | None = None,
    grow: bool = False,
    avascular_mm: float = 0.1,
    smooth: float = 1.5,
    spur_factor: float = 2.0,
) -> pd.DataFrame:
    """Vessel network metrics in a region; the study's ``vessels``.

    ``image`` is the vessel channel (segmented with :func:`~multiscale.analysis.vessels.segment_vessels`:
    ``scales_mm``, ``method``, ``threshold``, ``min_size``, ``grow``) unless ``vessels`` is given: a mask is then used
    as it is, a vessel channel is segmented instead of ``image``. An empty vessel mask gives zero counts,
    NaN means and a flag.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> v = np.zeros((40, 40), np.uint8); v[19:22, 5:35] = 1; v[5:20, 19:22] = 1
    >>> img = spatial_image(v.astype(float), spacing=0.1)
    >>> t = vessels_table(img, spatial_image(np.ones((40, 40), np.uint8), spacing=0.1),
    ...                   vessels=spatial_image(v, spacing=0.1))
    >>> row = t.set_index("metric").loc["n_branch_points"]
    >>> float(row["value"]), row["units"]
    (1.0, 'count')
    """
    return vessels_evaluate(image, mask, vessels, scales_mm=scales_mm, method=method, threshold=threshold,
                            min_size=min_size, grow=grow, avascular_mm=avascular_mm, smooth=smooth,
                            spur_factor=spur_factor).rows


def vessels_figure(result: FamilyResult, title: str = "", labels: Sequence[str] = ()) -> list[tuple[str, Any]]:
    """The vessel channel with the segmented mask's outline, the graph's centrelines and its branch points."""
    from ..figures import new_figure

    img = result.data.get("image")
    vm = result.data.get("vessel_mask")
    if img is None or vm is None:
        return []
    a, v = np.asarray(to_numpy(img), float), to_numpy(vm) != 0
    skel = result.data.get("skeleton")
    s = (to_numpy(skel) != 0) if skel is not None else np.zeros(v.shape, bool)
    sd = spatial_dims(img)
    if a.ndim == 3:  # maximum projections along z
        a, v, s = a.max(0), v.any(0), s.any(0)
        sd = sd[1:]
    ys, xs = (np.asarray(img.coords[d].values, float) for d in sd)
    extent = (xs[0], xs[-1], ys[-1], ys[0])
    fig = new_figure((5.0, 4.6))
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(a, cmap="gray", extent=extent, interpolation="nearest")
    if v.any():
        ax.contour(xs, ys, v.astype(float), levels=[0.5], colors=["tab:cyan"], linewidths=0.6)
    if s.any():
        ax.imshow(np.ma.masked_where(~s, s.astype(float)), cmap="autumn", extent=extent, interpolation="nearest",
                  vmin=0, vmax=1)
    nodes = result.data.get("nodes")
    if isinstance(nodes, pd.DataFrame) and len(nodes) and f"{sd[-1]}_mm" in nodes:
        b = nodes[nodes["kind"] == "branch"]
        ax.plot(b[f"{sd[-1]}_mm"], b[f"{sd[-2]}_mm"], "o", ms=4, mfc="none", mec="lime", label="branch points")
        if len(b):
            ax.legend(loc="lower right", fontsize=7)
    ax.set_xlabel(f"{sd[-1]} (mm)")
    ax.set_ylabel(f"{sd[-2]} (mm)")
    ax.set_title(title or "vessels", fontsize=9)
    return [("overlay", fig)]


FAMILY = Family(
    name="vessels",
    table=vessels_table,
    inputs=("image", "mask"),
    optional=("vessels",),
    evaluate_fn=vessels_evaluate,
    figure=vessels_figure,
    description="vessel network: segmentation (Frangi/Sato/Meijering), graph (skan), length/branch densities, "
                "diameters, tortuosity, distance to vessels, avascular fraction",
)
