"""Quantitative MRI maps from a series along ``t``: ADC (and IVIM) from b-values, R2*/T2* from echo times, iron.

* :func:`adc_map`: ``S(b) = S0 exp(-b ADC)``, weighted log-linear least squares (weights ``S^2``) per voxel;
  b in s/mm^2, ADC in mm^2/s.
* :func:`ivim_map`: segmented IVIM (Le Bihan): ``D`` from the b-values >= ``b_threshold``, the perfusion
  fraction ``f = 1 - S0' / S(0)`` from that line's intercept, ``D*`` from the low-b residual.
* :func:`r2star_map`: ``S(TE) = S0 exp(-TE R2*)``, weighted log-linear fit; R2* in 1/s, T2* in ms.
* :func:`iron_from_delta_r2star`: ``[Fe] = dR2* / r2*`` (mM with the relaxivity in /mM/s), in ug/mL
  (55.845 ug per umol) and, with a drug-loading ratio (drug mass per iron mass), the payload in ug/mL.

Examples
--------
>>> import numpy as np
>>> b = np.array([0, 200, 500, 1000.0]); s = 1000 * np.exp(-b * 1.5e-3)
>>> round(float(adc_map(s, b)["adc"]) * 1e3, 6)     # 1.5e-3 mm^2/s
1.5
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from multiscale.errors import AnalysisError

from ..family import Family, FamilyResult

__all__ = [
    "adc_map",
    "ivim_map",
    "r2star_map",
    "iron_from_delta_r2star",
    "FE_UG_PER_UMOL",
    "series_axis",
    "relaxometry_evaluate",
    "relaxometry_table",
    "FAMILY",
]

#: molar mass of iron (g/mol = ug/umol)
FE_UG_PER_UMOL = 55.845


def series_axis(image: Any, coord: str) -> np.ndarray:
    """The ``coord`` values (``b_value`` or ``echo_time``) along ``t`` of an image; a clear error when absent."""
    if "t" not in getattr(image, "dims", ()):
        raise AnalysisError(f"this map needs a series along 't' with a {coord!r} coord; got dims {tuple(image.dims)}")
    if coord not in image.coords:
        found = [c for c in image.coords if c in ("b_value", "echo_time", "t")]
        raise AnalysisError(
            f"the series has no {coord!r} coord along 't' (has {found}); load it with its .bval / "
            f"DICOM headers or assign it: image.assign_coords({coord}=('t', values))"
        )
    return np.asarray(image[coord].values, float)


def _loglin(s: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted (w = S^2) fit of ``ln S = a - k x`` over the last axis: (S0, k); NaN where S <= 0 everywhere."""
    s = np.asarray(s, float)
    ok = s > 0
    w = np.where(ok, s * s, 0.0)
    y = np.log(np.where(ok, s, 1.0))
    sw = w.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        xm = (w * x).sum(-1) / sw
        ym = (w * y).sum(-1) / sw
        sxx = (w * (x - xm[..., None]) ** 2).sum(-1)
        sxy = (w * (x - xm[..., None]) * (y - ym[..., None])).sum(-1)
        slope = sxy / sxx
        a = ym - slope * xm
    enough = ok.sum(-1) >= 2
    return np.where(enough, np.exp(a), np.nan), np.where(enough, -slope, np.nan)


def adc_map(signal: Any, b_values: Any) -> dict[str, np.ndarray]:
    """ADC (mm^2/s) and S0 per voxel from signals along the last axis at ``b_values`` (s/mm^2)."""
    b = np.asarray(b_values, float)
    s = np.asarray(signal, float)
    if s.shape[-1] != b.size or np.unique(b).size < 2:
        raise AnalysisError(
            f"ADC needs >= 2 distinct b-values, one per volume; got {b.tolist()} for {s.shape[-1]} volumes"
        )
    s0, adc = _loglin(s, b)
    return {"adc": adc, "s0": s0}


