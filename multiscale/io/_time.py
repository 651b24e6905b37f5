"""Frame times, echo times and b-values for the loaders: what the ``t`` dim of an image means.

The ``t`` dim of a loaded image carries, as coords along ``t``:

* ``t``: frame **mid-times in seconds** (from the first frame's start, or from the injection when the
  header records it), when the file says when each frame was acquired;
* ``frame_start`` and ``frame_duration`` (s) where known;
* ``echo_time`` (s) for multi-echo MRI, ``b_value`` (s/mm^2) for diffusion series: these series have
  no frame times, so their ``t`` has no ``t`` coord and a fit that needs times refuses them by name;
* ``decay_factor`` for dynamic PET (DICOM DecayFactor), with ``attrs["decay_correction"]``.

Sources: BIDS sidecars (``FrameTimesStart``/``FrameDuration`` of PET-BIDS, ``RepetitionTime`` for a
volume series, ``EchoTime`` lists), FSL ``.bval`` files, DICOM (``FrameReferenceTime``,
``ActualFrameDuration``, ``AcquisitionTime``, ``TriggerTime``, ``EchoTime``, ``DiffusionBValue``,
``DecayCorrection``), OME-XML ``Plane DeltaT``/``TimeIncrement``.

Examples
--------
>>> c, a = time_coords(3, starts=[0, 10, 20], durations=[10, 10, 30])
>>> c["t"].tolist(), a["time_source"]
([5.0, 15.0, 35.0], 'frame starts and durations')
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._common import fail, warn

__all__ = [
    "time_coords",
    "sidecar_path",
    "read_sidecar",
    "read_bval",
    "nifti_time_coords",
    "dicom_time_coords",
    "ome_time_coords",
    "assign_time",
    "write_time_sidecar",
    "FrameView",
    "frame_header",
]


def time_coords(
    n: int,
    *,
    starts: Sequence[float] | None = None,
    durations: Sequence[float] | None = None,
    mids: Sequence[float] | None = None,
    echo_times: Sequence[float] | None = None,
    b_values: Sequence[float] | None = None,
    source: str = "",
) -> tuple[dict[str, np.ndarray], dict]:
    """Coords along ``t`` (name -> (n,) array) and attrs describing them; checks lengths and order."""
    coords: dict[str, np.ndarray] = {}
    attrs: dict[str, Any] = {}

    def vec(v: Any, what: str) -> np.ndarray:
        a = np.asarray(v, dtype=float).reshape(-1)
        if a.size != n:
            raise ValueError(f"{what} has {a.size} values for {n} frames")
        return a

    if starts is not None:
        s = vec(starts, "frame starts")
        coords["frame_start"] = s
        if durations is not None:
            d = vec(durations, "frame durations")
            coords["frame_duration"] = d
            coords["t"] = s + d / 2.0
            attrs["time_source"] = source or "frame starts and durations"
        else:
            coords["t"] = s
            attrs["time_source"] = source or "frame starts"
    elif mids is not None:
        coords["t"] = vec(mids, "frame times")
        if durations is not None:
            coords["frame_duration"] = vec(durations, "frame durations")
        attrs["time_source"] = source or "frame times"
    if "t" in coords and np.any(np.diff(coords["t"]) <= 0):
        raise ValueError(f"frame times {coords['t'].tolist()[:6]}... do not increase")
    if echo_times is not None:
        coords["echo_time"] = vec(echo_times, "echo times")
        attrs.setdefault("time_source", source or "echo times")
    if b_values is not None:
        coords["b_value"] = vec(b_values, "b-values")
        attrs.setdefault("time_source", source or "b-values")
    return coords, attrs


def assign_time(image: Any, coords: dict[str, np.ndarray], attrs: dict[str, Any]) -> Any:
    """``image`` with ``coords`` along its ``t`` dim and ``attrs`` merged (no-op without a ``t`` dim)."""
    if "t" not in getattr(image, "dims", ()) or not coords:
        return image
    out = image.assign_coords({k: ("t", np.asarray(v)) for k, v in coords.items()})
    out.attrs.update(attrs)
    return out


# ---------------------------------------------------------------------------------------------
# NIfTI: BIDS sidecar and .bval
# ---------------------------------------------------------------------------------------------


def _stem(path: Path) -> Path:
    name = path.name
    for suf in (".nii.gz", ".nii", ".gz"):
        if name.endswith(suf):
            return path.with_name(name[: -len(suf)])
    return path.with_suffix("")


def sidecar_path(path: str | Path, suffix: str = ".json") -> Path:
    """The BIDS sidecar (or ``.bval``/``.bvec``) beside a NIfTI file: ``sub-1_pet.nii.gz`` -> ``sub-1_pet.json``.

    Examples
    --------
    >>> sidecar_path("a/sub-1_pet.nii.gz").as_posix()
    'a/sub-1_pet.json'
    """
    p = _stem(Path(path))
    return p.with_name(p.name + suffix)


def read_sidecar(path: str | Path) -> dict[str, Any] | None:
    """The BIDS JSON sidecar of ``path`` (None when there is none); a broken one is a :class:`LoadError`."""
    side = sidecar_path(path)
    if not side.is_file():
        return None
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise fail(side, "JSON", f"cannot be parsed ({exc})", "fix or remove the sidecar") from exc
    if not isinstance(data, dict):
        raise fail(side, "JSON", "is not an object", "a BIDS sidecar is a JSON object of fields")
    return data


def read_bval(path: str | Path) -> np.ndarray | None:
    """b-values (s/mm^2) from the FSL ``.bval`` file beside ``path`` (None when there is none)."""
    side = sidecar_path(path, ".bval")
    if not side.is_file():
        return None
    try:
        return np.asarray(side.read_text().split(), dtype=float)
    except ValueError as exc:
        raise fail(side, "b-values", f"not a list of numbers ({exc})", "write one number per volume") from exc


def nifti_time_coords(path: str | Path, n: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Coords for the ``n`` volumes of a 4-D NIfTI from its BIDS sidecar and ``.bval`` file.

    ``FrameTimesStart`` (+ ``FrameDuration``) give frame mid-times; otherwise ``RepetitionTime`` (the
    volume repetition time, s) gives ``t_i = i TR + TR / 2`` (start ``i TR``, duration ``TR``).
    ``EchoTime`` as a list of ``n`` values gives ``echo_time``; a ``.bval`` file gives ``b_value``.
    A 4-D file with none of these gets no ``t`` coord and a warning naming the fields to add.
    """
    path = Path(path)
    side = read_sidecar(path)
    bvals = read_bval(path)
    kw: dict[str, Any] = {}
    attrs: dict[str, Any] = {}
    where = sidecar_path(path)
    if side:
        starts = side.get("FrameTimesStart")
        if starts is not None:
            durs = side.get("FrameDuration")
            kw.update(starts=starts, durations=durs, source=f"{where.name}: FrameTimesStart/FrameDuration")
        elif side.get("RepetitionTime") is not None and bvals is None and not isinstance(side.get("EchoTime"), list):
            tr = float(side["RepetitionTime"])
            if tr <= 0:
                raise fail(where, "RepetitionTime", f"{tr} is not a positive time (s)", "write the volume TR in s")
            kw.update(starts=np.arange(n) * tr, durations=np.full(n, tr), source=f"{where.name}: RepetitionTime")
        te = side.get("EchoTime")
        if isinstance(te, list):
            kw["echo_times"] = te
        for key in (
            "ImageDecayCorrected",
            "ImageDecayCorrectionTime",
            "DecayCorrectionFactor",
            "TracerRadionuclide",
            "InjectionStart",
            "Units",
        ):
            if key in side:
                attrs[f"bids_{key}"] = side[key]
    if bvals is not None:
        kw["b_values"] = bvals
    try:
        coords, more = time_coords(n, **kw)
    except ValueError as exc:
        raise fail(
            where if side else sidecar_path(path, ".bval"),
            "frames",
            str(exc),
            f"give one value per volume ({n} volumes)",
        ) from exc
    attrs.update(more)
    if "t" not in coords and "echo_time" not in coords and "b_value" not in coords:
        warn(
            f"{path}: {n} volumes but no frame times: no BIDS sidecar {where.name} with FrameTimesStart/"
            "FrameDuration or RepetitionTime (and no .bval); the t dim has no times - add the sidecar or pass "
            "times= to the analysis"
        )
    return coords, attrs


