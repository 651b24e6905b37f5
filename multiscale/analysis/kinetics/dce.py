"""The study family ``dce``: tracer-kinetic maps and region values of a DCE-MRI/DCE-CT series.

The series (``t`` dim with frame times in s) is converted to concentration when asked (``signal: spgr``
with T10 and the flip angle, or ``signal: ct`` for a series in HU with the enhancement per unit concentration:
``enhancement_per_unit`` measured on a phantom, e.g. HU per mg/mL of iodine, or ``ct_effective_kev`` for
monoenergetic images, computed from NIST mass attenuation coefficients; concentrations then in ``ct_units``,
mg/mL by default), every voxel
of the region is fitted with :func:`~multiscale.analysis.kinetics.fit.fit_curves` (only the region's
voxels are read), the region's mean curve is fitted too (``roi_*``), and the semi-quantitative values of
the mean curve are added (IAUC60, time to peak, wash-in slope). The AIF is a population model
(``aif: parker``, ``georgiou``, or ``mouse`` with ``aif_params``) or measured: the mean of an
``aif_region`` mask (an artery) on the series' grid, divided by ``1 - hematocrit``.

Planted or reference maps given as ``truth_ktrans``, ``truth_ve``, ``truth_vp``, ``truth_fp``, ``truth_ps``
(optional inputs on the series' grid) add rows ``<p>_truth_median``, ``<p>_error_median`` (fitted minus truth)
and ``<p>_abs_error_median``, and the figure shows them beside the fitted maps on one colour scale.

Units are decided here: Ktrans, kep, PS in 1/min; Fp in mL/100mL/min; ve, vp, fractions and R^2 in 1;
delay, times in s; IAUC60 in ``<units>*s``; wash-in slope in ``<units>/s``.

Examples
--------
>>> import numpy as np
>>> from multiscale.image import spatial_image
>>> from multiscale.analysis.kinetics import models, population_aif
>>> t = np.arange(0, 240.0, 4.0)
>>> cp = population_aif("parker", t, delay=20, hematocrit=0.42)
>>> c = models.tofts(t, cp, np.full(8, 0.2), 0.3).T.reshape(t.size, 2, 2, 2)
>>> img = spatial_image(c, spacing=1.0, dims=("t", "z", "y", "x"), units="mM").assign_coords(t=t)
>>> mask = spatial_image(np.ones((2, 2, 2), bool), spacing=1.0)
>>> rows = dce_table(img, mask, model="tofts", aif_delay=20.0)
>>> r = {x["metric"]: (round(x["value"], 4), x["units"]) for x in rows}
>>> r["ktrans_median"], r["ve_median"], r["roi_ktrans"]
((0.2, '1/min'), (0.3, '1'), (0.2, '1/min'))
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import xarray as xr

from multiscale.errors import AnalysisError
from multiscale.image import spatial_dims

from ..family import Family, FamilyResult, image_units
from . import signal as sig
from .aif import population_aif
from .curves import bolus_arrival, frame_times, semi_quantitative
from .fit import FLAGS, PARAMETERS, UNITS, fit_curves

__all__ = ["dce_evaluate", "dce_table", "dce_images", "region_series", "TRUTH_ROLES", "FAMILY"]

#: optional inputs: planted (simulated) or reference parameter maps, shown beside the fitted maps and compared
TRUTH_ROLES = ("truth_ktrans", "truth_ve", "truth_vp", "truth_fp", "truth_ps")
ROLES = ("image", "mask", "aif_region", "t10") + TRUTH_ROLES


def region_series(image: xr.DataArray, mask: Any) -> tuple[np.ndarray, np.ndarray]:
    """(V, N) curves of the region's voxels (only those are read) and the boolean region."""
    if "t" not in image.dims:
        raise AnalysisError(
            f"dce needs a time series with a 't' dim; got dims {tuple(image.dims)}. Load the dynamic "
            "series (4-D NIfTI with its BIDS sidecar, dynamic DICOM); for one frame use image.isel(t=...)"
        )
    if "c" in image.dims:
        raise AnalysisError("the series has channels; name one in the study's maps (e.g. dce:ch0)")
    m = mask.data if isinstance(mask, xr.DataArray) else mask
    m = np.asarray(m.compute() if hasattr(m, "compute") else m).astype(bool)
    shape = tuple(image.sizes[d] for d in spatial_dims(image))
    if m.shape != shape:
        raise AnalysisError(
            f"the mask's shape {m.shape} is not the series' spatial shape {shape}; resample the mask "
            "onto the series (masks: ... resample: true)"
        )
    if not m.any():
        raise AnalysisError("the mask is empty: no voxel to fit")
    data = image.transpose("t", *spatial_dims(image)).data
    vals = data[:, m]
    vals = np.asarray(vals.compute() if hasattr(vals, "compute") else vals, float)
    return vals.T, m


