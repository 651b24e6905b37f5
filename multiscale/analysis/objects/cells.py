"""The study family ``cells``: segment objects, quantify every channel per object, gate types, per-type uptake.

Inputs: ``image`` is the map quantified per object (a nanoparticle or drug channel), ``mask`` the
region; optional roles name other channels of the same grid: ``nuclei`` (the DNA / Histone H3
channel segmented; without it ``image`` itself is segmented), ``membrane`` (cells by watershed on
it instead of expanded nuclei) and ``marker_1`` ... ``marker_4`` (channels quantified and used by
``gates``; a gate names a channel by its channel name, e.g. ``CD68``, or by its role).

Rows (units decided here): ``n_objects`` (objects), ``density`` (objects/mm²; /mm³ in 3-D),
``area_mean``/``area_median`` (µm²; µm³ in 3-D), ``uptake_mean``/``uptake_median`` (the image's
units: per-object means of ``image``), ``uptake_cv`` (1), per type ``<type>.n``, ``<type>.fraction``,
``<type>.uptake_mean``, ``<type>.share`` (its fraction of the signal in all objects); with
``objects="cells"`` the compartments ``compartment.<name>.mean`` (image units), ``.enrichment``,
``.global_mean_bias`` (1) for nucleus, cytoplasm, outside cells, each type's cells and the pixel
``compartments`` (channel thresholds, e.g. collagen); with
``ratio_to`` the sub-populations of the per-object ratio ``ratio.population_<k>.n/weight/ratio_median``.
The per-object table is ``tables["objects"]`` (written beside the results as Parquet).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from multiscale.errors import AnalysisError
from multiscale.image import spacing, spatial_dims

from ..family import Family, FamilyResult, image_units
from ._inputs import UM_PER_MM, name_of, pick_channel, region_array
from .segment import detect_spots, segment_cells, segment_nuclei
from .tables import (
    OTHER,
    channel_columns,
    compartment_table,
    gate_objects,
    object_table,
    ratio_populations,
    threshold_compartments,
)

__all__ = ["cell_objects", "cells_table", "cells_evaluate", "segmentation_figure", "FAMILY", "MARKER_ROLES"]

#: optional roles holding channels to quantify and gate on
MARKER_ROLES: tuple[str, ...] = ("marker_1", "marker_2", "marker_3", "marker_4")


def _named_channels(image: xr.DataArray, extra: Mapping[str, xr.DataArray | None]) -> dict[str, xr.DataArray]:
    """Every input image by its channel name (the role's name when it has none or the name repeats)."""
    out: dict[str, xr.DataArray] = {}
    for role, img in {"image": image, **extra}.items():
        if img is None:
            continue
        one = pick_channel(img, None, f"{role} image")
        name = name_of(one, role)
        if name in out:
            name = role
        out[name] = one
    return out


def cell_objects(
    image: xr.DataArray,
    mask: xr.DataArray | None = None,
    *,
    nuclei: xr.DataArray | None = None,
    membrane: xr.DataArray | None = None,
    markers: Mapping[str, xr.DataArray | None] | None = None,
    objects: Literal["cells", "nuclei", "spots"] = "cells",
    sigma_um: float = 1.0,
    diameter_um: float = 8.0,
    expand_um: float = 4.0,
    threshold: float | None = None,
    gates: Mapping[str, str] | None = None,
    method: str = "classical",
) -> dict[str, Any]:
    """Segment, quantify and gate: the shared first step of the ``cells`` and ``cell_patterns`` families.

    Returns
    -------
    dict
        ``table`` (per-object, with a ``type`` column), ``labels`` (the objects' label image),
        ``nuclei`` (label image, or None for spots), ``channels`` (name -> image), ``image_name``,
        ``thresholds`` (of the gates).

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> yy, xx = np.mgrid[:40, :40]
    >>> dna = spatial_image((((yy - 12) ** 2 + (xx - 12) ** 2) < 25) * 9.0 + 1, spacing=0.001, channel="DNA")
    >>> res = cell_objects(dna, objects="nuclei", diameter_um=10)
    >>> len(res["table"]), res["table"]["type"].tolist()
    (1, ['other'])
    """
    roles = {"nuclei": nuclei, "membrane": membrane, **dict(markers or {})}
    chans = _named_channels(image, roles)
    img_name = name_of(pick_channel(image, None, "image"), "image")
    seg_src = nuclei if nuclei is not None else image
    if objects == "spots":
        spots = detect_spots(seg_src, mask=mask, radius_um=(0.25 * diameter_um, 0.75 * diameter_um),
                             threshold=threshold, threshold_rel=None if threshold is not None else 0.1)
        labels = _spot_labels(seg_src, spots)
        nuc = None
    else:
        nuc = segment_nuclei(seg_src, mask=mask, sigma_um=sigma_um, threshold=threshold, diameter_um=diameter_um,
                             method=method)
        labels = nuc if objects == "nuclei" else segment_cells(nuc, expand_um=expand_um, membrane=membrane, mask=mask)
    if objects not in ("cells", "nuclei", "spots"):
        raise AnalysisError(f"objects={objects!r}; use 'cells', 'nuclei' or 'spots'")
    table = object_table(labels, chans)
    units = table.attrs.get("units", {})
    types = gate_objects(table, gates) if gates else pd.Series([OTHER] * len(table), index=table.index, dtype=object)
    table["type"] = types.to_numpy(object)
    table.attrs["units"] = dict(units, type="")
    return {"table": table, "labels": labels, "nuclei": nuc, "channels": chans, "image_name": img_name,
            "thresholds": dict(types.attrs.get("thresholds", {}))}


def _spot_labels(image: xr.DataArray, spots: pd.DataFrame) -> xr.DataArray:
    """Discs (balls) of each spot's radius as a label image."""
    from multiscale.image import world_to_index

    from ._inputs import label_image, pixel_um

    img = pick_channel(image, None, "spot image")
    shape = tuple(img.sizes[d] for d in spatial_dims(img))
    lab = np.zeros(shape, np.int32)
    if len(spots):
        cols = [f"centroid_{d}_mm" for d in spatial_dims(img)]
        idx = world_to_index(img, spots[cols].to_numpy(float))
        px = pixel_um(img)
        grids = np.indices(shape, sparse=True)
        for k, (p, r) in enumerate(zip(idx, spots["radius_um"].to_numpy(float)), start=1):
            d2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grids, p, px))
            lab[(d2 <= r * r) & (lab == 0)] = k
    return label_image(img, lab, "spots")


