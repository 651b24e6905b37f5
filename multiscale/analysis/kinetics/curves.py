"""Time-activity curves per region and what is read off them: AUC, Cmax/Tmax, half-lives, %ID, semi-quantitative DCE.

* :func:`region_curve`: the mean (and SD, voxel count) of an image with a ``t`` dim in a region, per frame,
  with the frame times (s) and the image's units.
* :func:`auc`: trapezoid area from the first frame to ``t_end`` (s), or to infinity with a mono-exponential
  tail fitted to the last ``tail_points`` frames (``AUC_inf = AUC_last + C_last / lambda``).
* :func:`half_lives`: mono-exponential ``C = A exp(-k t)`` and bi-exponential (distribution ``alpha``,
  elimination ``beta``) half-lives, fitted with :func:`scipy.optimize.curve_fit` on the points after Tmax.
* :func:`decay_correct`: activity back to injection time, ``C exp(ln 2 t / T_half)``; :func:`percent_id`:
  ``%ID/g = 100 C / dose`` (tissue density 1 g/mL, as :mod:`multiscale.analysis.uptake`), ``%ID = %ID/g x g``.
* :func:`semi_quantitative`: IAUC60 (initial area under the curve over the 60 s after bolus arrival),
  time to peak, maximum wash-in slope.
* :func:`change_from_baseline`: voxel-wise ``b - a`` and ``100 (b - a) / a`` of two co-registered sessions.

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
    "percent_id",
    "semi_quantitative",
    "change_from_baseline",
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
    from scipy.optimize import curve_fit

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


def change_from_baseline(baseline: xr.DataArray, follow_up: xr.DataArray) -> dict[str, xr.DataArray]:
    """``difference = b - a`` and ``percent = 100 (b - a) / a`` of two co-registered maps on one grid."""
    from multiscale.image import same_grid

    if not same_grid(baseline, follow_up):
        raise AnalysisError("the two sessions are not on the same grid; register and resample one onto the other first")
    a = baseline.astype(float)
    b = follow_up.astype(float)
    diff = b - a
    diff.attrs = dict(follow_up.attrs, units=str(follow_up.attrs.get("units", "") or "a.u."))
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = xr.where(a != 0, 100.0 * (b - a) / a, np.nan)
    pct.attrs = dict(follow_up.attrs, units="%")
    return {"difference": diff, "percent_change": pct}


def curves_evaluate(
    image: xr.DataArray,
    mask: xr.DataArray,
    *,
    half_life_s: float | None = None,
    injected_dose: float | None = None,
    mass_g: float | None = None,
    t_end: float | None = None,
    tail_points: int = 3,
) -> Any:
    """The study's ``curves``: the region's time-activity curve (rows per frame) and what is read off it.

    ``half_life_s`` decay-corrects to the time origin first (radionuclide half-life, s: F-18 6586.2 s);
    ``injected_dose`` (image units x mL, e.g. Bq for Bq/mL) adds %ID/g (and %ID with ``mass_g``).
    """
    import pandas as pd

    cur = region_curve(image, mask)
    t, c = cur["t"], cur["mean"]
    units = image_units(image)
    detail = ""
    if half_life_s is not None:
        c = decay_correct(t, c, half_life_s)
        detail = f"decay-corrected to t = 0 with T1/2 {half_life_s:g} s"
    rows: list[dict[str, Any]] = []
    dur = cur["frame_duration"]
    for i, (tt, cc) in enumerate(zip(t, c)):
        lo, hi = (tt - dur[i] / 2, tt + dur[i] / 2) if dur is not None else (tt, tt)
        rows.append(
            dict(
                metric="mean",
                value=float(cc),
                units=units,
                bin=i,
                bin_lo=float(lo),
                bin_hi=float(hi),
                bin_units="s",
                detail=detail,
            )
        )
        rows.append(
            dict(
                metric="sd",
                value=float(cur["sd"][i]),
                units=units,
                bin=i,
                bin_lo=float(lo),
                bin_hi=float(hi),
                bin_units="s",
                detail=detail,
            )
        )
    a = auc(t, c, tail_points=tail_points) if t_end is None else auc(t, c, t_end=t_end)
    ip = int(np.nanargmax(c))
    hl = half_lives(t, c)
    summary = {
        "auc_last": (a["auc_last"], f"{units}*s"),
        "auc_inf": (a["auc_inf"], f"{units}*s"),
        "cmax": (float(c[ip]), units),
        "tmax_s": (float(t[ip]), "s"),
        "half_life_s": (hl["half_life_s"], "s"),
        "half_life_alpha_s": (hl["half_life_alpha_s"], "s"),
        "half_life_beta_s": (hl["half_life_beta_s"], "s"),
        "n_voxels": (float(cur["n"]), "voxels"),
    }
    if injected_dose is not None:
        p = percent_id(c, injected_dose, mass_g=mass_g)
        summary["pid_per_g_max"] = (float(np.nanmax(p["pid_per_g"])), "%ID/g")
        summary["pid_per_g_last"] = (float(p["pid_per_g"][-1]), "%ID/g")
        if "pid" in p:
            summary["pid_last"] = (float(p["pid"][-1]), "%ID")
    for k, (v, u) in summary.items():
        rows.append(dict(metric=k, value=v, units=u, detail=detail))
    fit = None
    if np.isfinite(hl["half_life_s"]) and "mono_amplitude" in hl:
        fit = np.where(t >= t[ip], hl["mono_amplitude"] * np.exp(-np.log(2) / hl["half_life_s"] * (t - t[ip])), np.nan)
    return FamilyResult(rows=pd.DataFrame(rows), data={"t": t, "mean": c, "sd": cur["sd"], "fit": fit, "units": units})


def curves_table(
    image: xr.DataArray,
    mask: xr.DataArray,
    *,
    half_life_s: float | None = None,
    injected_dose: float | None = None,
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
    return curves_evaluate(
        image,
        mask,
        half_life_s=half_life_s,
        injected_dose=injected_dose,
        mass_g=mass_g,
        t_end=t_end,
        tail_points=tail_points,
    ).rows.to_dict("records")


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
    "mono/bi-exponential half-lives, decay correction, %ID/g",
)
