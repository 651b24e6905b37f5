"""Time-activity curves per region and what is read off them: AUC, Cmax/Tmax, half-lives, %ID, semi-quantitative DCE.

* :func:`region_curve`: the mean (and SD, voxel count) of an image with a ``t`` dim in a region, per frame,
  with the frame times (s) and the image's units.
* :func:`auc`: trapezoid area from the first frame to ``t_end`` (s), or to infinity with a mono-exponential
  tail fitted to the last ``tail_points`` frames (``AUC_inf = AUC_last + C_last / lambda``).
* :func:`half_lives`: mono-exponential ``C = A exp(-k t)`` and bi-exponential (distribution ``alpha``,
  elimination ``beta``) half-lives, fitted with :func:`scipy.optimize.curve_fit` on the points after Tmax.
* :func:`decay_correct`: activity back to injection time, ``C exp(ln 2 t / T_half)``;
  :func:`decay_correction_factors`: the factor per frame back to the injection, exact over each frame's
  duration (``exp(lambda (t_start - t_inj)) lambda D / (1 - exp(-lambda D))``) for frames that were not
  corrected, or one factor ``exp(lambda (t_ref - t_inj))`` for frames already corrected to ``t_ref``;
  :data:`ISOTOPE_HALF_LIFE_S` and :func:`isotope_half_life` for the usual radionuclides;
  :func:`percent_id`: ``%ID/g = 100 C / dose`` (tissue density 1 g/mL, as :mod:`multiscale.analysis.uptake`),
  ``%ID = %ID/g x g``, with :func:`activity_scale` converting Bq/Ci prefixes so that the image's and the
  dose's units may differ (``kBq/mL`` and ``MBq``).
* :func:`semi_quantitative`: IAUC60 (initial area under the curve over the 60 s after bolus arrival),
  time to peak, maximum wash-in slope.
* change from baseline of two co-registered sessions: :mod:`.change` (the study family ``change``).

Examples
--------
>>> import numpy as np
>>> t = np.array([0.0, 60, 120, 240, 480]); c = 10 * np.exp(-np.log(2) / 120 * t)
>>> round(half_lives(t, c)["half_life_s"], 3)
120.0
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import xarray as xr

from multiscale.errors import AnalysisError, KineticsWarning

from ..family import Family, FamilyResult, image_units
from .aif import check_times

__all__ = [
    "frame_times",
    "region_curve",
    "auc",
    "half_lives",
    "decay_correct",
    "decay_correction_factors",
    "ISOTOPE_HALF_LIFE_S",
    "isotope_half_life",
    "activity_scale",
    "percent_id",
    "semi_quantitative",
    "bolus_arrival",
    "curves_evaluate",
    "curves_table",
    "FAMILY",
]


def frame_times(image: xr.DataArray) -> np.ndarray:
    """The frame mid-times (s) of an image with a ``t`` dim; a clear error when it has none."""
    if "t" not in image.dims:
        raise AnalysisError(
            "this analysis needs a time series (an image with a 't' dim); got dims "
            f"{tuple(image.dims)}; load the dynamic series, not one frame"
        )
    if "t" not in image.coords:
        raise AnalysisError(
            "the image's frames have no times ('t' has no coords): load it with its BIDS sidecar / "
            "DICOM timing, or assign them: image.assign_coords(t=seconds)"
        )
    return check_times(image["t"].values, "frame times")


def region_curve(image: xr.DataArray, mask: Any) -> dict[str, Any]:
    """Mean, SD and voxel count per frame of ``image`` (t, z, y, x) in ``mask`` (bool, same spatial grid)."""
    t = frame_times(image)
    m = np.asarray(mask.data if isinstance(mask, xr.DataArray) else mask).astype(bool)
    sp_shape = tuple(image.sizes[d] for d in image.dims if d != "t")
    if m.shape != sp_shape:
        raise AnalysisError(
            f"the mask's shape {m.shape} is not the series' spatial shape {sp_shape}; resample the "
            "mask onto the series' grid"
        )
    if not m.any():
        raise AnalysisError("the mask is empty: no voxel to make a curve from")
    data = image.transpose("t", ...).data
    vals = np.asarray(data[:, m].compute() if hasattr(data, "compute") else np.asarray(data)[:, m], float)
    nan = ~np.isfinite(vals)
    if nan.any():
        import warnings

        warnings.warn(
            f"{int(nan.sum())} NaN values in the region's curves were left out", KineticsWarning, stacklevel=2
        )
    with np.errstate(invalid="ignore"):
        mean = np.nanmean(vals, axis=1)
        sd = np.nanstd(vals, axis=1, ddof=1) if vals.shape[1] > 1 else np.full(t.size, np.nan)
    return {
        "t": t,
        "mean": mean,
        "sd": sd,
        "n": int(m.sum()),
        "units": str(image.attrs.get("units", "") or "a.u."),
        "frame_duration": np.asarray(image["frame_duration"].values, float)
        if "frame_duration" in image.coords
        else None,
    }


def auc(t: Any, c: Any, *, t_end: float | None = None, tail_points: int = 3) -> dict[str, float]:
    """Area under the curve (trapezoid) to the last frame or ``t_end``, and to infinity with a fitted tail.

    Returns ``auc_last``, ``auc_inf`` (NaN when the tail does not decay) and ``tail_rate`` (/s).

    Examples
    --------
    >>> import numpy as np
    >>> t = np.linspace(0, 600, 601); c = np.exp(-t / 100)
    >>> r = auc(t, c)
    >>> round(r["auc_inf"], 2)    # exact 100
    100.0
    """
    t = check_times(t)
    c = np.asarray(c, float)
    if t_end is not None:
        if t_end <= t[0]:
            raise AnalysisError(f"t_end {t_end} s is before the first frame ({t[0]} s)")
        keep = t <= t_end
        tt = np.append(t[keep], t_end) if t_end > t[keep][-1] else t[keep]
        cc = np.interp(tt, t, c)
        return {"auc_last": float(np.trapezoid(cc, tt)), "auc_inf": float("nan"), "tail_rate": float("nan")}
    area = float(np.trapezoid(c, t))
    n = min(max(tail_points, 2), t.size)
    tail_t, tail_c = t[-n:], c[-n:]
    rate = float("nan")
    inf = float("nan")
    if np.all(tail_c > 0):
        slope = np.polyfit(tail_t, np.log(tail_c), 1)[0]
        if slope < 0:
            rate = -float(slope)
            inf = area + float(c[-1]) / rate
    return {"auc_last": area, "auc_inf": inf, "tail_rate": rate}


def half_lives(t: Any, c: Any, *, after_peak: bool = True) -> dict[str, float]:
    """Mono- and bi-exponential half-lives (s) of the curve after its peak.

    Returns ``half_life_s`` (mono), ``half_life_alpha_s`` and ``half_life_beta_s`` (bi-exponential, NaN
    when it does not fit or needs more than 4 points), and the fits' amplitudes.
    """
    import warnings

    from scipy.optimize import OptimizeWarning
    from scipy.optimize import curve_fit as _curve_fit

    def curve_fit(*args: Any, **kw: Any) -> Any:  # the parameters' covariance is not used
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            return _curve_fit(*args, **kw)

    t = check_times(t)
    c = np.asarray(c, float)
    i0 = int(np.nanargmax(c)) if after_peak else 0
    tt, cc = t[i0:] - t[i0], c[i0:]
    out = {"half_life_s": float("nan"), "half_life_alpha_s": float("nan"), "half_life_beta_s": float("nan")}
    if tt.size < 3 or not np.all(np.isfinite(cc)):
        return out
    pos = cc > 0
    if pos.sum() >= 2:
        k0 = max(-np.polyfit(tt[pos], np.log(cc[pos]), 1)[0], 1e-9)
    else:
        k0 = 1.0 / max(tt[-1], 1.0)
    try:
        (a, k), _ = curve_fit(lambda x, a, k: a * np.exp(-k * x), tt, cc, p0=(cc[0], k0), maxfev=2000)
        if k > 0:
            out["half_life_s"] = float(math.log(2) / k)
            out["mono_amplitude"] = float(a)
    except (RuntimeError, ValueError):
        pass
    if tt.size > 4:
        try:
            p0 = (0.6 * cc[0], 5 * k0, 0.4 * cc[0], 0.5 * k0)
            (a1, k1, a2, k2), _ = curve_fit(
                lambda x, a1, k1, a2, k2: a1 * np.exp(-k1 * x) + a2 * np.exp(-k2 * x),
                tt,
                cc,
                p0=p0,
                bounds=(0, np.inf),
                maxfev=5000,
            )
            fast, slow = (k1, k2) if k1 >= k2 else (k2, k1)
            if slow > 0 and fast > slow * 1.01:
                out["half_life_alpha_s"] = float(math.log(2) / fast)
                out["half_life_beta_s"] = float(math.log(2) / slow)
        except (RuntimeError, ValueError):
            pass
    return out


def decay_correct(t: Any, c: Any, half_life_s: float, *, reference_s: float = 0.0) -> np.ndarray:
    """Activity decay-corrected to ``reference_s`` (injection): ``C exp(ln2 (t - reference) / T_half)``.

    Examples
    --------
    >>> decay_correct([0.0, 6586.2], [1.0, 0.5], 6586.2).round(12).tolist()  # F-18: one half-life later, half left
    [1.0, 1.0]
    """
    if half_life_s <= 0:
        raise AnalysisError(f"half_life_s must be > 0 s, got {half_life_s}")
    t = np.asarray(t, float)
    return np.asarray(c, float) * np.exp(math.log(2) * (t - reference_s) / half_life_s)


#: physical half-lives (s) of common imaging radionuclides: NNDC NuDat/ENSDF values (F-18 109.77(5) min as listed
#: in the European Pharmacopoeia's table 5.7, which quotes NNDC); 64Cu 12.701 h, 89Zr 78.41 h, 99mTc 6.0067 h,
#: 111In 2.8047 d, 124I 4.176 d, 11C 20.385 min, 13N 9.965 min, 15O 122.24 s, 177Lu 6.647 d; 68Ga 4057.7 s
#: (67.63 min), the value scanner vendors write into RadionuclideHalfLife and the project's STANDARDS.md uses, so
#: that decay correction here and SUV in ``multiscale.io.suv`` agree (NNDC now lists 67.71 min: 0.12 % longer)
ISOTOPE_HALF_LIFE_S: dict[str, float] = {
    "F18": 109.77 * 60,
    "CU64": 12.701 * 3600,
    "ZR89": 78.41 * 3600,
    "GA68": 4057.7,
    "TC99M": 6.0067 * 3600,
    "IN111": 2.8047 * 86400,
    "I124": 4.176 * 86400,
    "C11": 20.385 * 60,
    "N13": 9.965 * 60,
    "O15": 122.24,
    "LU177": 6.647 * 86400,
}


def isotope_half_life(name: str) -> float:
    """Half-life (s) of a radionuclide named ``18F``, ``F-18``, ``F18``, ``99mTc``, ``Tc-99m``, ``Zr89``...

    Examples
    --------
    >>> isotope_half_life("18F"), round(isotope_half_life("Tc-99m") / 3600, 4), isotope_half_life("zr-89") / 3600
    (6586.2, 6.0067, 78.41)
    """
    import re

    key = re.sub(r"[^0-9A-Za-z]", "", str(name)).upper()
    m = re.fullmatch(r"(\d+M?)([A-Z]{1,2})", key)
    if m:
        key = m.group(2) + m.group(1)
    if key not in ISOTOPE_HALF_LIFE_S:
        raise AnalysisError(
            f"unknown radionuclide {name!r}; known: {sorted(ISOTOPE_HALF_LIFE_S)}; or give half_life_s (s) instead"
        )
    return round(ISOTOPE_HALF_LIFE_S[key], 6)


def decay_correction_factors(
    t: Any,
    half_life_s: float,
    *,
    injection_s: float = 0.0,
    durations: Any = None,
    corrected_to_s: float | None = None,
) -> np.ndarray:
    """Factor per frame that brings measured activity back to the injection time.

    ``t`` are frame mid-times (s) on the series' axis, ``injection_s`` the injection on that axis. Frames that
    were not decay-corrected (``corrected_to_s=None``) get ``exp(lambda (s - t_inj)) lambda D / (1 - exp(-lambda
    D))`` with ``s`` the frame start and ``D`` its duration (the activity integrated over the frame, as DICOM's
    DecayFactor), or ``exp(lambda (t - t_inj))`` without durations; frames already corrected to ``corrected_to_s``
    get the one factor ``exp(lambda (corrected_to_s - t_inj))``.

    Examples
    --------
    >>> f18 = 6586.2
    >>> decay_correction_factors([f18], f18).round(12).tolist()          # one half-life after injection
    [2.0]
    >>> decay_correction_factors([600.0], f18, injection_s=600.0, durations=[0.0]).tolist()
    [1.0]
    >>> decay_correction_factors([0.0, 60.0], f18, injection_s=-f18, corrected_to_s=0.0).round(12).tolist()
    [2.0, 2.0]
    """
    if not half_life_s or half_life_s <= 0:
        raise AnalysisError(f"half_life_s must be > 0 s, got {half_life_s}")
    lam = math.log(2) / float(half_life_s)
    t = np.asarray(t, float)
    if corrected_to_s is not None:
        return np.full(t.shape, math.exp(lam * (float(corrected_to_s) - float(injection_s))))
    if durations is None:
        return np.exp(lam * (t - injection_s))
    d = np.broadcast_to(np.asarray(durations, float), t.shape)
    start = t - d / 2
    x = lam * d
    with np.errstate(invalid="ignore", divide="ignore"):
        avg = np.where(x > 1e-12, x / -np.expm1(-np.where(x > 1e-12, x, 1.0)), 1.0 + x / 2)
    return np.exp(lam * (start - injection_s)) * avg


_PREFIX = {"": 1.0, "p": 1e-12, "n": 1e-9, "u": 1e-6, "µ": 1e-6, "μ": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9}


def activity_scale(units: str, *, per_volume: bool) -> float:
    """Becquerel (per mL when ``per_volume``) in one of ``units``: ``kBq/mL`` -> 1000, ``uCi`` -> 37000.

    Examples
    --------
    >>> activity_scale("kBq/mL", per_volume=True), activity_scale("MBq", per_volume=False)
    (1000.0, 1000000.0)
    >>> round(activity_scale("uCi/cc", per_volume=True), 6)
    37000.0
    """
    import re

    u = str(units).strip()
    pat = r"([pnuµμmkMG]?)(Bq|Ci)" + (r"\s*/\s*(mL|ml|cc|cm3|cm\^3)" if per_volume else "")
    m = re.fullmatch(pat, u)
    if not m:
        what = "an activity concentration (Bq/mL, kBq/mL, MBq/mL, uCi/mL...)" if per_volume else "an activity (Bq, "
        what += "" if per_volume else "kBq, MBq, mCi...)"
        raise AnalysisError(f"%ID needs {what}; got units {units!r}")
    return _PREFIX[m.group(1)] * (3.7e10 if m.group(2) == "Ci" else 1.0)


def percent_id(c: Any, injected_dose: float, *, mass_g: float | None = None) -> dict[str, np.ndarray]:
    """``%ID/g = 100 C / dose`` (C per mL, tissue density 1 g/mL) and, with ``mass_g``, ``%ID = %ID/g x g``."""
    if injected_dose <= 0:
        raise AnalysisError(f"injected_dose must be > 0 (same activity unit as the image x mL), got {injected_dose}")
    pidg = 100.0 * np.asarray(c, float) / injected_dose
    out = {"pid_per_g": pidg}
    if mass_g is not None:
        out["pid"] = pidg * mass_g
    return out


def bolus_arrival(t: Any, c: Any, *, n_baseline: int = 3, k_sd: float = 3.0) -> float:
    """First frame time where the curve exceeds the baseline mean + ``k_sd`` SD (or 10 % of the peak)."""
    t = check_times(t)
    c = np.asarray(c, float)
    nb = max(1, min(n_baseline, t.size - 1))
    base = c[:nb]
    thr = max(base.mean() + k_sd * (base.std() if nb > 1 else 0.0), base.mean() + 0.1 * (np.nanmax(c) - base.mean()))
    above = np.flatnonzero(c > thr)
    return float(t[above[0]]) if above.size else float("nan")


def semi_quantitative(
    t: Any, c: Any, *, arrival_s: float | None = None, window_s: float = 60.0, n_baseline: int = 3
) -> dict[str, float]:
    """IAUC over ``window_s`` after bolus arrival (IAUC60), time to peak (from arrival), peak, wash-in slope.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(0, 300.0, 5); c = np.clip((t - 30) / 60, 0, 1)        # ramp from 30 s, 1 mM at 90 s
    >>> r = semi_quantitative(t, c, arrival_s=30.0)
    >>> r["iauc60"], r["time_to_peak_s"], round(r["wash_in_slope"], 4)
    (30.0, 60.0, 0.0167)
    """
    t = check_times(t)
    c = np.asarray(c, float)
    t0 = bolus_arrival(t, c, n_baseline=n_baseline) if arrival_s is None else float(arrival_s)
    if not np.isfinite(t0):
        return {
            "iauc60": float("nan"),
            "time_to_peak_s": float("nan"),
            "peak": float(np.nanmax(c)),
            "wash_in_slope": float("nan"),
            "bolus_arrival_s": float("nan"),
        }
    lo, hi = max(t0, t[0]), min(t0 + window_s, t[-1])
    inner = t[(t > lo) & (t < hi)]
    grid = np.concatenate([[lo], inner, [hi]])
    area = float(np.trapezoid(np.interp(grid, t, c), grid))
    ip = int(np.nanargmax(c))
    slopes = np.diff(c) / np.diff(t)
    seg = (t[:-1] >= t0 - 1e-9) & (t[1:] <= t[ip] + 1e-9)
    slope = float(np.max(slopes[seg])) if seg.any() else float("nan")
    return {
        "iauc60" if window_s == 60 else f"iauc{window_s:g}": area,
        "time_to_peak_s": float(t[ip] - t0),
        "peak": float(c[ip]),
        "wash_in_slope": slope,
        "bolus_arrival_s": t0,
    }


def _decay_setup(
    image: xr.DataArray,
    t: np.ndarray,
    isotope: str | None,
    half_life_s: float | None,
    injection_time_s: float | None,
    decay_corrected_to_s: float | None,
    durations: np.ndarray | None,
) -> tuple[np.ndarray | None, str]:
    """Decay-correction factors per frame (None: no correction) and the sentence for the rows' detail."""
    at = image.attrs
    if isotope is None and half_life_s is None and at.get("bids_TracerRadionuclide"):
        isotope = str(at["bids_TracerRadionuclide"])
    if isotope is not None:
        hl = isotope_half_life(isotope)
        if half_life_s is not None and abs(half_life_s - hl) > 1e-3 * hl:
            raise AnalysisError(
                f"half_life_s {half_life_s:g} s contradicts isotope {isotope!r} ({hl:g} s); give one of the two"
            )
        half_life_s, name = hl, str(isotope)
    elif half_life_s is not None:
        name = "the radionuclide"
    else:
        return None, ""
    origin = str(at.get("time_origin", ""))
    if injection_time_s is None:
        if at.get("bids_InjectionStart") is not None:
            injection_time_s, inj_src = float(at["bids_InjectionStart"]), "BIDS InjectionStart"
        else:
            injection_time_s = 0.0
            inj_src = "the time origin" + (f" ({origin})" if origin else ", assumed")
    else:
        inj_src = "given"
    src = "given"
    if decay_corrected_to_s is None:
        corr = str(at.get("decay_correction", "")).upper()
        if at.get("bids_ImageDecayCorrected") is True:
            decay_corrected_to_s = float(at.get("bids_ImageDecayCorrectionTime", 0.0) or 0.0)
            src = "BIDS ImageDecayCorrectionTime"
        elif corr == "ADMIN":
            decay_corrected_to_s, src = injection_time_s, "DICOM DecayCorrection ADMIN"
        elif corr == "START":
            first_start = float(t[0] - (durations[0] / 2 if durations is not None else 0.0))
            decay_corrected_to_s = first_start if origin.startswith("injection") else 0.0
            src = "DICOM DecayCorrection START"
    f = decay_correction_factors(
        t, half_life_s, injection_s=injection_time_s, durations=durations, corrected_to_s=decay_corrected_to_s
    )
    was = (
        f"frames were decay-corrected to t = {decay_corrected_to_s:g} s ({src}): one factor {f[0]:.6g}"
        if decay_corrected_to_s is not None
        else "frames were not decay-corrected: factor per frame"
        + (" averaged over its duration" if durations is not None else " at its mid-time")
    )
    detail = (
        f"decay-corrected to the injection at t = {injection_time_s:g} s ({inj_src}) with {name} "
        f"T1/2 = {half_life_s:g} s; {was}"
    )
    return f, detail