def _region_size_mm(mask: xr.DataArray | None, template: xr.DataArray) -> float:
    region = region_array(mask, template)
    n = float(np.prod([template.sizes[d] for d in spatial_dims(template)])) if region is None else float(region.sum())
    return n * float(np.prod(spacing(template)))


def cells_evaluate(
    image: xr.DataArray,
    mask: xr.DataArray | None = None,
    *,
    nuclei: xr.DataArray | None = None,
    membrane: xr.DataArray | None = None,
    marker_1: xr.DataArray | None = None,
    marker_2: xr.DataArray | None = None,
    marker_3: xr.DataArray | None = None,
    marker_4: xr.DataArray | None = None,
    objects: Literal["cells", "nuclei", "spots"] = "cells",
    sigma_um: float = 1.0,
    diameter_um: float = 8.0,
    expand_um: float = 4.0,
    threshold: float | None = None,
    gates: dict[str, str] | None = None,
    ratio_to: str | None = None,
    compartments: dict[str, str] | None = None,
    method: str = "classical",
) -> FamilyResult:
    """Rows, label image, per-object table and figure data of the ``cells`` family (see :func:`cells_table`)."""
    markers = {"marker_1": marker_1, "marker_2": marker_2, "marker_3": marker_3, "marker_4": marker_4}
    res = cell_objects(image, mask, nuclei=nuclei, membrane=membrane, markers=markers, objects=objects,
                       sigma_um=sigma_um, diameter_um=diameter_um, expand_um=expand_um, threshold=threshold,
                       gates=gates, method=method)
    table: pd.DataFrame = res["table"]
    img = res["channels"][res["image_name"]]
    units = image_units(img)
    nd = len(spatial_dims(img))
    size_col, size_u = ("area_um2", "µm²") if nd == 2 else ("volume_um3", "µm³")
    region_mm = _region_size_mm(mask, img)
    rows: list[dict[str, Any]] = []

    def add(metric: str, value: float, unit: str, detail: str = "") -> None:
        rows.append({"metric": metric, "value": float(value), "units": unit, "detail": detail})

    n = len(table)
    up = table[f"mean_{res['image_name']}"].to_numpy(float) if n else np.zeros(0)
    add("n_objects", n, objects, f"{objects} segmented ({method})")
    add("density", n / region_mm if region_mm else np.nan, "1/mm²" if nd == 2 else "1/mm³")
    nan = float("nan")
    add("area_mean", table[size_col].mean() if n else nan, size_u)
    add("area_median", table[size_col].median() if n else nan, size_u)
    add("uptake_mean", up.mean() if n else nan, units, f"mean over {objects} of their mean {res['image_name']}")
    add("uptake_median", np.median(up) if n else nan, units)
    add("uptake_cv", up.std() / up.mean() if n and up.mean() else nan, "1", "SD / mean across objects")
    integ = table[f"integrated_{res['image_name']}"].to_numpy(float) if n else np.zeros(0)
    total = float(np.nansum(integ))
    for kind in list(dict.fromkeys(list((gates or {}).keys()) + ([OTHER] if gates else []))):
        sel = (table["type"] == kind).to_numpy() if n else np.zeros(0, bool)
        rule = (gates or {}).get(kind, "no gate holds")
        add(f"{kind}.n", sel.sum(), objects, f"type {kind}: {rule}")
        add(f"{kind}.fraction", sel.sum() / n if n else nan, "1", f"type {kind}: {rule}")
        add(f"{kind}.uptake_mean", up[sel].mean() if sel.any() else nan, units, f"type {kind}: {rule}")
        add(f"{kind}.share", np.nansum(integ[sel]) / total if total else nan, "1",
            f"type {kind}: fraction of the {res['image_name']} signal in all objects")
    if objects == "cells" and res["nuclei"] is not None:
        nuc = np.asarray(res["nuclei"].values) > 0
        cel = np.asarray(res["labels"].values)
        comps: dict[str, np.ndarray] = {"nucleus": nuc, "cytoplasm": (cel > 0) & ~nuc, "outside_cells": cel == 0}
        comps.update({f"{k}_pixels": v for k, v in threshold_compartments(res["channels"], compartments or {}).items()})
        if gates and n:
            lab_type = dict(zip(table["label"].astype(int), table["type"]))
            lut = np.array([""] + [lab_type.get(k, "") for k in range(1, int(cel.max()) + 1)], dtype=object)
            for kind in gates:
                comps[f"{kind}_cells"] = lut[cel] == kind
        ct = compartment_table(img, comps, mask)
        for r in ct.itertuples():
            if r.compartment == "all":
                add("compartment.all.mean", r.mean, units, "global mean over the region")
                continue
            d = f"compartment {r.compartment}: {r.n_voxels} voxels, {r.area_fraction:.3g} of the region"
            add(f"compartment.{r.compartment}.mean", r.mean, units, d)
            add(f"compartment.{r.compartment}.enrichment", r.enrichment, "1", d)
            add(f"compartment.{r.compartment}.global_mean_bias", r.global_mean_bias, "1",
                d + "; (global mean - compartment mean) / compartment mean")
    tables = {"objects": table}
    if ratio_to is not None:
        if ratio_to not in channel_columns(table) and n:
            raise AnalysisError(f"ratio_to={ratio_to!r}: no such channel; channels are {channel_columns(table)}")
        if n:
            per, pops = ratio_populations(table, res["image_name"], ratio_to)
            table["ratio"] = table["label"].map(dict(zip(per["label"], per["ratio"])))
            table["population"] = table["label"].map(dict(zip(per["label"], per["population"])))
            for p in pops.itertuples():
                d = f"{res['image_name']}/{ratio_to} sub-population {p.population} (Gaussian mixture of log10 ratio)"
                add(f"ratio.population_{p.population}.n", p.n, objects, d)
                add(f"ratio.population_{p.population}.weight", p.weight, "1", d)
                add(f"ratio.population_{p.population}.ratio_median", p.ratio_median, "1", d)
    data = {"background": np.asarray(pick_channel(nuclei if nuclei is not None else image, None).values, float),
            "labels": np.asarray(res["labels"].values), "types": dict(zip(table["label"].astype(int), table["type"])),
            "spacing_um": tuple(float(s) * UM_PER_MM for s in spacing(img)), "objects": objects}
    return FamilyResult(rows=pd.DataFrame(rows), images={objects: res["labels"]}, data=data, tables=tables)


