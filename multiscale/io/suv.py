"""PET standardised uptake values from DICOM headers (QIBA rules; IBSI-SUV manual, Vácha et al.).

The main function, :func:`suv_factors`, returns one factor per slice: the number that multiplies
the slice's *rescaled* value (``stored x RescaleSlope``) to give the SUV asked for. The rules
(summarised in ``STANDARDS.md``) cover every stored ``Units`` (BQML, GML with any SUVType, CM2ML,
CNTS with Philips private factors, CPS), every ``DecayCorrection`` (START, ADMIN, NONE) and the
usual header defects (weight in grams, dose in MBq, injection before midnight, post-processed
series times, GE's private scan time).

Body-size factors (W in kg, H in cm): :func:`lean_body_mass`, :func:`ideal_body_weight`,
:func:`body_surface_area`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from multiscale.errors import SUVError

from ._common import warn

__all__ = [
    "SUVError",
    "suv_factors",
    "suv_factor",
    "suv_units",
    "lean_body_mass",
    "ideal_body_weight",
    "body_surface_area",
    "half_life_seconds",
    "NUCLIDE_HALF_LIFE_S",
]




#: physical half-lives in seconds (DDEP / NUBASE values as used by scanner vendors)
NUCLIDE_HALF_LIFE_S: dict[str, float] = {
    "F18": 6586.2,
    "C11": 1223.1,
    "N13": 597.9,
    "O15": 122.24,
    "GA68": 4057.7,
    "CU64": 45724.0,
    "CU62": 584.4,
    "ZR89": 282276.0,
    "RB82": 76.38,
    "I124": 360806.4,
    "Y86": 53064.0,
    "SC44": 14292.0,
    "BR76": 58320.0,
    "TB152": 63720.0,
    "MN52": 483062.4,
    "CO55": 63108.0,
    "TC99M": 21624.12,
    "IN111": 242326.1,
    "I123": 47604.6,
    "LU177": 574300.8,
}

_ELEMENTS = {
    "fluorine": "F", "carbon": "C", "nitrogen": "N", "oxygen": "O", "gallium": "GA", "copper": "CU",
    "zirconium": "ZR", "rubidium": "RB", "iodine": "I", "yttrium": "Y", "scandium": "SC", "bromine": "BR",
    "terbium": "TB", "manganese": "MN", "cobalt": "CO", "technetium": "TC", "indium": "IN", "lutetium": "LU",
}

#: SNOMED-RT codes found in RadionuclideCodeSequence (DICOM CID 4020)
_SNOMED_NUCLIDE = {
    "C-111A1": "F18", "C-105A1": "C11", "C-107A1": "N13", "C-B1038": "O15", "C-131A3": "GA68",
    "C-127A2": "CU64", "C-127A1": "CU62", "C-128A2": "RB82", "C-114DE": "I124", "C-162A7": "Y86",
    "C-163AA": "TC99M", "C-145A4": "IN111", "C-114A4": "I123",
}

_KINDS = {
    "bw": "SUVbw",
    "lbm": "SUVlbm",
    "lbm_james": "SUVlbmJames128",
    "lbm_morgan": "SUVlbmMorgan",
    "bsa": "SUVbsa",
    "ibw": "SUVibw",
}


# ---------------------------------------------------------------------------------------------
# body-size formulae (W kg, H cm)
# ---------------------------------------------------------------------------------------------


def _by_sex(sex: str, male: float, female: float) -> float:
    s = (sex or "").strip().upper()[:1]
    if s == "M":
        return male
    if s == "F":
        return female
    if s == "O":
        return 0.5 * (male + female)
    raise ValueError(f"sex {sex!r} is not M, F or O")


def lean_body_mass(weight_kg: float, height_cm: float, sex: str, formula: str = "janma") -> float:
    """Lean body mass in kg.

    Parameters
    ----------
    weight_kg, height_cm : float
    sex : {"M", "F", "O"}
        ``"O"`` gives the mean of the male and female values.
    formula : {"janma", "james128", "morgan"}
        Janmahasatian (DICOM ``LBMJANMA``), James with 128 for men (``LBMJAMES128``) or the
        Morgan/James 120 variant (DICOM ``LBM``).

    Examples
    --------
    >>> round(lean_body_mass(70.0, 175.0, "M", "janma"), 3)
    55.857
    """
    w, h = float(weight_kg), float(height_cm)
    f = formula.lower()
    if f in ("morgan", "lbm", "james120"):
        return _by_sex(sex, 1.10 * w - 120.0 * (w / h) ** 2, 1.07 * w - 148.0 * (w / h) ** 2)
    if f in ("james128", "lbmjames128", "james"):
        return _by_sex(sex, 1.10 * w - 128.0 * (w / h) ** 2, 1.07 * w - 148.0 * (w / h) ** 2)
    if f in ("janma", "lbmjanma", "janmahasatian"):
        bmi = w / (h / 100.0) ** 2
        return _by_sex(sex, 9270.0 * w / (6680.0 + 216.0 * bmi), 9270.0 * w / (8780.0 + 244.0 * bmi))
    raise ValueError(f"unknown lean-body-mass formula {formula!r}; use 'janma', 'james128' or 'morgan'")


def ideal_body_weight(height_cm: float, sex: str) -> float:
    """Ideal body weight in kg (Devine): male 48.0 + 1.06 (H - 152), female 45.5 + 0.91 (H - 152).

    Examples
    --------
    >>> ideal_body_weight(172.0, "F")
    63.7
    """
    h = float(height_cm)
    return _by_sex(sex, 48.0 + 1.06 * (h - 152.0), 45.5 + 0.91 * (h - 152.0))


def body_surface_area(weight_kg: float, height_cm: float) -> float:
    """Body surface area in m^2 (Du Bois): 0.007184 H^0.725 W^0.425.

    Examples
    --------
    >>> round(body_surface_area(70.0, 175.0), 4)
    1.8481
    """
    return 0.007184 * float(height_cm) ** 0.725 * float(weight_kg) ** 0.425


# ---------------------------------------------------------------------------------------------
# header access
# ---------------------------------------------------------------------------------------------


def _src(ds: Any) -> str:
    return str(getattr(ds, "filename", "") or "<dataset>")


def _float(ds: Any, keyword: str) -> float | None:
    v = ds.get(keyword) if ds is not None else None
    if v is None or v == "":
        return None
    try:
        if isinstance(v, (list, tuple)) or type(v).__name__ == "MultiValue":
            v = v[0]
        return float(v)
    except (TypeError, ValueError):
        return None


def _private_float(ds: Any, group: int, element: int) -> float | None:
    """A private DS value read by tag number (the private creator may be missing); blanks allowed."""
    tag = (group << 16) | element
    if tag not in ds:
        return None
    v = ds[tag].value
    if isinstance(v, (bytes, bytearray)):
        v = v.decode("ascii", "replace")
    if isinstance(v, (list, tuple)) or type(v).__name__ == "MultiValue":
        v = v[0] if len(v) else None
    if v is None:
        return None
    s = str(v).replace("\x00", "").strip()
    if not s:
        return None
    try:
        return float(s.split("\\")[0].strip())
    except ValueError:
        return None


def _private_str(ds: Any, group: int, element: int) -> str | None:
    tag = (group << 16) | element
    if tag not in ds:
        return None
    v = ds[tag].value
    if isinstance(v, (bytes, bytearray)):
        v = v.decode("ascii", "replace")
    s = str(v).replace("\x00", "").strip()
    return s or None


_TAG_NUMBERS = {
    "StudyDate": "(0008,0020)", "SeriesDate": "(0008,0021)", "AcquisitionDate": "(0008,0022)",
    "AcquisitionDateTime": "(0008,002A)", "SeriesTime": "(0008,0031)", "AcquisitionTime": "(0008,0032)",
    "RadiopharmaceuticalStartTime": "(0018,1072)", "RadiopharmaceuticalStartDateTime": "(0018,1078)",
    "Units": "(0054,1001)", "DecayCorrection": "(0054,1102)", "PatientWeight": "(0010,1030)",
    "RadionuclideTotalDose": "(0018,1074)", "RadionuclideHalfLife": "(0018,1075)",
}


def _bad_value(where: tuple[str, str] | None, value: Any, what: str) -> SUVError | None:
    """The error for an impossible date/time value of the tag ``where = (file, keyword)``; None when lenient."""
    if where is None:
        return None
    src, kw = where
    return SUVError(f"{src}: {kw} {_TAG_NUMBERS.get(kw, '')}: {str(value)!r} is not a valid DICOM {what}; "
                    "correct the header (or pass suv=False to load activity values)")


def _parse_time(tm: str, where: tuple[str, str] | None = None) -> timedelta | None:
    s = str(tm or "").strip().replace(":", "")
    if not s:
        return None
    m = re.fullmatch(r"(\d{2})(\d{2})?(\d{2})?(?:\.(\d{1,6}))?", s)
    if not m:
        err = _bad_value(where, tm, "time (HHMMSS.FFFFFF)")
        if err is not None:
            raise err
        return None
    hh, mm, ss, frac = m.groups()
    if int(hh) > 23 or int(mm or 0) > 59 or int(ss or 0) > 60:  # 60: a leap second
        err = _bad_value(where, tm, "time (HHMMSS.FFFFFF: hours 00-23, minutes and seconds 00-59)")
        if err is not None:
            raise err
        return None
    sec = int(hh) * 3600 + int(mm or 0) * 60 + int(ss or 0)
    micro = int((frac or "0").ljust(6, "0"))
    return timedelta(seconds=sec, microseconds=micro)


def _parse_date(da: str, where: tuple[str, str] | None = None) -> datetime | None:
    s = str(da or "").strip().replace(".", "").replace("-", "")
    if not s:
        return None
    if re.fullmatch(r"\d{8}", s):
        try:
            return datetime(int(s[:4]), int(s[4:6]), int(s[6:8]))
        except ValueError:
            pass
    err = _bad_value(where, da, "date (YYYYMMDD)")
    if err is not None:
        raise err
    return None


def _parse_datetime(dt: str, where: tuple[str, str] | None = None) -> datetime | None:
    """DICOM DT ``YYYYMMDDHHMMSS.FFFFFF&ZZXX`` (the UTC offset is ignored: all times of a file share it)."""
    m = re.match(r"^(\d{8})(\d{2,6}(?:\.\d{1,6})?)?", str(dt or "").strip())
    if not m:
        err = _bad_value(where, dt, "date-time (YYYYMMDDHHMMSS)")
        if err is not None and str(dt or "").strip():
            raise err
        return None
    d = _parse_date(m.group(1), where)
    t = _parse_time(m.group(2), where) if m.group(2) else timedelta(0)
    if d is None or t is None:
        return None
    return d + t


def _date_time(ds: Any, date_kw: str, time_kw: str) -> datetime | None:
    d = _parse_date(ds.get(date_kw, ""), (_src(ds), date_kw))
    t = _parse_time(ds.get(time_kw, ""), (_src(ds), time_kw))
    if d is None or t is None:
        return None
    return d + t


def _acq_datetime(ds: Any) -> datetime | None:
    v = _date_time(ds, "AcquisitionDate", "AcquisitionTime")
    if v is None and ds.get("AcquisitionDateTime"):
        v = _parse_datetime(ds.AcquisitionDateTime, (_src(ds), "AcquisitionDateTime"))
    return v


def _radiopharm(ds: Any) -> Any:
    seq = ds.get("RadiopharmaceuticalInformationSequence")
    if not seq:
        raise SUVError(
            f"{_src(ds)}: RadiopharmaceuticalInformationSequence (0054,0016): missing; the dose, injection time "
            "and half-life are needed for SUV; pass suv=False to load activity values"
        )
    return seq[0]


def half_life_seconds(ds: Any) -> float:
    """Radionuclide half-life (s): RadionuclideHalfLife (0018,1075), else from RadionuclideCodeSequence.

    Examples
    --------
    >>> from pydicom import Dataset
    >>> ds, rp, code = Dataset(), Dataset(), Dataset()
    >>> code.CodeMeaning = "^68^Gallium"; rp.RadionuclideCodeSequence = [code]
    >>> ds.RadiopharmaceuticalInformationSequence = [rp]
    >>> half_life_seconds(ds)
    4057.7
    """
    rp = _radiopharm(ds)
    hl = _float(rp, "RadionuclideHalfLife")
    if hl is not None and hl > 0:
        return hl
    for code in rp.get("RadionuclideCodeSequence") or []:
        key = _SNOMED_NUCLIDE.get(str(code.get("CodeValue", "")).strip().upper())
        if key is None:
            key = _nuclide_key(str(code.get("CodeMeaning", "")))
        if key in NUCLIDE_HALF_LIFE_S:
            return NUCLIDE_HALF_LIFE_S[key]
    name = rp.get("Radionuclide", "") or rp.get("Radiopharmaceutical", "")
    key = _nuclide_key(str(name))
    if key in NUCLIDE_HALF_LIFE_S:
        return NUCLIDE_HALF_LIFE_S[key]
    raise SUVError(
        f"{_src(ds)}: RadionuclideHalfLife (0018,1075): missing and RadionuclideCodeSequence (0054,0300) "
        "names no known nuclide; add the half-life in seconds to the header"
    )


def _nuclide_key(text: str) -> str | None:
    t = text.strip()
    if not t:
        return None
    low = t.lower()
    mass = re.search(r"(\d{1,3})\s*m?", t)
    meta = bool(re.search(r"\d+\s*m\b|\^?\d+m\^?|99m", low))
    sym = None
    for name, s in _ELEMENTS.items():
        if name in low:
            sym = s
            break
    if sym is None:
        m = re.search(r"(?:\^?\d{1,3}m?\^?\s*-?\s*([A-Za-z]{1,2})\b)|(?:\b([A-Za-z]{1,2})\s*-?\s*\d{1,3})", t)
        if m:
            sym = (m.group(1) or m.group(2)).upper()
    if sym is None or mass is None:
        return None
    key = f"{sym}{mass.group(1)}" + ("M" if meta and sym == "TC" else "")
    return key


def _weight_kg(ds: Any) -> float:
    w = _float(ds, "PatientWeight")
    if w is None or w <= 0:
        raise SUVError(
            f"{_src(ds)}: PatientWeight (0010,1030): missing or zero; SUV needs the patient's weight in kg "
            "(set the tag, or pass suv=False)"
        )
    if w > 1000.0:
        warn(f"{_src(ds)}: PatientWeight (0010,1030) = {w} looks like grams; using {w / 1000.0} kg")
        w /= 1000.0
    return w


def _height_cm(ds: Any, why: str) -> float:
    h = _float(ds, "PatientSize")
    if h is None or h <= 0:
        raise SUVError(
            f"{_src(ds)}: PatientSize (0010,1020): missing or zero; {why} needs the patient's height in metres"
        )
    if h > 3.0:
        warn(f"{_src(ds)}: PatientSize (0010,1020) = {h} looks like centimetres; using {h / 100.0} m")
        h /= 100.0
    return h * 100.0


def _sex(ds: Any, why: str) -> str:
    s = str(ds.get("PatientSex", "") or "").strip().upper()[:1]
    if s not in ("M", "F", "O"):
        raise SUVError(f"{_src(ds)}: PatientSex (0010,0040): {s or 'missing'}; {why} needs M, F or O")
    return s


def _dose_bq(ds: Any) -> float:
    d = _float(_radiopharm(ds), "RadionuclideTotalDose")
    if d is None or d <= 0:
        raise SUVError(
            f"{_src(ds)}: RadionuclideTotalDose (0018,1074): missing or zero; the injected activity (Bq) is "
            "needed for SUV"
        )
    if d < 1e5:
        warn(f"{_src(ds)}: RadionuclideTotalDose (0018,1074) = {d} looks like MBq; using {d * 1e6} Bq")
        d *= 1e6
    return d


def _admin_datetime(ds: Any) -> tuple[datetime, bool]:
    """Injection date-time, and whether it came from a full date-time (no midnight repair needed)."""
    rp = _radiopharm(ds)
    full = rp.get("RadiopharmaceuticalStartDateTime")
    if full:
        v = _parse_datetime(full, (_src(ds), "RadiopharmaceuticalStartDateTime"))
        if v is not None:
            return v, True
    t = _parse_time(rp.get("RadiopharmaceuticalStartTime", ""), (_src(ds), "RadiopharmaceuticalStartTime"))
    d = (_parse_date(ds.get("SeriesDate", ""), (_src(ds), "SeriesDate"))
         or _parse_date(ds.get("AcquisitionDate", ""), (_src(ds), "AcquisitionDate"))
         or _parse_date(ds.get("StudyDate", ""), (_src(ds), "StudyDate")))
    if t is None or d is None:
        raise SUVError(
            f"{_src(ds)}: RadiopharmaceuticalStartDateTime (0018,1078) / RadiopharmaceuticalStartTime (0018,1072) "
            "with SeriesDate (0008,0021): missing; the injection time is needed for decay correction"
        )
    return d + t, False


def _frame_decay_factor(lam: float, duration_s: float) -> float:
    x = lam * duration_s
    if x <= 0:
        return 1.0
    return x / (-math.expm1(-x))


def _reference_times(headers: Sequence[Any], lam: float) -> list[datetime]:
    """Per-slice decay reference time for DecayCorrection START (rules a-d of STANDARDS.md)."""
    first = headers[0]
    ge = _private_str(first, 0x0009, 0x100D)
    if ge:
        v = _parse_datetime(ge)
        if v is not None:
            return [v] * len(headers)
    acq = [_acq_datetime(h) for h in headers]
    known = [a for a in acq if a is not None]
    earliest = min(known) if known else None
    series = _date_time(first, "SeriesDate", "SeriesTime")
    if series is not None and (earliest is None or series <= earliest):
        return [series] * len(headers)
    frt = [_float(h, "FrameReferenceTime") for h in headers]
    afd = [_float(h, "ActualFrameDuration") for h in headers]
    if all(a is not None for a in acq) and all(f is not None and f > 0 for f in frt) and all(
            d is not None and d > 0 for d in afd):
        out = []
        for a, f, d in zip(acq, frt, afd):
            T = d / 1000.0
            shift = math.log(_frame_decay_factor(lam, T)) / lam - f / 1000.0
            out.append(a + timedelta(seconds=shift))
        return out
    if earliest is not None:
        return [earliest] * len(headers)
    raise SUVError(
        f"{_src(first)}: SeriesDate/SeriesTime (0008,0021/0031) and AcquisitionDate/AcquisitionTime "
        "(0008,0022/0032): missing; the scan time is needed for decay correction"
    )


# ---------------------------------------------------------------------------------------------
# the factors
# ---------------------------------------------------------------------------------------------


def suv_units(kind: str = "bw") -> str:
    """The ``attrs["units"]`` string for an SUV normalisation, e.g. ``"SUVbw"``.

    Examples
    --------
    >>> suv_units("lbm")
    'SUVlbm'
    """
    key = _kind(kind)
    return _KINDS[key]


def _kind(kind: Any) -> str:
    if kind is True or kind is None:
        return "bw"
    k = str(kind).lower().replace("-", "_")
    if k not in _KINDS:
        raise SUVError(f"suv={kind!r}: unknown normalisation; use one of True/'bw', {', '.join(map(repr, _KINDS))}")
    return k


def _to_bw_from_gml(ds: Any, suv_type: str) -> float:
    """Factor turning a GML value of SUVType ``suv_type`` back into SUVbw (W / F)."""
    t = suv_type.upper()
    if t in ("", "BW"):
        return 1.0
    w = _weight_kg(ds)
    if t == "BSA":
        h = _height_cm(ds, "SUVType BSA")
        return w * 1000.0 / (body_surface_area(w, h) * 1e4)
    if t in ("LBM", "LBMJAMES128", "LBMJANMA"):
        h = _height_cm(ds, f"SUVType {t}")
        sex = _sex(ds, f"SUVType {t}")
        formula = {"LBM": "morgan", "LBMJAMES128": "james128", "LBMJANMA": "janma"}[t]
        return w / lean_body_mass(w, h, sex, formula)
    if t == "IBW":
        h = _height_cm(ds, "SUVType IBW")
        sex = _sex(ds, "SUVType IBW")
        return w / ideal_body_weight(h, sex)
    raise SUVError(f"{_src(ds)}: SUVType (0054,1006): {suv_type!r} is not BW, BSA, LBM, LBMJAMES128, LBMJANMA or IBW")


def _from_bw(ds: Any, kind: str) -> float:
    """Factor turning SUVbw into the normalisation ``kind``."""
    if kind == "bw":
        return 1.0
    w = _weight_kg(ds)
    h = _height_cm(ds, f"suv={kind!r}")
    if kind == "bsa":
        return body_surface_area(w, h) * 1e4 / (w * 1000.0)
    if kind == "ibw":
        return ideal_body_weight(h, _sex(ds, "suv='ibw'")) / w
    formula = {"lbm": "janma", "lbm_james": "james128", "lbm_morgan": "morgan"}[kind]
    return lean_body_mass(w, h, _sex(ds, f"suv={kind!r}"), formula) / w


def _activity_factors(headers: Sequence[Any], units: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(Bq/ml per rescaled value, direct SUVbw per rescaled value) per slice; one of the two is None."""
    n = len(headers)
    if units == "BQML":
        return np.ones(n), None
    if units == "CNTS":
        suvf = [_private_float(h, 0x7053, 0x1000) for h in headers]
        if all(v is not None and v != 0.0 for v in suvf):
            return None, np.asarray(suvf, dtype=float)
        acf = [_private_float(h, 0x7053, 0x1009) for h in headers]
        if all(v is not None and v != 0.0 for v in acf):
            return np.asarray(acf, dtype=float), None
        afd = [_float(h, "ActualFrameDuration") for h in headers]
        if not all(v is not None and v > 0 for v in afd):
            raise SUVError(
                f"{_src(headers[0])}: Units CNTS without a usable Philips SUV Scale Factor (7053,1000) or Activity "
                "Concentration Scale Factor (7053,1009), and ActualFrameDuration (0018,1242) is missing; "
                "these counts cannot be converted to activity"
            )
        cps = 1.0 / (np.asarray(afd, dtype=float) / 1000.0)
        return cps * _cps_factors(headers), None
    if units == "CPS":
        return _cps_factors(headers), None
    raise AssertionError(units)


