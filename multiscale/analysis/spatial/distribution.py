"""Spatial statistics of maps: ratio maps, distribution statistics, spatial autocorrelation, joint criteria.

Functions
---------
ratio_map
    Voxel-wise ratio (drug / carrier for release, metabolite / parent) with noise floors and a
    validity mask; lazy on dask.
distribution_stats
    How unevenly a map is distributed inside a region: CV, quartile coefficient of dispersion,
    entropy, skewness, excess kurtosis, Gini, bimodality coefficient, Poisson dispersion index.
spatial_autocorrelation
    Moran's I and Geary's C: IBSI's definition (weights 1 / distance in mm over all voxel pairs of
    the ROI, exact by FFT) or a neighbour-graph variant (weight 1 between adjacent voxels).
fraction_meeting_criteria
    Fraction of a region meeting several voxel-wise criteria at once (e.g. drug above x AND hypoxic).

Conventions follow IBSI where it defines the number: population variance, skewness and excess
kurtosis from population moments (0 when the variance is 0), entropy in log2 over a fixed bin number
``floor(Ng (x - min) / (max - min)) + 1`` (the maximum in bin Ng).
"""

from __future__ import annotations

import operator
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from multiscale.image import like, same_grid, spacing, voxel_volume

from .._autocorrelation import grid_autocorrelation
from .._masks import (
    AnalysisError,
    AnalysisWarning,
    bounding_slices,
    check_mask,
    is_dask,
    mask_array,
    masked_values,
    single_channel,
    to_numpy,
    warn_nan,
)
from ..family import Family, image_units, tidy_rows
from ..metrics import Metrics

#: largest FFT grid (elements) the all-pairs IBSI autocorrelation may use (about 6 GB of temporaries)
_MAX_FFT_ELEMENTS = 1.25e8

__all__ = [
    "ratio_map",
    "distribution_stats",
    "spatial_autocorrelation",
    "fraction_meeting_criteria",
    "spatial_table",
    "STATISTICS",
    "FAMILY",
]


# ---------------------------------------------------------------------------------------------
# ratio maps
# ---------------------------------------------------------------------------------------------


def ratio_map(
    numerator: xr.DataArray,
    denominator: xr.DataArray,
    mask: xr.DataArray | None = None,
    noise_floor_numerator: float | None = None,
    noise_floor_denominator: float = 0.0,
) -> tuple[xr.DataArray, xr.DataArray]:
    """Voxel-wise ``numerator / denominator`` where both are above their noise floors.

    Parameters
    ----------
    numerator, denominator : xarray.DataArray
        Maps on the same grid (numpy or dask; dask stays lazy).
    mask : xarray.DataArray, optional
        Region; voxels outside it are invalid.
    noise_floor_numerator : float, optional
        Voxels whose numerator is below this are invalid (default: no floor on the numerator, so
        a real zero, e.g. no released drug, stays a valid ratio of 0).
    noise_floor_denominator : float
        Voxels whose denominator is not above this are invalid (default 0: the denominator must be
        positive). Set it to the denominator's noise level (e.g. 3 x background SD) so that the
        ratio is not dominated by noise.

    Returns
    -------
    ratio : xarray.DataArray
        float64 ratio, NaN where invalid; ``units`` "<num units>/<den units>", ``aspect`` "ratio".
    valid : xarray.DataArray
        bool validity mask on the same grid.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> drug = spatial_image(np.array([[2.0, 1.0], [0.0, 5.0]]), spacing=0.1, units="ng/mg")
    >>> carrier = spatial_image(np.array([[4.0, 0.05], [2.0, 10.0]]), spacing=0.1, units="ng/mg")
    >>> r, ok = ratio_map(drug, carrier, noise_floor_denominator=0.1)
    >>> r.values.tolist(), ok.values.tolist()
    ([[0.5, nan], [0.0, 0.5]], [[True, False], [True, True]])
    """
    num = single_channel(numerator, "numerator")
    den = single_channel(denominator, "denominator")
    if not same_grid(num, den):
        raise AnalysisError(
            "numerator and denominator are not on the same grid; resample one onto the other first "
            "(multiscale.registration)"
        )
    m = mask_array(mask, num) if mask is not None else None
    lazy = is_dask(num) or is_dask(den)
    if lazy:
        import dask.array as da

        xp = da
        a = da.asarray(num.data).astype(np.float64)
        b = da.asarray(den.data).astype(np.float64)
    else:
        xp = np
        a = np.asarray(num.data, dtype=np.float64)
        b = np.asarray(den.data, dtype=np.float64)
    valid = xp.isfinite(a) & xp.isfinite(b) & (b > noise_floor_denominator)
    if noise_floor_numerator is not None:
        valid = valid & (a >= noise_floor_numerator)
    if m is not None:
        if lazy:
            import dask.array as da

            valid = valid & da.from_array(m, chunks=valid.chunks)
        else:
            valid = valid & m
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = xp.where(valid, a / xp.where(valid, b, 1.0), np.nan)
    nu, du = num.attrs.get("units", ""), den.attrs.get("units", "")
    units = f"{nu}/{du}" if (nu or du) else ""
    prov = {"operation": "ratio_map", "numerator": str(num.name or num.attrs.get("agent", "")),
            "denominator": str(den.name or den.attrs.get("agent", "")),
            "noise_floor_numerator": noise_floor_numerator, "noise_floor_denominator": noise_floor_denominator}
    r_img = like(num, ratio, units=units, aspect="ratio", provenance=prov,
                 agent=f"{num.attrs.get('agent', '')}/{den.attrs.get('agent', '')}")
    v_img = like(num, valid, units="", aspect="mask", provenance=prov)
    return r_img, v_img


