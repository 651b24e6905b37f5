"""The steps of a subject: each a few lines over one library call.

Load an image or a mask, register one edge, resample into a reference frame, run one analysis,
draw figures. Every number, quality measure, histogram and figure comes from the library
(:mod:`multiscale.io`, :mod:`multiscale.registration`, :mod:`multiscale.analysis`); a step only
picks the inputs the study names and labels what comes back. The dask wiring is in
:mod:`.wiring`, the output folder in :mod:`.outputs`.
"""

from __future__ import annotations

import io as _bytes_io
import re
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from multiscale import image as mi
from multiscale import io
from multiscale import registration as reg
from multiscale.analysis.families import family_named
from multiscale.analysis.family import results_frame
from multiscale.errors import StudyError
from multiscale.registration.motion import motion_correct
from multiscale.registration.placement import place_section, section_pose_error
from multiscale.registration.uncertainty import lattice_points, transform_samples, uncertainty_mm

from .graph import frames_of, mask_frames
from .spec import AnalysisSpec, EdgeSpec, ImageSpec, MaskSpec, SectionSpec, SubjectSpec, parse_map_name

__all__ = [
    "load_image_step",
    "load_mask_step",
    "grid_step",
    "register_step",
    "resample_step",
    "analysis_step",
    "registration_figures_step",
    "analysis_figures_step",
    "figure_png",
    "figure_files",
    "safe_name",
]

#: images at most this large are read into memory when loaded (larger ones stay lazy)
EAGER_BYTES = 1 << 30

#: options every registration of a study gets unless its edge says otherwise. One thread: SimpleITK's
#: multi-threaded metric sums differ in the last digits with the thread count, so a study run on another
#: machine or with another number of workers would not give identical numbers (``options: {threads: 2}``
#: trades that for speed).
REGISTRATION_DEFAULTS: dict[str, Any] = {"threads": 1}


def safe_name(name: str) -> str:
    """``name`` with every run of characters other than letters, digits, ``_.-`` made one ``_``.

    Examples
    --------
    >>> safe_name("fluorescence:nanoparticle dye")
    'fluorescence_nanoparticle_dye'
    """
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")


def figure_png(fig: Any, dpi: int = 300) -> bytes:
    """A matplotlib figure as PNG bytes at print resolution (300 dpi, recorded in the PNG; closed when from pyplot)."""
    buf = _bytes_io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    try:
        import matplotlib.pyplot as plt

        plt.close(fig)
    except Exception:  # noqa: BLE001 - figures on their own canvas need no closing
        pass
    return buf.getvalue()


def figure_files(fig: Any, stem: str, formats: tuple[str, ...] = ("png",)) -> dict[str, bytes]:
    """``{stem.png: 300-dpi PNG, stem.svg: SVG}`` of a figure, for the ``formats`` asked (the figure is then closed)."""
    out = {}
    if "svg" in formats:
        buf = _bytes_io.BytesIO()
        fig.savefig(buf, format="svg")
        out[f"{stem}.svg"] = buf.getvalue()
    out[f"{stem}.png"] = figure_png(fig)
    return out


def load_image_step(spec: ImageSpec) -> xr.DataArray:
    """Load one image with its study options, set its attrs from the study and name its targets' channels."""
    try:
        img = io.load(spec.path, **spec.load_options())
    except Exception as exc:
        exc.add_note(f"while loading image {spec.key!r} ({spec.path})")
        raise
    attrs = dict(img.attrs)
    for key in ("modality", "aspect", "agent", "units", "scale"):
        value = getattr(spec, key)
        if value:
            attrs[key] = value
    img = img.copy(deep=False)
    img.attrs = attrs
    if spec.targets and "c" in img.dims and img.sizes["c"] == len(spec.targets):
        img = img.assign_coords(c=list(spec.targets))
        img.attrs["targets_mz"] = dict(spec.targets)
    if hasattr(img.data, "compute") and img.nbytes <= EAGER_BYTES:
        img = img.copy(data=np.asarray(img.data.compute()))
    if spec.motion:
        img = _motion_corrected(img, spec)
    return img