def _cps_factors(headers: Sequence[Any]) -> np.ndarray:
    out = []
    for h in headers:
        ps = h.get("PixelSpacing")
        th = _float(h, "SliceThickness")
        if not ps or th is None or th <= 0:
            raise SUVError(f"{_src(h)}: PixelSpacing (0028,0030) / SliceThickness (0018,0050): missing; the voxel "
                           "volume is needed to turn counts per second into Bq/ml")
        vol_ml = float(ps[0]) * float(ps[1]) * th / 1000.0
        corrected = [str(v).upper() for v in (h.get("CorrectedImage") or [])]
        f = 1.0 / vol_ml
        if "DCAL" not in corrected:
            dcf = _float(h, "DoseCalibrationFactor")
            if dcf is None or dcf <= 0:
                raise SUVError(f"{_src(h)}: DoseCalibrationFactor (0054,1322): missing and CorrectedImage (0028,0051) "
                               "lacks DCAL; counts per second cannot be calibrated to Bq/ml")
            f *= dcf
        out.append(f)
    return np.asarray(out)


#: tags SUV takes from the first slice: every slice of the series must agree on them
_SERIES_TAGS = ("Units", "DecayCorrection", "PatientWeight")
_RADIOPHARM_TAGS = ("RadionuclideTotalDose", "RadiopharmaceuticalStartTime", "RadiopharmaceuticalStartDateTime",
                    "RadionuclideHalfLife")


