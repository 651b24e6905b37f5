"""Perivascular transport: a map against distance from the nearest vessel; penetration depth; band fractions.

Distances are :func:`~multiscale.analysis.vessels.distance_to_vessels` (to the vessel wall by default,
exact Euclidean in physical spacing). Profiles use the **extravascular** voxels of the region (vessel
voxels are reported apart, as the intravascular fraction). Confidence intervals are percentile bootstraps
over voxels (each bin resampled on its own; bins of more than 5,000 voxels use the normal
approximation of the bootstrap mean, which is what resampling converges to). Voxels are spatially
correlated, so these intervals are lower bounds on the true uncertainty.

Functions
---------
perivascular_profile
    Mean (with CI), median and count of a map in distance bins from the vessels.
penetration_depth
    Distance where the profile falls to 50 % (or 1/e, or any fraction) of its perivascular value, with CI.
perivascular_fractions
    Intra- and extravascular shares of a signal and the share within ``band_mm`` of a vessel wall.
density_tiles
    The map's mean in square (cubic) tiles binned by the tiles' vessel density, and their rank correlation.
compare_penetration
    Penetration depths of two maps (two formulations) against the same vessels: ratio and difference with CIs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from multiscale.errors import AnalysisError
from multiscale.image import spacing

from .._masks import check_mask, masked_values, warn_nan
from ..family import Family
from .distance import distance_array, vessel_mask_on

__all__ = ["perivascular_profile", "penetration_depth", "perivascular_fractions", "density_tiles",
           "compare_penetration", "LEVELS"]

#: named penetration levels
LEVELS = {"half": 0.5, "1/e": float(np.exp(-1.0))}
_NORMAL_ABOVE = 5000


def _level(level: float | str) -> float:
    f = LEVELS.get(level, level) if isinstance(level, str) else level
    try:
        f = float(f)
    except (TypeError, ValueError):
        raise AnalysisError(f"level={level!r}: use a fraction in (0, 1), 'half' or '1/e'") from None
    if not 0 < f < 1:
        raise AnalysisError(f"level={level!r}: use a fraction in (0, 1), 'half' or '1/e'")
    return f


def _gather(image: xr.DataArray, vessels: xr.DataArray, mask: xr.DataArray | None, reference: str
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Values, distances (mm) and vessel flags of the region's finite voxels."""
    image, m = check_mask(image, mask)
    v = vessel_mask_on(vessels, image)
    dist = distance_array(v, spacing(image), reference)
    vals, kept = masked_values(image, m)
    return vals, dist[m][kept], v[m][kept]


def _edges(dist: np.ndarray, bin_mm: float | None, max_distance_mm: float | None, n_bins: int) -> np.ndarray:
    top = float(np.nanmax(dist)) if dist.size else 0.0
    if max_distance_mm is not None:
        if max_distance_mm <= 0:
            raise AnalysisError(f"max_distance_mm must be > 0 mm, got {max_distance_mm}")
        top = min(top, float(max_distance_mm))
    if top <= 0:
        raise AnalysisError("every extravascular voxel of the region is at distance 0 from a vessel; nothing to profile")
    if bin_mm is not None:
        if bin_mm <= 0:
            raise AnalysisError(f"bin_mm must be > 0 mm, got {bin_mm}")
        n = max(int(np.ceil(top / bin_mm - 1e-9)), 1)
        return np.arange(n + 1) * float(bin_mm)
    return np.linspace(0.0, top, int(n_bins) + 1)