# ---------------------------------------------------------------------------------------------
# distribution statistics
# ---------------------------------------------------------------------------------------------


def _fbn_entropy(v: np.ndarray, bins: int) -> float:
    lo, hi = float(v.min()), float(v.max())
    if hi == lo:
        return 0.0
    g = np.floor(bins * (v - lo) / (hi - lo)) + 1
    g = np.minimum(g, bins).astype(np.int64)
    p = np.bincount(g, minlength=bins + 1)[1:] / v.size
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def _gini(v: np.ndarray) -> float:
    if v.min() < 0:
        return warn_nan("the Gini coefficient needs non-negative values; it is NaN for this map")
    total = v.sum()
    if total == 0:
        return warn_nan("the map is zero everywhere in the region; the Gini coefficient is NaN")
    s = np.sort(v)
    n = s.size
    i = np.arange(1, n + 1)
    return float(((2 * i - n - 1) * s).sum() / (n * total))


def distribution_stats(image: xr.DataArray, mask: xr.DataArray | None = None, bins: int = 64) -> pd.DataFrame:
    """Statistics of how unevenly a map is distributed inside a region, as a tidy table.

    Parameters
    ----------
    image : xarray.DataArray
        The map (numpy or dask). NaN voxels are ignored with a warning.
    mask : xarray.DataArray, optional
        Region (all voxels when not given).
    bins : int
        Fixed bin number for the entropy (IBSI's discretisation).

    Returns
    -------
    pandas.DataFrame
        Columns ``metric``, ``value``, ``units``. Metrics: ``n``, ``mean``, ``sd`` (population),
        ``median``, ``p25``, ``p75``, ``cv`` (sd / mean), ``qcod`` ((p75 - p25) / (p75 + p25)),
        ``entropy_log2``, ``skewness``, ``excess_kurtosis``, ``gini`` (non-negative maps),
        ``bimodality_coefficient`` ((g^2 + 1) / (k + 3 (n-1)^2 / ((n-2)(n-3))) with the
        bias-corrected sample skewness g and excess kurtosis k; above 5/9 suggests two modes),
        ``dispersion_index`` (sample variance / mean: 1 for Poisson counts, > 1 over-dispersed).

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> t = distribution_stats(spatial_image(np.array([[1.0, 1.0], [1.0, 5.0]]), spacing=1.0))
    >>> t.set_index("metric").loc[["mean", "gini", "skewness"], "value"].round(4).tolist()
    [2.0, 0.375, 1.1547]
    """
    from scipy import stats as st

    image, m = check_mask(image, mask)
    v, _ = masked_values(image, m)
    n = v.size
    mean = float(v.mean())
    sd = float(v.std())
    q25, med, q75 = (float(q) for q in np.percentile(v, [25, 50, 75]))
    if sd > 0:
        skew = float(st.skew(v, bias=True))
        kurt = float(st.kurtosis(v, fisher=True, bias=True))
    else:
        skew = kurt = 0.0
    if n > 3 and sd > 0:
        g = float(st.skew(v, bias=False))
        k = float(st.kurtosis(v, fisher=True, bias=False))
        bc = (g * g + 1.0) / (k + 3.0 * (n - 1) ** 2 / ((n - 2) * (n - 3)))
    else:
        bc = float("nan")
    cv = sd / mean if mean != 0 else warn_nan("the mean is 0; the coefficient of variation is NaN")
    qden = q75 + q25
    qcod = (q75 - q25) / qden if qden != 0 else warn_nan("p75 + p25 is 0; the quartile coefficient is NaN")
    disp = float(v.var(ddof=1)) / mean if (n > 1 and mean != 0) else float("nan")
    units = image.attrs.get("units", "")
    rows = [
        ("n", float(n), "voxels"),
        ("mean", mean, units),
        ("sd", sd, units),
        ("median", med, units),
        ("p25", q25, units),
        ("p75", q75, units),
        ("cv", float(cv), ""),
        ("qcod", float(qcod), ""),
        ("entropy_log2", _fbn_entropy(v, bins), "bits"),
        ("skewness", skew, ""),
        ("excess_kurtosis", kurt, ""),
        ("gini", _gini(v), ""),
        ("bimodality_coefficient", float(bc), ""),
        ("dispersion_index", float(disp), units),
    ]
    return pd.DataFrame(rows, columns=["metric", "value", "units"])