def _motion_corrected(img: xr.DataArray, spec: ImageSpec) -> xr.DataArray:
    """The series with every frame registered to the study's motion reference and resampled once.

    The per-frame motion (translation, rotation, displacement in mm) goes into ``attrs["motion"]`` and the
    provenance; a frame that moved more than a voxel is reported as a warning on the image.
    """
    if "t" not in img.dims or img.sizes["t"] < 2:
        raise StudyError(f"study line {spec.line}: images.{spec.key}.motion: {spec.path} is not a time series "
                         f"(dims {tuple(img.dims)}); remove 'motion:' or give a file with several frames")
    if isinstance(spec.motion.get("reference"), int) and spec.motion["reference"] >= img.sizes["t"]:
        raise StudyError(f"study line {spec.line}: images.{spec.key}.motion.reference: frame "
                         f"{spec.motion['reference']} of a series of {img.sizes['t']} frames; use 0..{img.sizes['t'] - 1} "
                         "or 'mean'")
    try:
        result = motion_correct(img, **spec.motion)
    except Exception as exc:
        exc.add_note(f"while motion-correcting image {spec.key!r} ({spec.path}): study line {spec.line}")
        raise
    out = result.image
    out.attrs["motion"] = {k: [float(v) for v in vals] for k, vals in result.motion.items()}
    voxel = min((float(v) for v in mi.spacing(out)), default=float("inf"))
    worst = max(result.motion.get("displacement_mm", [0.0]))
    if worst > voxel:
        warns = list(out.attrs.get("warnings", []) or [])
        warns.append(f"motion correction of {spec.key}: a frame moved {worst:.3g} mm (more than a voxel, "
                     f"{voxel:.3g} mm); the frames were resampled onto the reference")
        out.attrs["warnings"] = warns
    return out


def load_mask_step(spec: MaskSpec, on_image: xr.DataArray | None = None) -> xr.DataArray:
    """Load a mask as a boolean image (``== label`` when a label is given, else ``> 0``).

    With ``on_image`` (the image the mask is drawn ``on``) the mask is read on that image's grid
    (:func:`multiscale.io.load` with ``reference=``): a different grid is refused unless the
    study says ``resample: true`` for the mask, which resamples it with nearest neighbour.
    """
    opts = dict(spec.options)
    if on_image is not None:
        opts["reference"] = on_image
        if spec.resample:
            opts["resample"] = True
    try:
        m = io.load(spec.path, **opts)
    except Exception as exc:
        exc.add_note(f"while loading mask {spec.key!r} ({spec.path})")
        if on_image is not None and "grid" in str(exc):
            exc.add_note(f"the study's masks.{spec.key}.on names image {spec.on!r} (study line {spec.line}), whose "
                         f"grid is {_grid_text(on_image)}; fix the mask file, or set 'resample: true' on mask "
                         f"{spec.key!r} to resample it onto that grid (nearest neighbour)")
        raise
    out = mi.binary_mask(m, label=spec.label, source=spec.path, what=f"mask {spec.key!r}")
    if spec.labels:  # a label image (e.g. lesions): the labels are kept, one region each (region_masks)
        data = np.asarray(m.data.compute() if hasattr(m.data, "compute") else m.data).reshape(out.shape)
        if not np.array_equal(data, np.round(data)) or data.min() < 0:
            raise mi.ImageError(f"{spec.path}: mask {spec.key!r} has labels: true but holds values that are not "
                                "non-negative integers; give a label image (0 background, 1, 2, ... one per region)")
        out = mi.like(out, data.astype(np.int32), aspect="mask", units="")
        out.attrs["label_regions"] = True
    out.attrs["mask_name"] = spec.key
    return out


def region_masks(name: str, mask: xr.DataArray | None) -> list[tuple[str, xr.DataArray | None]]:
    """``[(name, mask)]``, or for a label image (``labels: true``) one ``("<name>#<label>", 0/1 mask)`` per label.

    Examples
    --------
    >>> lab = mi.spatial_image(np.array([[0, 1], [4, 4]], np.int32), spacing=1.0)
    >>> lab.attrs["label_regions"] = True
    >>> [(n, m.values.tolist()) for n, m in region_masks("lesions", lab)]
    [('lesions#1', [[0, 1], [0, 0]]), ('lesions#4', [[0, 0], [1, 1]])]
    """
    if mask is None or not mask.attrs.get("label_regions"):
        return [(name, mask)]
    values = np.asarray(mask.data.compute() if hasattr(mask.data, "compute") else mask.data)
    out = []
    for k in np.unique(values):
        if k > 0:
            region = mask.copy(data=(values == k).astype(np.uint8))
            region.attrs = {a: v for a, v in mask.attrs.items() if a != "label_regions"}
            out.append((f"{name}#{int(k)}", region))
    return out