def curves_evaluate(
    image: xr.DataArray,
    mask: xr.DataArray,
    *,
    isotope: str | None = None,
    half_life_s: float | None = None,
    injection_time_s: float | None = None,
    decay_corrected_to_s: float | None = None,
    injected_dose: float | None = None,
    injected_dose_units: str | None = None,
    mass_g: float | None = None,
    t_end: float | None = None,
    tail_points: int = 3,
) -> Any:
    """The study's ``curves``: the region's time-activity curve (rows per frame) and what is read off it.

    Decay correction (to the injection) happens when a radionuclide is known: ``isotope`` (``"18F"``,
    ``"64Cu"``, ``"89Zr"``... see :data:`ISOTOPE_HALF_LIFE_S`), ``half_life_s``, or the image's BIDS
    ``TracerRadionuclide``. ``injection_time_s`` is the injection on the series' time axis (default: BIDS
    ``InjectionStart``, else the axis' origin, which the DICOM loader puts at the injection when recorded).
    ``decay_corrected_to_s`` is the time the frames are already decay-corrected to (default: from BIDS
    ``ImageDecayCorrected``/``ImageDecayCorrectionTime`` or DICOM ``DecayCorrection`` START/ADMIN; none: the
    frames are taken as not decay-corrected). The correction made is written in every row's ``detail``.

    ``injected_dose`` adds %ID/g per frame (``100 C / dose``, 1 g/mL) and %ID per frame (x the region's mass:
    ``mass_g``, else its volume x 1 g/mL). The image must be in an activity concentration (``Bq/mL``,
    ``kBq/mL``, ``uCi/mL``...); ``injected_dose_units`` (``MBq``, ``mCi``...) defaults to the image's activity
    unit. The dose is the activity at injection, so give a radionuclide to decay-correct the curve first.
    """
    import pandas as pd

    from multiscale.image import voxel_volume

    cur = region_curve(image, mask)
    t, c = cur["t"], cur["mean"]
    sd = cur["sd"]
    units = image_units(image)
    dur = cur["frame_duration"]
    factors, detail = _decay_setup(image, t, isotope, half_life_s, injection_time_s, decay_corrected_to_s, dur)
    if factors is not None:
        c, sd = c * factors, sd * factors
    pid, id_detail = None, ""
    if injected_dose is not None:
        if injected_dose <= 0:
            raise AnalysisError(f"injected_dose must be > 0, got {injected_dose}")
        per_ml = activity_scale(units, per_volume=True)
        dose_units = injected_dose_units or units.split("/")[0].strip()
        dose_bq = injected_dose * activity_scale(dose_units, per_volume=False)
        region_g = float(mass_g) if mass_g is not None else cur["n"] * voxel_volume(image) / 1000.0
        pid = percent_id(c * per_ml, dose_bq, mass_g=region_g)
        if factors is None:
            import warnings

            warnings.warn(
                "%ID: the curve was not decay-corrected (no isotope or half_life_s given) while the dose is the "
                "activity at injection; give isotope: to compare like with like",
                KineticsWarning,
                stacklevel=2,
            )
        mass_src = "given" if mass_g is not None else f"{cur['n']} voxels x 1 g/mL"
        id_detail = f"dose {injected_dose:g} {dose_units}; region mass {region_g:.6g} g ({mass_src})"
    rows: list[dict[str, Any]] = []
    for i, (tt, cc) in enumerate(zip(t, c)):
        lo, hi = (tt - dur[i] / 2, tt + dur[i] / 2) if dur is not None else (tt, tt)
        frame = dict(bin=i, bin_lo=float(lo), bin_hi=float(hi), bin_units="s")
        rows.append(dict(metric="mean", value=float(cc), units=units, detail=detail, **frame))
        rows.append(dict(metric="sd", value=float(sd[i]), units=units, detail=detail, **frame))
        if pid is not None:
            d = "; ".join(x for x in (detail, id_detail) if x)
            rows.append(dict(metric="pid_per_g", value=float(pid["pid_per_g"][i]), units="%ID/g", detail=d, **frame))
            rows.append(dict(metric="pid", value=float(pid["pid"][i]), units="%ID", detail=d, **frame))
    a = auc(t, c, tail_points=tail_points) if t_end is None else auc(t, c, t_end=t_end)
    ip = int(np.nanargmax(c))
    hl = half_lives(t, c)
    summary = {
        "auc_last": (a["auc_last"], f"{units}*s"),
        "auc_inf": (a["auc_inf"], f"{units}*s"),
        "tail_rate": (a["tail_rate"], "1/s"),
        "cmax": (float(c[ip]), units),
        "tmax_s": (float(t[ip]), "s"),
        "half_life_s": (hl["half_life_s"], "s"),
        "half_life_alpha_s": (hl["half_life_alpha_s"], "s"),
        "half_life_beta_s": (hl["half_life_beta_s"], "s"),
        "n_voxels": (float(cur["n"]), "voxels"),
    }
    if pid is not None:
        summary["pid_per_g_max"] = (float(np.nanmax(pid["pid_per_g"])), "%ID/g")
        summary["pid_per_g_last"] = (float(pid["pid_per_g"][-1]), "%ID/g")
        summary["pid_max"] = (float(np.nanmax(pid["pid"])), "%ID")
        summary["pid_last"] = (float(pid["pid"][-1]), "%ID")
    for k, (v, u) in summary.items():
        d = "; ".join(x for x in (detail, id_detail if k.startswith("pid") else "") if x)
        rows.append(dict(metric=k, value=v, units=u, detail=d))
    fit = None
    if np.isfinite(hl["half_life_s"]) and "mono_amplitude" in hl:
        fit = np.where(t >= t[ip], hl["mono_amplitude"] * np.exp(-np.log(2) / hl["half_life_s"] * (t - t[ip])), np.nan)
    return FamilyResult(rows=pd.DataFrame(rows), data={"t": t, "mean": c, "sd": sd, "fit": fit, "units": units})


