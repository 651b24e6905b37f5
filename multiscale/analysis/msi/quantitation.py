"""Quantitative MSI: calibration curves with an internal standard, LOD/LOQ and concentration maps.

Definitions (ICH Q2(R1), "based on the standard deviation of the response and the slope")
------------------------------------------------------------------------------------------
* **Response** of a pixel or a standard: analyte intensity / internal-standard intensity (or the analyte
  intensity alone without an internal standard). A standard's response is the ratio of its summed analyte to
  its summed internal-standard intensity over its spot (``response="ratio_of_sums"``) or the mean of its pixel
  ratios (``"mean_ratio"``).
* **Calibration curve**: ordinary least squares ``response = slope x concentration + intercept`` over at least
  three distinct standard concentrations (fewer raise :class:`~multiscale.errors.AnalysisError`); ``sigma`` =
  the residual standard deviation (n - 2 degrees of freedom).
* **LOD** = 3.3 sigma / slope and **LOQ** = 10 sigma / slope, in concentration units.
* **Concentration map**: ``(response - intercept) / slope`` per pixel, in the standards' units (µg/g for tissue
  mimetics or spotted standards per tissue mass); pixels whose concentration is below the LOD are flagged in
  ``below_lod`` (and set to NaN with ``below_lod="nan"``, to 0 with ``"zero"``, or kept with ``"keep"``);
  pixels between LOD and LOQ are flagged in ``below_loq``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from multiscale import image as mi
from multiscale.errors import AnalysisError, AnalysisWarning

from ..family import Family, FamilyResult

__all__ = ["CalibrationCurve", "calibration_curve", "standard_responses", "concentration_map",
           "quantitation_table", "FAMILY"]


@dataclass(frozen=True)
class CalibrationCurve:
    """A linear calibration ``response = slope x concentration + intercept`` with its LOD and LOQ."""

    slope: float
    intercept: float
    r_squared: float
    sigma: float
    lod: float
    loq: float
    n_standards: int
    units: str = "µg/g"

    def concentration(self, response: Any) -> np.ndarray:
        """Concentration of a response (inverse of the curve).

        Examples
        --------
        >>> CalibrationCurve(2.0, 1.0, 1.0, 0.0, 0.0, 0.0, 3).concentration(5.0).tolist()
        2.0
        """
        return (np.asarray(response, float) - self.intercept) / self.slope


def calibration_curve(concentrations: Sequence[float], responses: Sequence[float], *, units: str = "µg/g"
                      ) -> CalibrationCurve:
    """Fit a calibration curve (ordinary least squares) and its LOD = 3.3 sigma / S, LOQ = 10 sigma / S.

    Raises
    ------
    AnalysisError
        Fewer than three distinct concentrations, mismatched lengths, or a non-positive slope.

    Examples
    --------
    >>> c = calibration_curve([0, 1, 2, 4], [0.1, 1.1, 2.0, 4.1])
    >>> round(c.slope, 4), round(c.intercept, 4), round(c.lod, 4)
    (0.9971, 0.08, 0.2017)
    """
    x = np.asarray(concentrations, dtype=float)
    y = np.asarray(responses, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise AnalysisError(f"concentrations ({x.shape}) and responses ({y.shape}) must be 1-D of equal length")
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if np.unique(x).size < 3:
        raise AnalysisError(f"a calibration curve needs at least three standards of distinct concentration; got "
                            f"{np.unique(x).size} ({np.unique(x).tolist()}); add standards (a dilution series of "
                            "three or more levels)")
    slope, intercept = np.polyfit(x, y, 1)
    fit = slope * x + intercept
    resid = y - fit
    dof = x.size - 2
    sigma = float(np.sqrt(np.sum(resid**2) / dof)) if dof > 0 else float("nan")
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = float(1 - np.sum(resid**2) / ss_tot) if ss_tot > 0 else float("nan")
    if not slope > 0:
        raise AnalysisError(f"the calibration slope is {slope:.4g} (not positive): the response does not grow with "
                            "concentration; check the standards, the analyte m/z and the internal standard")
    return CalibrationCurve(float(slope), float(intercept), r2, sigma, float(3.3 * sigma / slope), float(10 * sigma / slope),
                            int(x.size), units)


def _values(img: Any) -> np.ndarray:
    return np.asarray(img.values if isinstance(img, xr.DataArray) else img, dtype=np.float64)


def standard_responses(analyte: Any, standards: Any, concentrations: Sequence[float] | dict[int, float],
                       internal_standard: Any = None,
                       response: Literal["ratio_of_sums", "mean_ratio"] = "ratio_of_sums") -> pd.DataFrame:
    """Response of each standard spot: label ``k`` of ``standards`` has concentration ``concentrations[k-1]``.

    Examples
    --------
    >>> a = np.array([[2.0, 2.0, 4.0, 4.0, 6.0, 6.0]]); lab = np.array([[1, 1, 2, 2, 3, 3]])
    >>> standard_responses(a, lab, [1.0, 2.0, 3.0])["response"].tolist()
    [2.0, 4.0, 6.0]
    """
    a = _values(analyte)
    lab = np.nan_to_num(_values(standards)).astype(np.int64)
    conc = dict(concentrations) if isinstance(concentrations, dict) else {i + 1: c for i, c in enumerate(concentrations)}
    isd = _values(internal_standard) if internal_standard is not None else None
    rows = []
    for k, c in sorted(conc.items()):
        m = lab == int(k)
        if not m.any():
            raise AnalysisError(f"standard label {k} (concentration {c}) has no pixel in the standards mask")
        if isd is None:
            r = float(np.nanmean(a[m]))
        elif response == "ratio_of_sums":
            r = float(np.nansum(a[m]) / np.nansum(isd[m]))
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                r = float(np.nanmean(np.where(isd[m] > 0, a[m] / isd[m], np.nan)))
        rows.append({"label": int(k), "concentration": float(c), "response": r, "n_pixels": int(m.sum())})
    return pd.DataFrame(rows)


def concentration_map(analyte: xr.DataArray, curve: CalibrationCurve, internal_standard: xr.DataArray | None = None,
                      *, below_lod: Literal["nan", "zero", "keep"] = "nan") -> xr.DataArray:
    """Concentration per pixel from the curve; ``attrs['below_lod']`` / ``['below_loq']`` hold the flag masks.

    Examples
    --------
    >>> from multiscale.image import spatial_image
    >>> c = CalibrationCurve(2.0, 0.0, 1.0, 0.1, 0.165, 0.5, 3)
    >>> m = concentration_map(spatial_image(np.array([[0.2, 4.0]]), spacing=0.05), c)
    >>> m.values.tolist(), m.attrs["units"]
    ([[nan, 2.0]], 'µg/g')
    """
    a = _values(analyte)
    if internal_standard is not None:
        if not mi.same_grid(analyte, internal_standard, rtol=1e-4):
            raise AnalysisError("the internal standard is on another grid than the analyte; resample it first")
        isd = _values(internal_standard)
        with np.errstate(divide="ignore", invalid="ignore"):
            resp = np.where(isd > 0, a / isd, np.nan)
    else:
        resp = a
    conc = curve.concentration(resp)
    low = np.isfinite(conc) & (conc < curve.lod)
    low_q = np.isfinite(conc) & (conc < curve.loq)
    if below_lod == "nan":
        conc = np.where(low, np.nan, conc)
    elif below_lod == "zero":
        conc = np.where(low, 0.0, conc)
    elif below_lod != "keep":
        raise ValueError(f"below_lod must be 'nan', 'zero' or 'keep', got {below_lod!r}")
    out = mi.like(analyte, conc, units=curve.units, aspect="drug", agent=f"{analyte.attrs.get('agent', 'analyte')} "
                  f"concentration (calibrated)")
    out.attrs["below_lod"] = low
    out.attrs["below_loq"] = low_q
    out.attrs["calibration"] = {"slope": curve.slope, "intercept": curve.intercept, "lod": curve.lod,
                                "loq": curve.loq, "r_squared": curve.r_squared, "n_standards": curve.n_standards}
    return out


def _curve_from(image: xr.DataArray, standards: Any, concentrations: Sequence[float] | None,
                calibration: Sequence[Sequence[float]] | None, internal_standard: Any, units: str
                ) -> tuple[CalibrationCurve, pd.DataFrame]:
    if standards is not None:
        if not concentrations:
            raise AnalysisError("a standards mask needs concentrations: [c1, c2, ...] (one per label 1, 2, ...)")
        pts = standard_responses(image, standards, list(concentrations), internal_standard)
    elif calibration:
        arr = np.asarray(calibration, dtype=float)
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise AnalysisError("calibration must be a list of [concentration, response] pairs")
        pts = pd.DataFrame({"concentration": arr[:, 0], "response": arr[:, 1]})
    else:
        raise AnalysisError("msi_quantitation needs standards: a 'standards' label mask input with concentrations=, "
                            "or calibration: [[concentration, response], ...] (at least three levels)")
    return calibration_curve(pts["concentration"], pts["response"], units=units), pts


def quantitation_table(
    image: xr.DataArray,
    mask: xr.DataArray,
    standards: xr.DataArray | None = None,
    internal_standard: xr.DataArray | None = None,
    *,
    concentrations: list[float] | None = None,
    calibration: list[list[float]] | None = None,
    units: str = "µg/g",
) -> pd.DataFrame:
    """Calibration, LOD/LOQ and the region's concentration as tidy rows (the ``msi_quantitation`` family).

    ``image`` is the analyte ion image, ``standards`` an optional label mask of standard spots (label k has
    ``concentrations[k-1]``), ``internal_standard`` an optional ion image; or ``calibration`` pairs
    ``[concentration, response]`` measured elsewhere. Rows: ``slope`` (response per concentration unit),
    ``intercept``, ``r_squared``, ``lod``/``loq`` and ``mean_concentration``/``median_concentration`` (in
    ``units``, over the region's pixels at or above the LOD), ``fraction_below_lod``,
    ``fraction_below_loq`` and ``n_standards``.
    """
    return _evaluate(image, mask, standards, internal_standard, concentrations=concentrations,
                     calibration=calibration, units=units).rows


def _evaluate(image: xr.DataArray, mask: xr.DataArray, standards: xr.DataArray | None = None,
              internal_standard: xr.DataArray | None = None, *, concentrations: list[float] | None = None,
              calibration: list[list[float]] | None = None, units: str = "µg/g") -> FamilyResult:
    import warnings

    curve, pts = _curve_from(image, standards, concentrations, calibration, internal_standard, units)
    cmap = concentration_map(image, curve, internal_standard, below_lod="keep")
    region = np.nan_to_num(_values(mask)) > 0
    vals = np.asarray(cmap.values)
    low = np.asarray(cmap.attrs["below_lod"]) & region
    lowq = np.asarray(cmap.attrs["below_loq"]) & region
    ok = region & np.isfinite(vals) & ~low
    n = int(region.sum())
    if n and not ok.any():
        warnings.warn("every pixel of the region is below the LOD; its concentration is NaN", AnalysisWarning,
                      stacklevel=2)
    resp_units = "1" if internal_standard is not None else (image.attrs.get("units") or "a.u.")
    rows = [
        {"metric": "slope", "value": curve.slope, "units": f"{resp_units}/({units})"},
        {"metric": "intercept", "value": curve.intercept, "units": resp_units},
        {"metric": "r_squared", "value": curve.r_squared, "units": "1"},
        {"metric": "lod", "value": curve.lod, "units": units},
        {"metric": "loq", "value": curve.loq, "units": units},
        {"metric": "mean_concentration", "value": float(vals[ok].mean()) if ok.any() else np.nan, "units": units},
        {"metric": "median_concentration", "value": float(np.median(vals[ok])) if ok.any() else np.nan,
         "units": units},
        {"metric": "fraction_below_lod", "value": float(low.sum() / n) if n else np.nan, "units": "1"},
        {"metric": "fraction_below_loq", "value": float(lowq.sum() / n) if n else np.nan, "units": "1"},
        {"metric": "n_standards", "value": float(curve.n_standards), "units": "standards"},
    ]
    detail = "LOD 3.3 sigma/S, LOQ 10 sigma/S (ICH Q2); " + ("response = analyte / internal standard"
                                                            if internal_standard is not None else "response = analyte")
    for r in rows:
        r["detail"] = detail
    shown = cmap.copy(data=np.where(np.asarray(cmap.attrs["below_lod"]), np.nan, vals))
    shown.attrs = {k: v for k, v in cmap.attrs.items() if k not in ("below_lod", "below_loq")}
    flag = mi.like(image, np.asarray(cmap.attrs["below_lod"]).astype(np.uint8), units="", aspect="mask",
                   agent="below LOD")
    return FamilyResult(rows=pd.DataFrame(rows), images={"concentration": shown, "below_lod": flag},
                        data={"standards": pts, "curve": curve})


def quantitation_figures(result: FamilyResult, title: str = "", labels: Sequence[str] = ()) -> list[tuple[str, Any]]:
    """The calibration curve with its standards, LOD and LOQ; and the concentration map."""
    from .figures import calibration_figure

    return [("calibration", calibration_figure(result.data["standards"], result.data["curve"], result.images.get(
        "concentration"), title=title))]


FAMILY = Family(
    name="msi_quantitation",
    table=quantitation_table,
    inputs=("image", "mask"),
    optional=("standards", "internal_standard"),
    evaluate_fn=_evaluate,
    figure=quantitation_figures,
    description="MSI quantitation: calibration curve (internal standard), LOD/LOQ, concentration map (µg/g)",
)
