"""Calibrated fluorescence: background and autofluorescence subtraction, flat-field correction, a standards curve
(linear or 4-parameter logistic) turning intensity into concentration with its limit of detection, and whole-body
FLI/BLI radiance, radiant efficiency and tumour-to-background ratios.

* Standards curve, linear: ``I = a + b c`` by ordinary least squares; 4PL: ``I = d + (a - d) / (1 + (c / c50)^h)``
  (``a`` the response at zero, ``d`` at infinite concentration) by :func:`scipy.optimize.curve_fit`.
* Limit of detection (ICH Q2(R1), 3.3 sigma): the signal ``blank + 3.3 sigma`` turned into a concentration, with
  ``blank`` and ``sigma`` the mean and SD of the blank replicates when given, else the curve's response at zero
  and the residual SD of the fit. The limit of quantification uses 10 sigma.
* Linear curve: intensities below the blank give negative concentrations, kept so that a region's mean stays
  unbiased (the fraction above the LOD says what is detected). 4PL: intensities outside the asymptotes cannot be
  inverted and give NaN with a warning, never an extrapolated number.
* Radiance (p/s/cm^2/sr) = counts / exposure (s) x the camera's calibration (p/s/cm^2/sr per count/s);
  radiant efficiency = radiance / excitation irradiance (uW/cm^2), units ``(p/s/cm^2/sr)/(uW/cm^2)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import xarray as xr

from multiscale.errors import AnalysisError, AnalysisWarning
from multiscale.image import same_grid, spacing

from ._masks import check_mask, mask_array, masked_values, single_channel
from .family import Family, FamilyResult, image_units, tidy_rows
from .figures import feature_map_figure, new_figure
from .metrics import Metrics

__all__ = ["subtract_background", "flat_field", "StandardsCurve", "standards_curve", "concentration_map",
           "radiance", "radiant_efficiency", "tumour_to_background", "fluorescence_result", "fluorescence_table",
           "standards_figure", "FAMILY"]


def _same(a: xr.DataArray, b: xr.DataArray, what: str) -> None:
    if not same_grid(a, b):
        raise AnalysisError(f"the {what} is not on the image's grid; resample it onto the image first")


def subtract_background(image: xr.DataArray, background: float | xr.DataArray = 0.0, *,
                        region: xr.DataArray | None = None, autofluorescence: xr.DataArray | None = None,
                        autofluorescence_scale: float = 1.0, clip: bool = True) -> xr.DataArray:
    """Remove a background: a constant, the mean of a background ``region``, and/or a scaled autofluorescence image.

    ``image - background - mean(image in region) - scale * autofluorescence``, clipped at 0 with ``clip``.

    Examples
    --------
    >>> from multiscale.image import spatial_image
    >>> img = spatial_image(np.array([[10.0, 12.0], [3.0, 3.0]]), spacing=0.1)
    >>> bg = spatial_image(np.array([[0, 0], [1, 1]], np.uint8), spacing=0.1)
    >>> subtract_background(img, region=bg).values.tolist()
    [[7.0, 9.0], [0.0, 0.0]]
    """
    img = single_channel(image, "image")
    data = np.asarray(img.values, dtype=float)
    if isinstance(background, xr.DataArray):
        b = single_channel(background, "background image")
        _same(img, b, "background image")
        data = data - np.asarray(b.values, dtype=float)
    else:
        data = data - float(background)
    if region is not None:
        m = mask_array(region, img, "background region")
        data = data - float(np.nanmean(data[m]))
    if autofluorescence is not None:
        af = single_channel(autofluorescence, "autofluorescence image")
        _same(img, af, "autofluorescence image")
        data = data - autofluorescence_scale * np.asarray(af.values, dtype=float)
    if clip:
        data = np.maximum(data, 0.0)
    return img.copy(data=data)


def flat_field(image: xr.DataArray, flat: xr.DataArray, dark: xr.DataArray | float = 0.0) -> xr.DataArray:
    """Flat-field correction ``(I - dark) / (flat - dark) * mean(flat - dark)`` (the mean level is kept).

    Pixels where ``flat - dark <= 0`` are NaN with a warning.

    Examples
    --------
    >>> from multiscale.image import spatial_image
    >>> flat = spatial_image(np.array([[1.0, 0.5]]), spacing=0.1)
    >>> flat_field(spatial_image(np.array([[4.0, 2.0]]), spacing=0.1), flat).values.tolist()
    [[3.0, 3.0]]
    """
    img = single_channel(image, "image")
    f = single_channel(flat, "flat-field image")
    _same(img, f, "flat-field image")
    d = 0.0
    if isinstance(dark, xr.DataArray):
        dk = single_channel(dark, "dark image")
        _same(img, dk, "dark image")
        d = np.asarray(dk.values, dtype=float)
    else:
        d = float(dark)
    gain = np.asarray(f.values, dtype=float) - d
    good = gain > 0
    if not good.any():
        raise AnalysisError("the flat-field image is not above the dark level anywhere; check the flat and dark images")
    if not good.all():
        warnings.warn(f"{int((~good).sum())} pixel(s) of the flat field are not above the dark level: set to NaN",
                      AnalysisWarning, stacklevel=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(good, (np.asarray(img.values, dtype=float) - d) / gain * float(gain[good].mean()), np.nan)
    return img.copy(data=out)


def _logistic4(c: np.ndarray, a: float, d: float, c50: float, h: float) -> np.ndarray:
    c = np.maximum(np.asarray(c, dtype=float), 0.0)
    return d + (a - d) / (1.0 + (c / c50) ** h)


@dataclass
class StandardsCurve:
    """A fitted standards curve: intensity as a function of concentration, and its inverse.

    Attributes: ``model`` (``"linear"`` / ``"4pl"``), ``params`` (``intercept``, ``slope`` or ``a``, ``d``,
    ``c50``, ``hill``), ``blank`` and ``sigma`` (the signal at zero and its SD), ``lod`` and ``loq``
    (concentrations), ``r_squared``, ``units`` (of concentration), ``range`` (the standards' concentrations).
    """

    model: str
    params: dict[str, float]
    blank: float
    sigma: float
    lod: float
    loq: float
    r_squared: float
    units: str
    range: tuple[float, float]
    data: dict[str, list[float]] = field(default_factory=dict)

    def intensity(self, concentration: Any) -> np.ndarray:
        """The expected intensity at ``concentration``."""
        c = np.asarray(concentration, dtype=float)
        p = self.params
        if self.model == "linear":
            return p["intercept"] + p["slope"] * c
        return _logistic4(c, p["a"], p["d"], p["c50"], p["hill"])

    def concentration(self, intensity: Any, warn: bool = True) -> np.ndarray:
        """The concentration giving ``intensity`` (4PL: NaN outside the asymptotes, with a warning)."""
        y = np.asarray(intensity, dtype=float)
        p = self.params
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.model == "linear":
                c = (y - p["intercept"]) / p["slope"]  # below the blank: negative, kept (unbiased region means)
                bad = np.zeros(np.shape(c), dtype=bool)
            else:
                a, d, c50, h = p["a"], p["d"], p["c50"], p["hill"]
                frac = (a - d) / (y - d) - 1.0
                c = c50 * np.power(frac, 1.0 / h)
                lo, hi = min(a, d), max(a, d)
                bad = np.isfinite(y) & ((y <= lo) | (y >= hi))
                c = np.where((y <= lo) | (y >= hi), np.nan, c)
        if warn and np.any(bad):
            warnings.warn(f"{int(np.sum(bad))} intensity value(s) outside the standards curve's range gave NaN "
                          "concentrations", AnalysisWarning, stacklevel=2)
        return c


def standards_curve(concentrations: Sequence[float], intensities: Sequence[float], *,
                    model: Literal["linear", "4pl"] = "linear", blanks: Sequence[float] | None = None,
                    units: str = "ug/mL") -> StandardsCurve:
    """Fit a standards curve (intensity vs known concentration) and its limit of detection.

    Parameters
    ----------
    concentrations, intensities : sequence of float
        The standards (replicates allowed: repeat the concentration).
    model : {"linear", "4pl"}
        Ordinary least-squares line, or the 4-parameter logistic.
    blanks : sequence of float, optional
        Intensities of blank replicates (for the LOD); else the fit's response at zero and residual SD.
    units : str
        The concentrations' unit.

    Examples
    --------
    >>> c = [0, 1, 2, 5, 10]; i = [2.0, 12.1, 21.9, 52.0, 102.0]
    >>> curve = standards_curve(c, i)
    >>> round(curve.params["slope"], 2), round(float(curve.concentration(62.0)), 2)
    (10.0, 6.0)
    """
    c = np.asarray(concentrations, dtype=float)
    y = np.asarray(intensities, dtype=float)
    if c.shape != y.shape or c.ndim != 1:
        raise AnalysisError(f"standards: {c.size} concentrations for {y.size} intensities")
    if not (np.isfinite(c).all() and np.isfinite(y).all()) or np.any(c < 0):
        raise AnalysisError("standards must be finite with concentrations >= 0")
    if model not in ("linear", "4pl"):
        raise AnalysisError(f"model={model!r}; use 'linear' or '4pl'")
    need = 2 if model == "linear" else 4
    if np.unique(c).size < need or c.size < need + 1:
        raise AnalysisError(f"a {model} standards curve needs at least {need} distinct concentrations and "
                            f"{need + 1} standards; got {np.unique(c).size} and {c.size}")
    if model == "linear":
        slope, intercept = np.polyfit(c, y, 1)
        if slope == 0:
            raise AnalysisError("the standards' intensities do not change with concentration (slope 0)")
        params = {"intercept": float(intercept), "slope": float(slope)}
        fit = intercept + slope * c
        dof = c.size - 2
    elif model == "4pl":
        from scipy.optimize import curve_fit

        order = np.argsort(c)
        pos = c[c > 0]
        p0 = [float(y[order][0]), float(y[order][-1]), float(np.median(pos)) if pos.size else 1.0, 1.0]
        try:
            popt, _ = curve_fit(_logistic4, c, y, p0=p0, maxfev=20000,
                                bounds=([-np.inf, -np.inf, 1e-12, 0.05], [np.inf, np.inf, np.inf, 20.0]))
        except RuntimeError as exc:
            raise AnalysisError(f"the 4-parameter logistic does not fit the standards ({exc}); try model='linear' "
                                "over the linear range") from exc
        params = {"a": float(popt[0]), "d": float(popt[1]), "c50": float(popt[2]), "hill": float(popt[3])}
        fit = _logistic4(c, *popt)
        dof = c.size - 4
    else:
        raise AnalysisError(f"model={model!r}; use 'linear' or '4pl'")
    resid_sd = float(np.sqrt(np.sum((y - fit) ** 2) / max(dof, 1)))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum((y - fit) ** 2)) / ss_tot if ss_tot > 0 else float("nan")
    curve = StandardsCurve(model=model, params=params, blank=0.0, sigma=resid_sd, lod=float("nan"),
                           loq=float("nan"), r_squared=r2, units=units, range=(float(c.min()), float(c.max())),
                           data={"concentration": c.tolist(), "intensity": y.tolist()})
    if blanks is not None and len(blanks) >= 2:
        b = np.asarray(blanks, dtype=float)
        curve.blank, curve.sigma = float(b.mean()), float(b.std(ddof=1))
    else:
        curve.blank = float(curve.intensity(0.0))
    rising = float(curve.intensity(c.max())) > float(curve.intensity(0.0))
    sign = 1.0 if rising else -1.0
    for attr, k in (("lod", 3.3), ("loq", 10.0)):
        level = curve.blank + sign * k * curve.sigma
        val = float(curve.concentration(level, warn=False))
        if model == "linear" and blanks is None:
            val = k * curve.sigma / abs(params["slope"])  # ICH Q2: 3.3 sigma / slope
        setattr(curve, attr, val)
    return curve


def concentration_map(image: xr.DataArray, curve: StandardsCurve) -> xr.DataArray:
    """The image's intensities turned into concentrations by a standards curve (units of the curve).

    Examples
    --------
    >>> from multiscale.image import spatial_image
    >>> curve = standards_curve([0, 1, 2, 4], [0.0, 10.0, 20.0, 40.0])
    >>> concentration_map(spatial_image(np.array([[5.0, 30.0]]), spacing=0.1), curve).values.round(6).tolist()
    [[0.5, 3.0]]
    """
    img = single_channel(image, "image")
    out = curve.concentration(np.asarray(img.values, dtype=float))
    return img.copy(data=out).assign_attrs(units=curve.units, lod=curve.lod)


def radiance(counts: xr.DataArray, exposure_s: float, calibration: float, *, binning: int = 1,
             f_number_factor: float = 1.0) -> xr.DataArray:
    """Radiance (p/s/cm^2/sr) from camera counts: ``counts / exposure / binning^2 * calibration * f_number_factor``.

    ``calibration`` is the camera's radiance per count/s at binning 1 (from its calibration certificate).

    Examples
    --------
    >>> from multiscale.image import spatial_image
    >>> float(radiance(spatial_image(np.array([[600.0]]), spacing=0.1), 60.0, 1.0e5).values[0, 0])
    1000000.0
    """
    if exposure_s <= 0 or calibration <= 0 or binning < 1:
        raise AnalysisError("radiance needs exposure_s > 0, calibration > 0 and binning >= 1")
    img = single_channel(counts, "counts image")
    out = np.asarray(img.values, dtype=float) / exposure_s / binning**2 * calibration * f_number_factor
    return img.copy(data=out).assign_attrs(units="p/s/cm^2/sr")


def radiant_efficiency(radiance_image: xr.DataArray, irradiance_uw_cm2: float | xr.DataArray) -> xr.DataArray:
    """Fluorescence radiant efficiency: radiance / excitation irradiance, in ``(p/s/cm^2/sr)/(uW/cm^2)``.

    Examples
    --------
    >>> from multiscale.image import spatial_image
    >>> float(radiant_efficiency(spatial_image(np.array([[2.0e8]]), spacing=0.1), 400.0).values[0, 0])
    500000.0
    """
    img = single_channel(radiance_image, "radiance image")
    if isinstance(irradiance_uw_cm2, xr.DataArray):
        irr = single_channel(irradiance_uw_cm2, "irradiance image")
        _same(img, irr, "irradiance image")
        e = np.asarray(irr.values, dtype=float)
    else:
        e = float(irradiance_uw_cm2)
        if e <= 0:
            raise AnalysisError(f"the excitation irradiance must be > 0 uW/cm^2, got {e}")
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(np.asarray(e) > 0, np.asarray(img.values, dtype=float) / e, np.nan)
    return img.copy(data=out).assign_attrs(units="(p/s/cm^2/sr)/(uW/cm^2)")


def tumour_to_background(image: xr.DataArray, tumour: xr.DataArray, background: xr.DataArray) -> Metrics:
    """Tumour-to-background ratio of mean signals, and the region's total signal (sum x pixel area in cm^2).

    A :class:`~multiscale.analysis.metrics.Metrics` dict: ``.to_frame()`` is the tidy table (means in the
    image's units, the ratio in ``1``, the total in ``<units>*cm^2``, or ``<units>*mL`` for a volume).

    Examples
    --------
    >>> from multiscale.image import spatial_image
    >>> img = spatial_image(np.array([[8.0, 2.0]]), spacing=1.0)
    >>> t = spatial_image(np.array([[1, 0]], np.uint8), spacing=1.0); b = spatial_image(np.array([[0, 1]], np.uint8), spacing=1.0)
    >>> tumour_to_background(img, t, b)["tumour_to_background"]
    4.0
    """
    img, tm = check_mask(image, tumour, "image")
    bm = mask_array(background, img, "background mask")
    tv, _ = masked_values(img, tm, "image (tumour)")
    bv, _ = masked_values(img, bm, "image (background)")
    area_cm2 = float(np.prod(spacing(img))) / 100.0 if len(spacing(img)) == 2 else float(np.prod(spacing(img))) / 1000.0
    bmean = float(bv.mean())
    u = image_units(img)
    return Metrics({"tumour_mean": float(tv.mean()), "background_mean": bmean,
                    "tumour_to_background": float(tv.mean()) / bmean if bmean != 0 else float("nan"),
                    "tumour_total": float(tv.sum()) * area_cm2},
                   {"tumour_mean": u, "background_mean": u, "tumour_to_background": "1",
                    "tumour_total": f"{u}*cm^2" if len(spacing(img)) == 2 else f"{u}*mL"})


def fluorescence_result(image: xr.DataArray, mask: xr.DataArray, background: xr.DataArray | None = None, *,
                        standards_concentration: Sequence[float] | None = None,
                        standards_intensity: Sequence[float] | None = None, model: str = "linear",
                        blanks: Sequence[float] | None = None, background_value: float = 0.0,
                        concentration_units: str = "ug/mL", exposure_s: float | None = None,
                        radiance_calibration: float | None = None,
                        irradiance_uw_cm2: float | None = None) -> FamilyResult:
    """The family's evaluate: background-subtracted intensity, concentration via the standards curve, LOD, TBR.

    With ``exposure_s`` and ``radiance_calibration`` the (background-subtracted) counts become radiance, and with
    ``irradiance_uw_cm2`` radiant efficiency, before the region's metrics (and ``total_signal``: the region's sum
    times the pixel area in cm^2) are taken.
    """
    img = single_channel(image, "image")
    sub = subtract_background(img, background_value, clip=False)
    if (exposure_s is None) != (radiance_calibration is None):
        raise AnalysisError("give both exposure_s and radiance_calibration to turn counts into radiance")
    if exposure_s is not None:
        sub = radiance(sub, exposure_s, float(radiance_calibration))  # type: ignore[arg-type]
    if irradiance_uw_cm2 is not None:
        sub = radiant_efficiency(sub, irradiance_uw_cm2)
    units = image_units(sub)
    _, m = check_mask(sub, mask, "image")
    vals, _ = masked_values(sub, m, "image")
    px_cm2 = float(np.prod(spacing(sub)[-2:])) / 100.0
    res: dict[str, Any] = {"intensity_mean": float(vals.mean()), "intensity_median": float(np.median(vals)),
                           "total_signal": float(vals.sum()) * px_cm2}
    unit_of = {"intensity_mean": units, "intensity_median": units, "total_signal": f"{units}*cm^2"}
    images: dict[str, xr.DataArray] = {}
    data: dict[str, Any] = {}
    if background is not None:
        tbr = tumour_to_background(sub, mask, background)
        res.update(tumour_to_background=tbr["tumour_to_background"], background_mean=tbr["background_mean"])
        unit_of.update(tumour_to_background="1", background_mean=units)
    if standards_concentration is not None or standards_intensity is not None:
        if standards_concentration is None or standards_intensity is None:
            raise AnalysisError("give both standards_concentration and standards_intensity (same length)")
        curve = standards_curve(standards_concentration, standards_intensity, model=model,  # type: ignore[arg-type]
                                blanks=blanks, units=concentration_units)
        cmap = concentration_map(sub, curve)
        cv = np.asarray(cmap.values, dtype=float)[m]
        res.update(concentration_mean=float(np.nanmean(cv)) if np.isfinite(cv).any() else float("nan"),
                   concentration_median=float(np.nanmedian(cv)) if np.isfinite(cv).any() else float("nan"),
                   lod=curve.lod, loq=curve.loq, fraction_above_lod=float(np.mean(np.nan_to_num(cv, nan=0.0) > curve.lod)),
                   curve_r_squared=curve.r_squared)
        unit_of.update(concentration_mean=concentration_units, concentration_median=concentration_units,
                       lod=concentration_units, loq=concentration_units, fraction_above_lod="1", curve_r_squared="1")
        images["concentration"] = cmap
        data["curve"] = curve
    rows = tidy_rows(res, unit_of, detail=f"standards curve {model}" if "curve" in data else "")
    return FamilyResult(rows=rows, images=images, data=data)


def fluorescence_table(image: xr.DataArray, mask: xr.DataArray, background: xr.DataArray | None = None, *,
                       standards_concentration: list[float] | None = None,
                       standards_intensity: list[float] | None = None, model: Literal["linear", "4pl"] = "linear",
                       blanks: list[float] | None = None, background_value: float = 0.0,
                       concentration_units: str = "ug/mL", exposure_s: float | None = None,
                       radiance_calibration: float | None = None,
                       irradiance_uw_cm2: float | None = None) -> list[dict[str, Any]]:
    """The study's ``fluorescence_calibration``: intensity, concentration (standards curve), LOD and TBR in a region.

    Parameters
    ----------
    image : xarray.DataArray
        A fluorescence (or radiant-efficiency) map.
    mask : xarray.DataArray
        The region (e.g. the tumour).
    background : xarray.DataArray, optional
        A background region (optional role): gives the tumour-to-background ratio.
    standards_concentration, standards_intensity : list of float, optional
        The standards; with them the region's concentration, the LOD/LOQ and the fraction above the LOD.
    model : {"linear", "4pl"}
        The standards curve.
    blanks : list of float, optional
        Blank replicates' intensities (for the LOD).
    background_value : float
        A constant background (camera offset, autofluorescence level) subtracted first.
    concentration_units : str
        The standards' concentration unit.
    exposure_s, radiance_calibration : float, optional
        Camera exposure (s) and radiance per count/s: counts become radiance (p/s/cm^2/sr).
    irradiance_uw_cm2 : float, optional
        Excitation irradiance: radiance becomes radiant efficiency ((p/s/cm^2/sr)/(uW/cm^2)).

    Examples
    --------
    >>> from multiscale.image import spatial_image
    >>> img = spatial_image(np.full((3, 3), 32.0), spacing=0.1, units="counts")
    >>> rows = fluorescence_table(img, spatial_image(np.ones((3, 3), np.uint8), spacing=0.1), background_value=2.0,
    ...                           standards_concentration=[0, 1, 2, 4], standards_intensity=[0, 10, 20, 40])
    >>> {r["metric"]: (round(r["value"], 6), r["units"]) for r in rows}["concentration_mean"]
    (3.0, 'ug/mL')
    """
    return fluorescence_result(image, mask, background, standards_concentration=standards_concentration,
                               standards_intensity=standards_intensity, model=model, blanks=blanks,
                               background_value=background_value, concentration_units=concentration_units,
                               exposure_s=exposure_s, radiance_calibration=radiance_calibration,
                               irradiance_uw_cm2=irradiance_uw_cm2).rows


def standards_figure(curve: StandardsCurve, title: str = "") -> Any:
    """The standards and the fitted curve, with the LOD marked.

    Examples
    --------
    >>> fig = standards_figure(standards_curve([0, 1, 2, 4], [0.1, 10.0, 20.2, 39.9]))
    >>> len(fig.axes[0].lines) >= 2
    True
    """
    fig = new_figure((4.2, 3.4))
    ax = fig.add_subplot()
    c = np.asarray(curve.data.get("concentration", []), dtype=float)
    y = np.asarray(curve.data.get("intensity", []), dtype=float)
    ax.plot(c, y, "o", label="standards")
    grid = np.linspace(0.0, curve.range[1] * 1.05, 200)
    ax.plot(grid, curve.intensity(grid), "-", label=f"{curve.model} fit (R² {curve.r_squared:.4f})")
    if np.isfinite(curve.lod):
        ax.axvline(curve.lod, color="grey", ls="--", lw=1, label=f"LOD {curve.lod:.3g} {curve.units}")
    ax.set_xlabel(f"concentration ({curve.units})")
    ax.set_ylabel("intensity (a.u.)")
    ax.legend(frameon=False, fontsize="small")
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def _figures(result: FamilyResult, title: str = "", labels: Sequence[str] = ()) -> list[tuple[str, Any]]:
    out = []
    if "curve" in result.data:
        out.append(("standards", standards_figure(result.data["curve"], title)))
    if "concentration" in result.images:
        out.append(("concentration", feature_map_figure(result.images["concentration"], title=title)))
    return out


FAMILY = Family(
    name="fluorescence_calibration",
    table=fluorescence_table,
    inputs=("image", "mask"),
    optional=("background",),
    evaluate_fn=fluorescence_result,
    figure=_figures,
    description="calibrated fluorescence: background subtraction, standards curve (linear / 4PL) with LOD, "
                "concentration map, radiance / radiant efficiency, tumour-to-background ratio",
)
