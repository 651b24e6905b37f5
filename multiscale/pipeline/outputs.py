"""A subject's output folder: tables, maps per reference frame, transforms, figures, provenance, report.

Everything is written into a temporary folder beside the final one and swapped into place, so a
subject's folder is either complete (it holds ``_SUCCESS.json``, written last) or absent. Each
reference frame's OME-Zarr may be written by a task of its own into a staging folder that the
write step moves in.

``_SUCCESS.json`` records the study fingerprint of the subject, the checksums of its input files,
every output with its size in bytes, and the sha256 of ``results.parquet``:
:func:`subject_status` checks all of them, so a stale or truncated folder is never taken as done.

The output folder itself is claimed by :func:`claim_output` at the start of a run: it must be
writable, hold no results of someone else (a folder multiscale wrote carries
``.multiscale-output.json``), and no other run may be writing into it (``.multiscale-run.lock``);
what a killed run left (a subject folder moved aside mid-swap, staging folders) is put back or
removed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from multiscale import image as mi
from multiscale import io
from multiscale import registration as reg
from multiscale._util import (
    check_writable,
    private_tempdir,
    recover_replaced_folders,
    replace_folder,
    write_error_reason,
    write_json_atomic,
)
from multiscale.errors import StudyError

from . import report
from .graph import chain_to_reference, frames_of, mask_frames, references_of
from .provenance import file_sha256, input_checksums, provenance_record, write_json
from .results import write_results
from .spec import Study, SubjectSpec, parse_map_name
from .steps import analysis_figures_step, analysis_table, registration_figures_step, safe_name

__all__ = [
    "SUCCESS_FILE",
    "OUTPUT_MARKER",
    "RUN_LOCK",
    "COMPLETE",
    "subject_folder",
    "subject_status",
    "subject_is_complete",
    "claim_output",
    "release_output",
    "gather_warnings",
    "explain_write_error",
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


#: what :func:`subject_status` says of a folder whose outputs are complete and current
COMPLETE = "complete"


def _sizes(folder: Path, outputs: list[str]) -> dict[str, int]:
    """Size in bytes of each output (a folder: the sum over the files under it)."""
    out = {}
    for name in outputs:
        p = folder / name
        if p.is_dir():
            out[name] = sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        else:
            out[name] = p.stat().st_size
    return out


def subject_status(study: Study, subject: SubjectSpec, output: Path,
                   inputs: Mapping[str, str] | None = None) -> str:
    """Whether a subject's folder holds outputs of the current settings and inputs: :data:`COMPLETE`, or why not.

    Checked: the success marker exists and parses, its fingerprint is the study's for the subject,
    its input checksums are those of the files now (``inputs`` when given, else computed), every
    output it lists exists with the size it had when written, and ``results.parquet`` has its
    recorded sha256. The reasons start with ``missing``, ``stale`` or ``corrupt``.
    """
    folder = subject_folder(output, subject.id)
    marker = folder / SUCCESS_FILE
    if not marker.is_file():
        return "missing: no outputs" if not folder.exists() else "missing: no success marker (interrupted write)"
    try:
        rec = json.loads(marker.read_text())
    except (OSError, ValueError):
        return "corrupt: unreadable success marker"
    if not isinstance(rec, dict):
        return "corrupt: unreadable success marker"
    if rec.get("fingerprint") != study.subject_fingerprint(subject):
        return "stale: study settings changed since these outputs were written"
    now = dict(inputs) if inputs is not None else input_checksums(subject.input_files())
    if rec.get("inputs") != now:
        changed = sorted(k for k in set(now) | set(rec.get("inputs") or {})
                         if now.get(k) != (rec.get("inputs") or {}).get(k))
        return f"stale: input files changed since these outputs were written ({', '.join(changed)})"
    sizes = rec.get("sizes")
    if not isinstance(sizes, dict):
        return "stale: written by an older multiscale (no output sizes recorded)"
    for name in rec.get("outputs", []):
        p = folder / name
        if not p.exists():
            return f"corrupt: {name} is missing"
        if name in sizes:
            size = _sizes(folder, [name])[name]
            if size != sizes[name]:
                return f"corrupt: {name} has {size} bytes, {sizes[name]} when written (truncated or changed)"
    expected = (rec.get("sha256") or {}).get("results.parquet")
    if expected is None or file_sha256(folder / "results.parquet") != expected:
        return "corrupt: results.parquet differs from what was written (sha256)"
    return COMPLETE


def subject_is_complete(study: Study, subject: SubjectSpec, output: Path,
                        inputs: Mapping[str, str] | None = None) -> bool:
    """True when the subject's folder holds complete outputs of the same study settings and inputs.

    See :func:`subject_status` for what is checked.
    """
    return subject_status(study, subject, output, inputs) == COMPLETE


#: written into an output folder on its first use by multiscale: the folder's results are ours
OUTPUT_MARKER = ".multiscale-output.json"
#: held while a run writes into an output folder
RUN_LOCK = ".multiscale-run.lock"
#: what multiscale writes at the top of an output folder (never overwritten when not ours)
_OURS = ("results.csv", "results.parquet", "subjects.csv", "report.html", "provenance.json", "subjects")
#: names of what a killed run may leave at the top of an output folder
_LEFTOVER = re.compile(r"^\.(?:[^/]*\.tmp-[0-9a-f]{8}.*|cohort-.*\.tmp|multiscale-probe-[0-9a-f]{8})$")


def _written_by_multiscale(out: Path) -> bool:
    """An output folder of a multiscale older than the marker: its provenance.json is ours."""
    try:
        prov = json.loads((out / "provenance.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(prov, dict) and "multiscale" in (prov.get("packages") or {}) and "statuses" in prov


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _take_lock(out: Path, token: str) -> None:
    lock = out / RUN_LOCK
    me = {"pid": os.getpid(), "host": socket.gethostname(), "token": token,
          "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            try:
                held = json.loads(lock.read_text())
            except (OSError, ValueError):
                held = {}
            pid, host = held.get("pid"), held.get("host")
            if isinstance(pid, int) and host == me["host"] and not _pid_alive(pid):
                lock.unlink(missing_ok=True)  # a run that was killed: take over
                continue
            if not held and time.time() - lock.stat().st_mtime > 60:
                lock.unlink(missing_ok=True)  # unreadable and old
                continue
            raise StudyError(
                f"{out}: another multiscale run (pid {pid} on {host}, started {held.get('started')}) is "
                f"writing into this output folder; wait for it, or choose another --output. If no run is "
                f"active, delete {lock}") from None
        with os.fdopen(fd, "w") as fh:
            json.dump(me, fh)
        return


def claim_output(output: Path, token: str, force: bool = False, study_name: str = "") -> list[str]:
    """Make ``output`` ready for a run (``token``); returns one line per thing repaired or removed.

    - the folder is created and must be writable (a probe file is written and removed);
    - a folder holding results, a report or provenance that multiscale did not write (no
      :data:`OUTPUT_MARKER`) is refused unless ``force``;
    - the run takes :data:`RUN_LOCK` (refused while another live run holds it) and marks the folder;
    - a subject folder that a killed run moved aside mid-swap is put back, and the staging and
      temporary files of dead runs are removed.

    Raises
    ------
    StudyError
        The folder is someone else's, another run writes into it, or it cannot be written.
    """
    out = Path(output)
    try:
        check_writable(out)
        if (out / "subjects").is_dir():
            check_writable(out / "subjects")
    except OSError as exc:
        reason = write_error_reason(exc) or "cannot write"
        raise StudyError(f"{out}: output folder is not writable ({reason}: {exc.strerror or exc}); free space "
                         f"there, fix its permissions, or choose another folder with --output") from exc
    marker = out / OUTPUT_MARKER
    if not marker.is_file():
        theirs = [n for n in _OURS if (out / n).exists()]
        if theirs and not force and not _written_by_multiscale(out):
            raise StudyError(
                f"{out}: output folder already holds {', '.join(theirs)} that multiscale did not write "
                f"(no {OUTPUT_MARKER}); refusing to overwrite them. Choose another folder with --output "
                f"(or the study's 'output'), or pass --force (force=True) to write over them")
    _take_lock(out, token)
    try:
        if not marker.is_file():
            write_json_atomic({"written_by": "multiscale", "study": study_name,
                               "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, marker)
        done = []
        for p in out.iterdir():
            if _LEFTOVER.match(p.name):
                _remove(p)
                done.append(f"removed {p.name}")
        subjects = out / "subjects"
        if subjects.is_dir():
            done += recover_replaced_folders(subjects)
            for p in subjects.iterdir():
                if p.name.startswith(".") and p.name.endswith(".tmp"):
                    _remove(p)
                    done.append(f"removed subjects/{p.name}")
    except BaseException:
        release_output(out, token)
        raise
    return done


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def release_output(output: Path, token: str) -> None:
    """Release the run lock that :func:`claim_output` took for ``token`` (a lock of another run is left)."""
    lock = Path(output) / RUN_LOCK
    try:
        held = json.loads(lock.read_text())
    except (OSError, ValueError):
        return
    if held.get("token") == token and held.get("pid") == os.getpid():
        lock.unlink(missing_ok=True)


def explain_write_error(exc: BaseException, what: str, folder: Path) -> None:
    """Add a note naming ``folder`` and the reason (disk full, read-only) to an OSError of a write."""
    reason = write_error_reason(exc)
    if reason is not None:
        exc.add_note(f"{reason} while writing {what} into {folder}: free space there or make it writable, or "
                     f"choose another output folder (--output); nothing half-written was left and the other "
                     f"subjects' folders are untouched")


def _image_warnings(img: Any) -> list[str]:
    w = getattr(img, "attrs", {}).get("warnings") if img is not None else None
    if not w:
        return []
    return [str(w)] if isinstance(w, str) else [str(x) for x in w]


def gather_warnings(maps: Mapping[str, Any], masks: Mapping[str, Any],
                    registrations: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The warnings the subject's images, masks and registrations carry, each prefixed with where from.

    An image's are in ``attrs["warnings"]`` (set by its loader and kept through resampling); a
    registration's in its ``"warnings"`` entry or its transform's ``info["warnings"]``. Repeats are
    dropped, the order kept.
    """
    out: list[str] = []
    for kind, group in (("image", maps), ("mask", masks)):
        for key, img in group.items():
            out += [f"{kind} {key}: {w}" for w in _image_warnings(img)]
    for name, r in registrations.items():
        ws = list(r.get("warnings") or [])
        ws += list((getattr(r.get("transform"), "info", None) or {}).get("warnings") or [])
        out += [f"registration {name}: {w}" for w in ([ws] if isinstance(ws, str) else ws)]
    return list(dict.fromkeys(out))