def curves_table(
    image: xr.DataArray,
    mask: xr.DataArray,
    *,
    isotope: str | None = None,
    half_life_s: float | None = None,
    injection_time_s: float | None = None,
    decay_corrected_to_s: float | None = None,
    injected_dose: float | None = None,
    injected_dose_units: str | None = None,
    mass_g: float | None = None,
    t_end: float | None = None,
    tail_points: int = 3,
) -> list[dict[str, Any]]:
    """Rows of :func:`curves_evaluate`.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> t = np.array([0.0, 60, 120, 240]); v = np.exp(-t / 100)[:, None, None] * np.ones((4, 2, 2))
    >>> img = spatial_image(v, spacing=1.0, dims=("t", "y", "x"), units="kBq/mL").assign_coords(t=t)
    >>> m = spatial_image(np.ones((2, 2), bool), spacing=1.0)
    >>> r = {x["metric"]: x for x in curves_table(img, m)}
    >>> r["cmax"]["value"], r["auc_last"]["units"]
    (1.0, 'kBq/mL*s')
    """
    kw = {k: v for k, v in locals().items() if k not in ("image", "mask")}
    return curves_evaluate(image, mask, **kw).rows.to_dict("records")


def _curves_figure(result: Any, title: str = "", labels: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
    from .figures import curves_figure

    d = result.data
    if not d:
        return []
    fits = {"region": d["fit"]} if d.get("fit") is not None else None
    return [
        (
            "curve",
            curves_figure(
                d["t"], {"region": d["mean"]}, fits=fits, units=d["units"], title=title, bands={"region": d["sd"]}
            ),
        )
    ]


FAMILY = Family(
    name="curves",
    table=curves_table,
    evaluate_fn=curves_evaluate,
    figure=_curves_figure,
    description="time-activity curves per region: AUC (to infinity with a fitted tail), Cmax/Tmax, "
    "mono/bi-exponential half-lives, decay correction to injection (isotope table), %ID/g and %ID per frame",
)