def cells_table(
    image: xr.DataArray,
    mask: xr.DataArray | None = None,
    *,
    nuclei: xr.DataArray | None = None,
    membrane: xr.DataArray | None = None,
    marker_1: xr.DataArray | None = None,
    marker_2: xr.DataArray | None = None,
    marker_3: xr.DataArray | None = None,
    marker_4: xr.DataArray | None = None,
    objects: Literal["cells", "nuclei", "spots"] = "cells",
    sigma_um: float = 1.0,
    diameter_um: float = 8.0,
    expand_um: float = 4.0,
    threshold: float | None = None,
    gates: dict[str, str] | None = None,
    ratio_to: str | None = None,
    compartments: dict[str, str] | None = None,
    method: str = "classical",
) -> pd.DataFrame:
    """Per-object quantification as tidy rows; the study's ``cells`` family (module docstring lists the metrics).

    Parameters
    ----------
    image, mask : xarray.DataArray
        The map quantified per object, and the region.
    nuclei, membrane, marker_1 ... marker_4 : xarray.DataArray, optional
        Other channels on the same grid (see the module docstring).
    objects : {"cells", "nuclei", "spots"}
        What the rows count: nuclei expanded into cells, nuclei, or LoG spots.
    sigma_um, diameter_um, expand_um, threshold, method
        Segmentation settings (:func:`~multiscale.analysis.objects.segment_nuclei`,
        :func:`~multiscale.analysis.objects.segment_cells`).
    gates : mapping type -> rule, optional
        Cell types by marker thresholds (:func:`~multiscale.analysis.objects.gate_objects`).
    ratio_to : str, optional
        Channel for the per-object ratio ``image / ratio_to`` and its Gaussian-mixture sub-populations.
    compartments : mapping name -> rule, optional
        Pixel compartments from channel thresholds (``{"collagen": "Collagen > 5"}``), reported beside
        nucleus, cytoplasm, outside cells and each type's cells as ``compartment.<name>_pixels.*``.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> yy, xx = np.mgrid[:40, :40]
    >>> dna = spatial_image((((yy - 12) ** 2 + (xx - 12) ** 2) < 25) * 9.0 + 1, spacing=0.001, channel="DNA")
    >>> np_ = spatial_image(np.full((40, 40), 2.0), spacing=0.001, channel="NP", units="counts")
    >>> rows = cells_table(np_, nuclei=dna, diameter_um=10).set_index("metric")
    >>> int(rows.loc["n_objects", "value"]), float(rows.loc["uptake_mean", "value"]), rows.loc["uptake_mean", "units"]
    (1, 2.0, 'counts')
    """
    return cells_evaluate(image, mask, nuclei=nuclei, membrane=membrane, marker_1=marker_1, marker_2=marker_2,
                          marker_3=marker_3, marker_4=marker_4, objects=objects, sigma_um=sigma_um,
                          diameter_um=diameter_um, expand_um=expand_um, threshold=threshold, gates=gates,
                          ratio_to=ratio_to, compartments=compartments, method=method).rows