def _grid_text(image: xr.DataArray) -> str:
    g = mi.grid_of(image)
    return (f"shape {tuple(int(n) for n in g['shape'])}, spacing {tuple(round(float(v), 4) for v in g['spacing'])}, "
            f"origin {tuple(round(float(v), 3) for v in g['origin'])}, direction "
            f"{[round(float(v), 3) for v in np.asarray(g['direction']).ravel()]}")


#: an analysis grid larger than this many voxels is refused (it would not fit in memory)
MAX_GRID_VOXELS = 2**31


def grid_step(reference: xr.DataArray, spacing: float, frame: str = "") -> xr.DataArray:
    """The analysis grid of a reference frame (:func:`multiscale.registration.analysis_grid`), refused above
    :data:`MAX_GRID_VOXELS` voxels (a spacing far finer than the image would allocate it all)."""
    ref = reference.isel(c=0, drop=True) if "c" in reference.dims else reference
    voxels = 1
    for n, s in zip(mi.shape(ref), mi.spacing(ref)):
        voxels *= max(1, int(round(n * s / spacing)))
    if voxels > MAX_GRID_VOXELS:
        raise StudyError(f"grids.{frame}.spacing: {spacing} mm over the field of view of {frame!r} "
                         f"({_grid_text(ref)}) makes {voxels} voxels (at most {MAX_GRID_VOXELS}); give a coarser "
                         "spacing in the study's grids")
    return reg.analysis_grid(reference, spacing)


def register_step(edge: EdgeSpec, fixed: xr.DataArray, moving: xr.DataArray,
                  fixed_masks: Mapping[str, xr.DataArray] | None = None) -> dict[str, Any]:
    """Register ``moving`` to ``fixed`` as the edge says; return the transform, its quality and the figure's slices.

    Quality is :func:`multiscale.registration.alignment_quality` (with the edge's landmarks and
    ground truth when given, and the error inside each mask drawn on the fixed image).
    """
    # a time series registers on its time-mean; the transform then moves every frame (resample keeps t)
    fixed, moving = (x.mean("t", keep_attrs=True) if "t" in x.dims else x for x in (fixed, moving))
    # the named channel, or the sum over channels (an MSI's total ion count) to drive the registration
    f = reg.channel_image(mi.select_channel(fixed, parse_map_name(edge.fixed)[1], what=f"fixed {edge.fixed}"),
                          name="fixed")
    m = reg.channel_image(mi.select_channel(moving, parse_map_name(edge.moving)[1], what=f"moving {edge.moving}"),
                          name="moving")
    dim = len(mi.spatial_dims(f))
    lm = None
    if edge.landmarks is not None:
        lm = (reg.read_landmarks(edge.landmarks[0], dim), reg.read_landmarks(edge.landmarks[1], dim))
    if edge.method == "identity":
        t = reg.identity(dim)
    elif edge.method == "file":
        t = reg.Transform.load(edge.transform)
    else:
        opts = dict(REGISTRATION_DEFAULTS, **edge.options)
        if lm is not None and edge.use_landmarks:
            opts["landmarks"] = lm
        try:
            t = reg.register(f, m, transform=edge.method, **opts)
        except Exception as exc:
            exc.add_note(f"while registering {edge.name} ({edge.method})")
            raise
    truth = reg.truth_transform(edge.truth[0], edge.truth[1], dim) if edge.truth is not None else None
    samples = []
    if edge.uncertainty and edge.method not in ("identity", "file"):
        samples = transform_samples(f, m, t, n=edge.uncertainty, seed=int(edge.options.get("seed", 0)),
                                    threads=edge.options.get("threads", REGISTRATION_DEFAULTS["threads"]))
    m_on_f = reg.resample(m, f, t)
    fa = np.asarray(f.data, dtype=float)
    ma = np.asarray(m_on_f.data, dtype=float)
    out: dict[str, Any] = {
        "transform": t, "edge": edge.name, "method": edge.method,
        "quality": reg.alignment_quality(f, m_on_f, t, landmarks=lm, landmarks_used=edge.use_landmarks,
                                         truth=truth, fixed_masks=fixed_masks),
        "fixed_slice": reg.central_slice(fa, ma), "moving_slice": reg.central_slice(ma, ma),
        "pixel_mm": tuple(float(v) for v in mi.spacing(f))[-2:],
    }
    if truth is not None:
        out["truth"] = {"file": str(edge.truth[0]), "key": edge.truth[1]}
        out["truth_transform"] = truth
    if samples:
        out["samples"] = samples
        out["quality"].update(uncertainty_mm(samples, t, lattice_points(f)))
    return out