def write_time_sidecar(image: Any, path: str | Path) -> Path | None:
    """Write the ``t`` coords of ``image`` beside the NIfTI ``path``: a BIDS JSON sidecar and a ``.bval``.

    ``FrameTimesStart``/``FrameDuration`` (s) when the image has frame times, ``EchoTime`` (s) for echoes;
    b-values go to ``<stem>.bval``. Returns the sidecar written (None when there was nothing to write).
    """
    from multiscale._util import atomic_write

    if "t" not in getattr(image, "dims", ()):
        return None
    side: dict[str, Any] = {}
    co = image.coords
    if "t" in co:
        t = np.asarray(co["t"].values, dtype=float)
        if "frame_duration" in co:
            d = np.asarray(co["frame_duration"].values, dtype=float)
        else:
            d = np.diff(t, append=t[-1] + (t[-1] - t[-2] if t.size > 1 else 1.0))
        start = np.asarray(co["frame_start"].values, float) if "frame_start" in co else t - d / 2
        side.update(FrameTimesStart=start.tolist(), FrameDuration=d.tolist())
    if "echo_time" in co:
        side["EchoTime"] = np.asarray(co["echo_time"].values, float).tolist()
    written = None
    if side:
        target = sidecar_path(path)
        text = json.dumps(side, indent=1)
        written = atomic_write(target, lambda tmp: Path(tmp).write_text(text), suffix=".json")
    if "b_value" in co:
        bv = " ".join(f"{v:g}" for v in np.asarray(co["b_value"].values, float)) + "\n"
        atomic_write(sidecar_path(path, ".bval"), lambda tmp: Path(tmp).write_text(bv), suffix=".bval")
    return written