def _norm_tag_value(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, (list, tuple)) or type(v).__name__ == "MultiValue":
        v = v[0] if len(v) else ""
    text = str(v).strip()
    try:
        return round(float(text), 9) if text else ""
    except ValueError:
        return text.upper()


def _check_series_agree(headers: Sequence[Any]) -> None:
    """Refuse a series whose slices disagree on a tag SUV reads from the first slice only."""
    first = headers[0]

    def rp_of(h: Any) -> Any:
        seq = h.get("RadiopharmaceuticalInformationSequence")
        return seq[0] if seq else None

    for h in headers[1:]:
        pairs = [(kw, first.get(kw), h.get(kw)) for kw in _SERIES_TAGS]
        r0, r1 = rp_of(first), rp_of(h)
        pairs += [(kw, r0.get(kw) if r0 is not None else None, r1.get(kw) if r1 is not None else None)
                  for kw in _RADIOPHARM_TAGS]
        for kw, a, b in pairs:
            if _norm_tag_value(a) != _norm_tag_value(b):
                raise SUVError(
                    f"{_src(h)}: {kw} {_TAG_NUMBERS.get(kw, '')}: {str(b) if b is not None else 'missing'!r} "
                    f"differs from {_src(first)}'s {str(a) if a is not None else 'missing'!r}; SUV needs one "
                    "value for the whole series; the folder mixes series or a slice header is wrong: correct it, "
                    "or pass suv=False"
                )