# ---------------------------------------------------------------------------------------------
# spatial autocorrelation
# ---------------------------------------------------------------------------------------------


def _neighbour_offsets(ndim: int, connectivity: int) -> list[tuple[int, ...]]:
    """Half of the neighbour offsets (one of each +/- pair) within ``connectivity`` (scipy's meaning)."""
    grids = np.indices((3,) * ndim).reshape(ndim, -1).T - 1
    out = []
    for off in grids:
        nz = int(np.count_nonzero(off))
        if nz == 0 or nz > connectivity:
            continue
        first = off[np.flatnonzero(off)[0]]
        if first > 0:
            out.append(tuple(int(o) for o in off))
    return out


def _neighbour_graph_autocorrelation(values: np.ndarray, mask: np.ndarray, connectivity: int) -> tuple[float, float, float]:
    """Moran's I, Geary's C and the weight total with weight 1 between adjacent mask voxels."""
    x = values[mask]
    z = np.where(mask, values - x.mean(), 0.0)
    denom = float((z[mask] ** 2).sum())
    n = int(mask.sum())
    w_total = cross = sq = 0.0
    for off in _neighbour_offsets(mask.ndim, connectivity):
        src = tuple(slice(max(0, -o), mask.shape[k] - max(0, o)) for k, o in enumerate(off))
        dst = tuple(slice(max(0, o), mask.shape[k] - max(0, -o)) for k, o in enumerate(off))
        both = mask[src] & mask[dst]
        w_total += 2.0 * float(both.sum())
        cross += 2.0 * float((z[src] * z[dst])[both].sum())
        sq += 2.0 * float(((values[src] - values[dst]) ** 2)[both].sum())
    if denom == 0 or w_total == 0:
        return float("nan"), float("nan"), w_total
    return n / w_total * cross / denom, (n - 1) / (2.0 * w_total) * sq / denom, w_total


#: units of :func:`spatial_autocorrelation`'s numbers (the neighbour-graph weights are counts of pairs)
_AUTOCORRELATION_UNITS = {"morans_i": "1", "gearys_c": "1", "n": "voxels", "connectivity": "1", "weight_total": "1"}