def _concentration(
    curves: np.ndarray,
    image: xr.DataArray,
    m: np.ndarray,
    signal: str,
    t10: Any,
    t10_s: float | None,
    flip_angle_deg: float | None,
    tr_s: float | None,
    relaxivity_per_mM_s: float,
    n_baseline: int,
    enhancement_per_unit: float | None,
    ct_effective_kev: float | None = None,
    ct_agent: str = "iodine",
) -> np.ndarray:
    if signal == "concentration":
        return curves
    if signal == "ct":
        units = image_units(image)
        if units not in ("HU", "a.u."):
            raise AnalysisError(
                f"signal: ct needs a series in Hounsfield units, but it is in {units!r}; set its units (study: units: "
                "HU) or use signal: concentration"
            )
        k = _ct_calibration(enhancement_per_unit, ct_effective_kev, ct_agent)
        return sig.ct_concentration(curves, enhancement_per_unit=k, n_baseline=n_baseline)
    if flip_angle_deg is None or tr_s is None:
        raise AnalysisError("signal: spgr needs flip_angle_deg and tr_s (and T10: the t10 input or t10_s)")
    if t10 is not None:
        tv = t10.data if isinstance(t10, xr.DataArray) else t10
        tv = np.asarray(tv.compute() if hasattr(tv, "compute") else tv, float)[m]
    elif t10_s is not None:
        tv = np.full(curves.shape[0], float(t10_s))
    else:
        raise AnalysisError("signal: spgr needs T10: give the t10 input (a T1 map in s) or t10_s")
    return sig.spgr_concentration(
        curves, tv, flip_angle_deg=flip_angle_deg, tr=tr_s, relaxivity=relaxivity_per_mM_s, n_baseline=n_baseline
    )


def _ct_calibration(enhancement_per_unit: float | None, ct_effective_kev: float | None, ct_agent: str) -> float:
    if enhancement_per_unit is not None:
        return float(enhancement_per_unit)
    if ct_effective_kev is not None:
        return sig.ct_enhancement_per_mg_ml(ct_effective_kev, ct_agent)
    raise AnalysisError(
        "signal: ct needs the scanner's calibration: enhancement_per_unit (HU per unit concentration, e.g. HU per "
        "mg/mL of iodine measured on a phantom at your tube voltage, about 25-27 at 120 kVp) or, for monoenergetic "
        "images, ct_effective_kev (computed from NIST mass attenuation coefficients)"
    )