def segmentation_figure(result: FamilyResult, title: str = "", labels: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
    """Segmentation overlay: the segmented channel in grey, object outlines coloured by type (mid slice in 3-D)."""
    from skimage.segmentation import find_boundaries

    from ..figures import new_figure

    bg = np.asarray(result.data.get("background"))
    lab = np.asarray(result.data.get("labels"))
    if bg.ndim == 3:
        k = bg.shape[0] // 2
        bg, lab = bg[k], lab[k]
    types = result.data.get("types", {})
    kinds = sorted(set(types.values())) or [OTHER]
    colours = ["#e41a1c", "#377eb8", "#4daf4a", "#ff7f00", "#984ea3", "#a65628", "#f781bf"]
    sy, sx = result.data.get("spacing_um", (1.0, 1.0))[-2:]
    fig = new_figure((5.0, 5.0 * bg.shape[0] / max(bg.shape[1], 1) * sy / sx + 0.4))
    ax = fig.add_subplot()
    extent = (0, bg.shape[1] * sx, bg.shape[0] * sy, 0)
    lo, hi = np.percentile(bg, [1, 99.5]) if bg.size else (0, 1)
    ax.imshow(bg, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1, extent=extent, interpolation="nearest")
    edges = find_boundaries(lab, mode="inner")
    lut = np.zeros(int(lab.max()) + 1, int)
    for lbl, kind in types.items():
        if 0 < int(lbl) < lut.size:
            lut[int(lbl)] = kinds.index(kind)
    rgba = np.zeros(bg.shape + (4,))
    from matplotlib.colors import to_rgba

    for k in range(len(kinds)):
        sel = edges & (lut[lab] == k)
        rgba[sel] = to_rgba(colours[k % len(colours)])
    ax.imshow(rgba, extent=extent, interpolation="nearest")
    for k, kind in enumerate(kinds):
        n = sum(1 for v in types.values() if v == kind)
        ax.plot([], [], color=colours[k % len(colours)], label=f"{kind} ({n})")
    ax.legend(frameon=False, fontsize="small", loc="upper right")
    ax.set_xlabel("x (µm)")
    ax.set_ylabel("y (µm)")
    ax.set_title(title or f"{len(types)} {result.data.get('objects', 'objects')}")
    return [("segmentation", fig)]


FAMILY = Family(
    name="cells",
    table=cells_table,
    inputs=("image", "mask"),
    optional=("nuclei", "membrane") + MARKER_ROLES,
    evaluate_fn=cells_evaluate,
    figure=segmentation_figure,
    description="objects (cells, nuclei, spots) segmented and quantified per object; types by gates; "
                "per-type uptake and compartments",
)
