"""The study family ``change``: change from baseline between two co-registered sessions (``a`` -> ``b``).

``a`` is the baseline session, ``b`` the follow-up, both on one grid (register and resample first).
The maps saved are ``difference = b - a`` (in the inputs' units) and ``percent_change = 100 (b - a) / a``
(NaN where ``a`` is 0). Per region the rows are the mean, median and SD of the difference, the mean percent
change and the ratio of the regional means, the fraction of voxels whose increase exceeds ``threshold``
(inputs' units) and the fraction whose relative increase exceeds ``percent_threshold`` (%).

When the inputs are relaxation-rate maps (units ``1/s``, e.g. R2* before and after SPION/ferumoxytol), the
difference is dR2* and, with ``relaxivity_per_mM_s`` (the agent's r2* at the field strength used), the iron
concentration ``[Fe] = dR2* / r2*`` (mM and ug/mL, :func:`~.relaxometry.iron_from_delta_r2star`) is mapped
too, and with ``loading_ratio`` (drug mass per iron mass) the payload in ug/mL.

Units are decided here from the inputs' units: difference in ``<units>``, percent change in ``%``, fractions
in ``1``, iron in ``mM`` and ``ug/mL``.

Examples
--------
>>> import numpy as np
>>> from multiscale.image import spatial_image
>>> a = spatial_image(np.full((2, 4, 4), 20.0), spacing=0.5, units="1/s")
>>> b = spatial_image(np.full((2, 4, 4), 80.0), spacing=0.5, units="1/s")
>>> m = spatial_image(np.ones((2, 4, 4), bool), spacing=0.5)
>>> r = {x["metric"]: (x["value"], x["units"]) for x in change_table(a, b, m, relaxivity_per_mM_s=120.0)}
>>> r["difference_mean"], r["iron_mM_mean"], r["percent_change_mean"]
((60.0, '1/s'), (0.5, 'mM'), (300.0, '%'))
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from multiscale.errors import AnalysisError, KineticsWarning
from multiscale.image import same_grid

from .._masks import check_mask, masked_values
from ..family import Family, FamilyResult, image_units
from .relaxometry import FE_UG_PER_UMOL, iron_from_delta_r2star

__all__ = ["RATE_UNITS", "change_maps", "change_evaluate", "change_table", "FAMILY"]

#: units that mark a relaxation-rate map (R1, R2, R2*): their difference can be turned into iron
RATE_UNITS = ("1/s", "/s", "s-1", "s^-1", "hz")


def _session(image: Any, what: str) -> xr.DataArray:
    if not isinstance(image, xr.DataArray):
        raise AnalysisError(f"change: {what} must be a spatial image, got {type(image).__name__}")
    if "t" in image.dims and image.sizes["t"] > 1:
        raise AnalysisError(
            f"change: the {what} session is a series along 't' ({image.sizes['t']} frames); compare maps: "
            "fit R2* per session first (relaxometry, or its 'baseline' input for dR2*), or select one frame (map:t=)"
        )
    return image


def _units(a: xr.DataArray, b: xr.DataArray) -> str:
    ua, ub = image_units(a), image_units(b)
    if ua != ub:
        warnings.warn(
            f"change: the two sessions are in different units (baseline {ua}, follow-up {ub}); their difference is "
            "reported in a.u. - give both maps the same units (study: units:)",
            KineticsWarning,
            stacklevel=3,
        )
        return "a.u."
    return ua


def change_maps(a: xr.DataArray, b: xr.DataArray) -> dict[str, xr.DataArray]:
    """``difference = b - a`` (inputs' units) and ``percent_change = 100 (b - a) / a`` (%), lazily on one grid.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> a = spatial_image(np.array([[4.0, 0.0]]), spacing=1.0, units="SUVbw")
    >>> b = spatial_image(np.array([[6.0, 1.0]]), spacing=1.0, units="SUVbw")
    >>> d = change_maps(a, b)
    >>> d["difference"].values.tolist(), d["percent_change"].values.tolist(), d["difference"].attrs["units"]
    ([[2.0, 1.0]], [[50.0, nan]], 'SUVbw')
    """
    a, b = _session(a, "baseline (a)"), _session(b, "follow-up (b)")
    if "t" in a.dims:
        a = a.isel(t=0, drop=True)
    if "t" in b.dims:
        b = b.isel(t=0, drop=True)
    if not same_grid(a, b):
        raise AnalysisError(
            "change: the two sessions are not on the same grid; register the follow-up to the baseline and resample "
            "it onto the baseline's grid (study: registration: - {moving: b, fixed: a})"
        )
    units = _units(a, b)
    af, bf = a.astype(np.float64), b.astype(np.float64)
    keep = {k: v for k, v in b.attrs.items() if k not in ("warnings", "units")}
    diff = bf - af
    diff.attrs = dict(keep, units=units)
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = xr.where(af != 0, 100.0 * (bf - af) / af, np.nan)
    pct.attrs = dict(keep, units="%")
    return {"difference": diff.rename("difference"), "percent_change": pct.rename("percent_change")}


def _is_rate(units: str) -> bool:
    return units.replace(" ", "").lower() in RATE_UNITS


def change_evaluate(
    a: xr.DataArray,
    b: xr.DataArray,
    mask: xr.DataArray | None = None,
    *,
    threshold: float | None = None,
    percent_threshold: float = 20.0,
    relaxivity_per_mM_s: float | None = None,
    loading_ratio: float | None = None,
) -> FamilyResult:
    """Change maps of ``b`` against baseline ``a``, region rows, and (for rate maps) iron and payload."""
    maps = change_maps(a, b)
    units = maps["difference"].attrs["units"]
    template = maps["difference"]
    if mask is None:
        from multiscale.image import like, shape, spatial_dims

        mask = like(template, np.ones(shape(template), dtype=np.uint8), dims=spatial_dims(template), units="")
    diff, m = check_mask(maps["difference"], mask, "difference b - a")
    d, kept = masked_values(diff, m, "difference b - a")
    av, _ = masked_values(check_mask(a, mask, "baseline")[0], m, "baseline")
    bv, _ = masked_values(check_mask(b, mask, "follow-up")[0], m, "follow-up")
    pct_all = np.asarray(masked_values(maps["percent_change"], m, drop_nan=False)[0])
    pct = pct_all[np.isfinite(pct_all)]
    detail = "b - a (follow-up minus baseline)"
    rows: list[dict[str, Any]] = [
        dict(metric="difference_mean", value=float(d.mean()), units=units, detail=detail),
        dict(metric="difference_median", value=float(np.median(d)), units=units, detail=detail),
        dict(metric="difference_sd", value=float(d.std(ddof=1)) if d.size > 1 else np.nan, units=units, detail=detail),
        dict(metric="baseline_mean", value=float(av.mean()), units=units),
        dict(metric="follow_up_mean", value=float(bv.mean()), units=units),
        dict(
            metric="percent_change_mean",
            value=float(pct.mean()) if pct.size else np.nan,
            units="%",
            detail="mean of the voxels' 100 (b - a) / a (voxels with a = 0 left out)",
        ),
        dict(
            metric="ratio_of_means",
            value=float(bv.mean() / av.mean()) if av.mean() != 0 else np.nan,
            units="1",
            detail="mean(b) / mean(a) in the region",
        ),
    ]
    if threshold is not None:
        rows.append(
            dict(
                metric="fraction_above_threshold",
                value=float(np.mean(d > threshold)),
                units="1",
                detail=f"voxels with b - a > {threshold:g} {units}",
            )
        )
    if pct_all.size:
        rows.append(
            dict(
                metric="fraction_above_percent_threshold",
                value=float(np.mean(np.nan_to_num(pct_all, nan=-np.inf) > percent_threshold)),
                units="1",
                detail=f"voxels with 100 (b - a) / a > {percent_threshold:g} % (a = 0 counts as not above)",
            )
        )
    rows.append(dict(metric="n_voxels", value=float(kept.size), units="voxels"))
    images = dict(maps)
    if relaxivity_per_mM_s is not None:
        if not _is_rate(units):
            raise AnalysisError(
                f"change: iron from dR2* needs relaxation-rate maps in 1/s, but the sessions are in {units!r}; "
                "give R2* maps (units: 1/s; R2* = 1000 / T2* in ms) or leave relaxivity_per_mM_s out"
            )
        fe_rows = iron_from_delta_r2star(d, relaxivity_per_mM_s, loading_ratio)
        fe_mM = maps["difference"] / relaxivity_per_mM_s
        fe_maps = {"iron_mM": fe_mM, "iron_ug_per_ml": fe_mM * FE_UG_PER_UMOL}
        if loading_ratio is not None:
            fe_maps["payload_ug_per_ml"] = fe_maps["iron_ug_per_ml"] * loading_ratio
        how = f"dR2* / r2* with r2* = {relaxivity_per_mM_s:g} /mM/s" + (
            f", payload = iron x {loading_ratio:g} (drug mass per iron mass)" if loading_ratio is not None else ""
        )
        for k, u in (("iron_mM", "mM"), ("iron_ug_per_ml", "ug/mL"), ("payload_ug_per_ml", "ug/mL")):
            if k not in fe_rows:
                continue
            v = fe_rows[k]
            rows.append(dict(metric=f"{k}_mean", value=float(np.mean(v)), units=u, detail=how))
            rows.append(dict(metric=f"{k}_median", value=float(np.median(v)), units=u, detail=how))
            img = fe_maps[k]
            img.attrs = dict(maps["difference"].attrs, units=u)
            images[k] = img.rename(k)
        neg = float(np.mean(d < 0))
        if neg > 0.5:
            warnings.warn(
                f"change: dR2* is negative in {100 * neg:.0f} % of the region's voxels; check that a is the "
                "pre-injection session (iron there is reported as negative, not clipped)",
                KineticsWarning,
                stacklevel=2,
            )
    data = {"a": a, "b": b, "difference": maps["difference"], "mask": m, "units": units}
    return FamilyResult(rows=pd.DataFrame(rows), images=images, data=data)


def change_table(
    a: xr.DataArray,
    b: xr.DataArray,
    mask: xr.DataArray | None = None,
    *,
    threshold: float | None = None,
    percent_threshold: float = 20.0,
    relaxivity_per_mM_s: float | None = None,
    loading_ratio: float | None = None,
) -> list[dict[str, Any]]:
    """Rows of :func:`change_evaluate` (the study's ``change``); see the module docstring."""
    return change_evaluate(
        a,
        b,
        mask,
        threshold=threshold,
        percent_threshold=percent_threshold,
        relaxivity_per_mM_s=relaxivity_per_mM_s,
        loading_ratio=loading_ratio,
    ).rows.to_dict("records")


def _mid(arr: Any, m: np.ndarray | None) -> np.ndarray:
    v = np.asarray(arr.values if hasattr(arr, "values") else arr, float)
    if v.ndim == 3:
        z = int(np.argmax(m.sum(axis=(1, 2)))) if m is not None and m.ndim == 3 else v.shape[0] // 2
        v = v[z]
    return v


def _figure(result: FamilyResult, title: str = "", labels: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
    from ..figures import image_panel, new_figure

    d = result.data
    if not d:
        return []
    names = (labels + ("a", "b"))[:2] if len(labels) >= 2 else ("baseline (a)", "follow-up (b)")
    m = d.get("mask")

    def mid(arr: Any) -> Any:  # the slice _mid shows, keeping its coordinates (mm) when it has them
        if not hasattr(arr, "dims") or arr.ndim != 3:
            return _mid(arr, m)
        z = int(np.argmax(m.sum(axis=(1, 2)))) if m is not None and m.ndim == 3 else arr.shape[0] // 2
        return arr.isel({arr.dims[0]: z})

    a, b = (mid(d[k].isel(t=0) if "t" in d[k].dims else d[k]) for k in ("a", "b"))
    diff = mid(d["difference"])
    units = str(d.get("units") or "a.u.")
    fig = new_figure((7.2, 2.3))
    lo, hi = np.nanpercentile(np.concatenate([np.ravel(a), np.ravel(b)]), [1, 99])
    lim = float(np.nanpercentile(np.abs(np.asarray(diff, float)), 99)) or 1.0
    for i, (lab, arr, kw) in enumerate(
        (
            (f"{names[0]} (baseline)", a, dict(cmap="viridis", vmin=lo, vmax=hi)),
            (f"{names[1]} (follow-up)", b, dict(cmap="viridis", vmin=lo, vmax=hi)),
            ("change b - a", diff, dict(cmap="RdBu_r", vmin=-lim, vmax=lim)),
        )
    ):
        ax = fig.add_subplot(1, 3, i + 1)
        image_panel(ax, arr, title=lab, units=units, **kw)
    fig.suptitle(title, fontsize=8)
    return [("change", fig)]


FAMILY = Family(
    name="change",
    table=change_table,
    inputs=("a", "b", "mask"),
    images=lambda a, b, mask=None, **p: change_evaluate(a, b, mask, **p).images,
    evaluate_fn=change_evaluate,
    figure=_figure,
    description="change from baseline of two co-registered sessions (a -> b): difference and percent-change maps, "
    "regional mean change and fraction above a threshold; dR2* -> iron (relaxivity) -> payload (loading ratio)",
)