def _check_corrected(first: Any, decay: str) -> None:
    """Warn when CorrectedImage (0028,0051) does not list attenuation (ATTN) and, unless DecayCorrection is
    NONE, decay (DECY) correction: SUV of such values is not quantitative."""
    values = first.get("CorrectedImage")
    have = {str(v).strip().upper() for v in (values if values is not None else [])}
    if values is not None and not isinstance(values, (list, tuple)) and type(values).__name__ != "MultiValue":
        have = {str(values).strip().upper()}
    need = ["ATTN"] + (["DECY"] if decay != "NONE" else [])
    lacking = [c for c in need if c not in have]
    if lacking:
        stated = "missing" if values is None else f"{sorted(have)}"
        warn(f"{_src(first)}: CorrectedImage (0028,0051) = {stated} lacks {' and '.join(lacking)} "
             f"({'attenuation' if 'ATTN' in lacking else ''}{' and ' if len(lacking) == 2 else ''}"
             f"{'decay' if 'DECY' in lacking else ''} correction); the SUV may not be quantitative; check the "
             "reconstruction")


def _warn_injection_after(first: Any, t_adm: datetime, t_ref: datetime, what: str) -> None:
    hours = (t_adm - t_ref).total_seconds() / 3600.0
    warn(f"{_src(first)}: RadiopharmaceuticalStartDateTime (0018,1078) = {t_adm:%Y-%m-%d %H:%M:%S} is "
         f"{hours:.2f} h after the {what} ({t_ref:%Y-%m-%d %H:%M:%S}): the dose is decay-corrected forwards "
         "and the SUV is too low; check the injection and scan date-times")