def _flag_warnings(table: Any) -> list[str]:
    """The distinct row flags of a subject's table, as ``analysis <name> (<map> in <region>): <flags>``."""
    if table is None or "flags" not in table or table.empty:
        return []
    flagged = table[table["flags"].astype(str) != ""]
    out = [f"analysis {a} ({m} in {r}): {f}" for a, m, r, f in
           flagged[["analysis", "map", "region", "flags"]].drop_duplicates().itertuples(index=False)]
    return list(dict.fromkeys(out))


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
    # a time series is stored as its time-mean (the frames stay in the input file; the fitted maps are layers)
    layers = [(f"{n}:time_mean", x.mean("t", keep_attrs=True)) if "t" in x.dims else (n, x) for n, x in layers]
    ref2 = ref.isel(c=0, drop=True) if "c" in ref.dims else ref
    ref2 = ref2.isel(t=0, drop=True) if "t" in ref2.dims else ref2
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
    mask_frame = mask_frames(subject)
    extra = [(f"mask:{k}", m) for k, m in masks.items() if mask_frame[k] == frame]
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
    parent = subject_folder(output, subject.id).parent
    try:
        stage = private_tempdir(parent, _staging_prefix(subject.id, token))
    except OSError as exc:
        explain_write_error(exc, f"the {frame} maps of subject {subject.id!r}", parent)
        raise
    try:
        store = stage / f"{frame}.ome.zarr"
        io.save(frame_maps(subject, frame, maps, masks, analyses), store)
    except BaseException as exc:
        shutil.rmtree(stage, ignore_errors=True)
        explain_write_error(exc, f"the {frame} maps of subject {subject.id!r}", stage.parent)
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
    try:
        tmp = private_tempdir(final.parent, f".{subject.id}.")
    except OSError as exc:
        explain_write_error(exc, f"the outputs of subject {subject.id!r}", final.parent)
        raise
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
            fmt = study.figure_formats
            figures = registration_figures_step(subject, maps, masks, registrations, list(references_of(subject)), fmt)
            for a in analyses:
                figures.update(analysis_figures_step(a, fmt))
        (tmp / "figures").mkdir()
        for fname, png in figures.items():
            (tmp / "figures" / fname).write_bytes(png)
            outputs.append(f"figures/{fname}")
        for a in analyses:  # per-object tables (one row per cell, spot...) beside the results
            for item in a["results"]:
                for tname, frame in (getattr(item["result"], "tables", None) or {}).items():
                    fname = f"tables/{safe_name(a['name'])}_{safe_name(item['map'])}_{safe_name(item['region'])}_{safe_name(tname)}.parquet"
                    (tmp / "tables").mkdir(exist_ok=True)
                    frame.to_parquet(tmp / fname, index=False)
                    outputs.append(fname)
        timings = dict(timings)
        timings[f"write-{subject.id}"] = time.perf_counter() - t0
        warnings = gather_warnings(maps, masks, registrations)
        prov = provenance_record(
            {"subject": subject, "analyses": list(study.analyses), "study_file": str(study.path)},
            inputs, timings, subject=subject.id, study=study.name,
            warnings=warnings, row_flags=_flag_warnings(table),
        )
        write_json(prov, tmp / "provenance.json")
        outputs.append("provenance.json")
        html = report.subject_report_html(study, subject, table, figures, reg_summary, timings, warnings=warnings)
        (tmp / "report.html").write_text(html, encoding="utf-8")
        outputs.append("report.html")
        write_json({"subject": subject.id, "fingerprint": study.subject_fingerprint(subject), "inputs": inputs,
                    "outputs": outputs, "sizes": _sizes(tmp, outputs),
                    "sha256": {"results.parquet": file_sha256(tmp / "results.parquet")},
                    "timings_s": timings}, tmp / SUCCESS_FILE)
        replace_folder(tmp, final)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        explain_write_error(exc, f"the outputs of subject {subject.id!r}", final.parent)
        raise
    return {"subject": subject.id, "folder": str(final), "rows": len(table), "timings": timings, "inputs": inputs}