def place_section_step(link: SectionSpec, section: xr.DataArray, volume: xr.DataArray) -> dict[str, Any]:
    """Place a 2-D section in a 3-D volume (:func:`multiscale.registration.placement.place_section`).

    Returns what :func:`register_step` returns (transform, quality, the figure's slices), the
    quality holding the pose error against the ground truth when the link names one.
    """
    sec = mi.select_channel(section, parse_map_name(link.section)[1], what=f"section {link.section}")
    vol = mi.select_channel(volume, parse_map_name(link.volume)[1], what=f"volume {link.volume}")
    vol = vol.astype(np.float32) if vol.dtype.kind in "biu" else vol
    try:
        t = place_section(sec, vol, z_mm=link.z_mm, index=link.index, search_mm=link.search_mm,
                          step_mm=link.step_mm, **dict(REGISTRATION_DEFAULTS, **link.options))
    except Exception as exc:
        exc.add_note(f"while placing section {link.section} in {link.volume}")
        raise
    on_plane = reg.resample(vol, sec, t)
    sec1 = reg.channel_image(sec)
    fa, ma = np.asarray(sec1.data, dtype=float), np.asarray(on_plane.data, dtype=float)
    quality = reg.alignment_quality(sec1, on_plane, t)
    out: dict[str, Any] = {"transform": t, "edge": link.name, "method": "slice_to_volume", "quality": quality,
                           "fixed_slice": fa, "moving_slice": ma, "pixel_mm": tuple(float(v) for v in mi.spacing(sec1))[-2:]}
    if link.truth is not None:
        truth = reg.truth_transform(link.truth[0], link.truth[1], 3)
        quality.update(section_pose_error(sec, t, truth))
        out["truth"] = {"file": str(link.truth[0]), "key": link.truth[1]}
        out["truth_transform"] = truth
    if link.uncertainty:
        out["samples"] = transform_samples(sec, vol, t, n=link.uncertainty, register=reg.register_slice_to_volume,
                                           **dict(REGISTRATION_DEFAULTS, **link.options))
        quality.update(uncertainty_mm(out["samples"], t, lattice_points(sec)))
    placement = (t.info or {}).get("placement") or {}
    if placement.get("chosen_z_mm") is not None:
        quality["section_z_mm"] = float(placement["chosen_z_mm"])
    return out


def resample_step(image: xr.DataArray, reference: xr.DataArray, registrations: list[dict[str, Any]],
                  interpolation: str = "linear", smooth_to: float | None = None) -> xr.DataArray:
    """Resample ``image`` once into the reference frame through its chain (:func:`multiscale.registration.resample_chain`).

    The warnings of the image (``attrs["warnings"]``, from its loader) and of every registration of
    the chain (``Transform.info["warnings"]``) travel with the resampled map.
    """
    out = reg.resample_chain(image, reference, [r["transform"] for r in registrations],
                             interpolation=interpolation, smooth_to=smooth_to)
    carried = list(image.attrs.get("warnings", []))
    for r in registrations:
        carried += [f"registration {r['edge']}: {w}" for w in (getattr(r["transform"], "info", {}) or {}).get("warnings", [])]
    if carried:
        out = out.copy(deep=False)
        out.attrs = dict(out.attrs, warnings=list(dict.fromkeys(carried)))
    return out


def resample_sample_step(image: xr.DataArray, reference: xr.DataArray, registrations: list[dict[str, Any]],
                         k: int, interpolation: str = "linear", smooth_to: float | None = None) -> xr.DataArray:
    """:func:`resample_step` with each registration's ``k``-th uncertainty sample instead of its result.

    A registration without samples contributes its result.
    """
    chain = [dict(r, transform=r["samples"][k % len(r["samples"])]) if r.get("samples") else r for r in registrations]
    return resample_step(image, reference, chain, interpolation, smooth_to)


