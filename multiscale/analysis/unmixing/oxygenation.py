"""Blood oxygenation from unmixed haemoglobin maps: sO2, total haemoglobin, deoxy fraction, hypoxic fraction.

``sO2 = HbO2 / (HbO2 + Hb)`` per pixel; pixels whose total haemoglobin is not above ``min_total`` have no
defined saturation and are NaN (never 0 or 1 by accident).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from multiscale.errors import AnalysisError

from .._masks import mask_array, to_numpy, warn_nan
from ..metrics import Metrics

__all__ = ["so2", "total_haemoglobin", "deoxy_fraction", "oxygenation_metrics"]


def _pair(unmixed: xr.DataArray, oxy: str, deoxy: str) -> tuple[xr.DataArray, xr.DataArray]:
    if not isinstance(unmixed, xr.DataArray) or "c" not in unmixed.dims:
        raise AnalysisError("expected the output of unmix(): a DataArray with endmember names along 'c'")
    names = [str(c) for c in unmixed.coords["c"].values]
    missing = [n for n in (oxy, deoxy) if n not in names]
    if missing:
        raise AnalysisError(f"the unmixed image has no {missing} channel(s) (it has {names}); unmix with "
                            f"endmembers including {oxy!r} and {deoxy!r}, or name them with oxy=/deoxy=")
    return unmixed.sel(c=oxy, drop=True), unmixed.sel(c=deoxy, drop=True)


def _derived(template: xr.DataArray, data: Any, name: str, units: str) -> xr.DataArray:
    attrs = {k: v for k, v in template.attrs.items() if k not in ("endmembers", "spectra", "residual_units")}
    attrs["units"] = units
    return xr.DataArray(data, dims=template.dims, coords=template.coords, attrs=attrs, name=name)


def total_haemoglobin(unmixed: xr.DataArray, oxy: str = "HbO2", deoxy: str = "Hb") -> xr.DataArray:
    """HbO2 + Hb, in the concentrations' units.

    Examples
    --------
    >>> from multiscale.image import spatial_image
    >>> u = spatial_image(np.array([[[3.0]], [[1.0]]]), spacing=1.0, dims=("c", "y", "x"), channels=["HbO2", "Hb"])
    >>> float(total_haemoglobin(u).values[0, 0])
    4.0
    """
    o, d = _pair(unmixed, oxy, deoxy)
    return _derived(o, o.data + d.data, "total_haemoglobin", str(unmixed.attrs.get("units", "") or "a.u."))


def so2(unmixed: xr.DataArray, oxy: str = "HbO2", deoxy: str = "Hb", min_total: float = 0.0) -> xr.DataArray:
    """Oxygen saturation ``HbO2 / (HbO2 + Hb)`` per pixel (fraction, 0-1); NaN where the total is <= ``min_total``.

    Parameters
    ----------
    unmixed : xarray.DataArray
        Output of :func:`multiscale.analysis.unmixing.unmix` (``c`` holding ``oxy`` and ``deoxy``).
    oxy, deoxy : str
        The endmember names of oxy- and deoxy-haemoglobin.
    min_total : float
        Pixels with total haemoglobin at or below this (in the concentrations' units) get NaN: no blood, no
        saturation.

    Examples
    --------
    >>> from multiscale.image import spatial_image
    >>> u = spatial_image(np.array([[[3.0, 0.0]], [[1.0, 0.0]]]), spacing=1.0, dims=("c", "y", "x"),
    ...                   channels=["HbO2", "Hb"])
    >>> so2(u).values.tolist()
    [[0.75, nan]]
    """
    o, d = _pair(unmixed, oxy, deoxy)
    total = o.data + d.data
    with np.errstate(invalid="ignore", divide="ignore"):
        data = o.data / total
    if hasattr(data, "dask"):
        import dask.array as da

        data = da.where(total > min_total, data, np.nan)
    else:
        data = np.where(total > min_total, data, np.nan)
    return _derived(o, data, "sO2", "1")


def deoxy_fraction(unmixed: xr.DataArray, oxy: str = "HbO2", deoxy: str = "Hb", min_total: float = 0.0) -> xr.DataArray:
    """``Hb / (HbO2 + Hb) = 1 - sO2`` per pixel; NaN where the total is <= ``min_total``.

    Examples
    --------
    >>> from multiscale.image import spatial_image
    >>> u = spatial_image(np.array([[[3.0]], [[1.0]]]), spacing=1.0, dims=("c", "y", "x"), channels=["HbO2", "Hb"])
    >>> float(deoxy_fraction(u).values[0, 0])
    0.25
    """
    s = so2(unmixed, oxy, deoxy, min_total)
    return _derived(s, 1.0 - s.data, "deoxy_fraction", "1")


def oxygenation_metrics(unmixed: xr.DataArray, mask: xr.DataArray | None = None, *, oxy: str = "HbO2",
                        deoxy: str = "Hb", so2_threshold: float = 0.4, min_total: float = 0.0) -> Metrics:
    """Summary of blood oxygenation in a region.

    Returns
    -------
    Metrics
        A dict (``.to_frame()``: the tidy table; fractions and sO2 in ``1``, haemoglobin in the unmixed
        image's units, ``n_pixels`` in pixels): ``so2_mean``, ``so2_median``, ``so2_sd`` (over pixels with a defined sO2), ``so2_weighted``
        (``sum HbO2 / sum (HbO2 + Hb)``: the region's blood as one pool), ``total_hb_mean``, ``hbo2_mean``,
        ``hb_mean``, ``deoxy_fraction_mean``, ``fraction_below_so2_<t>`` (share of the region's pixels with a
        defined sO2 below the threshold: the hypoxic fraction), ``n_pixels`` (pixels with a defined sO2),
        ``fraction_without_blood`` (pixels of the region whose total is <= ``min_total``).

    Examples
    --------
    >>> from multiscale.image import spatial_image
    >>> hbo2 = np.array([[0.9, 0.2], [0.8, 0.1]]); hb = np.array([[0.1, 0.8], [0.2, 0.9]])
    >>> u = spatial_image(np.stack([hbo2, hb]), spacing=1.0, dims=("c", "y", "x"), channels=["HbO2", "Hb"])
    >>> m = oxygenation_metrics(u, so2_threshold=0.5)
    >>> round(m["so2_mean"], 3), m["fraction_below_so2_0.5"]
    (0.5, 0.5)
    """
    if not 0.0 <= so2_threshold <= 1.0:
        raise AnalysisError(f"so2_threshold must be a fraction in [0, 1], got {so2_threshold}")
    o, d = _pair(unmixed, oxy, deoxy)
    m = mask_array(mask, o, "mask")
    ov = np.asarray(to_numpy(o), dtype=float)[m]
    dv = np.asarray(to_numpy(d), dtype=float)[m]
    finite = np.isfinite(ov) & np.isfinite(dv)
    total = ov + dv
    blood = finite & (total > min_total)
    n = int(blood.sum())
    out: dict[str, float] = {}
    if n == 0:
        nan = warn_nan(f"no pixel of the region has total haemoglobin above {min_total}: sO2 is undefined")
        s = np.array([])
        out.update(so2_mean=nan, so2_median=nan, so2_sd=nan, so2_weighted=nan)
    else:
        s = ov[blood] / total[blood]
        out.update(so2_mean=float(s.mean()), so2_median=float(np.median(s)),
                   so2_sd=float(s.std(ddof=1)) if n > 1 else float("nan"),
                   so2_weighted=float(ov[blood].sum() / total[blood].sum()))
    out.update(total_hb_mean=float(total[finite].mean()) if finite.any() else float("nan"),
               hbo2_mean=float(ov[finite].mean()) if finite.any() else float("nan"),
               hb_mean=float(dv[finite].mean()) if finite.any() else float("nan"),
               deoxy_fraction_mean=float((1.0 - s).mean()) if n else float("nan"))
    out[f"fraction_below_so2_{so2_threshold:g}"] = float((s < so2_threshold).mean()) if n else float("nan")
    out["n_pixels"] = float(n)
    out["fraction_without_blood"] = float(1.0 - n / max(int(m.sum()), 1))
    hb_units = str(unmixed.attrs.get("units") or "a.u.")
    return Metrics(out, lambda k: "1" if k.startswith(("so2", "fraction", "deoxy")) else (
        "pixels" if k == "n_pixels" else hb_units))
