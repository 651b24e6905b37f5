"""Intravital extravasation: intra- and extravascular signal over time, permeability, NP-positive fraction.

With a vessel mask (given, or thresholded from a dextran channel with Otsu's method) and a tissue region:

* ``intra(t)``: mean signal in the vessels of the region; ``extra(t)``: mean signal in the region outside
  the vessels, ``margin`` voxels away from them (partial volume);
* the extravascular / intravascular ratio over time;
* a Patlak-like permeability: ``extra / intra = K * integral(intra) / intra + v0`` fitted on the frames
  after the intravascular peak; ``K`` (1/s) is the transfer constant, ``v0`` the apparent vascular spill;
* the initial slope ``(d extra / dt) / mean(intra)`` (1/s) over the first ``initial_frames`` frames after
  the peak;
* the NP-positive extravascular fraction at the last frame: extravascular voxels above the first frame's
  extravascular mean + ``k_sd`` SD;
* the circulation half-life (s): a mono-exponential fit to ``intra(t)`` after its peak.

Examples
--------
>>> import numpy as np
>>> t = np.arange(0, 600.0, 30); intra = 100 * np.exp(-t / 600); extra = 0.001 * np.cumsum(intra) * 30
>>> r = patlak_permeability(t, intra, extra)
>>> round(r["k_per_s"], 3)
0.001
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from multiscale.errors import AnalysisError

from ..family import Family, FamilyResult, image_units
from .curves import frame_times, half_lives

__all__ = [
    "vessel_mask",
    "extravasation_curves",
    "patlak_permeability",
    "extravasation_metrics",
    "extravasation_evaluate",
    "extravasation_table",
    "FAMILY",
]


def vessel_mask(image: xr.DataArray) -> np.ndarray:
    """Vessels from a dextran image (its time-mean when it has ``t``) by Otsu's threshold; a boolean array."""
    from skimage.filters import threshold_otsu

    data = image.mean("t") if "t" in image.dims else image
    if "c" in data.dims:
        raise AnalysisError("the vessel image has several channels; name one (e.g. ivm:dextran)")
    arr = np.asarray(data.data.compute() if hasattr(data.data, "compute") else data.data, float)
    finite = arr[np.isfinite(arr)]
    if finite.size == 0 or np.ptp(finite) == 0:
        raise AnalysisError("the vessel image is constant; give a vessel mask instead")
    return arr > threshold_otsu(finite)


def _as_bool(m: Any) -> np.ndarray:
    if isinstance(m, xr.DataArray):
        if m.dtype != bool and not np.issubdtype(m.dtype, np.integer):
            return vessel_mask(m)
        m = m.data
    return np.asarray(m.compute() if hasattr(m, "compute") else m).astype(bool)


def extravasation_curves(series: xr.DataArray, vessels: Any, region: Any, *, margin: int = 1) -> dict[str, Any]:
    """``t``, ``intra``, ``extra`` (region means per frame) and the voxel sets used."""
    from scipy import ndimage as ndi

    t = frame_times(series)
    v = _as_bool(vessels)
    r = _as_bool(region)
    shape = tuple(series.sizes[d] for d in series.dims if d != "t")
    if v.shape != shape or r.shape != shape:
        raise AnalysisError(f"vessels {v.shape} and region {r.shape} must have the series' spatial shape {shape}")
    near = ndi.binary_dilation(v, iterations=margin) if margin > 0 else v
    inside, outside = v & r, r & ~near
    if not inside.any() or not outside.any():
        raise AnalysisError(
            f"the region has {int(inside.sum())} vessel and {int(outside.sum())} extravascular voxels; "
            "both are needed (check the vessel mask or the margin)"
        )
    data = series.transpose("t", ...).data
    arr = np.asarray(data.compute() if hasattr(data, "compute") else data, float)
    return {
        "t": t,
        "intra": arr[:, inside].mean(1),
        "extra": arr[:, outside].mean(1),
        "extra_voxels": arr[:, outside],
        "units": str(series.attrs.get("units", "") or "a.u."),
    }


def patlak_permeability(t: Any, intra: Any, extra: Any) -> dict[str, float]:
    """Patlak-like ``K`` (1/s) and intercept from ``extra/intra`` vs ``integral(intra)/intra`` after the peak."""
    t = np.asarray(t, float)
    ci = np.asarray(intra, float)
    ce = np.asarray(extra, float)
    integ = np.concatenate([[0.0], np.cumsum(0.5 * (ci[1:] + ci[:-1]) * np.diff(t))])
    ip = int(np.argmax(ci))
    sel = np.arange(t.size) >= ip
    sel &= ci > 0.05 * ci.max()
    if sel.sum() < 2:
        return {"k_per_s": float("nan"), "intercept": float("nan")}
    x, y = integ[sel] / ci[sel], ce[sel] / ci[sel]
    k, v0 = np.polyfit(x, y, 1)
    return {"k_per_s": float(k), "intercept": float(v0)}


