"""Local spatial statistics of maps: Getis-Ord Gi* hotspots, local Moran's I, semivariogram range, patches.

All are vectorised over the grid (convolutions and FFTs), in 2-D or 3-D, inside a region (mask),
with neighbourhoods in mm (spacing honoured).

* **Gi*** (Ord & Getis 1995, the "star" form that includes the voxel itself), binary weights
  ``w_ij = 1`` for voxels within ``radius_mm`` of i (i included), over the n voxels of the region:
  ``Gi* = (Σ_j w_ij x_j - x̄ W_i) / (S sqrt((n S1_i - W_i²) / (n - 1))))`` with ``W_i = Σ_j w_ij``,
  ``S1_i = Σ_j w_ij²``, x̄ and ``S = sqrt(Σ x² / n - x̄²)`` over the region. It is a z-score.
* **Local Moran** (Anselin 1995) with row-standardised weights over the neighbours within
  ``radius_mm`` (i excluded): ``I_i = z_i Σ_j w_ij z_j / m2``, ``m2 = Σ z² / n``; its z-score from
  the moments under randomisation (Anselin's E[I_i] = -W_i / (n - 1) and Var[I_i]); the quadrant
  (1 high-high, 2 low-high, 3 low-low, 4 high-low, as in PySAL's ``esda``). The mean of I_i is
  Moran's I with the same weights. Checked against esda 2.9.0: Gi* equals ``G_Local(star=True).Zs``;
  I_i equals esda's ``Is`` x n / (n - 1) (esda divides by Σz² / (n - 1)), and E[I_i], Var[I_i] equal
  esda's ``EI``/``VI``, the same quadrants, the same global I.
* **Semivariogram** γ(h) = Σ (x_i - x_j)² / (2 N(h)) over all pairs of region voxels at distance
  h (exact, by FFT), in distance bins, with a spherical, exponential or Gaussian model fitted;
  the **range** is the model's practical range (where it reaches 95 % of the sill; the spherical
  model's range itself): the typical patch size.
* **Patches** of a thresholded map: connected components (full connectivity), their number,
  density and size distribution.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr
from scipy import ndimage as ndi

from multiscale.errors import AnalysisError, AnalysisWarning
from multiscale.image import like, spacing, spatial_dims

from .._masks import check_mask, to_numpy
from ..family import Family, FamilyResult, image_units

__all__ = [
    "getis_ord_gi_star",
    "local_moran",
    "semivariogram",
    "variogram_range",
    "patch_statistics",
    "hotspots_table",
    "hotspots_evaluate",
    "VARIOGRAM_MODELS",
    "FAMILY",
]

#: the semivariogram models :func:`variogram_range` fits
VARIOGRAM_MODELS: tuple[str, ...] = ("spherical", "exponential", "gaussian")


def _ball_kernel(radius_mm: float, sp: tuple[float, ...], include_centre: bool) -> np.ndarray:
    half = [int(np.floor(radius_mm / s)) for s in sp]
    grids = np.meshgrid(*[np.arange(-h, h + 1) * s for h, s in zip(half, sp)], indexing="ij")
    k = (sum(g ** 2 for g in grids) <= radius_mm ** 2 + 1e-12).astype(float)
    if not include_centre:
        k[tuple(half)] = 0.0
    return k


def _conv(a: np.ndarray, k: np.ndarray) -> np.ndarray:
    from scipy.signal import fftconvolve

    if k.size <= 27:
        return ndi.correlate(a, k, mode="constant", cval=0.0)
    return fftconvolve(a, k, mode="same")


def _prepare(image: xr.DataArray, mask: xr.DataArray | None) -> tuple[xr.DataArray, np.ndarray, np.ndarray]:
    image, m = check_mask(image, mask)
    x = np.asarray(to_numpy(image), dtype=np.float64)
    bad = m & ~np.isfinite(x)
    if bad.any():
        warnings.warn(f"{int(bad.sum())} NaN voxels in the region were left out", AnalysisWarning, stacklevel=3)
        m = m & ~bad
    x = np.where(m, x, 0.0)
    if m.sum() < 3:
        raise AnalysisError(f"local statistics need at least 3 voxels in the region, got {int(m.sum())}")
    return image, m, x


def getis_ord_gi_star(image: xr.DataArray, mask: xr.DataArray | None = None, *, radius_mm: float) -> xr.DataArray:
    """Getis-Ord Gi* z-score of every voxel of the region (NaN outside), binary weights within ``radius_mm``.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> a = np.zeros((20, 20)); a[5:8, 5:8] = 10.0
    >>> z = getis_ord_gi_star(spatial_image(a, spacing=0.1), radius_mm=0.15)
    >>> bool(z.values[6, 6] > 3), bool(abs(z.values[15, 15]) < 1)
    (True, True)
    """
    image, m, x = _prepare(image, mask)
    sp = spacing(image)
    k = _ball_kernel(float(radius_mm), sp, include_centre=True)
    if k.sum() <= 1:
        warnings.warn(f"radius_mm={radius_mm} holds no neighbour at spacing {sp}; Gi* is the voxel's own z",
                      AnalysisWarning, stacklevel=2)
    n = float(m.sum())
    mf = m.astype(float)
    xbar = x[m].mean()
    s = np.sqrt((x[m] ** 2).mean() - xbar ** 2)
    lag = _conv(x, k)
    w = np.rint(_conv(mf, k))
    with np.errstate(invalid="ignore", divide="ignore"):
        den = s * np.sqrt((n * w - w ** 2) / (n - 1.0))
        z = (lag - xbar * w) / den
    z = np.where(m & (den > 0), z, np.nan)
    out = like(image, z.astype(np.float32), units="z")
    out.attrs["statistic"] = f"Getis-Ord Gi* (radius {radius_mm} mm)"
    return out


def local_moran(image: xr.DataArray, mask: xr.DataArray | None = None, *, radius_mm: float,
                row_standardise: bool = True) -> dict[str, xr.DataArray]:
    """Local Moran's I of every voxel of the region, its z-score under randomisation and its quadrant.

    Parameters
    ----------
    radius_mm : float
        Neighbours: region voxels within this distance (the voxel itself excluded).
    row_standardise : bool
        Weights 1 / (number of neighbours) (PySAL's default ``transform="r"``); False: weight 1.

    Returns
    -------
    dict
        ``I`` (local Moran), ``z`` (its z-score), ``quadrant`` (1 HH, 2 LH, 3 LL, 4 HL, 0 outside)
        as images on the grid; ``global_I`` (float): Moran's I with the same weights, Σ I_i / S0.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> a = np.zeros((12, 12)); a[:, 6:] = 1.0
    >>> r = local_moran(spatial_image(a, spacing=1.0), radius_mm=1.5)
    >>> round(r["global_I"], 3), int(r["quadrant"].values[2, 9])      # two halves: strong clustering; HH
    (0.874, 1)
    """
    image, m, x = _prepare(image, mask)
    sp = spacing(image)
    k = _ball_kernel(float(radius_mm), sp, include_centre=False)
    if k.sum() == 0:
        raise AnalysisError(f"radius_mm={radius_mm} holds no neighbour at spacing {sp}; use a larger radius")
    n = float(m.sum())
    mf = m.astype(float)
    zv = np.where(m, x - x[m].mean(), 0.0)
    m2 = (zv[m] ** 2).sum() / n
    m4 = (zv[m] ** 4).sum() / n
    if m2 == 0:
        raise AnalysisError("the map is constant in the region; local Moran's I is undefined")
    b2 = m4 / m2 ** 2
    nn = np.rint(_conv(mf, k))
    lag = _conv(zv, k)
    with np.errstate(invalid="ignore", divide="ignore"):
        if row_standardise:
            lag = lag / nn
            wi = np.where(nn > 0, 1.0, 0.0)
            wi2 = np.where(nn > 0, 1.0 / nn, 0.0)
        else:
            wi, wi2 = nn, nn
        li = zv * lag / m2
        ei = -wi / (n - 1.0)
        wkh = wi ** 2 - wi2
        var = wi2 * (n - b2) / (n - 1.0) + wkh * (2.0 * b2 - n) / ((n - 1.0) * (n - 2.0)) - wi ** 2 / (n - 1.0) ** 2
        zi = (li - ei) / np.sqrt(var)
    ok = m & (nn > 0)
    li = np.where(ok, li, np.nan)
    zi = np.where(ok & (var > 0), zi, np.nan)
    hi_self, hi_lag = zv > 0, lag > 0
    quad = np.select([hi_self & hi_lag, ~hi_self & hi_lag, ~hi_self & ~hi_lag, hi_self & ~hi_lag], [1, 2, 3, 4], 0)
    quad = np.where(ok, quad, 0).astype(np.uint8)
    s0 = float(np.where(ok, wi, 0).sum())
    global_i = float(np.nansum(li) / s0) if s0 else float("nan")
    return {"I": like(image, li.astype(np.float32), units="1"), "z": like(image, zi.astype(np.float32), units="z"),
            "quadrant": like(image, quad, units="class"), "global_I": global_i}


def semivariogram(image: xr.DataArray, mask: xr.DataArray | None = None, *, max_lag_mm: float | None = None,
                  n_lags: int = 20) -> pd.DataFrame:
    """Empirical semivariogram of a map in a region, over all voxel pairs (exact, by FFT), in distance bins.

    Returns
    -------
    pandas.DataFrame
        ``lag_mm`` (mean pair distance in the bin), ``bin_lo_mm``, ``bin_hi_mm``, ``gamma`` (in
        the map's units squared), ``n_pairs``. ``max_lag_mm`` defaults to a third of the region's
        largest extent.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> a = np.tile([0.0, 1.0], (8, 4))      # stripes: at lag 1, the x pairs differ by 1, the y pairs by 0
    >>> v = semivariogram(spatial_image(a, spacing=1.0), max_lag_mm=1.0, n_lags=1)
    >>> v[["lag_mm", "gamma"]].round(3).values.tolist()                  # (half of 1) / 2
    [[1.0, 0.25]]
    """
    from scipy.signal import fftconvolve

    image, m, x = _prepare(image, mask)
    sp = np.asarray(spacing(image), float)
    idx = np.argwhere(m)
    lo, hi = idx.min(axis=0), idx.max(axis=0) + 1
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    mb = m[box].astype(float)
    xb = np.where(m[box], x[box], 0.0)
    if max_lag_mm is None:
        max_lag_mm = float(((hi - lo) * sp).max()) / 3.0
    flip = tuple(slice(None, None, -1) for _ in mb.shape)

    def corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # Σ_i a_i b_{i+h} for every h
        return fftconvolve(b, a[flip], mode="full")

    npairs = np.rint(corr(mb, mb))
    sq = corr(mb * xb ** 2, mb) + corr(mb, mb * xb ** 2) - 2.0 * corr(xb, xb)
    centre = np.array(mb.shape) - 1
    grids = np.meshgrid(*[(np.arange(s) - c) * d for s, c, d in zip(npairs.shape, centre, sp)], indexing="ij")
    dist = np.sqrt(sum(g ** 2 for g in grids))
    edges = np.linspace(0.0, float(max_lag_mm), int(n_lags) + 1)
    use = (dist > 0) & (dist <= edges[-1] + 1e-12) & (npairs > 0)
    b = np.clip(np.searchsorted(edges, dist[use], side="left") - 1, 0, n_lags - 1)
    np_bin = np.bincount(b, weights=npairs[use], minlength=n_lags)
    sq_bin = np.bincount(b, weights=np.clip(sq[use], 0, None), minlength=n_lags)
    d_bin = np.bincount(b, weights=dist[use] * npairs[use], minlength=n_lags)
    with np.errstate(invalid="ignore", divide="ignore"):
        gamma = sq_bin / (2.0 * np_bin)
        lag = d_bin / np_bin
    out = pd.DataFrame({"lag_mm": lag, "bin_lo_mm": edges[:-1], "bin_hi_mm": edges[1:], "gamma": gamma,
                        "n_pairs": (np_bin / 2).astype(np.int64)})
    out = out[out["n_pairs"] > 0].reset_index(drop=True)
    out.attrs["units"] = f"({image_units(image)})^2"
    return out


def _model(name: str):
    if name == "spherical":
        def f(h, nugget, sill, a):
            r = np.clip(h / a, 0, 1)
            return nugget + sill * (1.5 * r - 0.5 * r ** 3)
        return f, 1.0
    if name == "exponential":
        return (lambda h, nugget, sill, a: nugget + sill * (1 - np.exp(-h / a))), 3.0
    if name == "gaussian":
        return (lambda h, nugget, sill, a: nugget + sill * (1 - np.exp(-(h / a) ** 2))), np.sqrt(3.0)
    raise AnalysisError(f"model={name!r}; use one of {VARIOGRAM_MODELS}")


def variogram_range(variogram: pd.DataFrame, model: Literal["spherical", "exponential", "gaussian"] = "spherical"
                    ) -> dict[str, float]:
    """Fit a semivariogram model (weighted by pair counts); its practical range is the patch size.

    Returns
    -------
    dict
        ``range_mm`` (practical range: spherical ``a``, exponential ``3a``, Gaussian ``sqrt(3) a``),
        ``a_mm`` (the model's scale), ``sill`` (partial sill), ``nugget``, ``model``. NaN with a
        warning when the fit fails or the range lies beyond 1.5 x the largest lag.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> h = np.linspace(0.05, 2, 40)
    >>> v = pd.DataFrame({"lag_mm": h, "gamma": 1 - np.exp(-h / 0.2), "n_pairs": 100})
    >>> round(variogram_range(v, "exponential")["range_mm"], 3)
    0.6
    """
    from scipy.optimize import curve_fit

    f, practical = _model(model)
    v = variogram.dropna(subset=["gamma", "lag_mm"])
    nan = {"range_mm": float("nan"), "a_mm": float("nan"), "sill": float("nan"), "nugget": float("nan"),
           "model": model}
    if len(v) < 4:
        warnings.warn("fewer than 4 lags: no variogram model fitted", AnalysisWarning, stacklevel=2)
        return nan
    h, g, w = v["lag_mm"].to_numpy(float), v["gamma"].to_numpy(float), v["n_pairs"].to_numpy(float)
    p0 = [max(g[0] * 0.5, 0.0), max(g.max() - g[0] * 0.5, 1e-12), h[len(h) // 3]]
    try:
        p, _ = curve_fit(f, h, g, p0=p0, sigma=1.0 / np.sqrt(np.maximum(w, 1)),
                         bounds=([0, 0, 1e-9], [np.inf, np.inf, np.inf]), maxfev=20000)
    except (RuntimeError, ValueError) as exc:
        warnings.warn(f"the {model} variogram fit failed ({exc}); range is NaN", AnalysisWarning, stacklevel=2)
        return nan
    rng = float(p[2] * practical)
    if rng > h.max() * 1.5:
        warnings.warn(f"the fitted range ({rng:.3g} mm) lies beyond the largest lag ({h.max():.3g} mm): the map's "
                      "patches are larger than the lags looked at, the range is NaN; raise max_lag_mm",
                      AnalysisWarning, stacklevel=2)
        return nan
    return {"range_mm": rng, "a_mm": float(p[2]), "sill": float(p[1]), "nugget": float(p[0]), "model": model}


def patch_statistics(image: xr.DataArray, mask: xr.DataArray | None = None, *, threshold: float | None = None,
                     min_size_voxels: int = 1) -> tuple[dict[str, float], pd.DataFrame]:
    """Patches of a thresholded map: connected regions above ``threshold`` (Otsu's in the region when None).

    Returns
    -------
    summary : dict
        ``threshold``, ``n_patches``, ``density`` (patches per mm² or mm³ of region),
        ``area_fraction``, ``size_mean``, ``size_median``, ``size_p90``, ``size_max`` (mm² in 2-D,
        mm³ in 3-D), ``ndim``.
    patches : pandas.DataFrame
        ``patch``, ``size`` (mm² / mm³), ``n_voxels``, ``mean`` of the map in each patch.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> a = np.zeros((10, 10)); a[1:3, 1:3] = 5; a[6:9, 6:9] = 5
    >>> s, p = patch_statistics(spatial_image(a, spacing=0.1), threshold=1.0)
    >>> s["n_patches"], p["size"].round(2).tolist()
    (2, [0.04, 0.09])
    """
    from skimage.filters import threshold_otsu
    from skimage.measure import label

    image, m, x = _prepare(image, mask)
    thr = float(threshold_otsu(x[m])) if threshold is None else float(threshold)
    hot = m & (x > thr)
    lab = label(hot, connectivity=hot.ndim)
    n = int(lab.max())
    vv = float(np.prod(spacing(image)))
    counts = np.bincount(lab.ravel(), minlength=n + 1)[1:]
    sums = np.bincount(lab.ravel(), weights=x.ravel(), minlength=n + 1)[1:]
    keep = counts >= int(min_size_voxels)
    sizes = counts[keep] * vv
    patches = pd.DataFrame({"patch": np.arange(1, keep.sum() + 1), "size": sizes, "n_voxels": counts[keep],
                            "mean": sums[keep] / np.maximum(counts[keep], 1)})
    region = float(m.sum()) * vv
    nan = float("nan")
    summary = {"threshold": thr, "n_patches": int(keep.sum()), "density": keep.sum() / region,
               "area_fraction": float(counts[keep].sum() / m.sum()),
               "size_mean": float(sizes.mean()) if sizes.size else nan,
               "size_median": float(np.median(sizes)) if sizes.size else nan,
               "size_p90": float(np.percentile(sizes, 90)) if sizes.size else nan,
               "size_max": float(sizes.max()) if sizes.size else nan, "ndim": float(hot.ndim)}
    return summary, patches


def hotspots_evaluate(
    image: xr.DataArray,
    mask: xr.DataArray | None = None,
    *,
    radius_mm: float | None = None,
    alpha: float = 0.05,
    threshold: float | None = None,
    model: Literal["spherical", "exponential", "gaussian"] = "spherical",
    max_lag_mm: float | None = None,
    n_lags: int = 20,
) -> FamilyResult:
    """Rows, maps and figure data of the ``hotspots`` family (see :func:`hotspots_table`)."""
    from scipy.stats import norm

    image, m = check_mask(image, mask)
    sp = spacing(image)
    nd = len(spatial_dims(image))
    r = float(radius_mm) if radius_mm is not None else 1.5 * float(max(sp))
    zc = float(norm.ppf(1 - alpha / 2))
    gi = getis_ord_gi_star(image, mask, radius_mm=r)
    lm = local_moran(image, mask, radius_mm=r)
    gz = np.asarray(gi.values, float)
    hot, cold = gz > zc, gz < -zc
    n = float(m.sum())
    size_u = "mm²" if nd == 2 else "mm³"
    hot_lab, n_hot = ndi.label(hot, structure=np.ones((3,) * nd))
    vg = semivariogram(image, mask, max_lag_mm=max_lag_mm, n_lags=n_lags)
    vr = variogram_range(vg, model)
    ps, _ = patch_statistics(image, mask, threshold=threshold)
    lz = np.asarray(lm["z"].values, float)
    q = np.asarray(lm["quadrant"].values)
    sig = np.abs(lz) > zc
    units = image_units(image)
    d_gi = f"Getis-Ord Gi*, binary weights within {r:g} mm, |z| > {zc:.2f} (alpha {alpha})"
    d_lm = f"local Moran (row-standardised, neighbours within {r:g} mm), |z| > {zc:.2f}"
    rows = [
        ("gi_star_max", float(np.nanmax(gz)), "z", d_gi),
        ("gi_star_min", float(np.nanmin(gz)), "z", d_gi),
        ("hot_fraction", float(hot.sum() / n), "1", d_gi),
        ("cold_fraction", float(cold.sum() / n), "1", d_gi),
        ("n_hotspots", float(n_hot), "patches", d_gi + "; connected hot voxels"),
        ("local_moran_global_I", lm["global_I"], "1", d_lm + "; mean of I_i = Moran's I with these weights"),
    ]
    for code, name in ((1, "high_high"), (2, "low_high"), (3, "low_low"), (4, "high_low")):
        rows.append((f"lisa_{name}_fraction", float((sig & (q == code)).sum() / n), "1", d_lm))
    d_v = f"{model} model fitted to the semivariogram (lags to {vg['bin_hi_mm'].max():.3g} mm)"
    rows += [("variogram_range", vr["range_mm"], "mm", d_v + "; practical range = patch size"),
             ("variogram_sill", vr["sill"], f"({units})^2", d_v),
             ("variogram_nugget", vr["nugget"], f"({units})^2", d_v)]
    d_p = f"connected regions above {ps['threshold']:.4g} {units}" + (" (Otsu)" if threshold is None else "")
    rows += [("patch_threshold", ps["threshold"], units, d_p), ("n_patches", ps["n_patches"], "patches", d_p),
             ("patch_density", ps["density"], f"1/{size_u}", d_p), ("patch_area_fraction", ps["area_fraction"], "1", d_p),
             ("patch_size_mean", ps["size_mean"], size_u, d_p), ("patch_size_median", ps["size_median"], size_u, d_p),
             ("patch_size_p90", ps["size_p90"], size_u, d_p), ("patch_size_max", ps["size_max"], size_u, d_p)]
    table = pd.DataFrame(rows, columns=["metric", "value", "units", "detail"])
    cls = np.where(hot, 1, np.where(cold, -1, 0)).astype(np.int8)
    images = {"gi_star": gi, "local_moran": lm["I"], "hotspot_class": like(image, cls, units="class")}
    return FamilyResult(rows=table, images=images, data={"gi_star": gz, "variogram": vg, "fit": vr, "z_crit": zc,
                                                          "spacing": sp})


def hotspots_table(
    image: xr.DataArray,
    mask: xr.DataArray | None = None,
    *,
    radius_mm: float | None = None,
    alpha: float = 0.05,
    threshold: float | None = None,
    model: Literal["spherical", "exponential", "gaussian"] = "spherical",
    max_lag_mm: float | None = None,
    n_lags: int = 20,
) -> pd.DataFrame:
    """Hotspots, local Moran, semivariogram range and patches of a map as tidy rows; the study's ``hotspots``.

    Parameters
    ----------
    radius_mm : float, optional
        Neighbourhood of Gi* and local Moran (default 1.5 voxels).
    alpha : float
        Two-sided level of the hot/cold and LISA calls (no multiple-testing correction: the calls
        map where the map is locally high, they are not independent tests).
    threshold : float, optional
        Patch threshold (default Otsu's in the region).
    model, max_lag_mm, n_lags
        Semivariogram model and lags (:func:`semivariogram`, :func:`variogram_range`).

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> a = np.random.default_rng(0).normal(0, 1, (30, 30)); a[5:10, 5:10] += 5
    >>> rows = hotspots_table(spatial_image(a, spacing=0.1), radius_mm=0.2).set_index("metric")
    >>> int(rows.loc["n_hotspots", "value"]) >= 1, rows.loc["variogram_range", "units"]
    (True, 'mm')
    """
    return hotspots_evaluate(image, mask, radius_mm=radius_mm, alpha=alpha, threshold=threshold, model=model,
                             max_lag_mm=max_lag_mm, n_lags=n_lags).rows


def hotspots_figure(result: FamilyResult, title: str = "", labels: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
    """Gi* map with the hot/cold calls outlined, and the semivariogram with its fitted model."""
    from ..figures import image_panel, new_figure

    gz = np.asarray(result.data["gi_star"], float)
    plane = result.images.get("gi_star")  # the same map with its coordinates (mm)
    if gz.ndim == 3:
        plane = plane.isel({plane.dims[0]: gz.shape[0] // 2}) if plane is not None and plane.ndim == 3 else None
        gz = gz[gz.shape[0] // 2]
    zc = float(result.data["z_crit"])
    fig = new_figure((6.4, 2.6))
    ax = fig.add_subplot(1, 2, 1)
    lim = float(np.nanmax(np.abs(gz))) if np.isfinite(gz).any() else 1.0
    shown = plane.copy(data=gz) if plane is not None and plane.shape == gz.shape else gz
    image_panel(ax, shown, title=f"Gi* {title}".strip(), units="Gi* (z)", cmap="RdBu_r", vmin=-lim, vmax=lim)
    if np.isfinite(gz).any() and (np.nan_to_num(gz) > zc).any():
        if shown is gz:
            ax.contour(np.nan_to_num(gz) > zc, levels=[0.5], colors="k", linewidths=0.8)
        else:
            dims = [d for d in shown.dims][-2:]
            ax.contour(shown.coords[dims[1]].values, shown.coords[dims[0]].values, np.nan_to_num(gz) > zc,
                       levels=[0.5], colors="k", linewidths=0.8)
    ax2 = fig.add_subplot(1, 2, 2)
    vg = result.data["variogram"]
    ax2.plot(vg["lag_mm"], vg["gamma"], "o", ms=3, label="empirical")
    fit = result.data["fit"]
    if np.isfinite(fit.get("range_mm", np.nan)):
        f, _ = _model(fit["model"])
        h = np.linspace(0, float(vg["lag_mm"].max()), 100)
        ax2.plot(h, f(h, fit["nugget"], fit["sill"], fit["a_mm"]), "-", label=f"{fit['model']} fit")
        ax2.axvline(fit["range_mm"], ls="--", color="grey", label=f"range {fit['range_mm']:.3g} mm")
    ax2.set_xlabel("lag (mm)")
    ax2.set_ylabel(f"semivariance {vg.attrs.get('units', '(units^2)')}")
    ax2.legend(frameon=False, fontsize="small")
    return [("hotspots", fig)]


FAMILY = Family(
    name="hotspots",
    table=hotspots_table,
    inputs=("image", "mask"),
    evaluate_fn=hotspots_evaluate,
    figure=hotspots_figure,
    description="Getis-Ord Gi* hotspots, local Moran's I, semivariogram range and patch statistics of a map",
)
