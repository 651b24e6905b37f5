"""Colocalisation of two maps: Pearson, Spearman, Kendall, Manders, Li's ICQ and Costes' thresholds.

The default convention reproduces Fiji's **Coloc 2** (``convention="coloc2"``):

* Pearson's r over the mask, from the sums ``(n Sxy - Sx Sy) / sqrt((n Sxx - Sx^2)(n Syy - Sy^2))``;
  "below" the thresholds means channel 1 < T1 **or** channel 2 < T2, "above" means ch1 > T1 **or**
  ch2 > T2.
* Spearman's rho with tied values given their average rank; Kendall's tau-b.
* Manders ``M1 = sum(ch1 where ch2 > 0) / sum(ch1)`` (M2 symmetric); thresholded
  ``tM1 = sum(ch1 where ch2 > 0 and ch2 >= T2) / sum(ch1)``, the denominator being all of ch1 in the mask.
* Li's ICQ: fraction of voxels with ``(mean1 - ch1)(mean2 - ch2) >= 0`` minus 0.5 (zero products
  count as positive).
* Costes' automatic thresholds: orthogonal (total least squares) regression ``ch2 = m ch1 + b`` with
  variances over N - 1 and the covariance from ``var(ch1 + ch2)``; the working threshold walks along
  ch1 when ``-1 < m < 1`` (else along ch2); both thresholds are rounded half-up and clamped to the pixel
  type's range at every step. ``costes_method="stepper"`` (Coloc 2's simple stepper) starts at the
  channel maximum and steps down by 1 until the below-threshold r < 1e-4, r grows, or the next
  threshold would be below 1; ``"bisection"`` starts at ``|min + max| / 2`` and halves its step
  (up when r < 0, down when r > 0) until the step is below 1 or after 100 iterations. The thresholds
  reported are the last ones evaluated.
* Costes' significance: channel 1 is shuffled in cubic blocks of ``psf_px`` voxels (partial blocks
  at the edges filled by mirroring), smoothed with a Gaussian of sigma ``psf_px`` and correlated with
  channel 2; ``P`` is the normal CDF of the observed r under the randomised r's mean and SD (N - 1).

``convention="jacop"`` switches to JACoP's definitions where they differ: thresholded Manders
``tM1 = sum(ch1 where ch1 > T1 and ch2 > T2) / sum(ch1 where ch1 > T1)`` and an ICQ counting only
strictly positive products. The Costes thresholds are computed the same way in both conventions.

Integer images are cast to float64 before any product. The values inside the mask are gathered
into memory (a dask image is read chunk by chunk); the significance test also reads the mask's
bounding box.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from multiscale.image import as_image, is_spatial_image, same_grid

from ._masks import AnalysisError, AnalysisWarning, bounding_slices, check_mask, masked_values, single_channel, to_numpy
from .family import Family, FamilyResult, image_units, tidy_rows
from .figures import colocalisation_figure
from .metrics import Metrics

__all__ = [
    "colocalisation",
    "coloc_unit",
    "colocalisation_matrix",
    "costes_threshold",
    "joint_histogram",
    "pearson_r",
    "colocalisation_table",
    "colocalisation_result",
    "colocalisation_figures",
    "FAMILY",
]

_MAX_STEPS = 2_000_000


# ---------------------------------------------------------------------------------------------
# small exact pieces
# ---------------------------------------------------------------------------------------------


def _round_half_up(x):
    """Java's ``Math.round``: floor(x + 0.5) (2.5 -> 3, -2.5 -> -2)."""
    return np.floor(np.asarray(x, dtype=float) + 0.5)


def _type_range(dtype: np.dtype) -> tuple[float, float]:
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    if np.issubdtype(dtype, np.floating):
        info = np.finfo(dtype)
        return float(-info.max), float(info.max)
    raise AnalysisError(f"colocalisation needs numeric images, got dtype {dtype}")


def _pearson_from_sums(n, sx, sy, sxx, syy, sxy):
    with np.errstate(divide="ignore", invalid="ignore"):
        den = np.sqrt(n * sxx - sx * sx) * np.sqrt(n * syy - sy * sy)
        r = (n * sxy - sx * sy) / den
    r = np.where(np.isfinite(r), r, np.nan)
    return r


