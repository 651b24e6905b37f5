"""A subject's output folder: tables, maps per reference frame, transforms, figures, provenance, report.

Everything is written into a temporary folder beside the final one and swapped into place, so a
subject's folder is either complete (it holds ``_SUCCESS.json``, written last) or absent. Each
reference frame's OME-Zarr may be written by a task of its own into a staging folder that the
write step moves in.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from multiscale import image as mi
from multiscale import io
from multiscale import registration as reg
from multiscale._util import private_tempdir, replace_folder

from . import report
from .graph import chain_to_reference, frames_of, references_of
from .provenance import input_checksums, provenance_record, write_json
from .results import write_results
from .spec import Study, SubjectSpec, parse_map_name
from .steps import analysis_figures_step, analysis_table, registration_figures_step

__all__ = [
    "SUCCESS_FILE",
    "subject_folder",
    "subject_is_complete",
    "frame_maps",
    "frame_maps_step",
    "remove_staging",
    "write_subject_step",
]

#: marker written last into a complete subject folder
SUCCESS_FILE = "_SUCCESS.json"


def subject_folder(output: Path, subject_id: str) -> Path:
    """Where a subject's outputs go: ``<output>/subjects/<id>``."""
    return Path(output) / "subjects" / subject_id


def subject_is_complete(study: Study, subject: SubjectSpec, output: Path) -> bool:
    """True when the subject's folder holds a success marker for the same study settings and inputs."""
    marker = subject_folder(output, subject.id) / SUCCESS_FILE
    if not marker.is_file():
        return False
    try:
        rec = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    if rec.get("fingerprint") != study.subject_fingerprint(subject):
        return False
    if rec.get("inputs") != input_checksums(subject.input_files()):
        return False
    folder = marker.parent
    return all((folder / f).exists() for f in rec.get("outputs", []))


def _frame_stack(frame: str, maps: Mapping[str, xr.DataArray], frame_of: Mapping[str, str],
                 extra: list[tuple[str, xr.DataArray]]) -> xr.DataArray:
    """Every map of one reference frame as one multichannel float32 image with named channels."""
    layers: list[tuple[str, xr.DataArray]] = []
    ref = maps[frame]
    for key, img in maps.items():
        if frame_of[key] != frame:
            continue
        if "c" in img.dims:
            for c in img.coords["c"].values:
                layers.append((f"{key}:{c}", img.sel(c=c, drop=True)))
        else:
            layers.append((key, img))
    layers += extra
    ref2 = ref.isel(c=0, drop=True) if "c" in ref.dims else ref
    data = np.stack([np.asarray(layer.data, dtype=np.float32) for _, layer in layers])
    units = {name: str(layer.attrs.get("units", "") or "") for name, layer in layers}
    out = mi.spatial_image(
        data, spacing=mi.spacing(ref2), origin=mi.origin(ref2), direction=mi.direction(ref2),
        dims=("c",) + mi.spatial_dims(ref2), channels=[n for n, _ in layers],
        modality=str(ref.attrs.get("modality", "")), units="per channel", aspect="maps",
        name=f"{frame}_frame",
    )
    out.attrs["channel_units"] = units
    out.attrs["reference"] = frame
    return out


def frame_maps(subject: SubjectSpec, frame: str, maps: Mapping[str, xr.DataArray],
               masks: Mapping[str, xr.DataArray], analyses: list[dict[str, Any]]) -> xr.DataArray:
    """One reference frame's output stack: its maps, then its masks (``mask:<name>``) and the analyses' images.

    An analysis image ``name`` of map ``m`` becomes channel ``<name>:<m>``, or ``<name>:<c>:<m>``
    for each channel ``c`` of a multichannel image (a texture map's features).
    """
    frame_of = frames_of(subject)
    extra = [(f"mask:{k}", m) for k, m in masks.items() if frame_of[subject.masks[k].on] == frame]
    for a in analyses:
        for item in a["results"]:
            first = item["map"].split(" ~ ")[0]
            if frame_of[parse_map_name(first)[0]] != frame:
                continue
            for name, img in item["result"].images.items():
                if "c" in img.dims:
                    extra += [(f"{name}:{c}:{item['map']}", img.sel(c=c, drop=True)) for c in img.coords["c"].values]
                else:
                    extra.append((f"{name}:{item['map']}", img))
    return _frame_stack(frame, maps, frame_of, extra)


def _staging_prefix(subject_id: str, token: str) -> str:
    """Name prefix of a run's staging folders for one subject (beside the subject folders)."""
    return f".{subject_id}.staging-{token}."


