"""Ratiometric maps: the ratio of two channels (background-subtracted), optionally turned into a quantity by a
calibration curve (e.g. pH from two probes, or a ratiometric oxygen sensor); the study family ``ratiometric``
takes the two channels as a pair.

The calibration is a table of (ratio, value) pairs measured on standards; between them the value is
interpolated linearly, and ratios outside the calibrated range give NaN with a warning (never an extrapolated
number).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import xarray as xr

from multiscale.errors import AnalysisError, AnalysisWarning
from multiscale.image import same_grid

from .._masks import mask_array, single_channel
from ..family import Family, FamilyResult, tidy_rows
from ..figures import feature_map_figure

__all__ = ["calibration_curve", "ratiometric_map", "ratiometric_result", "ratiometric_table", "FAMILY"]


def calibration_curve(ratios: Sequence[float], values: Sequence[float]) -> Callable[[np.ndarray], np.ndarray]:
    """A monotonic calibration ``ratio -> value`` from standards, interpolated linearly, NaN outside its range.

    Raises
    ------
    AnalysisError
        Fewer than two standards, or ratios that are not strictly monotonic in the values (the curve
        could not be inverted uniquely).

    Examples
    --------
    >>> ph = calibration_curve([0.5, 1.0, 2.0], [6.0, 7.0, 8.0])
    >>> ph(np.array([0.75, 1.5, 3.0])).tolist()
    [6.5, 7.5, nan]
    """
    r = np.asarray(ratios, dtype=float)
    v = np.asarray(values, dtype=float)
    if r.ndim != 1 or r.shape != v.shape or r.size < 2 or not (np.isfinite(r).all() and np.isfinite(v).all()):
        raise AnalysisError(f"a calibration needs >= 2 finite (ratio, value) pairs, got {r.size} ratios and {v.size} values")
    order = np.argsort(v)
    r, v = r[order], v[order]
    d = np.diff(r)
    if not (np.all(d > 0) or np.all(d < 0)):
        raise AnalysisError("the calibration ratios are not strictly monotonic in the values: the ratio cannot be "
                            "turned into one value; check the standards or restrict the calibrated range")
    if d[0] < 0:
        r, v = r[::-1], v[::-1]

    def curve(ratio: np.ndarray) -> np.ndarray:
        ratio = np.asarray(ratio, dtype=float)
        out = np.interp(ratio, r, v)
        outside = (ratio < r[0]) | (ratio > r[-1])
        if np.any(outside & np.isfinite(ratio)):
            warnings.warn(f"{int((outside & np.isfinite(ratio)).sum())} ratio(s) outside the calibrated range "
                          f"[{r[0]:g}, {r[-1]:g}] were set to NaN", AnalysisWarning, stacklevel=2)
        return np.where(outside, np.nan, out)

    curve.range = (float(r[0]), float(r[-1]))  # type: ignore[attr-defined]
    return curve


def ratiometric_map(numerator: xr.DataArray, denominator: xr.DataArray, *, background: tuple[float, float] = (0.0, 0.0),
                    min_denominator: float = 0.0, calibration: Callable[[np.ndarray], np.ndarray] | None = None,
                    units: str = "1") -> xr.DataArray:
    """``(numerator - bg1) / (denominator - bg2)`` per pixel, then ``calibration`` (if given).

    Pixels whose background-subtracted denominator is <= ``min_denominator`` are NaN. The result is on the
    numerator's grid (the two maps must share it) with ``attrs["units"] = units`` (``"1"`` for a plain ratio;
    the calibrated quantity's unit, e.g. ``"pH"``, with a calibration).

    Examples
    --------
    >>> from multiscale.image import spatial_image
    >>> a = spatial_image(np.array([[2.0, 4.0]]), spacing=0.1); b = spatial_image(np.array([[2.0, 2.0]]), spacing=0.1)
    >>> ratiometric_map(a, b).values.tolist()
    [[1.0, 2.0]]
    >>> ratiometric_map(a, b, calibration=calibration_curve([1.0, 2.0], [6.0, 7.0]), units="pH").values.tolist()
    [[6.0, 7.0]]
    """
    for what, img in (("numerator", numerator), ("denominator", denominator)):
        if not isinstance(img, xr.DataArray):
            raise AnalysisError(f"the {what} must be a spatial image (xarray.DataArray), got {type(img).__name__}")
    if not same_grid(numerator, denominator):
        raise AnalysisError("numerator and denominator are not on the same grid; resample one onto the other first")
    num = np.asarray(numerator.values, dtype=float) - float(background[0])
    den = np.asarray(denominator.values, dtype=float) - float(background[1])
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(den > min_denominator, num / den, np.nan)
    if calibration is not None:
        ratio = np.asarray(calibration(ratio), dtype=float)
    attrs = dict(numerator.attrs, units=units)
    return xr.DataArray(ratio, dims=numerator.dims, coords=numerator.coords, attrs=attrs, name="ratio")


def ratiometric_result(a: xr.DataArray, b: xr.DataArray, mask: xr.DataArray | None = None, *,
                       calibration_ratios: Sequence[float] | None = None,
                       calibration_values: Sequence[float] | None = None,
                       background: tuple[float, float] = (0.0, 0.0), min_denominator: float = 0.0,
                       units: str = "1") -> FamilyResult:
    """The family's evaluate: the ratio (or calibrated) map of ``a / b`` and its summary in the region."""
    a1, b1 = single_channel(a, "numerator"), single_channel(b, "denominator")
    curve = None
    if calibration_ratios is not None or calibration_values is not None:
        if calibration_ratios is None or calibration_values is None:
            raise AnalysisError("give both calibration_ratios and calibration_values (the standards' ratios and "
                                "their known values)")
        curve = calibration_curve(calibration_ratios, calibration_values)
    out_units = units if curve is not None else "1"
    rmap = ratiometric_map(a1, b1, background=tuple(background), min_denominator=min_denominator,  # type: ignore[arg-type]
                           calibration=curve, units=out_units)
    m = mask_array(mask, rmap, "mask")
    vals = np.asarray(rmap.values, dtype=float)[m]
    ok = np.isfinite(vals)
    res: dict[str, float] = {
        "mean": float(vals[ok].mean()) if ok.any() else float("nan"),
        "median": float(np.median(vals[ok])) if ok.any() else float("nan"),
        "sd": float(vals[ok].std(ddof=1)) if ok.sum() > 1 else float("nan"),
        "fraction_undefined": float(1.0 - ok.mean()),
    }
    if not ok.any():
        warnings.warn("no pixel of the region has a defined ratio (denominator at or below min_denominator, or "
                      "outside the calibration)", AnalysisWarning, stacklevel=2)
    rows = tidy_rows(res, lambda k: "1" if k.startswith("fraction") else out_units,
                     detail="calibrated ratio" if curve is not None else "ratio a / b")
    return FamilyResult(rows=rows, images={"ratio": rmap})