def suv_factors(headers: Sequence[Any], kind: Any = "bw") -> np.ndarray:
    """Per-slice factors turning rescaled PET values (stored x RescaleSlope) into SUV.

    Parameters
    ----------
    headers : sequence of pydicom.Dataset
        The slices of one series (headers only are enough), in any order; the result follows it.
    kind : {"bw", "lbm", "lbm_james", "lbm_morgan", "bsa", "ibw"} or True
        Normalisation: body weight (default), lean body mass (Janmahasatian; James 128; Morgan),
        body surface area (Du Bois; SUV in cm^2/ml) or ideal body weight.

    Returns
    -------
    numpy.ndarray
        One factor per header: ``SUV = stored * RescaleSlope * factor``.

    Raises
    ------
    SUVError
        Missing weight/dose/times, a non-zero RescaleIntercept, or units that cannot be converted
        (PROPCNTS, PROPCPS, 1CM, ...); the message names the tags.

    Examples
    --------
    >>> from pydicom import Dataset
    >>> ds = Dataset(); ds.Units = "GML"; ds.RescaleSlope = 0.5; ds.RescaleIntercept = 0
    >>> suv_factors([ds]).tolist()
    [1.0]
    """
    headers = list(headers)
    if not headers:
        raise SUVError("suv_factors: no headers given")
    k = _kind(kind)
    first = headers[0]
    for h in headers:
        ic = _float(h, "RescaleIntercept")
        if ic is not None and ic != 0.0:
            raise SUVError(f"{_src(h)}: RescaleIntercept (0028,1052) = {ic}: PET values must have a zero intercept "
                           "for SUV; the series is not a quantitative PET image")
    _check_series_agree(headers)
    units = str(first.get("Units", "") or "").strip().upper()
    if not units:
        raise SUVError(f"{_src(first)}: Units (0054,1001): missing; cannot tell Bq/ml from counts or SUV")
    if units in ("PROPCNTS", "PROPCPS", "1CM", "NPIXELS", "NONE", "CM2", "PCNT", "MGMINML", "UMOLMINML",
                 "MLMING", "MLG", "1CM", "UMOLML", "MGMINML"):
        raise SUVError(f"{_src(first)}: Units (0054,1001) = {units}: these values are not activity concentrations "
                       "and cannot be converted to SUV")
    to_kind = _from_bw(first, k)
    _check_corrected(first, str(first.get("DecayCorrection", "") or "").strip().upper())
    if units == "GML":
        suv_type = str(first.get("SUVType", "") or "").strip()
        return np.full(len(headers), _to_bw_from_gml(first, suv_type) * to_kind)
    if units == "CM2ML":
        w = _weight_kg(first)
        h = _height_cm(first, "Units CM2ML (SUVbsa)")
        return np.full(len(headers), w * 1000.0 / (body_surface_area(w, h) * 1e4) * to_kind)
    if units not in ("BQML", "CNTS", "CPS"):
        raise SUVError(f"{_src(first)}: Units (0054,1001) = {units}: unknown PET units; expected BQML, GML, CM2ML, "
                       "CNTS or CPS")
    bqml, direct = _activity_factors(headers, units)
    if direct is not None:
        return direct * to_kind
    w_g = _weight_kg(first) * 1000.0
    dose = _dose_bq(first)
    lam = math.log(2.0) / half_life_seconds(first)
    decay = str(first.get("DecayCorrection", "") or "").strip().upper()
    if decay == "ADMIN":
        return bqml * (w_g / dose) * to_kind
    t_adm, full = _admin_datetime(first)
    if decay == "START":
        t_ref = _reference_times(headers, lam)
        if not full and t_adm > min(t_ref):
            t_adm -= timedelta(hours=24)
        elif full and t_adm > min(t_ref):
            _warn_injection_after(first, t_adm, min(t_ref), "scan reference time (DecayCorrection START)")
        out = []
        for tr in t_ref:
            dt = (tr - t_adm).total_seconds()
            out.append(w_g / (dose * math.exp(-lam * dt)))
        return bqml * np.asarray(out) * to_kind
    if decay == "NONE":
        out = []
        if full:
            acq = [a for a in (_acq_datetime(h) for h in headers) if a is not None]
            if acq and t_adm > min(acq):
                _warn_injection_after(first, t_adm, min(acq), "first acquisition time (DecayCorrection NONE)")
        for h in headers:
            t_acq = _acq_datetime(h)
            if t_acq is None:
                raise SUVError(f"{_src(h)}: AcquisitionDate/AcquisitionTime (0008,0022/0032): missing; "
                               "DecayCorrection NONE needs each slice's acquisition time")
            ta = t_adm - timedelta(hours=24) if (not full and t_adm > t_acq) else t_adm
            afd = _float(h, "ActualFrameDuration")
            T = (afd or 0.0) / 1000.0
            dt = (t_acq - ta).total_seconds()
            out.append(w_g / dose * _frame_decay_factor(lam, T) * math.exp(lam * dt))
        return bqml * np.asarray(out) * to_kind
    raise SUVError(f"{_src(first)}: DecayCorrection (0054,1102) = {decay or 'missing'}: expected START, ADMIN or NONE")


def suv_factor(header: Any, kind: Any = "bw") -> float:
    """SUV factor for one slice (see :func:`suv_factors`): ``SUV = stored * RescaleSlope * factor``.

    Examples
    --------
    >>> from pydicom import Dataset
    >>> ds = Dataset(); ds.Units = "GML"; ds.SUVType = "BW"
    >>> suv_factor(ds)
    1.0
    """
    return float(suv_factors([header], kind)[0])