def dce_evaluate(
    image: xr.DataArray,
    mask: xr.DataArray,
    aif_region: xr.DataArray | None = None,
    t10: xr.DataArray | None = None,
    truth_ktrans: xr.DataArray | None = None,
    truth_ve: xr.DataArray | None = None,
    truth_vp: xr.DataArray | None = None,
    truth_fp: xr.DataArray | None = None,
    truth_ps: xr.DataArray | None = None,
    *,
    model: Literal["tofts", "etofts", "patlak", "2cxm", "2cum"] = "etofts",
    aif: Literal["parker", "georgiou", "mcgrath", "preclinical", "mouse", "measured"] = "parker",
    aif_delay: float | None = None,
    hematocrit: float = 0.42,
    aif_params: dict | None = None,
    fit_delay: bool = False,
    max_delay: float = 20.0,
    signal: Literal["concentration", "spgr", "ct"] = "concentration",
    t10_s: float | None = None,
    flip_angle_deg: float | None = None,
    tr_s: float | None = None,
    relaxivity_per_mM_s: float = 4.5,
    n_baseline: int = 3,
    enhancement_per_unit: float | None = None,
    ct_effective_kev: float | None = None,
    ct_agent: str = "iodine",
    ct_units: str = "mg/mL",
) -> FamilyResult:
    """Fit the region's voxels and mean curve; rows, parameter maps and the curve data for the figure."""
    t = frame_times(image)
    curves, m = region_series(image, mask)
    conv = dict(
        signal=signal,
        t10=t10,
        t10_s=t10_s,
        flip_angle_deg=flip_angle_deg,
        tr_s=tr_s,
        relaxivity_per_mM_s=relaxivity_per_mM_s,
        n_baseline=n_baseline,
        enhancement_per_unit=enhancement_per_unit,
        ct_effective_kev=ct_effective_kev,
        ct_agent=ct_agent,
    )
    conc = _concentration(curves, image, m, **conv)
    units = {"spgr": "mM", "ct": ct_units}.get(signal, image_units(image))
    if signal == "ct":
        k = _ct_calibration(enhancement_per_unit, ct_effective_kev, ct_agent)
        how = "given" if enhancement_per_unit is not None else f"{ct_agent} at {ct_effective_kev:g} keV, NIST XCOM"
        ct_detail = f"CT enhancement {k:.4g} HU per {ct_units} ({how})"
    else:
        ct_detail = ""
    mean = np.nanmean(conc, axis=0)
    if aif_region is not None or aif == "measured":
        if aif_region is None:
            raise AnalysisError("aif: measured needs the aif_region input (an arterial mask on the series' grid)")
        a_curves, am = region_series(image, aif_region)
        a_conc = _concentration(a_curves, image, am, **conv)
        cp = np.nanmean(a_conc, axis=0) / (1.0 - hematocrit)
        aif_label = f"measured ({int(am.sum())} voxels), Hct {hematocrit}"
    else:
        delay = aif_delay if aif_delay is not None else bolus_arrival(t, mean, n_baseline=n_baseline)
        if not np.isfinite(delay):
            raise AnalysisError("no bolus arrival found in the region's mean curve; give aif_delay (s)")
        cp = population_aif(aif, t, delay=delay, hematocrit=hematocrit, **(aif_params or {}))
        aif_label = f"{aif} population AIF from {delay:g} s, Hct {hematocrit}"
    fit = fit_curves(conc, t, cp, model=model, fit_delay=fit_delay, max_delay=max_delay)
    roi = fit_curves(mean[None, :], t, cp, model=model, fit_delay=fit_delay, max_delay=max_delay)
    rows: list[dict[str, Any]] = []
    names = PARAMETERS[model] + ("delay", "r_squared", "rmse")
    for n in names:
        u = UNITS[n] if n != "rmse" else units
        v = fit[n][np.isfinite(fit[n])]
        if n != "delay" or fit_delay:
            rows.append(dict(metric=f"{n}_median", value=float(np.median(v)) if v.size else np.nan, units=u))
            rows.append(dict(metric=f"{n}_mean", value=float(np.mean(v)) if v.size else np.nan, units=u))
            rows.append(dict(metric=f"{n}_sd", value=float(np.std(v, ddof=1)) if v.size > 1 else np.nan, units=u))
            rows.append(
                dict(metric=f"roi_{n}", value=float(roi[n][0]), units=u, detail="fit of the region's mean curve")
            )
    flags = fit["flag"].astype(int)
    rows.append(dict(metric="n_voxels", value=float(flags.size), units="voxels"))
    rows.append(
        dict(
            metric="fraction_flagged",
            value=float(np.mean(flags != 0)),
            units="1",
            detail="voxels with any flag: " + ", ".join(FLAGS),
        )
    )
    rows.append(
        dict(metric="fraction_not_converged", value=float(np.mean(flags & FLAGS["not_converged"] > 0)), units="1")
    )
    semi = semi_quantitative(t, mean, n_baseline=n_baseline)
    su = {
        "iauc60": f"{units}*s",
        "time_to_peak_s": "s",
        "peak": units,
        "wash_in_slope": f"{units}/s",
        "bolus_arrival_s": "s",
    }
    for k, v in semi.items():
        rows.append(dict(metric=k, value=float(v), units=su[k], detail="region mean curve"))
    for i, (tt, cc) in enumerate(zip(t, mean)):
        rows.append(
            dict(
                metric="concentration",
                value=float(cc),
                units=units,
                bin=i,
                bin_lo=float(tt),
                bin_hi=float(tt),
                bin_units="s",
                detail="region mean curve",
            )
        )
    for r in rows:
        r["detail"] = "; ".join(x for x in (r.get("detail", ""), f"model {model}, {aif_label}", ct_detail) if x)
    template = image.isel(t=0, drop=True)
    maps = {}
    for n in PARAMETERS[model] + ("r_squared", "flag") + (("delay",) if fit_delay else ()):
        full = np.full(m.shape, np.nan, dtype=np.float32)
        full[m] = fit[n]
        attrs = {k: v for k, v in template.attrs.items() if k not in ("warnings",)}
        attrs.update(units=UNITS.get(n, "1"), aspect="environment", dce_model=model)
        maps[n] = xr.DataArray(
            full,
            dims=template.dims,
            coords={d: template.coords[d] for d in template.dims if d in template.coords},
            attrs=attrs,
            name=n,
        )
    given = {"ktrans": truth_ktrans, "ve": truth_ve, "vp": truth_vp, "fp": truth_fp, "ps": truth_ps}
    truth: dict[str, np.ndarray] = {}
    for n, img in given.items():
        if img is None:
            continue
        if n not in PARAMETERS[model]:
            raise AnalysisError(f"truth_{n} was given but model {model} has no {n}; its parameters are {PARAMETERS[model]}")
        tv = img.data if isinstance(img, xr.DataArray) else img
        tv = np.asarray(tv.compute() if hasattr(tv, "compute") else tv, float)
        if tv.shape != m.shape:
            raise AnalysisError(
                f"truth_{n} has shape {tv.shape}, the series' grid is {m.shape}; resample it onto the series' grid"
            )
        truth[n] = np.where(m, tv, np.nan)
        err = fit[n] - tv[m]
        ok = np.isfinite(err)
        u = UNITS[n]
        rows.append(dict(metric=f"{n}_truth_median", value=float(np.nanmedian(tv[m])), units=u, detail="given truth"))
        rows.append(
            dict(
                metric=f"{n}_error_median",
                value=float(np.median(err[ok])) if ok.any() else np.nan,
                units=u,
                detail="fitted minus truth, voxel by voxel",
            )
        )
        rows.append(
            dict(
                metric=f"{n}_abs_error_median",
                value=float(np.median(np.abs(err[ok]))) if ok.any() else np.nan,
                units=u,
                detail="|fitted - truth|, voxel by voxel",
            )
        )
        rows[-3:] = [dict(r, detail="; ".join((r["detail"], f"model {model}, {aif_label}"))) for r in rows[-3:]]
    roi_fit = _model_curve(model, t, cp, {k: roi[k][0] for k in roi})
    data = {
        "t": t,
        "mean": mean,
        "sd": np.nanstd(conc, axis=0),
        "aif": cp,
        "fit": roi_fit,
        "units": units,
        "model": model,
        "maps": {k: maps[k] for k in (list(truth)[:3] if truth else PARAMETERS[model][:2])},
        "truth": truth,
    }
    return FamilyResult(rows=_frame(rows), images=maps, data=data)