def ratiometric_table(a: xr.DataArray, b: xr.DataArray, mask: xr.DataArray | None = None, *,
                      calibration_ratios: list[float] | None = None, calibration_values: list[float] | None = None,
                      background: list[float] | tuple[float, float] = (0.0, 0.0), min_denominator: float = 0.0,
                      units: str = "1") -> list[dict[str, Any]]:
    """The study's ``ratiometric``: mean / median / SD of ``(a - bg_a) / (b - bg_b)``, or of the calibrated quantity.

    Parameters
    ----------
    a, b : xarray.DataArray
        Numerator and denominator channels (a study pair, e.g. ``[probe:em1, probe:em2]``).
    mask : xarray.DataArray, optional
        The region.
    calibration_ratios, calibration_values : list of float, optional
        Standards: measured ratios and their known values (e.g. pH); the map is then the calibrated quantity.
    background : pair of float
        Backgrounds subtracted from ``a`` and ``b``.
    min_denominator : float
        Pixels whose background-subtracted denominator is at or below this are undefined.
    units : str
        Unit of the calibrated quantity (``"pH"``).

    Examples
    --------
    >>> from multiscale.image import spatial_image
    >>> a = spatial_image(np.array([[1.0, 2.0]]), spacing=0.1); b = spatial_image(np.array([[1.0, 1.0]]), spacing=0.1)
    >>> rows = ratiometric_table(a, b, calibration_ratios=[1.0, 2.0], calibration_values=[6.0, 7.0], units="pH")
    >>> rows[0]["metric"], rows[0]["value"], rows[0]["units"]
    ('mean', 6.5, 'pH')
    """
    return ratiometric_result(a, b, mask, calibration_ratios=calibration_ratios, calibration_values=calibration_values,
                              background=tuple(background), min_denominator=min_denominator, units=units).rows  # type: ignore[arg-type]


def _figures(result: FamilyResult, title: str = "", labels: Sequence[str] = ()) -> list[tuple[str, Any]]:
    rmap = result.images.get("ratio")
    if rmap is None:
        return []
    shown = rmap.expand_dims(c=[f"{' / '.join(labels) if labels else 'ratio'} ({rmap.attrs.get('units', '1')})"])
    return [("ratio", feature_map_figure(shown, title=title))]


FAMILY = Family(
    name="ratiometric",
    table=ratiometric_table,
    inputs=("a", "b", "mask"),
    evaluate_fn=ratiometric_result,
    figure=_figures,
    description="ratiometric maps of two channels (background-subtracted), optionally through a calibration curve "
                "(e.g. pH)",
)