def spatial_autocorrelation(
    image: xr.DataArray,
    mask: xr.DataArray | None = None,
    method: str = "ibsi",
    connectivity: int | None = None,
) -> Metrics:
    """Moran's I and Geary's C of a map inside a region.

    Parameters
    ----------
    image, mask : xarray.DataArray
        The map and its region (numpy or dask; the mask's bounding box is read).
    method : {"ibsi", "neighbours"}
        ``"ibsi"``: weights ``1 / d`` (Euclidean distance between voxel centres in mm, spacing
        honoured) over all ordered pairs of different voxels of the region (IBSI morph_moran_i /
        morph_geary_c), computed exactly by FFT. ``"neighbours"``: weight 1 between adjacent
        voxels of the region, 0 otherwise (a contiguity graph, as in spatial statistics packages).
    connectivity : int, optional
        For ``"neighbours"``: 1 = face neighbours (4 in 2-D, 6 in 3-D) up to ndim = all (8 / 26,
        the default).

    Returns
    -------
    Metrics
        A dict (``.to_frame()``: the tidy table; coefficients in ``1``, ``n`` in voxels): ``morans_i`` (about -1/(N-1) for no autocorrelation, towards 1 for clustered values),
        ``gearys_c`` (1 for none, below 1 clustered), ``method``, ``n``, ``weight_total``
        (neighbours only). NaN with a warning for a constant map.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> board = spatial_image((np.indices((6, 6)).sum(0) % 2).astype(float), spacing=0.5)
    >>> r = spatial_autocorrelation(board, method="neighbours", connectivity=1)
    >>> r["morans_i"], round(r["gearys_c"], 4)   # -1 and 2 (N - 1) / N on a checkerboard
    (-1.0, 1.9444)
    """
    image, m = check_mask(image, mask)
    box = bounding_slices(m)
    if method not in ("ibsi", "neighbours"):
        raise AnalysisError(f"method={method!r}; use 'ibsi' or 'neighbours'")
    shape = tuple(b.stop - b.start for b in box)
    fft_elements = float(np.prod([2 * k - 1 for k in shape]))
    if method == "ibsi" and fft_elements > _MAX_FFT_ELEMENTS:
        raise AnalysisError(
            f"IBSI Moran's I / Geary's C over all voxel pairs needs FFTs of {fft_elements:.3g} elements for this "
            f"region's bounding box {shape} (about {fft_elements * 8 * 6 / 1e9:.0f} GB); use "
            "method='neighbours', or resample the map to coarser voxels first"
        )
    vals = np.asarray(to_numpy(image.data[box]), dtype=np.float64)
    mb = m[box]
    bad = mb & ~np.isfinite(vals)
    if bad.any():
        warnings.warn(f"{int(bad.sum())} of {int(mb.sum())} voxels in the mask are NaN and were left out",
                      AnalysisWarning, stacklevel=2)
        mb = mb & ~bad
        vals = np.where(bad, 0.0, vals)
    n = int(mb.sum())
    if n < 2:
        raise AnalysisError(f"spatial autocorrelation needs at least 2 voxels in the mask, got {n}")
    if np.ptp(vals[mb]) == 0:
        nan = warn_nan("the map is constant in the region; Moran's I and Geary's C are NaN")
        return Metrics({"morans_i": nan, "gearys_c": nan, "method": method, "n": n}, _AUTOCORRELATION_UNITS)
    if method == "ibsi":
        mi, gc = grid_autocorrelation(vals, mb, spacing(image))
        return Metrics({"morans_i": float(mi), "gearys_c": float(gc), "method": method, "n": n},
                       _AUTOCORRELATION_UNITS)
    if method == "neighbours":
        conn = mb.ndim if connectivity is None else int(connectivity)
        if not 1 <= conn <= mb.ndim:
            raise AnalysisError(f"connectivity must be between 1 and {mb.ndim}, got {connectivity}")
        mi, gc, wt = _neighbour_graph_autocorrelation(vals, mb, conn)
        if wt == 0:
            mi = gc = warn_nan("no two voxels of the region are neighbours; Moran's I and Geary's C are NaN")
        return Metrics({"morans_i": float(mi), "gearys_c": float(gc), "method": method, "n": n,
                        "connectivity": conn, "weight_total": wt}, _AUTOCORRELATION_UNITS)
    raise AnalysisError(f"method={method!r}; use 'ibsi' or 'neighbours'")


# ---------------------------------------------------------------------------------------------
# joint criteria
# ---------------------------------------------------------------------------------------------

_OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