def ivim_map(signal: Any, b_values: Any, *, b_threshold: float = 200.0) -> dict[str, np.ndarray]:
    """Segmented IVIM: ``D`` (mm^2/s), perfusion fraction ``f``, pseudo-diffusion ``D*`` (mm^2/s).

    Examples
    --------
    >>> import numpy as np
    >>> b = np.array([0, 10, 20, 50, 100, 200, 400, 600, 800.0])
    >>> s = 0.9 * np.exp(-b * 1e-3) + 0.1 * np.exp(-b * 2e-2)
    >>> r = ivim_map(s, b)
    >>> round(float(r["d"]) * 1e3, 2), round(float(r["f"]), 2)
    (1.0, 0.1)
    """
    b = np.asarray(b_values, float)
    s = np.asarray(signal, float)
    if s.shape[-1] != b.size:
        raise AnalysisError(f"{b.size} b-values for {s.shape[-1]} volumes")
    high, low = b >= b_threshold, (b > 0) & (b < b_threshold)
    if high.sum() < 2 or low.sum() < 1 or not np.any(b == 0):
        raise AnalysisError(
            f"IVIM needs b = 0, >= 1 b-value below {b_threshold} and >= 2 at or above it; got {b.tolist()}"
        )
    s0p, d = _loglin(s[..., high], b[high])
    sb0 = s[..., b == 0].mean(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        f = 1 - s0p / sb0
        resid = s[..., low] / sb0[..., None] - (1 - f)[..., None] * np.exp(-b[low] * d[..., None])
        fs, dstar_plus = _loglin(resid, b[low]) if low.sum() >= 2 else (f, np.full_like(f, np.nan))
    return {"d": d, "f": f, "d_star": dstar_plus, "s0": sb0}


def r2star_map(signal: Any, echo_times_s: Any) -> dict[str, np.ndarray]:
    """R2* (1/s), T2* (ms) and S0 per voxel from multi-echo signals along the last axis (TE in s).

    Examples
    --------
    >>> import numpy as np
    >>> te = np.array([0.002, 0.004, 0.008, 0.012]); s = 500 * np.exp(-te * 80)
    >>> r = r2star_map(s, te); round(float(r["r2star"]), 6), round(float(r["t2star"]), 4)
    (80.0, 12.5)
    """
    te = np.asarray(echo_times_s, float)
    s = np.asarray(signal, float)
    if s.shape[-1] != te.size or np.unique(te).size < 2:
        raise AnalysisError(f"R2* needs >= 2 distinct echo times, one per volume; got {te.tolist()}")
    if np.any(te > 1.0):
        raise AnalysisError(f"echo times {te.tolist()} look like ms; give them in seconds")
    s0, r2s = _loglin(s, te)
    with np.errstate(divide="ignore", invalid="ignore"):
        t2s = np.where(r2s > 0, 1000.0 / r2s, np.nan)
    return {"r2star": r2s, "t2star": t2s, "s0": s0}


def iron_from_delta_r2star(
    delta_r2star: Any, relaxivity_per_mM_s: float, loading_ratio: float | None = None
) -> dict[str, np.ndarray]:
    """Iron (mM, ug/mL) from dR2* (1/s) through the r2* relaxivity (/mM/s); payload (ug/mL) via a loading ratio.

    Examples
    --------
    >>> r = iron_from_delta_r2star(60.0, 120.0, loading_ratio=0.05)   # 0.5 mM Fe
    >>> float(r["iron_mM"]), round(float(r["iron_ug_per_ml"]), 4), round(float(r["payload_ug_per_ml"]), 5)
    (0.5, 27.9225, 1.39613)
    """
    if relaxivity_per_mM_s <= 0:
        raise AnalysisError(f"relaxivity_per_mM_s must be > 0, got {relaxivity_per_mM_s}")
    fe = np.asarray(delta_r2star, float) / relaxivity_per_mM_s
    out = {"iron_mM": fe, "iron_ug_per_ml": fe * FE_UG_PER_UMOL}
    if loading_ratio is not None:
        if loading_ratio < 0:
            raise AnalysisError(f"loading_ratio (drug mass per iron mass) must be >= 0, got {loading_ratio}")
        out["payload_ug_per_ml"] = out["iron_ug_per_ml"] * loading_ratio
    return out


def _region_values(image: Any, mask: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    from .dce import region_series

    try:
        return region_series(image, mask)
    except AnalysisError as exc:
        raise AnalysisError(str(exc).replace("dce needs", f"{what} needs")) from None


def relaxometry_evaluate(
    image: Any,
    mask: Any,
    baseline: Any = None,
    *,
    kind: Literal["auto", "adc", "ivim", "r2star"] = "auto",
    b_threshold: float = 200.0,
    relaxivity_per_mM_s: float | None = None,
    loading_ratio: float | None = None,
) -> FamilyResult:
    """The study's ``relaxometry``: ADC/IVIM (``b_value`` coord) or R2*/T2* (``echo_time`` coord) in a region.

    With a ``baseline`` (pre-injection multi-echo series on the same grid) also dR2* = R2*(image) - R2*(baseline)
    and, with ``relaxivity_per_mM_s``, iron (mM, ug/mL) and, with ``loading_ratio``, the payload (ug/mL).
    """
    if kind == "auto":
        kind = "adc" if "b_value" in image.coords else ("r2star" if "echo_time" in image.coords else "")
        if not kind:
            raise AnalysisError(
                "relaxometry needs a series with a 'b_value' (DWI) or 'echo_time' (multi-echo) coord "
                "along 't'; load it with its .bval / DICOM headers or set kind and assign the coord"
            )
    curves, m = _region_values(image, mask, "relaxometry")
    maps: dict[str, np.ndarray] = {}
    units: dict[str, str] = {}
    if kind in ("adc", "ivim"):
        b = series_axis(image, "b_value")
        res = adc_map(curves, b) if kind == "adc" else ivim_map(curves, b, b_threshold=b_threshold)
        for k, u in (("adc", "mm2/s"), ("d", "mm2/s"), ("f", "1"), ("d_star", "mm2/s")):
            if k in res:
                maps[k], units[k] = res[k], u
    else:
        te = series_axis(image, "echo_time")
        res = r2star_map(curves, te)
        maps.update(r2star=res["r2star"], t2star=res["t2star"])
        units.update(r2star="1/s", t2star="ms")
        if baseline is not None:
            pre, _ = _region_values(baseline, mask, "relaxometry baseline")
            r_pre = r2star_map(pre, series_axis(baseline, "echo_time"))["r2star"]
            maps["delta_r2star"], units["delta_r2star"] = res["r2star"] - r_pre, "1/s"
            if relaxivity_per_mM_s is not None:
                fe = iron_from_delta_r2star(maps["delta_r2star"], relaxivity_per_mM_s, loading_ratio)
                for k, u in (("iron_mM", "mM"), ("iron_ug_per_ml", "ug/mL"), ("payload_ug_per_ml", "ug/mL")):
                    if k in fe:
                        maps[k], units[k] = fe[k], u
    rows = []
    for k, v in maps.items():
        ok = v[np.isfinite(v)]
        for stat, f in (("median", np.median), ("mean", np.mean)):
            rows.append(dict(metric=f"{k}_{stat}", value=float(f(ok)) if ok.size else np.nan, units=units[k]))
    rows.append(dict(metric="n_voxels", value=float(m.sum()), units="voxels"))
    rows.append(
        dict(metric="fraction_fit_failed", value=float(np.mean(~np.isfinite(next(iter(maps.values()))))), units="1")
    )
    template = image.isel(t=0, drop=True)
    images = {}
    for k, v in maps.items():
        full = np.full(m.shape, np.nan, dtype=np.float32)
        full[m] = v
        images[k] = xr.DataArray(
            full,
            dims=template.dims,
            coords={d: template.coords[d] for d in template.dims},
            attrs=dict({a: b for a, b in template.attrs.items() if a != "warnings"}, units=units[k]),
        )
    return FamilyResult(rows=pd.DataFrame(rows), images=images, data={"maps": dict(list(images.items())[:2])})


def relaxometry_table(
    image: Any,
    mask: Any,
    baseline: Any = None,
    *,
    kind: Literal["auto", "adc", "ivim", "r2star"] = "auto",
    b_threshold: float = 200.0,
    relaxivity_per_mM_s: float | None = None,
    loading_ratio: float | None = None,
) -> list[dict]:
    """Rows of :func:`relaxometry_evaluate`."""
    return relaxometry_evaluate(
        image,
        mask,
        baseline,
        kind=kind,
        b_threshold=b_threshold,
        relaxivity_per_mM_s=relaxivity_per_mM_s,
        loading_ratio=loading_ratio,
    ).rows.to_dict("records")


def _figure(result: FamilyResult, title: str = "", labels: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
    from ..figures import new_figure
    from .figures import maps_panel

    if not result.data.get("maps"):
        return []
    fig = new_figure((6.0, 3.0))
    maps_panel(fig, result.data["maps"], 0, 1)
    fig.suptitle(title, fontsize=9)
    return [("maps", fig)]


FAMILY = Family(
    name="relaxometry",
    table=relaxometry_table,
    optional=("baseline",),
    evaluate_fn=relaxometry_evaluate,
    figure=_figure,
    description="ADC (mono-exponential, IVIM option) from b-values; R2*/T2* from echo times; dR2* against a "
    "baseline session, iron through a relaxivity and payload through a loading ratio",
)