def _boot_means(v: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    if v.size == 0:
        return np.full(n_boot, np.nan)
    if v.size > _NORMAL_ABOVE:
        return rng.normal(v.mean(), v.std(ddof=0) / np.sqrt(v.size), n_boot)
    idx = rng.integers(0, v.size, (n_boot, v.size))
    return v[idx].mean(axis=1)


def _profile(vals: np.ndarray, dist: np.ndarray, vessel: np.ndarray, edges: np.ndarray, n_boot: int, ci: float,
             rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    out = ~vessel
    v, d = vals[out], dist[out]
    # the first bin holds the voxels touching the wall too (distance 0 < d <= hi)
    k = np.clip(np.searchsorted(edges, d, side="left") - 1, 0, len(edges) - 2)
    inside = d <= edges[-1] + 1e-12
    rows, boots = [], []
    for b in range(len(edges) - 1):
        sel = inside & (k == b)
        vb, db = v[sel], d[sel]
        row = {"bin": b, "lo": float(edges[b]), "hi": float(edges[b + 1]), "n": int(vb.size),
               "distance_mm": float(db.mean()) if vb.size else np.nan,
               "mean": float(vb.mean()) if vb.size else np.nan,
               "median": float(np.median(vb)) if vb.size else np.nan}
        bm = _boot_means(vb, n_boot, rng) if n_boot else np.full(0, np.nan)
        if n_boot and vb.size > 1:
            row["ci_low"], row["ci_high"] = (float(x) for x in np.nanpercentile(bm, [50 * (1 - ci), 50 * (1 + ci)]))
        else:
            row["ci_low"] = row["ci_high"] = np.nan
        rows.append(row)
        boots.append(bm)
    return pd.DataFrame(rows), (np.stack(boots, axis=1) if n_boot else np.zeros((0, len(rows))))


def perivascular_profile(
    image: xr.DataArray,
    vessels: xr.DataArray,
    mask: xr.DataArray | None = None,
    *,
    bin_mm: float | None = None,
    n_bins: int = 10,
    max_distance_mm: float | None = None,
    reference: str = "wall",
    n_boot: int = 200,
    ci: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """A map's profile against distance from the nearest vessel (extravascular voxels of the region).

    Parameters
    ----------
    image : xarray.DataArray
        The map (a drug, a dye, a nanoparticle density), one channel, 2-D or 3-D.
    vessels : xarray.DataArray
        Vessel mask on the image's grid (see :func:`~multiscale.analysis.vessels.segment_vessels`).
    mask : xarray.DataArray, optional
        Region (e.g. the tumour); the whole image when None.
    bin_mm, n_bins, max_distance_mm
        Bins of ``bin_mm`` from the wall (or ``n_bins`` equal bins) up to ``max_distance_mm``.
    reference : {"wall", "centre", "centreline"}
        See :func:`~multiscale.analysis.vessels.distance_to_vessels`.

    Returns
    -------
    pandas.DataFrame
        One row per bin: ``bin``, ``lo``, ``hi`` (mm), ``distance_mm`` (mean distance of its voxels),
        ``mean``, ``ci_low``, ``ci_high`` (bootstrap CI of the mean), ``median``, ``n``.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> yy, xx = np.mgrid[:40, :60] * 0.01
    >>> v = (np.abs(yy - 0.2) < 0.015).astype(np.uint8)  # a horizontal vessel, 3 pixels wide
    >>> d = np.maximum(np.abs(yy - 0.2) - 0.015, 0)
    >>> img = spatial_image(np.exp(-d / 0.05), spacing=0.01)
    >>> p = perivascular_profile(img, spatial_image(v, spacing=0.01), bin_mm=0.05, n_boot=0)
    >>> p["mean"].round(2).tolist()
    [0.63, 0.23, 0.09, 0.04]
    """
    vals, dist, ves = _gather(image, vessels, mask, reference)
    if not ves.size or not np.isfinite(dist).any():
        raise AnalysisError("the vessel mask is empty: there is no distance to profile against; "
                            "check the vessel segmentation (or give a vessel mask)")
    edges = _edges(dist[~ves], bin_mm, max_distance_mm, n_bins)
    prof, _ = _profile(vals, dist, ves, edges, n_boot, ci, np.random.default_rng(seed))
    return prof


def _crossing(d: np.ndarray, m: np.ndarray, target: float, falling: bool) -> float:
    ok = np.isfinite(m) & np.isfinite(d)
    d, m = d[ok], m[ok]
    below = np.flatnonzero(m <= target) if falling else np.flatnonzero(m >= target)
    if below.size == 0 or m.size == 0:
        return np.nan
    k = int(below[0])
    if k == 0:
        return float(d[0])
    x0, x1, y0, y1 = d[k - 1], d[k], m[k - 1], m[k]
    return float(x0 + (target - y0) * (x1 - x0) / (y1 - y0)) if y1 != y0 else float(x1)


def _depth_from(prof: pd.DataFrame, boots: np.ndarray, level: float, background: float | str, ci: float
                ) -> dict[str, float]:
    d = prof["distance_mm"].to_numpy()
    m = prof["mean"].to_numpy()
    ok = np.flatnonzero(np.isfinite(m))
    if ok.size < 2:
        nan = warn_nan("fewer than 2 distance bins hold voxels; the penetration depth is NaN")
        return {"depth_mm": nan, "ci_low": nan, "ci_high": nan, "perivascular_value": nan, "background": nan}

    def one(means: np.ndarray) -> tuple[float, float, float]:
        peri = means[ok[0]]
        bg = means[ok[-1]] if background == "far" else float(background)
        target = bg + level * (peri - bg)
        return _crossing(d, means, target, peri >= bg), peri, bg

    if isinstance(background, str) and background != "far":
        raise AnalysisError(f"background={background!r}: use a number (the map's units) or 'far' (the last bin's mean)")
    depth, peri, bg = one(m)
    lo = hi = np.nan
    all_reps = np.array([one(b)[0] for b in boots]) if boots.size else np.zeros(0)
    if all_reps.size and np.isfinite(depth):
        reps = all_reps[np.isfinite(all_reps)]
        if reps.size:
            lo, hi = (float(x) for x in np.percentile(reps, [50 * (1 - ci), 50 * (1 + ci)]))
    if not np.isfinite(depth):
        warn_nan(f"the profile never falls to {level:.3g} of its perivascular value; penetration depth is NaN "
                 "(widen max_distance_mm or check the background)")
    return {"depth_mm": depth, "ci_low": lo, "ci_high": hi, "perivascular_value": float(peri), "background": float(bg),
            "_replicates": all_reps}


def penetration_depth(
    image: xr.DataArray,
    vessels: xr.DataArray,
    mask: xr.DataArray | None = None,
    *,
    level: float | str = 0.5,
    background: float | str = "far",
    bin_mm: float | None = None,
    n_bins: int = 10,
    max_distance_mm: float | None = None,
    reference: str = "wall",
    n_boot: int = 200,
    ci: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """Distance (mm) from the vessel wall where the signal falls to ``level`` of its perivascular value.

    The profile is :func:`perivascular_profile`; the perivascular value is the first bin's mean, the
    background the last bin's mean (``background="far"``) or a given number; the target is
    ``background + level * (perivascular - background)``, and the depth is interpolated linearly between
    the mean distances of the bins either side. ``level`` is a fraction, ``"half"`` or ``"1/e"``. For an
    exponential fall ``exp(-d / L)`` the 1/e depth is ``L`` and the 50 % depth ``L ln 2`` (plus the first
    bin's mean distance). The CI repeats this on bootstrap replicates of every bin's mean.

    Returns
    -------
    dict
        ``depth_mm``, ``ci_low``, ``ci_high``, ``perivascular_value``, ``background``; NaN with an
        :class:`~multiscale.errors.AnalysisWarning` when the profile never falls that low.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> yy, xx = np.mgrid[:200, :20] * 0.005
    >>> v = (yy < 0.0075).astype(np.uint8)  # vessel along the top edge
    >>> img = spatial_image(np.exp(-np.maximum(yy - 0.0075, 0) / 0.1), spacing=0.005)
    >>> r = penetration_depth(img, spatial_image(v, spacing=0.005), level="1/e", background=0.0,
    ...                       bin_mm=0.01, n_boot=0)
    >>> round(r["depth_mm"], 3)  # 0.1 mm decay length, plus the first bin's mean distance
    0.105
    """
    f = _level(level)
    vals, dist, ves = _gather(image, vessels, mask, reference)
    if not ves.any():
        nan = warn_nan("the vessel mask is empty in the region: no penetration depth (NaN)")
        return {"depth_mm": nan, "ci_low": nan, "ci_high": nan, "perivascular_value": nan, "background": nan}
    edges = _edges(dist[~ves], bin_mm, max_distance_mm, n_bins)
    prof, boots = _profile(vals, dist, ves, edges, n_boot, ci, np.random.default_rng(seed))
    res = _depth_from(prof, boots, f, background, ci)
    res.pop("_replicates", None)
    return res


def perivascular_fractions(
    image: xr.DataArray,
    vessels: xr.DataArray,
    mask: xr.DataArray | None = None,
    *,
    band_mm: float = 0.02,
    reference: str = "wall",
) -> dict[str, float]:
    """Shares of a signal inside vessels, outside them, and within ``band_mm`` of a vessel wall.

    Returns
    -------
    dict
        ``intravascular_fraction`` and ``extravascular_fraction`` (of the region's summed signal),
        ``band_fraction`` (extravascular signal within ``band_mm`` of the wall, of the total),
        ``band_volume_fraction`` (the band's share of the region), ``band_enrichment`` (their ratio: 1 when
        the signal ignores the vessels), ``vessel_volume_fraction``, ``total`` (the summed signal).

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> v = np.zeros((10, 10), np.uint8); v[:, 0] = 1
    >>> img = spatial_image(np.ones((10, 10)), spacing=1.0)
    >>> r = perivascular_fractions(img, spatial_image(v, spacing=1.0), band_mm=1.0)
    >>> r["intravascular_fraction"], r["band_fraction"], r["band_enrichment"]
    (0.1, 0.1, 1.0)
    """
    if band_mm <= 0:
        raise AnalysisError(f"band_mm must be > 0 mm, got {band_mm}")
    vals, dist, ves = _gather(image, vessels, mask, reference)
    total = float(vals.sum())
    if not ves.any():
        nan = warn_nan("the vessel mask is empty in the region: perivascular fractions are NaN")
        return {k: nan for k in ("intravascular_fraction", "extravascular_fraction", "band_fraction",
                                 "band_volume_fraction", "band_enrichment")} | {"vessel_volume_fraction": 0.0,
                                                                                 "total": total}
    band = ~ves & (dist <= band_mm)
    if total == 0:
        nan = warn_nan("the signal sums to 0 in the region: fractions are NaN")
        intra = extra = bandf = nan
    else:
        intra = float(vals[ves].sum() / total)
        extra = 1.0 - intra
        bandf = float(vals[band].sum() / total)
    bvol = float(band.mean())
    return {"intravascular_fraction": intra, "extravascular_fraction": extra, "band_fraction": bandf,
            "band_volume_fraction": bvol, "band_enrichment": bandf / bvol if bvol > 0 else np.nan,
            "vessel_volume_fraction": float(ves.mean()), "total": total}


def density_tiles(
    image: xr.DataArray,
    vessels: xr.DataArray,
    mask: xr.DataArray | None = None,
    *,
    tile_mm: float = 0.5,
    n_bins: int = 4,
    min_fill: float = 0.5,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """The map's mean in tiles, binned by the tiles' vessel density (vessel area or volume fraction).

    The image is cut into square (2-D) or cubic (3-D) tiles of ``tile_mm``; tiles with less than
    ``min_fill`` of their voxels in the region are dropped. Tiles are binned by vessel density quantiles.

    Returns
    -------
    table : pandas.DataFrame
        Per density bin: ``bin``, ``density_lo``, ``density_hi`` (vessel fraction), ``n_tiles``,
        ``density`` (mean), ``mean`` (the map's mean over the bin's tiles), ``sd``.
    stats : dict
        ``spearman_rho`` and ``spearman_p`` between tile density and tile mean (:func:`scipy.stats.spearmanr`),
        ``n_tiles``.
    """
    from scipy import stats as st

    image, m = check_mask(image, mask)
    v = vessel_mask_on(vessels, image)
    sp = np.asarray(spacing(image), float)
    if tile_mm <= 0:
        raise AnalysisError(f"tile_mm must be > 0 mm, got {tile_mm}")
    size = np.maximum(np.round(tile_mm / sp).astype(int), 1)
    data = np.asarray(image.data if not hasattr(image.data, "compute") else image.data.compute(), dtype=float)
    finite = np.isfinite(data) & m
    idx = np.stack(np.meshgrid(*[np.arange(n) // s for n, s in zip(m.shape, size)], indexing="ij"), 0)
    grid = tuple(int(np.ceil(n / s)) for n, s in zip(m.shape, size))
    flat = np.ravel_multi_index(tuple(idx), grid).ravel()
    nt = int(np.prod(grid))
    cnt_all = np.bincount(flat, minlength=nt)
    cnt = np.bincount(flat, weights=finite.ravel(), minlength=nt)
    ves = np.bincount(flat, weights=(v & finite).ravel(), minlength=nt)
    sm = np.bincount(flat, weights=np.where(finite, data, 0.0).ravel(), minlength=nt)
    keep = (cnt >= min_fill * cnt_all) & (cnt > 0)
    if keep.sum() < 2:
        raise AnalysisError(f"fewer than 2 tiles of {tile_mm} mm are at least {min_fill:.0%} inside the region; "
                            "choose a smaller tile_mm")
    dens, mean = ves[keep] / cnt[keep], sm[keep] / cnt[keep]
    qs = np.unique(np.quantile(dens, np.linspace(0, 1, n_bins + 1)))
    if qs.size < 2:
        qs = np.array([dens.min(), dens.max() + 1e-12])
    b = np.clip(np.searchsorted(qs, dens, side="right") - 1, 0, qs.size - 2)
    rows = []
    for k in range(qs.size - 1):
        s = b == k
        rows.append({"bin": k, "density_lo": float(qs[k]), "density_hi": float(qs[k + 1]), "n_tiles": int(s.sum()),
                     "density": float(dens[s].mean()) if s.any() else np.nan,
                     "mean": float(mean[s].mean()) if s.any() else np.nan,
                     "sd": float(mean[s].std(ddof=1)) if s.sum() > 1 else np.nan})
    if np.ptp(dens) > 0 and np.ptp(mean) > 0:
        rho, p = st.spearmanr(dens, mean)
    else:
        rho = p = warn_nan("tile vessel density or tile mean is constant: the rank correlation is NaN")
    return pd.DataFrame(rows), {"spearman_rho": float(rho), "spearman_p": float(p), "n_tiles": int(keep.sum())}


def compare_penetration(
    a: xr.DataArray,
    b: xr.DataArray,
    vessels: xr.DataArray,
    mask: xr.DataArray | None = None,
    *,
    level: float | str = 0.5,
    background: float | str = "far",
    bin_mm: float | None = None,
    n_bins: int = 10,
    max_distance_mm: float | None = None,
    reference: str = "wall",
    n_boot: int = 200,
    ci: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """Penetration depths of two maps (e.g. 12 nm vs 125 nm particles) from the same vessels, compared.

    Both profiles use the same bins (from the vessels and the region); the bootstrap resamples each
    map's bins independently, giving CIs of ``ratio`` (b over a) and ``difference_mm`` (b - a).

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> yy, xx = np.mgrid[:200, :10] * 0.005
    >>> v = spatial_image((yy < 0.0075).astype(np.uint8), spacing=0.005)
    >>> d = np.maximum(yy - 0.0075, 0)
    >>> small, large = (spatial_image(np.exp(-d / L), spacing=0.005) for L in (0.2, 0.1))
    >>> r = compare_penetration(large, small, v, bin_mm=0.01, background=0.0, n_boot=20)
    >>> round(r["ratio"], 1)
    1.9
    """
    f = _level(level)
    rng = np.random.default_rng(seed)
    out: dict[str, float] = {}
    reps = []
    edges = None
    for name, img in (("a", a), ("b", b)):
        vals, dist, ves = _gather(img, vessels, mask, reference)
        if not ves.any():
            raise AnalysisError("the vessel mask is empty in the region: no penetration to compare")
        if edges is None:
            edges = _edges(dist[~ves], bin_mm, max_distance_mm, n_bins)
        prof, boots = _profile(vals, dist, ves, edges, n_boot, ci, rng)
        r = _depth_from(prof, boots, f, background, ci)
        out[f"depth_{name}_mm"], out[f"depth_{name}_ci_low"], out[f"depth_{name}_ci_high"] = (
            r["depth_mm"], r["ci_low"], r["ci_high"])
        reps.append(np.asarray(r.get("_replicates", np.zeros(0))))
    da_, db_ = out["depth_a_mm"], out["depth_b_mm"]
    out["ratio"] = db_ / da_ if da_ and np.isfinite(da_) else np.nan
    out["difference_mm"] = db_ - da_
    lo_r = hi_r = lo_d = hi_d = np.nan
    if n_boot:
        ra, rb = reps
        ok = np.isfinite(ra) & np.isfinite(rb) & (ra != 0)
        if ok.any():
            lo_r, hi_r = np.percentile(rb[ok] / ra[ok], [50 * (1 - ci), 50 * (1 + ci)])
            lo_d, hi_d = np.percentile(rb[ok] - ra[ok], [50 * (1 - ci), 50 * (1 + ci)])
    out.update(ratio_ci_low=float(lo_r), ratio_ci_high=float(hi_r), difference_ci_low=float(lo_d),
               difference_ci_high=float(hi_d))
    return out


def profile_rows(prof: pd.DataFrame, units: str, detail: str = "") -> list[dict[str, Any]]:
    """Tidy rows of a :func:`perivascular_profile` (``profile_<column>``, distance bins in ``bin_*``)."""
    col_units = {"mean": units, "median": units, "ci_low": units, "ci_high": units, "n": "voxels",
                 "distance_mm": "mm"}
    rows = []
    for _, r in prof.iterrows():
        for col, u in col_units.items():
            rows.append({"metric": f"profile_{col}", "value": float(r[col]), "units": u, "bin": int(r["bin"]),
                         "bin_lo": float(r["lo"]), "bin_hi": float(r["hi"]), "bin_units": "mm",
                         "detail": detail})
    return rows


def perivascular_evaluate(
    image: xr.DataArray,
    mask: xr.DataArray,
    vessels: xr.DataArray | None = None,
    *,
    scales_mm: list[float] | None = None,
    method: str = "frangi",
    threshold: str | float = "otsu",
    min_size: float | None = None,
    grow: bool = False,
    bin_mm: float | None = None,
    n_bins: int = 10,
    max_distance_mm: float | None = None,
    background: float | str = "far",
    band_mm: float = 0.02,
    tile_mm: float | None = None,
    reference: str = "wall",
    n_boot: int = 200,
    ci: float = 0.95,
    seed: int = 0,
) -> Any:
    """Rows and figure data of the ``perivascular`` family (see :func:`perivascular_table`)."""
    from ..family import FamilyResult, image_units
    from .network import vessel_mask_of

    src = vessels if vessels is not None else image
    vm = vessel_mask_of(src, None, scales_mm=scales_mm, method=method, threshold=threshold, min_size=min_size,
                        grow=grow)
    units = image_units(image)
    how = "given vessel mask" if vm is src else f"vessels segmented from {'the vessels input' if vessels is not None else 'the map itself'}"
    vals, dist, ves = _gather(image, vm, mask, reference)
    rows: list[dict[str, Any]] = []
    data: dict[str, Any] = {"units": units}
    fr = perivascular_fractions(image, vm, mask, band_mm=band_mm, reference=reference)
    fr_units = {"intravascular_fraction": "1", "extravascular_fraction": "1", "band_fraction": "1",
                "band_volume_fraction": "1", "band_enrichment": "1", "vessel_volume_fraction": "1", "total": units}
    rows += [{"metric": k, "value": float(v), "units": fr_units[k], "detail": f"band {band_mm} mm; {how}"}
             for k, v in fr.items()]
    if ves.any() and (~ves).any() and np.nanmax(dist[~ves]) > 0:
        edges = _edges(dist[~ves], bin_mm, max_distance_mm, n_bins)
        prof, boots = _profile(vals, dist, ves, edges, n_boot, ci, np.random.default_rng(seed))
        rows += profile_rows(prof, units, detail=f"distance to vessel ({reference}); {how}")
        data["profile"] = prof
        for name, f in (("half", 0.5), ("1_over_e", float(np.exp(-1)))):
            r = _depth_from(prof, boots, f, background, ci)
            for key, metric in (("depth_mm", f"penetration_{name}_mm"), ("ci_low", f"penetration_{name}_ci_low"),
                                ("ci_high", f"penetration_{name}_ci_high")):
                rows.append({"metric": metric, "value": float(r[key]), "units": "mm",
                             "detail": f"background {background}; {how}"})
            if name == "half":
                rows.append({"metric": "perivascular_value", "value": r["perivascular_value"], "units": units})
                rows.append({"metric": "far_value", "value": r["background"], "units": units})
    else:
        warn_nan("no vessel (or no extravascular voxel) in the region: no profile or penetration depth")
    if tile_mm is not None:
        tab, st_ = density_tiles(image, vm, mask, tile_mm=tile_mm)
        for _, r in tab.iterrows():
            common = {"bin": int(r["bin"]), "bin_lo": r["density_lo"], "bin_hi": r["density_hi"],
                      "bin_units": "vessel fraction", "detail": f"tiles of {tile_mm} mm"}
            rows.append({"metric": "tiles_mean", "value": r["mean"], "units": units, **common})
            rows.append({"metric": "tiles_n", "value": float(r["n_tiles"]), "units": "count", **common})
        rows += [{"metric": f"tiles_{k}", "value": float(v), "units": "1" if k != "n_tiles" else "count"}
                 for k, v in st_.items()]
    return FamilyResult(rows=pd.DataFrame(rows), data=data)


def perivascular_table(
    image: xr.DataArray,
    mask: xr.DataArray,
    vessels: xr.DataArray | None = None,
    *,
    scales_mm: list[float] | None = None,
    method: str = "frangi",
    threshold: str | float = "otsu",
    min_size: float | None = None,
    grow: bool = False,
    bin_mm: float | None = None,
    n_bins: int = 10,
    max_distance_mm: float | None = None,
    background: float | str = "far",
    band_mm: float = 0.02,
    tile_mm: float | None = None,
    reference: str = "wall",
    n_boot: int = 200,
    ci: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """A map against distance from the vessels in a region; the study's ``perivascular``.

    ``vessels`` is a vessel mask, or a vessel channel segmented with ``scales_mm``/``method``/``threshold``;
    without it the vessels are segmented from the map itself (dextran leaking from the vessels it
    delineates). Rows: the intra-/extravascular and band fractions (:func:`perivascular_fractions`), the
    profile (``profile_mean``, ``profile_ci_low``... per distance bin), the 50 % and 1/e penetration depths
    with bootstrap CIs (:func:`penetration_depth`), and with ``tile_mm`` the map's mean binned by tile
    vessel density (:func:`density_tiles`).

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> yy, xx = np.mgrid[:200, :20] * 0.005
    >>> v = spatial_image((yy < 0.0075).astype(np.uint8), spacing=0.005)
    >>> img = spatial_image(np.exp(-np.maximum(yy - 0.0075, 0) / 0.1), spacing=0.005)
    >>> t = perivascular_table(img, v.copy(data=np.ones((200, 20), np.uint8)), v, bin_mm=0.01, background=0.0,
    ...                        n_boot=20).set_index("metric")
    >>> round(float(t.loc["penetration_1_over_e_mm", "value"]), 3), t.loc["penetration_1_over_e_mm", "units"]
    (0.105, 'mm')
    """
    return perivascular_evaluate(image, mask, vessels, scales_mm=scales_mm, method=method, threshold=threshold,
                                 min_size=min_size, grow=grow, bin_mm=bin_mm, n_bins=n_bins, max_distance_mm=max_distance_mm,
                                 background=background, band_mm=band_mm, tile_mm=tile_mm, reference=reference,
                                 n_boot=n_boot, ci=ci, seed=seed).rows


def perivascular_figure(result: Any, title: str = "", labels: Sequence[str] = ()) -> list[tuple[str, Any]]:
    """The profile against distance from the vessels: mean with its CI band, median, and the 50 % depth."""
    from ..figures import new_figure

    prof = result.data.get("profile") if hasattr(result, "data") else None
    t = result.rows
    if prof is None and len(t) and "profile_mean" in set(t["metric"]):
        prof = t[t["metric"].str.startswith("profile_")].pivot_table(index="bin", columns="metric", values="value")
        prof.columns = [c[len("profile_"):] for c in prof.columns]
    fig = new_figure((5.0, 3.6))
    ax = fig.add_subplot(1, 1, 1)
    if prof is None:  # no vessel in the region: say so rather than draw nothing
        ax.text(0.5, 0.5, "no vessel in the region:\nno perivascular profile", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_axis_off()
        ax.set_title(title or "perivascular profile", fontsize=9)
        return [("profile", fig)]
    x = prof["distance_mm"].to_numpy(float) * 1000
    ax.fill_between(x, prof["ci_low"].to_numpy(float), prof["ci_high"].to_numpy(float), alpha=0.3, label="95 % CI")
    ax.plot(x, prof["mean"].to_numpy(float), "o-", ms=3, label="mean")
    if "median" in prof:
        ax.plot(x, prof["median"].to_numpy(float), "--", lw=1, label="median")
    rows = result.rows.set_index("metric") if len(result.rows) else None
    if rows is not None and "penetration_half_mm" in rows.index:
        d = float(rows.loc["penetration_half_mm", "value"])
        if np.isfinite(d):
            ax.axvline(d * 1000, color="k", lw=0.8, ls=":", label=f"50 % at {d * 1000:.0f} µm")
    ax.set_xlabel("distance to nearest vessel wall (µm)")
    ax.set_ylabel(f"{labels[0] if labels else 'signal'} ({result.data.get('units', '')})")
    ax.set_title(title or "perivascular profile", fontsize=9)
    ax.legend(fontsize=7)
    return [("profile", fig)]


FAMILY = Family(
    name="perivascular",
    table=perivascular_table,
    inputs=("image", "mask"),
    optional=("vessels",),
    evaluate_fn=perivascular_evaluate,
    figure=perivascular_figure,
    description="a map against distance from the nearest vessel: profile with CI, 50 %/1-e penetration depth, "
                "intra/extravascular and perivascular-band fractions, vessel-density tiles",
)