def extravasation_metrics(
    series: xr.DataArray, vessels: Any, region: Any, *, margin: int = 1, initial_frames: int = 3, k_sd: float = 3.0
) -> dict[str, Any]:
    """Every number of the module docstring, plus the curves (``t``, ``intra``, ``extra``, ``ratio``)."""
    cur = extravasation_curves(series, vessels, region, margin=margin)
    t, ci, ce = cur["t"], cur["intra"], cur["extra"]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(ci != 0, ce / ci, np.nan)
    ip = int(np.argmax(ci))
    n = max(2, min(initial_frames, t.size - ip))
    seg = slice(ip, ip + n)
    if t[seg].size >= 2:
        slope = float(np.polyfit(t[seg], ce[seg], 1)[0] / np.mean(ci[seg]))
    else:
        slope = float("nan")
    first = cur["extra_voxels"][0]
    thr = first.mean() + k_sd * first.std()
    out = {
        "patlak": patlak_permeability(t, ci, ce),
        "initial_slope_per_s": slope,
        "np_positive_fraction": float((cur["extra_voxels"][-1] > thr).mean()),
        "circulation_half_life_s": half_lives(t, ci)["half_life_s"],
        "ratio_last": float(ratio[-1]),
    }
    out["curves"] = {"t": t, "intra": ci, "extra": ce, "ratio": ratio, "units": cur["units"]}
    return out


def extravasation_evaluate(
    image: xr.DataArray,
    mask: xr.DataArray,
    vessels: Any = None,
    *,
    margin: int = 1,
    initial_frames: int = 3,
    k_sd: float = 3.0,
) -> FamilyResult:
    """The study's ``extravasation``: ``vessels`` is a vessel mask or a dextran image (thresholded, Otsu)."""
    if vessels is None:  # no vessel channel: the bright (blood-pool) voxels of the series itself
        import warnings

        from multiscale.errors import KineticsWarning

        warnings.warn(
            "extravasation: no vessels input; vessels thresholded (Otsu) from the series' time-mean. Give "
            "a vessel mask or the dextran channel (inputs: {vessels: ivm:dextran}) for a proper split",
            KineticsWarning,
            stacklevel=2,
        )
        vessels = vessel_mask(image)
    r = extravasation_metrics(image, vessels, mask, margin=margin, initial_frames=initial_frames, k_sd=k_sd)
    u = image_units(image)
    rows = [
        dict(
            metric="patlak_k",
            value=r["patlak"]["k_per_s"],
            units="1/s",
            detail="extra/intra vs integral(intra)/intra after the intravascular peak",
        ),
        dict(metric="patlak_intercept", value=r["patlak"]["intercept"], units="1"),
        dict(metric="initial_slope", value=r["initial_slope_per_s"], units="1/s"),
        dict(
            metric="np_positive_fraction",
            value=r["np_positive_fraction"],
            units="1",
            detail=f"extravascular voxels above first-frame mean + {k_sd:g} SD at the last frame",
        ),
        dict(metric="circulation_half_life", value=r["circulation_half_life_s"], units="s"),
    ]
    c = r["curves"]
    for i, tt in enumerate(c["t"]):
        for name, unit in (("intravascular", u), ("extravascular", u), ("ratio", "1")):
            key = {"intravascular": "intra", "extravascular": "extra", "ratio": "ratio"}[name]
            rows.append(
                dict(
                    metric=name,
                    value=float(c[key][i]),
                    units=unit,
                    bin=i,
                    bin_lo=float(tt),
                    bin_hi=float(tt),
                    bin_units="s",
                )
            )
    return FamilyResult(rows=pd.DataFrame(rows), data=c)


def extravasation_table(
    image: xr.DataArray,
    mask: xr.DataArray,
    vessels: Any = None,
    *,
    margin: int = 1,
    initial_frames: int = 3,
    k_sd: float = 3.0,
) -> list[dict[str, Any]]:
    """Rows of :func:`extravasation_evaluate`."""
    return extravasation_evaluate(
        image, mask, vessels, margin=margin, initial_frames=initial_frames, k_sd=k_sd
    ).rows.to_dict("records")


def _figure(result: FamilyResult, title: str = "", labels: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
    from .figures import curves_figure

    d = result.data
    if not d:
        return []
    return [
        (
            "extravasation",
            curves_figure(
                d["t"], {"intravascular": d["intra"], "extravascular": d["extra"]}, units=d["units"], title=title
            ),
        )
    ]


FAMILY = Family(
    name="extravasation",
    table=extravasation_table,
    optional=("vessels",),
    evaluate_fn=extravasation_evaluate,
    figure=_figure,
    description="intravital extravasation: intra/extravascular curves and ratio, Patlak-like and initial-slope "
    "permeability, NP-positive extravascular fraction, circulation half-life",
)