def _expand_maps(names: tuple[str, ...], maps: Mapping[str, xr.DataArray]) -> list[tuple[str, xr.DataArray]]:
    """Each named map as ``(label, image)``; an image named without a channel gives all its channels."""
    out = []
    for name in names:
        image, channel = parse_map_name(name)
        img = maps[image]
        if channel is None and "c" in img.dims and img.sizes["c"] > 1:
            for c in img.coords["c"].values:
                out.append((f"{image}:{c}", mi.select_channel(img, str(c), what=name)))
        else:
            out.append((name, mi.select_channel(img, channel, what=name)))
    return out


def _whole_maps(names: tuple[str, ...], maps: Mapping[str, xr.DataArray]) -> list[tuple[str, xr.DataArray]]:
    """Each named map as ``(label, image)``; an image named without a channel is passed whole (all its channels)."""
    return [(name, mi.select_channel(maps[parse_map_name(name)[0]], parse_map_name(name)[1], what=name))
            for name in names]


def _whole(image: xr.DataArray) -> xr.DataArray:
    return mi.like(image, np.ones(mi.shape(image), dtype=np.uint8), dims=mi.spatial_dims(image), units="")


def _named_input(name: str, maps: Mapping[str, xr.DataArray], masks: Mapping[str, xr.DataArray]) -> xr.DataArray:
    if name in masks:
        return masks[name]
    return _expand_maps((name,), maps)[0][1]


def _input_warnings(inputs: Mapping[str, Any]) -> list[str]:
    """The recorded warnings (``attrs["warnings"]``) of every input image, once each, in input order."""
    found: list[str] = []
    for img in inputs.values():
        if img is not None:
            found += list(getattr(img, "attrs", {}).get("warnings", []) or [])
    return list(dict.fromkeys(found))


def analysis_step(subject_id: str, analysis: AnalysisSpec, maps: Mapping[str, xr.DataArray],
                  masks: Mapping[str, xr.DataArray],
                  alternatives: list[tuple[Mapping[str, xr.DataArray], Mapping[str, xr.DataArray]]] | None = None,
                  ) -> dict[str, Any]:
    """Run one analysis of a subject: its family's ``evaluate`` for every map (or pair) and region.

    Returns ``rows`` (the tidy rows, labelled with subject, region, map and analysis) and
    ``results``: one entry per map/pair and region with the family's result (its images and figure
    data), for the figure and map-writing steps. ``alternatives`` are the same maps and masks
    resampled under transforms drawn from their registrations' uncertainty: every row then gets
    ``registration_lo``/``registration_hi``, the range of its value over the result and the
    alternatives (same family, same parameters).
    """
    out = _analysis_rows(subject_id, analysis, maps, masks)
    if alternatives:
        key = ["region", "map", "metric", "bin"]

        def keys(rows: list[dict[str, Any]]) -> list[tuple[str, ...]]:
            return [tuple(str(r.get(k, "")) for k in key) for r in rows]

        main_keys = keys(out["rows"])
        values = [np.array([r["value"] for r in out["rows"]], dtype=float)]
        for alt_maps, alt_masks in alternatives:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the result's own warnings are what the rows carry
                alt_rows = _analysis_rows(subject_id, analysis, alt_maps, alt_masks)["rows"]
            found = dict(zip(keys(alt_rows), (r["value"] for r in alt_rows)))
            values.append(np.array([found.get(k, np.nan) for k in main_keys], dtype=float))
        stack = np.vstack(values)
        lo, hi = np.nanmin(stack, axis=0), np.nanmax(stack, axis=0)
        for row, a, b in zip(out["rows"], lo, hi):
            row["registration_lo"], row["registration_hi"] = float(a), float(b)
            detail = row.get("detail")
            detail = detail if isinstance(detail, str) else ""
            row["detail"] = (detail + ", " if detail else "") + \
                f"registration range over {len(alternatives)} transform samples"
    return out