# ---------------------------------------------------------------------------------------------
# DICOM
# ---------------------------------------------------------------------------------------------


def _seconds_of_day(value: Any) -> float | None:
    s = str(value or "").strip()
    if len(s) < 6 or not s[:6].isdigit():
        return None
    return int(s[:2]) * 3600 + int(s[2:4]) * 60 + float(s[4:] or 0)


def _num(h: Any, keyword: str) -> float | None:
    v = h.get(keyword, None)
    if v is None or v == "":
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _bvalue(h: Any) -> float | None:
    v = _num(h, "DiffusionBValue")
    if v is None:
        seq = h.get("MRDiffusionSequence", None)
        if seq:
            v = _num(seq[0], "DiffusionBValue")
    if v is None and (0x0019, 0x100C) in h:  # Siemens private b-value
        try:
            v = float(h[0x0019, 0x100C].value)
        except (TypeError, ValueError):
            v = None
    return v


class FrameView:
    """One frame of an enhanced multi-frame DICOM seen as a header: per-frame functional groups first.

    ``AcquisitionTime`` comes from FrameContentSequence's ``FrameAcquisitionDateTime``, ``ActualFrameDuration``
    from its ``FrameAcquisitionDuration`` (ms), ``EchoTime`` from MREchoSequence's ``EffectiveEchoTime``,
    ``DiffusionBValue`` from MRDiffusionSequence; anything else from the dataset itself.
    """

    _MAP = {
        "AcquisitionTime": ("FrameContentSequence", "FrameAcquisitionDateTime"),
        "ActualFrameDuration": ("FrameContentSequence", "FrameAcquisitionDuration"),
        "EchoTime": ("MREchoSequence", "EffectiveEchoTime"),
        "DiffusionBValue": ("MRDiffusionSequence", "DiffusionBValue"),
    }

    def __init__(self, ds: Any, frame: int):
        self.ds, self.frame = ds, frame

    def _group(self, seq: str, item: str) -> Any:
        per = self.ds.get("PerFrameFunctionalGroupsSequence")
        if per is not None and self.frame < len(per) and seq in per[self.frame]:
            return per[self.frame][seq][0].get(item, None)
        shared = self.ds.get("SharedFunctionalGroupsSequence")
        if shared and seq in shared[0]:
            return shared[0][seq][0].get(item, None)
        return None

    def get(self, keyword: str, default: Any = None) -> Any:
        if keyword in self._MAP:
            v = self._group(*self._MAP[keyword])
            if v is not None:
                return str(v)[8:] if keyword == "AcquisitionTime" else v
        return self.ds.get(keyword, default)

    def __contains__(self, key: Any) -> bool:
        return key in self.ds


def frame_header(ds: Any, frame: int | None) -> Any:
    """``ds`` itself, or a :class:`FrameView` of frame ``frame`` of an enhanced multi-frame file."""
    if frame is None or "PerFrameFunctionalGroupsSequence" not in ds:
        return ds
    return FrameView(ds, frame)