def pearson_r(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's r from sums, as Coloc 2 computes it (NaN when undefined, e.g. constant input).

    Examples
    --------
    >>> import numpy as np
    >>> pearson_r(np.array([1.0, 2, 3, 4]), np.array([2.0, 4, 6, 9]))  # doctest: +ELLIPSIS
    0.99...
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    return float(_pearson_from_sums(float(x.size), x.sum(), y.sum(), (x * x).sum(), (y * y).sum(), (x * y).sum()))


def _below_r(x, y, t1, t2) -> float:
    sel = (x < t1) | (y < t2)
    return pearson_r(x[sel], y[sel])


def _tls_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Coloc 2's orthogonal regression: slope and intercept of ch2 = m ch1 + b."""
    n = x.size
    mx, my = x.mean(), y.mean()
    vx = float(((x - mx) ** 2).sum() / (n - 1))
    vy = float(((y - my) ** 2).sum() / (n - 1))
    vxy = float((((x + y) - (mx + my)) ** 2).sum() / (n - 1.0))
    cov = 0.5 * (vxy - (vx + vy))
    den = 2 * cov
    num = vy - vx + math.sqrt((vy - vx) * (vy - vx) + 4 * cov * cov)
    if den == 0:
        raise AnalysisError("the two channels have zero covariance; Costes' regression line is undefined")
    m = num / den
    return m, float(my - m * mx)


# ---------------------------------------------------------------------------------------------
# Costes
# ---------------------------------------------------------------------------------------------


def _interval(T: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For monotone thresholds T_k, the steps k where ``v < T_k`` as intervals [lo, hi)."""
    K = T.size
    d = np.diff(T)
    if np.all(d <= 0):  # non-increasing: a prefix
        hi = K - np.searchsorted(T[::-1], v, side="right")
        return np.zeros_like(hi), hi
    if np.all(d >= 0):  # non-decreasing: a suffix
        lo = np.searchsorted(T, v, side="right")
        return lo, np.full_like(lo, K)
    raise AssertionError("thresholds along the stepper are monotone")  # pragma: no cover


def _stepper_r_sequence(x, y, T1, T2) -> np.ndarray:
    """Below-threshold Pearson r at every step of a monotone threshold walk, in O(N + K)."""
    K = T1.size
    lo1, hi1 = _interval(T1, x)
    lo2, hi2 = _interval(T2, y)
    lo3, hi3 = np.maximum(lo1, lo2), np.minimum(hi1, hi2)
    ok3 = lo3 < hi3
    weights = (np.ones_like(x), x, y, x * x, y * y, x * y)
    sums = []
    for w in weights:
        dlt = np.bincount(lo1, w, K + 1)
        dlt -= np.bincount(hi1, w, K + 1)
        dlt += np.bincount(lo2, w, K + 1)
        dlt -= np.bincount(hi2, w, K + 1)
        dlt -= np.bincount(lo3[ok3], w[ok3], K + 1)
        dlt += np.bincount(hi3[ok3], w[ok3], K + 1)
        sums.append(np.cumsum(dlt)[:K])
    return _pearson_from_sums(*sums)


def costes_threshold(
    x: np.ndarray,
    y: np.ndarray,
    method: str = "bisection",
    dtype: Any = np.float64,
) -> dict[str, Any]:
    """Costes' automatic thresholds for two channels, exactly as Coloc 2 computes them.

    Parameters
    ----------
    x, y : numpy.ndarray
        Channel 1 and channel 2 values inside the mask (1-D, same length, finite).
    method : {"bisection", "stepper"}
        Coloc 2's bisection or simple stepper (they give different thresholds on the same data).
    dtype : numpy dtype
        Pixel type of the images: thresholds are clamped to its range at every step.

    Returns
    -------
    dict
        ``threshold_a``, ``threshold_b``, ``slope``, ``intercept``, ``method``, ``steps`` (Pearson
        evaluations) and ``r_below`` (below-threshold r at the reported thresholds).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.integers(0, 200, 5000).astype(float)
    >>> y = np.clip(x + rng.normal(0, 5, x.size), 0, 255).round()
    >>> t = costes_threshold(x, y, "bisection", np.uint8)
    >>> t["method"], round(t["slope"], 1)
    ('bisection', 1.0)
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.size < 3:
        raise AnalysisError(f"Costes' thresholds need at least 3 voxels, got {x.size}")
    if method not in ("bisection", "stepper"):
        raise AnalysisError(f"costes_method={method!r}; use 'bisection' or 'stepper'")
    lo, hi = _type_range(np.dtype(dtype))
    m, b = _tls_fit(x, y)
    if -1 < m < 1:
        def map1(t):
            return t

        def map2(t):
            return t * m + b
        wmin, wmax = float(x.min()), float(x.max())
    else:
        def map1(t):
            return (t - b) / m

        def map2(t):
            return t
        wmin, wmax = float(y.min()), float(y.max())

    def thresholds(t):
        return (np.clip(_round_half_up(map1(t)), lo, hi), np.clip(_round_half_up(map2(t)), lo, hi))

    steps = 0
    if method == "bisection":
        t_cur, t_last = abs(wmax + wmin) * 0.5, wmax
        diff = abs(t_cur - t_last)
        iterations = 0
        t1 = t2 = float("nan")
        while not (iterations > 100 or diff < 1.0):
            t1, t2 = (float(v) for v in thresholds(t_cur))
            r = _below_r(x, y, t1, t2)
            steps += 1
            t_last = t_cur
            if r < 0:
                t_cur = t_cur + diff * 0.5
            elif r > 0:
                t_cur = t_cur - diff * 0.5
            diff = abs(t_cur - t_last)
            iterations += 1
    else:
        k_max = 1 if wmax < 2 else int(math.floor(wmax - 1)) + 1
        if k_max > _MAX_STEPS:
            raise AnalysisError(
                f"the simple stepper would take {k_max} steps (channel maximum {wmax:g}); "
                "use costes_method='bisection'"
            )
        ts = wmax - np.arange(k_max, dtype=float)
        T1, T2 = thresholds(ts)
        T1, T2 = np.broadcast_to(T1, ts.shape), np.broadcast_to(T2, ts.shape)
        rs = _stepper_r_sequence(x, y, T1, T2)
        current, k = 1.0, 0
        while True:
            r = float(rs[k])
            last, current = current, r
            steps += 1
            nxt = ts[k] - 1.0
            if nxt < 1 or r < 0.0001 or r > last:
                break
            k += 1
        t1, t2 = float(T1[k]), float(T2[k])
    return {
        "threshold_a": t1,
        "threshold_b": t2,
        "slope": float(m),
        "intercept": float(b),
        "method": method,
        "steps": steps,
        "r_below": _below_r(x, y, t1, t2),
    }


# ---------------------------------------------------------------------------------------------
# significance
# ---------------------------------------------------------------------------------------------


def _block_shuffle(arr: np.ndarray, block: int, rng: np.random.Generator) -> np.ndarray:
    """Shuffle ``arr`` in cubic blocks of ``block`` voxels; partial edge blocks are filled by mirroring."""
    shape = arr.shape
    nb = [int(math.ceil(s / block)) for s in shape]
    padded = np.pad(arr, [(0, n * block - s) for n, s in zip(nb, shape)], mode="symmetric")
    nd = arr.ndim
    # (nb0, block, nb1, block, ...) -> (nb0*nb1*..., block, block, ...)
    split = padded.reshape([v for n in nb for v in (n, block)])
    order = list(range(0, 2 * nd, 2)) + list(range(1, 2 * nd, 2))
    blocks = split.transpose(order).reshape((-1,) + (block,) * nd)
    blocks = blocks[rng.permutation(blocks.shape[0])]
    back = blocks.reshape(tuple(nb) + (block,) * nd)
    inv = [v for k in range(nd) for v in (k, nd + k)]
    out = back.transpose(inv).reshape([n * block for n in nb])
    return out[tuple(slice(0, s) for s in shape)]


def _costes_significance(a: np.ndarray, b: np.ndarray, mask: np.ndarray, psf_px: int, n: int, seed: int):
    from scipy import ndimage as ndi
    from scipy.stats import norm

    observed = pearson_r(a[mask], b[mask])
    rng = np.random.default_rng(seed)
    rs = np.empty(n)
    bm = b[mask]
    for i in range(n):
        shuffled = ndi.gaussian_filter(_block_shuffle(a, psf_px, rng), sigma=psf_px)
        rs[i] = pearson_r(shuffled[mask], bm)
    mean, sd = float(np.nanmean(rs)), float(np.nanstd(rs, ddof=1))
    p = float(norm.cdf(observed, loc=mean, scale=sd)) if sd > 0 else float(observed > mean)
    return min(max(p, 0.0), 1.0), mean, sd


# ---------------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------------


def _pair_values(a, b, mask):
    a, m = check_mask(a, mask, "image a")
    b = single_channel(b, "image b")
    if not same_grid(a, b):
        raise AnalysisError(
            "images a and b are not on the same grid (shape, spacing, origin or direction differ); "
            "resample b onto a's grid first (multiscale.registration)"
        )
    dtype = np.result_type(a.dtype, b.dtype)
    if dtype == bool:  # noqa: E721 - numpy dtype equality, not a type identity check
        raise AnalysisError("colocalisation needs intensity images, got boolean masks")
    x, kx = masked_values(a, m, "image a", drop_nan=False)
    y, ky = masked_values(b, m, "image b", drop_nan=False)
    ok = kx & ky
    if not ok.all():
        warnings.warn(
            f"{int((~ok).sum())} of {ok.size} voxels in the mask are NaN in image a or b and were ignored",
            AnalysisWarning,
            stacklevel=3,
        )
        x, y = x[ok], y[ok]
    if x.size < 3:
        raise AnalysisError(f"colocalisation needs at least 3 finite voxels in the mask, got {x.size}")
    return a, b, m, x, y, dtype


def colocalisation(
    a: xr.DataArray,
    b: xr.DataArray,
    mask: xr.DataArray | None = None,
    threshold: str | tuple[float, float] = "costes",
    costes_method: str = "bisection",
    significance: bool = False,
    psf_px: int = 3,
    n_randomisations: int = 100,
    seed: int = 0,
    convention: str = "coloc2",
    *,
    spacing: Any = None,
) -> Metrics:
    """Colocalisation coefficients of two maps on the same grid.

    Parameters
    ----------
    a, b : xarray.DataArray or numpy.ndarray
        Channel 1 and channel 2 (numpy or dask; integer images are cast to float64); plain arrays with
        ``spacing=`` (mm).
    mask : xarray.DataArray, optional
        Region of interest (all voxels when not given).
    threshold : "costes", "none" or (ta, tb)
        Costes' automatic thresholds, no thresholds (thresholded results are NaN), or given ones.
    costes_method : {"bisection", "stepper"}
        Coloc 2's Costes search (see the module docstring).
    significance : bool
        Run Costes' block-shuffle randomisation test (adds ``costes_p``).
    psf_px : int
        Block edge and smoothing sigma of the randomisation, in voxels.
    n_randomisations : int
        Number of shuffles.
    seed : int
        Seed of the shuffles (the result is reproducible).
    convention : {"coloc2", "jacop"}
        Whose definitions of thresholded Manders and ICQ to use.

    Returns
    -------
    Metrics
        A dict (``.to_frame()``: the tidy table, units from :func:`coloc_unit`): ``pearson``, ``spearman``,
        ``kendall``, ``m1``, ``m2``, ``tm1``, ``tm2``, ``icq``,
        ``threshold_a``, ``threshold_b``, ``pearson_below``, ``pearson_above``, ``costes_slope``,
        ``costes_intercept``, ``costes_method``, ``convention``, ``n``; with ``significance`` also
        ``costes_p``, ``costes_r_random_mean``, ``costes_r_random_sd``.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> a = spatial_image(np.array([[0, 10, 20], [30, 0, 50]], float), spacing=1.0)
    >>> b = spatial_image(np.array([[5, 0, 10], [20, 0, 40]], float), spacing=1.0)
    >>> r = colocalisation(a, b, threshold="none")
    >>> r["m1"], r["m2"]   # ch1 where ch2 > 0: (0 + 20 + 30 + 50) / 110; ch2 where ch1 > 0: 70 / 75
    (0.9090909090909091, 0.9333333333333333)
    """
    if convention not in ("coloc2", "jacop"):
        raise AnalysisError(f"convention={convention!r}; use 'coloc2' or 'jacop'")
    if costes_method not in ("bisection", "stepper"):
        raise AnalysisError(f"costes_method={costes_method!r}; use 'bisection' or 'stepper'")
    if spacing is not None:  # plain arrays, as scikit-image takes them
        a, b = as_image(a, spacing=spacing), as_image(b, spacing=spacing)
    if mask is not None and is_spatial_image(a) and not is_spatial_image(mask):  # a plain mask on a's grid
        mask = as_image(mask, like=a)
    a, b, m, x, y, dtype = _pair_values(a, b, mask)
    out: dict[str, Any] = {"n": int(x.size), "convention": convention}
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        warnings.warn(
            "image a or b is constant inside the mask: correlation coefficients are NaN",
            AnalysisWarning,
            stacklevel=2,
        )
    from scipy import stats as st

    out["pearson"] = pearson_r(x, y)
    const = np.ptp(x) == 0 or np.ptp(y) == 0
    if const:
        out["spearman"] = out["kendall"] = float("nan")
    else:
        out["spearman"] = float(st.spearmanr(x, y)[0])
        out["kendall"] = float(st.kendalltau(x, y, variant="b")[0])
    sx, sy = x.sum(), y.sum()
    out["m1"] = float(x[y > 0].sum() / sx) if sx != 0 else float("nan")
    out["m2"] = float(y[x > 0].sum() / sy) if sy != 0 else float("nan")
    prod = (x.mean() - x) * (y.mean() - y)
    npos = int((prod > 0).sum()) if convention == "jacop" else int((prod >= 0).sum())
    out["icq"] = npos / x.size - 0.5

    t1 = t2 = float("nan")
    out["costes_slope"] = out["costes_intercept"] = float("nan")
    out["costes_method"] = ""
    if isinstance(threshold, str):
        if threshold == "costes":
            if const:
                warnings.warn("Costes' thresholds are undefined for a constant image (NaN)", AnalysisWarning, stacklevel=2)
            else:
                span = min(float(np.ptp(x)), float(np.ptp(y)))
                if span < 100:
                    warnings.warn(
                        f"Costes' search steps in whole intensity units (as Coloc 2 does) but a channel spans only "
                        f"{span:g}; rescale the images to integer levels (e.g. 0-4095) for a meaningful threshold",
                        AnalysisWarning,
                        stacklevel=2,
                    )
                c = costes_threshold(x, y, costes_method, dtype)
                t1, t2 = c["threshold_a"], c["threshold_b"]
                out["costes_slope"], out["costes_intercept"] = c["slope"], c["intercept"]
                out["costes_method"] = costes_method
        elif threshold != "none":
            raise AnalysisError(f"threshold={threshold!r}; use 'costes', 'none' or a pair (ta, tb)")
    else:
        try:
            t1, t2 = (float(v) for v in threshold)
        except (TypeError, ValueError) as exc:
            raise AnalysisError(f"threshold must be 'costes', 'none' or a pair (ta, tb), got {threshold!r}") from exc
    out["threshold_a"], out["threshold_b"] = t1, t2
    if np.isnan(t1) or np.isnan(t2):
        out.update(tm1=float("nan"), tm2=float("nan"), pearson_below=float("nan"), pearson_above=float("nan"))
    else:
        if convention == "coloc2":
            out["tm1"] = float(x[(y > 0) & (y >= t2)].sum() / sx) if sx != 0 else float("nan")
            out["tm2"] = float(y[(x > 0) & (x >= t1)].sum() / sy) if sy != 0 else float("nan")
        else:
            ax, ay = x > t1, y > t2
            dx, dy = x[ax].sum(), y[ay].sum()
            out["tm1"] = float(x[ax & ay].sum() / dx) if dx != 0 else float("nan")
            out["tm2"] = float(y[ax & ay].sum() / dy) if dy != 0 else float("nan")
        out["pearson_below"] = _below_r(x, y, t1, t2)
        above = (x > t1) | (y > t2)
        out["pearson_above"] = pearson_r(x[above], y[above])
    if significance:
        if int(psf_px) < 1:
            raise AnalysisError(f"psf_px must be >= 1 voxel, got {psf_px}")
        if n_randomisations < 2:
            raise AnalysisError(f"n_randomisations must be >= 2, got {n_randomisations}")
        box = bounding_slices(m)
        aa = np.asarray(to_numpy(a.data[box]), dtype=np.float64)
        bb = np.asarray(to_numpy(b.data[box]), dtype=np.float64)
        mm = m[box] & np.isfinite(aa) & np.isfinite(bb)
        aa = np.where(np.isfinite(aa), aa, 0.0)
        p, mean, sd = _costes_significance(aa, bb, mm, int(psf_px), int(n_randomisations), seed)
        out.update(costes_p=p, costes_r_random_mean=mean, costes_r_random_sd=sd)
    ua, ub = image_units(a), image_units(b)
    return Metrics(out, lambda k: coloc_unit(k, ua, ub))


def colocalisation_matrix(
    images: Mapping[str, xr.DataArray] | Sequence[xr.DataArray],
    mask: xr.DataArray | None = None,
    **kwargs: Any,
) -> pd.DataFrame:
    """:func:`colocalisation` for every pair of maps: one row per pair.

    Parameters
    ----------
    images : mapping name -> image, or sequence of images
        Names come from the keys, else from each image's ``name``, ``agent`` or position.
    mask : xarray.DataArray, optional
    **kwargs
        Passed to :func:`colocalisation`.

    Returns
    -------
    pandas.DataFrame
        Columns ``a``, ``b`` and every key of :func:`colocalisation` (``m1``/``tm1`` refer to ``a``).

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> rng = np.random.default_rng(0)
    >>> x = rng.random((20, 20))
    >>> maps = {k: spatial_image(x + s * rng.random((20, 20)), spacing=0.1) for k, s in [("drug", 0.1), ("np", 1), ("cd31", 5)]}
    >>> colocalisation_matrix(maps, threshold="none")[["a", "b"]].values.tolist()
    [['drug', 'np'], ['drug', 'cd31'], ['np', 'cd31']]
    """
    if isinstance(images, Mapping):
        items = list(images.items())
    else:
        items = []
        for k, img in enumerate(images):
            name = img.name or img.attrs.get("agent") or f"image{k}"
            items.append((str(name), img))
    if len(items) < 2:
        raise AnalysisError("colocalisation_matrix needs at least two images")
    rows = []
    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            res = colocalisation(items[i][1], items[j][1], mask=mask, **kwargs)
            rows.append({"a": items[i][0], "b": items[j][0], **res})
    return pd.DataFrame(rows)


def joint_histogram(
    a: xr.DataArray,
    b: xr.DataArray,
    mask: xr.DataArray | None = None,
    bins: int = 128,
) -> pd.DataFrame:
    """The 2-D histogram of two maps inside a mask, as a tidy table (one row per non-empty bin).

    Returns
    -------
    pandas.DataFrame
        ``a_low``, ``a_high``, ``b_low``, ``b_high``, ``count``; ``attrs`` hold the full edges
        (``a_edges``, ``b_edges``) for plotting.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> a = spatial_image(np.array([[0.0, 1.0], [1.0, 1.0]]), spacing=1.0)
    >>> int(joint_histogram(a, a, bins=2)["count"].sum())
    4
    """
    a, b, m, x, y, _ = _pair_values(a, b, mask)
    counts, ea, eb = np.histogram2d(x, y, bins=bins)
    ia, ib = np.nonzero(counts)
    df = pd.DataFrame({
        "a_low": ea[ia], "a_high": ea[ia + 1], "b_low": eb[ib], "b_high": eb[ib + 1],
        "count": counts[ia, ib].astype(np.int64),
    })
    df.attrs["a_edges"] = ea
    df.attrs["b_edges"] = eb
    df.attrs["a_units"] = a.attrs.get("units", "")
    df.attrs["b_units"] = b.attrs.get("units", "")
    return df


def colocalisation_table(
    a: xr.DataArray,
    b: xr.DataArray,
    mask: xr.DataArray | None = None,
    *,
    threshold: str | tuple[float, float] = "costes",
    costes_method: str = "bisection",
    significance: bool = False,
    psf_px: int = 3,
    n_randomisations: int = 100,
    seed: int = 0,
    convention: str = "coloc2",
) -> list[dict[str, Any]]:
    """:func:`colocalisation` as tidy rows; the study's ``colocalisation`` (pairs of maps).

    Coefficients are dimensionless (``1``); thresholds carry their channel's units, the Costes
    intercept ``b``'s units and the slope ``<b units>/<a units>`` (``1`` when they agree); ``n``
    is in voxels. ``detail`` names the convention and the Costes search used.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> rng = np.random.default_rng(0)
    >>> x = rng.random((20, 20)) * 100
    >>> a = spatial_image(x, spacing=0.02, units="counts"); b = spatial_image(2 * x, spacing=0.02, units="a.u.")
    >>> rows = {r["metric"]: r for r in colocalisation_table(a, b, threshold="none")}
    >>> round(rows["pearson"]["value"], 6), rows["costes_slope"]["units"]
    (1.0, 'a.u./counts')
    """
    res = colocalisation(a, b, mask=mask, threshold=threshold, costes_method=costes_method,
                         significance=significance, psf_px=psf_px, n_randomisations=n_randomisations, seed=seed,
                         convention=convention)
    ua, ub = image_units(a), image_units(b)
    detail = ", ".join(f"{k}={res[k]}" for k in ("convention", "costes_method") if isinstance(res.get(k), str))
    return tidy_rows(res, lambda k: coloc_unit(k, ua, ub), detail=detail)


def coloc_unit(metric: str, units_a: str, units_b: str) -> str:
    """The unit of a :func:`colocalisation` metric for channels in ``units_a`` and ``units_b``.

    Coefficients are ``1``; thresholds carry their channel's units, the Costes intercept ``b``'s and the
    slope ``<b units>/<a units>`` (``1`` when they agree); ``n`` is in voxels.

    Examples
    --------
    >>> coloc_unit("threshold_a", "counts", "a.u."), coloc_unit("costes_slope", "counts", "a.u."), coloc_unit("m1", "", "")
    ('counts', 'a.u./counts', '1')
    """
    ua, ub = units_a, units_b
    if "threshold" in metric:
        return ua if metric.endswith(("1", "_a", "ch1")) else ub
    if metric == "n":
        return "voxels"
    if metric == "costes_intercept":
        return ub
    if metric == "costes_slope":
        return f"{ub}/{ua}" if ua != ub and (ua or ub) else "1"
    return "1"


def colocalisation_result(a: xr.DataArray, b: xr.DataArray, mask: xr.DataArray | None = None,
                          **params: Any) -> FamilyResult:
    """:func:`colocalisation_table` rows plus the pair's :func:`joint_histogram` (64 bins) for the figure."""
    rows = colocalisation_table(a, b, mask, **params)
    hist = joint_histogram(a, b, mask, bins=64)
    return FamilyResult(rows=pd.DataFrame(rows), data={"histogram": hist})


def colocalisation_figures(result: FamilyResult, title: str = "",
                           labels: Sequence[str] = ("a", "b")) -> list[tuple[str, Any]]:
    """The Coloc 2 style 2-D histogram of a pair with its Costes line and thresholds; ``labels`` name the two maps."""
    hist = result.data.get("histogram")
    if hist is None or hist.empty:
        return []
    values = dict(zip(result.rows["metric"], result.rows["value"]))
    names = tuple(labels) if len(labels) == 2 else ("a", "b")
    fig = colocalisation_figure(hist, values, labels=(names[0], names[1]))
    if title:
        fig.axes[0].set_title(title, fontsize=9)
    return [("histogram", fig)]


FAMILY = Family(
    name="colocalisation",
    table=colocalisation_table,
    inputs=("a", "b", "mask"),
    evaluate_fn=colocalisation_result,
    figure=colocalisation_figures,
    description="Pearson, Spearman, Kendall, Manders (thresholded), Li ICQ, Costes threshold and significance",
)