def _model_curve(model: str, t: np.ndarray, cp: np.ndarray, p: dict[str, float]) -> np.ndarray:
    from . import models as mdl

    if not all(np.isfinite(p.get(k, 0.0)) for k in PARAMETERS[model]):
        return np.full(t.size, np.nan)
    if model == "tofts":
        return mdl.tofts(t, cp, p["ktrans"], p["ve"])
    if model == "etofts":
        return mdl.etofts(t, cp, p["ktrans"], p["ve"], p["vp"])
    if model == "patlak":
        return mdl.patlak(t, cp, p["ktrans"], p["vp"])
    if model == "2cxm":
        return mdl.two_cxm(t, cp, p["fp"], p["ps"], p["vp"], p["ve"])
    return mdl.two_cum(t, cp, p["fp"], p["ps"], p["vp"])


def _frame(rows: list[dict[str, Any]]) -> Any:
    import pandas as pd

    return pd.DataFrame(rows)


def dce_table(
    image: xr.DataArray,
    mask: xr.DataArray,
    aif_region: xr.DataArray | None = None,
    t10: xr.DataArray | None = None,
    truth_ktrans: xr.DataArray | None = None,
    truth_ve: xr.DataArray | None = None,
    truth_vp: xr.DataArray | None = None,
    truth_fp: xr.DataArray | None = None,
    truth_ps: xr.DataArray | None = None,
    *,
    model: Literal["tofts", "etofts", "patlak", "2cxm", "2cum"] = "etofts",
    aif: Literal["parker", "georgiou", "mcgrath", "preclinical", "mouse", "measured"] = "parker",
    aif_delay: float | None = None,
    hematocrit: float = 0.42,
    aif_params: dict | None = None,
    fit_delay: bool = False,
    max_delay: float = 20.0,
    signal: Literal["concentration", "spgr", "ct"] = "concentration",
    t10_s: float | None = None,
    flip_angle_deg: float | None = None,
    tr_s: float | None = None,
    relaxivity_per_mM_s: float = 4.5,
    n_baseline: int = 3,
    enhancement_per_unit: float | None = None,
    ct_effective_kev: float | None = None,
    ct_agent: str = "iodine",
    ct_units: str = "mg/mL",
) -> list[dict[str, Any]]:
    """The rows of :func:`dce_evaluate` (the study's ``dce``); see the module docstring."""
    kw = {k: v for k, v in locals().items() if k not in ROLES}
    roles = {k: v for k, v in locals().items() if k in ROLES}
    return dce_evaluate(**roles, **kw).rows.to_dict("records")


def dce_images(image: xr.DataArray, mask: xr.DataArray, **roles_and_params: Any) -> dict[str, xr.DataArray]:
    """The parameter maps (NaN outside the region) of :func:`dce_evaluate`."""
    return dce_evaluate(image, mask, **roles_and_params).images


def _figure(result: FamilyResult, title: str = "", labels: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
    from .figures import dce_figure

    return [("dce", dce_figure(result.data, title=title))] if result.data else []


FAMILY = Family(
    name="dce",
    table=dce_table,
    inputs=("image", "mask"),
    optional=("aif_region", "t10") + TRUTH_ROLES,
    images=dce_images,
    figure=_figure,
    evaluate_fn=dce_evaluate,
    description="DCE-MRI/CT kinetic maps (Tofts, extended Tofts, Patlak, 2CXM, 2CUM) with population or measured "
    "AIF, region medians and ROI fits, IAUC60, time to peak, wash-in slope",
)