def _analysis_rows(subject_id: str, analysis: AnalysisSpec, maps: Mapping[str, xr.DataArray],
                   masks: Mapping[str, xr.DataArray]) -> dict[str, Any]:
    """The rows and results of one analysis over its maps and regions (see :func:`analysis_step`)."""
    family = family_named(analysis.type)
    regions = [r for m in analysis.masks for r in region_masks(m, masks[m])] if analysis.masks else [("all", None)]
    extra = {role: _named_input(name, maps, masks) for role, name in analysis.inputs.items()}
    if family.pairwise:
        combos = [((an, a), (bn, b)) for a_name, b_name in analysis.pairs
                  for (an, a), in [_expand_maps((a_name,), maps)] for (bn, b), in [_expand_maps((b_name,), maps)]]
        items = [(f"{an} ~ {bn}", {"a": a, "b": b}) for (an, a), (bn, b) in combos]
    else:
        expand = _whole_maps if family.whole_image else _expand_maps
        items = [(name, {"image": img}) for name, img in expand(analysis.maps, maps)]
    rows: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for region, mask in regions:
        for label, inputs in items:
            if "mask" in family.inputs:
                inputs = dict(inputs, mask=mask if mask is not None else _whole(next(iter(inputs.values()))))
            try:
                res = family.evaluate(dict(inputs, **extra), analysis.params)
            except Exception as exc:
                exc.add_note(f"while running analysis {analysis.name!r} ({analysis.type}) of {label} in {region}")
                raise
            table = res.rows.assign(subject=subject_id, region=region, map=label, analysis=analysis.name)
            if "channel" in table.columns:  # a whole-image family names the channel each row is about
                ch = table.pop("channel").fillna("").astype(str)
                table["map"] = [f"{label}:{c}" if c else label for c in ch]
            inherited = _input_warnings(dict(inputs, **extra))
            if inherited:  # what the loaders and registrations said about these inputs travels with the rows
                table["flags"] = ["; ".join([f for f in (flag, *inherited) if f]) for flag in table["flags"]]
            rows += table.to_dict("records")
            results.append({"map": label, "region": region, "result": res})
    return {"type": analysis.type, "name": analysis.name, "rows": rows, "results": results}


def registration_figures_step(subject: SubjectSpec, maps: dict, masks: dict, registrations: dict,
                              frames: list[str], formats: tuple[str, ...] = ("png",)) -> dict[str, bytes]:
    """Overlay figures of ``frames`` (maps over the reference anatomy) and each registration's figure, as PNG bytes.

    ``formats=("png", "svg")`` adds an SVG of each (a folder report offers it as a download).
    """
    frame_of = frames_of(subject)
    out: dict[str, bytes] = {}
    for frame in frames:
        layers = [(k, img.mean("t", keep_attrs=True) if "t" in img.dims else img)  # a series: its time-mean
                  for k, img in maps.items() if frame_of[k] == frame]
        contours = [m for k, m in masks.items() if mask_frames(subject)[k] == frame]
        fig = reg.overlay_figure(layers, contours, title=f"frame {frame}")
        out.update(figure_files(fig, f"overlay_{safe_name(frame)}", formats))
    for name, r in registrations.items():
        fig = reg.registration_figure(name, r["fixed_slice"], r["moving_slice"], r.get("method"), r.get("quality", {}),
                                      pixel_mm=r.get("pixel_mm"))
        out.update(figure_files(fig, f"registration_{safe_name(name)}", formats))
    return out


def analysis_figures_step(analysis: dict[str, Any], formats: tuple[str, ...] = ("png",)) -> dict[str, bytes]:
    """The figures of one analysis (its family's ``figure`` for every map and region), as PNG (and SVG) bytes."""
    family = family_named(analysis["type"])
    out: dict[str, bytes] = {}
    if family.figure is None:
        return out
    for item in analysis["results"]:
        title = item["map"] if item["region"] == "all" else f"{item['map']} in {item['region']}"
        labels = tuple(item["map"].split(" ~ ")) if family.pairwise else (item["map"],)
        for name, fig in family.figure(item["result"], title=title, labels=labels):
            fname = f"{family.name}_{safe_name(analysis['name'])}_{safe_name(item['map'])}_{safe_name(item['region'])}"
            out.update(figure_files(fig, f"{fname}_{safe_name(name)}", formats))
    return out


def analysis_table(analyses: list[dict[str, Any]]) -> Any:
    """The subject's tidy table: every analysis's rows in study order."""
    return results_frame([r for a in analyses for r in a["rows"]])