def remove_staging(output: Path, subject_id: str, token: str) -> None:
    """Remove what a run (``token``) staged for a subject that then failed."""
    parent = subject_folder(output, subject_id).parent
    if parent.is_dir():
        for p in parent.glob(_staging_prefix(subject_id, token) + "*.tmp"):
            shutil.rmtree(p, ignore_errors=True)


def frame_maps_step(subject: SubjectSpec, frame: str, maps: dict, masks: dict, analyses: list,
                    output: Path, token: str) -> Path:
    """Write one reference frame's OME-Zarr into a staging folder beside the subject folders.

    Returns the store's path; the subject's write step moves it into the subject folder. A
    staging folder left by a subject that failed later is removed by the runner.
    """
    stage = private_tempdir(subject_folder(output, subject.id).parent, _staging_prefix(subject.id, token))
    try:
        store = stage / f"{frame}.ome.zarr"
        io.save(frame_maps(subject, frame, maps, masks, analyses), store)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return store


def write_subject_step(study: Study, subject: SubjectSpec, output: Path, maps: dict[str, xr.DataArray],
                       masks: dict[str, xr.DataArray], registrations: dict[str, dict[str, Any]],
                       analyses: list[dict[str, Any]], timings: dict[str, float],
                       inputs: dict[str, str], figures: dict[str, bytes] | None = None,
                       map_stores: dict[str, Path] | None = None) -> dict[str, Any]:
    """Write tables, maps, transforms, figures, provenance and the subject report; swap into place.

    ``figures`` are the subject's PNGs by file name, drawn here when not given; ``map_stores`` the
    OME-Zarr stores of reference frames already written by :func:`frame_maps_step` (moved in).
    """
    final = subject_folder(output, subject.id)
    tmp = private_tempdir(final.parent, f".{subject.id}.")
    t0 = time.perf_counter()
    try:
        table = analysis_table(analyses)
        write_results(table, tmp)
        outputs = ["results.parquet", "results.csv"]
        (tmp / "transforms").mkdir()
        for name, r in registrations.items():
            r["transform"].save(tmp / "transforms" / f"{name}.tfm")
            outputs.append(f"transforms/{name}.tfm")
        for image in subject.images:
            chain = chain_to_reference(subject, image)
            if len(chain) > 1:
                composed = reg.compose_chain([registrations[e.name]["transform"] for e in chain])
                fname = f"transforms/{image}_to_{chain[-1].fixed_image}.tfm"
                composed.save(tmp / fname)
                outputs.append(fname)
        (tmp / "maps").mkdir()
        for frame in references_of(subject):
            target = tmp / "maps" / f"{frame}.ome.zarr"
            staged = (map_stores or {}).get(frame)
            if staged is not None:  # written by the frame's own task: move it in (same folder tree)
                os.replace(staged, target)
                shutil.rmtree(Path(staged).parent, ignore_errors=True)
            else:
                io.save(frame_maps(subject, frame, maps, masks, analyses), target)
            outputs.append(f"maps/{frame}.ome.zarr")
        reg_summary = {}
        for name, r in registrations.items():
            reg_summary[name] = {"edge": r["edge"], "method": r["method"], "quality": r["quality"],
                                 "truth": r.get("truth"), "info": getattr(r["transform"], "info", {})}
            if r.get("truth_transform") is not None:
                reg_summary[name]["recovered_parameters"] = reg.linear_summary(r["transform"])
                reg_summary[name]["true_parameters"] = reg.linear_summary(r["truth_transform"])
        write_json(reg_summary, tmp / "registration.json")
        outputs.append("registration.json")
        if figures is None:
            figures = registration_figures_step(subject, maps, masks, registrations, list(references_of(subject)))
            for a in analyses:
                figures.update(analysis_figures_step(a))
        (tmp / "figures").mkdir()
        for fname, png in figures.items():
            (tmp / "figures" / fname).write_bytes(png)
            outputs.append(f"figures/{fname}")
        timings = dict(timings)
        timings[f"write-{subject.id}"] = time.perf_counter() - t0
        prov = provenance_record(
            {"subject": subject, "analyses": list(study.analyses), "study_file": str(study.path)},
            inputs, timings, subject=subject.id, study=study.name,
        )
        write_json(prov, tmp / "provenance.json")
        outputs.append("provenance.json")
        html = report.subject_report_html(study, subject, table, figures, reg_summary, timings)
        (tmp / "report.html").write_text(html, encoding="utf-8")
        outputs.append("report.html")
        write_json({"subject": subject.id, "fingerprint": study.subject_fingerprint(subject), "inputs": inputs,
                    "outputs": outputs, "timings_s": timings}, tmp / SUCCESS_FILE)
        replace_folder(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"subject": subject.id, "folder": str(final), "rows": len(table), "timings": timings}