def fraction_meeting_criteria(
    criteria: Mapping[str, tuple[xr.DataArray, str, float]] | Sequence[tuple[str, xr.DataArray, str, float]],
    mask: xr.DataArray | None = None,
) -> pd.DataFrame:
    """Fraction of a region where each criterion holds, and where all hold at once.

    Parameters
    ----------
    criteria : mapping name -> (image, op, threshold), or sequence of (name, image, op, threshold)
        ``op`` is one of ``">", ">=", "<", "<="``. All images on one grid (the mask's).
        NaN voxels meet no criterion.
    mask : xarray.DataArray, optional
        Region (all voxels when not given).

    Returns
    -------
    pandas.DataFrame
        One row per criterion and a last row ``criterion="all"``: ``fraction``, ``n_voxels``,
        ``volume_mm3`` (mm^2 for 2-D images), ``n_region``. Dask images are reduced lazily (one
        compute for all criteria).

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> drug = spatial_image(np.array([[1.0, 5.0], [6.0, 7.0]]), spacing=1.0)
    >>> po2 = spatial_image(np.array([[2.0, 3.0], [20.0, 1.0]]), spacing=1.0)
    >>> t = fraction_meeting_criteria({"drug": (drug, ">", 4.0), "hypoxic": (po2, "<", 10.0)})
    >>> t[["criterion", "fraction"]].values.tolist()
    [['drug', 0.75], ['hypoxic', 0.75], ['all', 0.5]]
    """
    items = list(criteria.items()) if isinstance(criteria, Mapping) else [(c[0], tuple(c[1:])) for c in criteria]
    if not items:
        raise AnalysisError("give at least one criterion: {name: (image, op, threshold)}")
    parsed = []
    ref = None
    for name, spec in items:
        if len(spec) != 3:
            raise AnalysisError(f"criterion {name!r} must be (image, op, threshold), got {len(spec)} items")
        img, op, thr = spec
        if op not in _OPS:
            raise AnalysisError(f"criterion {name!r}: op {op!r} is not one of {tuple(_OPS)}")
        img = single_channel(img, f"image of criterion {name!r}")
        if ref is None:
            ref = img
        elif not same_grid(img, ref):
            raise AnalysisError(f"the image of criterion {name!r} is not on the grid of the first criterion's image; "
                                "resample it first")
        parsed.append((str(name), img, _OPS[op], float(thr)))
    m = mask_array(mask, ref)
    lazy = any(is_dask(p[1]) for p in parsed)
    if lazy:
        import dask
        import dask.array as da

        mk = da.from_array(m, chunks=next(p[1].data.chunks for p in parsed if is_dask(p[1])))
        conds = [p[2](da.asarray(p[1].data), p[3]) & mk for p in parsed]
    else:
        conds = [p[2](np.asarray(p[1].data), p[3]) & m for p in parsed]
    allc = conds[0]
    for c in conds[1:]:
        allc = allc & c
    counts = [c.sum() for c in conds] + [allc.sum()]
    if lazy:
        counts = dask.compute(*counts)
    n_region = int(m.sum())
    vv = voxel_volume(ref)
    names = [p[0] for p in parsed] + ["all"]
    return pd.DataFrame({
        "criterion": names,
        "fraction": [int(c) / n_region for c in counts],
        "n_voxels": [int(c) for c in counts],
        "volume_mm3": [int(c) * vv for c in counts],
        "n_region": n_region,
    })


#: the statistics :func:`spatial_table` can compute, by name
STATISTICS: tuple[str, ...] = ("distribution_stats", "spatial_autocorrelation")


def spatial_table(
    image: xr.DataArray,
    mask: xr.DataArray | None = None,
    *,
    statistics: Sequence[str] = STATISTICS,
    bins: int = 64,
    method: str = "ibsi",
    connectivity: int | None = None,
) -> list[dict[str, Any]]:
    """Distribution statistics and spatial autocorrelation as tidy rows; the study's ``spatial``.

    ``statistics`` picks among :data:`STATISTICS`; ``bins`` goes to :func:`distribution_stats`,
    ``method`` and ``connectivity`` to :func:`spatial_autocorrelation`. Moran's I and Geary's C
    are dimensionless; ``detail`` names the function (and the weighting method).

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> img = spatial_image(np.arange(16.0).reshape(4, 4), spacing=0.5, units="a.u.")
    >>> rows = {r["metric"]: r for r in spatial_table(img, statistics=["spatial_autocorrelation"])}
    >>> rows["morans_i"]["units"], rows["n"]["units"]
    ('1', 'voxels')
    """
    unknown = [s for s in statistics if s not in STATISTICS]
    if unknown:
        raise AnalysisError(f"spatial statistics {unknown} unknown; choose from {list(STATISTICS)}")
    rows: list[dict[str, Any]] = []
    for name in statistics:
        if name == "distribution_stats":
            df = distribution_stats(image, mask, bins=bins)
            for _, r in df.iterrows():
                rows.append(dict(metric=str(r["metric"]), value=float(r["value"]), units=str(r["units"]) or image_units(image),
                                 detail=name))
        else:
            res = spatial_autocorrelation(image, mask, method=method, connectivity=connectivity)
            units = {"morans_i": "1", "gearys_c": "1", "n": "voxels", "connectivity": "1",
                     "weight_total": "1/mm" if res.get("method") == "ibsi" else "1"}
            rows += tidy_rows(res, units, detail=f"{name} ({res.get('method', method)})")
    return rows


FAMILY = Family(
    name="spatial",
    table=spatial_table,
    inputs=("image", "mask"),
    description="distribution statistics (CV, Gini, entropy, ...) and Moran's I / Geary's C",
)
