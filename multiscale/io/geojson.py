"""Annotations from QuPath GeoJSON (necrosis / viable tumour / stroma polygons) as label masks on a slide's grid.

QuPath exports annotations as a GeoJSON ``FeatureCollection`` (or a bare list of features) whose ``Polygon`` /
``MultiPolygon`` coordinates are ``(x, y)`` in **pixels of the full-resolution image** (continuous coordinates:
pixel ``(0, 0)`` spans ``[0, 1)``), with the class in ``properties.classification.name`` (older exports:
``properties.classification`` as text, or ``properties.name``).

They are rasterised with :func:`skimage.draw.polygon` on a reference image's grid (``load(path, reference=slide)``
at any pyramid level): a pixel belongs to a polygon when its centre lies inside; holes are cut out; each class is
one label (1, 2, ... in the order of ``classes=`` or of first appearance) and ``attrs["labels"]`` maps the class
names to their values. Later features overwrite earlier ones where they overlap. The full-resolution pixel size
is the reference's ``attrs["base_pixel_size_um"]`` (set by the ``slide`` format) or ``pixel_size_um=``;
``coordinates="mm"`` takes coordinates already in mm (``x``, ``y`` world positions).

An annotation lying wholly outside the slide is refused (:class:`~multiscale.errors.LoadError` naming the
feature); one crossing the slide's edge is clipped with a warning.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from multiscale.image import spatial_dims, world_to_index

from ._common import attach_warnings, fail, provenance, recording_warnings, warn
from .format import Format

__all__ = ["read_annotations", "annotation_labels", "summary", "FORMAT"]


def _class_of(props: dict[str, Any]) -> str:
    cls = props.get("classification")
    if isinstance(cls, dict) and cls.get("name"):
        return str(cls["name"])
    if isinstance(cls, str) and cls:
        return cls
    return str(props.get("name") or "unclassified")


def read_annotations(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The polygons of a QuPath GeoJSON file: ``{"class", "name", "polygons": [(exterior, [holes])]}`` per feature.

    Rings are ``(n, 2)`` arrays of ``(x, y)``. Points and lines are skipped (they enclose no area).

    Raises
    ------
    LoadError
        Not JSON, not GeoJSON features, or a polygon without coordinates.

    Examples
    --------
    >>> import json, tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.geojson"
    >>> _ = p.write_text(json.dumps({"type": "FeatureCollection", "features": [{"type": "Feature",
    ...     "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [4, 0], [4, 4], [0, 0]]]},
    ...     "properties": {"classification": {"name": "Necrosis"}}}]}))
    >>> [(a["class"], a["polygons"][0][0].shape) for a in read_annotations(p)]
    [('Necrosis', (4, 2))]
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise fail(path, "JSON", f"cannot be parsed ({type(exc).__name__}: {exc})",
                   "the file is truncated or not GeoJSON; export the annotations from QuPath again") from exc
    if isinstance(doc, dict) and doc.get("type") == "FeatureCollection":
        features = doc.get("features") or []
    elif isinstance(doc, dict) and doc.get("type") == "Feature":
        features = [doc]
    elif isinstance(doc, list):
        features = doc
    else:
        raise fail(path, "type", "not a GeoJSON Feature, FeatureCollection or list of features",
                   "export the annotations with QuPath's 'Export objects as GeoJSON'")
    out = []
    for k, feat in enumerate(features):
        if not isinstance(feat, dict) or not isinstance(feat.get("geometry"), dict):
            raise fail(path, f"features[{k}]", "has no geometry", "remove it or export again")
        geom = feat["geometry"]
        props = feat.get("properties") or {}
        kind = geom.get("type")
        coords = geom.get("coordinates")
        if kind == "Polygon":
            polys = [coords]
        elif kind == "MultiPolygon":
            polys = coords
        else:
            continue
        rings = []
        for poly in polys or []:
            if not poly or not poly[0]:
                raise fail(path, f"features[{k}].geometry.coordinates", "a polygon without an exterior ring",
                           "remove the empty annotation in QuPath and export again")
            try:
                ext = np.asarray(poly[0], dtype=float)[:, :2]
                holes = [np.asarray(h, dtype=float)[:, :2] for h in poly[1:]]
            except (ValueError, IndexError, TypeError) as exc:
                raise fail(path, f"features[{k}].geometry.coordinates", f"not (x, y) pairs ({exc})",
                           "export the annotations from QuPath again") from exc
            rings.append((ext, holes))
        out.append({"class": _class_of(props), "name": str(props.get("name") or ""), "index": k, "polygons": rings})
    return out


def _to_index(ring: np.ndarray, reference: xr.DataArray, coordinates: str, base_mm: float | None) -> np.ndarray:
    """(x, y) ring -> (row, col) fractional indices on the reference grid."""
    if coordinates == "mm":
        world = ring
    else:
        world = (ring - 0.5) * base_mm  # continuous pixel coords -> centre-based mm (pixel 0's centre at 0)
    sd = spatial_dims(reference)
    if sd == ("y", "x"):
        return world_to_index(reference, world[:, ::-1])
    raise ValueError("annotations need a 2-D (y, x) reference")


def annotation_labels(path: str | os.PathLike, reference: xr.DataArray, *, classes: Sequence[str] | None = None,
                      pixel_size_um: float | None = None, coordinates: str = "pixels") -> xr.DataArray:
    """Rasterise a QuPath GeoJSON's polygons as a label image on ``reference``'s grid (one label per class).

    Parameters
    ----------
    path : path-like
        The GeoJSON file.
    reference : xarray.DataArray
        The slide (any pyramid level) or another 2-D image in the same mm space.
    classes : sequence of str, optional
        Class names in label order (1, 2, ...); features of other classes are left out. Default: every class,
        in order of first appearance.
    pixel_size_um : float, optional
        The full-resolution pixel size the coordinates refer to (default ``reference.attrs["base_pixel_size_um"]``).
    coordinates : {"pixels", "mm"}
        QuPath's full-resolution pixels, or mm.

    Returns
    -------
    xarray.DataArray
        uint16 labels on the reference grid, ``attrs["labels"]`` = ``{class: label}``, ``aspect = "mask"``.

    Examples
    --------
    >>> import json, tempfile, pathlib
    >>> from multiscale.image import spatial_image
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.geojson"
    >>> _ = p.write_text(json.dumps([{"type": "Feature", "properties": {"classification": {"name": "Tumor"}},
    ...     "geometry": {"type": "Polygon", "coordinates": [[[2, 2], [6, 2], [6, 6], [2, 6], [2, 2]]]}}]))
    >>> slide = spatial_image(np.zeros((8, 8)), spacing=0.001)
    >>> lab = annotation_labels(p, slide, pixel_size_um=1.0)
    >>> int(lab.values.sum()), lab.attrs["labels"]   # the 4 x 4 pixels whose centres are inside
    (16, {'Tumor': 1})
    """
    with recording_warnings() as recorded:
        out = _labels(Path(path), reference, classes, pixel_size_um, coordinates)
    return attach_warnings(out, recorded)


def _labels(path: Path, reference: xr.DataArray, classes: Sequence[str] | None, pixel_size_um: float | None,
            coordinates: str) -> xr.DataArray:
    from skimage.draw import polygon as draw_polygon

    if not isinstance(reference, xr.DataArray):
        raise fail(path, "reference=", f"needs a spatial image, got {type(reference).__name__}",
                   "pass the slide: load(annotations, reference=slide)")
    ref = reference
    for d in ("t", "c"):
        if d in ref.dims:
            ref = ref.isel({d: 0}, drop=True)
    if spatial_dims(ref) != ("y", "x"):
        raise fail(path, "reference=", f"has dims {ref.dims}", "annotations are drawn on a 2-D (y, x) slide")
    if coordinates not in ("pixels", "mm"):
        raise fail(path, "coordinates=", f"{coordinates!r}", "use 'pixels' (QuPath) or 'mm'")
    base_mm = None
    if coordinates == "pixels":
        um = pixel_size_um if pixel_size_um is not None else ref.attrs.get("base_pixel_size_um")
        if um is None or not float(um) > 0:
            raise fail(path, "pixel size", "QuPath coordinates are full-resolution pixels but the reference does not "
                       "say their size (no attrs['base_pixel_size_um'])",
                       "load the slide with the slide format, or pass pixel_size_um= (or coordinates='mm')")
        base_mm = float(um) / 1000.0
    feats = read_annotations(path)
    names = list(classes) if classes is not None else list(dict.fromkeys(f["class"] for f in feats))
    value = {n: k + 1 for k, n in enumerate(names)}
    shape = (ref.sizes["y"], ref.sizes["x"])
    lab = np.zeros(shape, dtype=np.uint16)
    for f in feats:
        if f["class"] not in value:
            continue
        what = f"features[{f['index']}] ({f['class']}{', ' + f['name'] if f['name'] else ''})"
        inside = np.zeros(shape, dtype=bool)
        any_in = False
        for ext, holes in f["polygons"]:
            rc = _to_index(ext, ref, coordinates, base_mm)
            r0, r1, c0, c1 = rc[:, 0].min(), rc[:, 0].max(), rc[:, 1].min(), rc[:, 1].max()
            if r1 < -0.5 or c1 < -0.5 or r0 > shape[0] - 0.5 or c0 > shape[1] - 0.5:
                continue
            any_in = True
            if r0 < -0.5 or c0 < -0.5 or r1 > shape[0] - 0.5 or c1 > shape[1] - 0.5:
                warn(f"{path}: {what} crosses the slide's edge; the part outside was left out")
            rr, cc = draw_polygon(rc[:, 0], rc[:, 1], shape=shape)
            inside[rr, cc] = True
            for h in holes:
                hc = _to_index(h, ref, coordinates, base_mm)
                rr, cc = draw_polygon(hc[:, 0], hc[:, 1], shape=shape)
                inside[rr, cc] = False
        if not any_in and f["polygons"]:
            raise fail(path, what, f"lies wholly outside the slide (grid {shape[1]} x {shape[0]} px of "
                       f"{float(abs(ref.x.values[1] - ref.x.values[0])) * 1000 if shape[1] > 1 else 0:g} um)",
                       "check that the annotations belong to this slide, and that pixel_size_um / the level are right")
        lab[inside] = value[f["class"]]
    attrs = {k: v for k, v in reference.attrs.items() if k not in ("units", "warnings")}
    attrs.update(units="", aspect="mask", labels=value, provenance=provenance(path, "geojson", classes=classes,
                                                                              coordinates=coordinates))
    return xr.DataArray(lab, dims=("y", "x"), coords={"y": ref.y.values, "x": ref.x.values}, attrs=attrs,
                        name="annotations")


def _load(path: str | os.PathLike, reference: xr.DataArray | None = None, resample: bool = False,
          classes: Sequence[str] | None = None, pixel_size_um: float | None = None,
          coordinates: str = "pixels") -> xr.DataArray:
    if reference is None:
        raise fail(path, "reference=", "GeoJSON annotations have no grid of their own",
                   "load them on the slide: load(path, reference=slide) (study: masks: {x: {path: ..., on: slide}})")
    return annotation_labels(path, reference, classes=classes, pixel_size_um=pixel_size_um, coordinates=coordinates)


def summary(path: str | os.PathLike) -> dict[str, Any]:
    """GeoJSON annotations have no grid: their classes and feature counts.

    Examples
    --------
    >>> summary("annotations.geojson")["classes"]  # doctest: +SKIP
    ['Necrosis (3 polygons)', 'Tumor (1 polygons)']
    """
    feats = read_annotations(path)
    counts: dict[str, int] = {}
    for f in feats:
        counts[f["class"]] = counts.get(f["class"], 0) + len(f["polygons"])
    return {"modality": "annotations", "classes": [f"{k} ({v} polygons)" for k, v in counts.items()],
            "warnings": ["polygons only: load with reference=<slide> to rasterise them on its grid"]}


def _sniff(head: bytes, path: Path) -> bool:
    text = head.lstrip()[:4096]
    if text[:1] not in (b"{", b"["):
        return False
    return b'"Feature' in text and b'"geometry"' in text


FORMAT = Format(
    name="geojson",
    sniff=_sniff,
    read=_load,
    options=frozenset({"reference", "resample", "classes", "pixel_size_um", "coordinates"}),
    suffixes=(".geojson", ".json"),
    description="QuPath GeoJSON annotations (polygons per class) rasterised as labels on a slide with reference=",
    summary=summary,
)