def dicom_time_coords(headers: Sequence[Any], where: Any = "") -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Coords for the frames of a DICOM series from one header per frame (in frame order).

    * PET: ``ActualFrameDuration`` (ms) and the frame's ``AcquisitionTime``, from the injection
      (``RadiopharmaceuticalStartTime``) when recorded, else from the first frame; ``FrameReferenceTime``
      (ms) is kept as ``frame_reference_time`` (s); ``DecayFactor`` as ``decay_factor`` and
      ``DecayCorrection`` in attrs.
    * multi-echo: distinct ``EchoTime`` (ms) -> ``echo_time`` (s); diffusion: ``DiffusionBValue`` -> ``b_value``.
    * other dynamic series: ``TriggerTime`` (ms) or ``AcquisitionTime`` -> ``t``.
    """
    n = len(headers)
    if n < 2:
        return {}, {}
    h0 = headers[0]
    kw: dict[str, Any] = {}
    attrs: dict[str, Any] = {}
    coords_extra: dict[str, np.ndarray] = {}
    tes = [_num(h, "EchoTime") for h in headers]
    bvs = [_bvalue(h) for h in headers]
    if all(v is not None for v in bvs) and len(set(bvs)) > 1:
        kw["b_values"] = bvs
    elif all(v is not None for v in tes) and len(set(tes)) > 1:
        kw["echo_times"] = np.asarray(tes) / 1000.0
    else:
        durs = [_num(h, "ActualFrameDuration") for h in headers]
        acq = [_seconds_of_day(h.get("AcquisitionTime", "")) for h in headers]
        trig = [_num(h, "TriggerTime") for h in headers]
        ref = [_num(h, "FrameReferenceTime") for h in headers]
        zero = None
        seq = h0.get("RadiopharmaceuticalInformationSequence", None)
        if seq:
            zero = _seconds_of_day(seq[0].get("RadiopharmaceuticalStartTime", ""))
            if zero is not None:
                attrs["time_origin"] = "injection (RadiopharmaceuticalStartTime)"
        if all(v is not None for v in acq) and all(v is not None for v in durs):
            origin = zero if zero is not None else acq[0]
            if zero is None:
                attrs["time_origin"] = "first frame's AcquisitionTime"
            starts = (np.asarray(acq) - origin) % 86400.0
            kw.update(
                starts=starts, durations=np.asarray(durs) / 1000.0, source="DICOM AcquisitionTime + ActualFrameDuration"
            )
        elif all(v is not None for v in ref):
            kw.update(
                mids=np.asarray(ref) / 1000.0,
                durations=None if any(v is None for v in durs) else np.asarray(durs) / 1000.0,
                source="DICOM FrameReferenceTime",
            )
        elif all(v is not None for v in trig) and len(set(trig)) == n:
            kw.update(mids=np.asarray(trig) / 1000.0, source="DICOM TriggerTime")
        elif all(v is not None for v in acq) and len(set(acq)) == n:
            kw.update(starts=(np.asarray(acq) - acq[0]) % 86400.0, source="DICOM AcquisitionTime")
            attrs["time_origin"] = "first frame's AcquisitionTime"
        if all(v is not None for v in ref):
            coords_extra["frame_reference_time"] = np.asarray(ref) / 1000.0
        dec = [_num(h, "DecayFactor") for h in headers]
        if all(v is not None for v in dec):
            coords_extra["decay_factor"] = np.asarray(dec)
        corr = str(h0.get("DecayCorrection", "") or "")
        if corr:
            attrs["decay_correction"] = corr
    try:
        coords, more = time_coords(n, **kw)
    except ValueError as exc:
        raise fail(
            where, "frame timing", str(exc), "the series' frames are not in time order; check the files"
        ) from exc
    if not coords:
        warn(
            f"{where}: {n} frames per position but no frame times (no ActualFrameDuration/AcquisitionTime, "
            "FrameReferenceTime or TriggerTime); the t dim has no times - pass times= to the analysis"
        )
    coords.update(coords_extra if "t" in coords or coords_extra else {})
    attrs.update(more)
    return coords, attrs


# ---------------------------------------------------------------------------------------------
# OME-XML
# ---------------------------------------------------------------------------------------------


def ome_time_coords(
    pixels: dict[str, str], plane_delta_t: Sequence[float | None], n: int, where: Any = ""
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Frame times (s) of a time-lapse from OME ``Plane DeltaT`` (one per T index, already in s) or ``TimeIncrement``."""
    unit = pixels.get("TimeIncrementUnit", "s")
    scale = {"s": 1.0, "ms": 1e-3, "µs": 1e-6, "us": 1e-6, "min": 60.0, "h": 3600.0}.get(unit, None)
    if n < 2:
        return {}, {}
    if plane_delta_t and len(plane_delta_t) == n and all(v is not None for v in plane_delta_t):
        vals = np.asarray(plane_delta_t, dtype=float)
        if len(set(vals.tolist())) == n:
            return time_coords(n, mids=vals, source="OME Plane DeltaT")
    inc = pixels.get("TimeIncrement")
    if inc is not None and scale is not None and float(inc) > 0:
        return time_coords(n, mids=np.arange(n) * float(inc) * scale, source="OME Pixels TimeIncrement")
    warn(f"{where}: {n} time points but no OME DeltaT/TimeIncrement; the t dim has no times")
    return {}, {}
