"""Intensity-based statistical features (IBSI chapter 3.3, ``stat_*``).

Computed on the raw intensities of the intensity mask. The kernels are written for many groups
at once (one group per region) so that :func:`multiscale.analysis.texture.regional_features`
and :func:`intensity_features` share one implementation.
"""

from __future__ import annotations

import numpy as np

from ._rows import feature_row

__all__ = ["FAMILY", "FEATURES", "intensity_features", "grouped_statistics"]

FAMILY = "stat"

#: (tag, IBSI id, name)
FEATURES: tuple[tuple[str, str, str], ...] = (
    ("stat_mean", "Q4LE", "Mean intensity"),
    ("stat_var", "ECT3", "Intensity variance"),
    ("stat_skew", "KE2A", "Intensity skewness"),
    ("stat_kurt", "IPH6", "(Excess) intensity kurtosis"),
    ("stat_median", "Y12H", "Median intensity"),
    ("stat_min", "1GSF", "Minimum intensity"),
    ("stat_p10", "QG58", "10th intensity percentile"),
    ("stat_p90", "8DWT", "90th intensity percentile"),
    ("stat_max", "84IY", "Maximum intensity"),
    ("stat_iqr", "SALO", "Intensity interquartile range"),
    ("stat_range", "2OJQ", "Intensity range"),
    ("stat_mad", "4FUA", "Intensity-based mean absolute deviation"),
    ("stat_rmad", "1128", "Intensity-based robust mean absolute deviation"),
    ("stat_medad", "N72L", "Intensity-based median absolute deviation"),
    ("stat_cov", "7TET", "Intensity-based coefficient of variation"),
    ("stat_qcod", "9S40", "Intensity-based quartile coefficient of dispersion"),
    ("stat_energy", "N8CA", "Intensity-based energy"),
    ("stat_rms", "5ZWQ", "Root mean square intensity"),
)


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b != 0, a / np.where(b != 0, b, 1), np.nan)


def _bincount(groups: np.ndarray | None, weights: np.ndarray | None = None, minlength: int = 0) -> np.ndarray:
    """``numpy.bincount`` that always returns float64 (also for empty input); a plain sum for one group
    (``groups`` may then be None when ``weights`` are given)."""
    if minlength == 1:
        return np.array([float(groups.size) if weights is None else float(np.sum(weights))])
    return np.bincount(groups, weights=weights, minlength=minlength).astype(float)


def _grouped_percentile(sorted_values: np.ndarray, starts: np.ndarray, counts: np.ndarray, p: float) -> np.ndarray:
    """Linear-interpolation percentile (numpy's default) per group of a group-sorted array."""
    out = np.full(counts.shape, np.nan)
    ok = counts > 0
    pos = p / 100.0 * (counts[ok] - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, counts[ok] - 1)
    frac = pos - lo
    a = sorted_values[starts[ok] + lo]
    b = sorted_values[starts[ok] + hi]
    out[ok] = a + frac * (b - a)
    return out


def _counting_sort(v: np.ndarray) -> np.ndarray | None:
    """``v`` sorted by counting, when its values are integers spanning at most ``v.size`` values; else None.

    Integer intensities (CT, most MR, every discretised level) fall in this case; counting is several
    times faster than ``numpy.partition`` (a million voxels: about 3 ms against 15 ms) and gives the
    exact sorted values.
    """
    lo, hi = float(v.min()), float(v.max())
    if not (hi - lo <= v.size and -(2.0**62) < lo and hi < 2.0**62):  # also False for NaN
        return None
    as_int = v.astype(np.int64)
    if not np.array_equal(as_int, v):  # a fraction
        return None
    counts = np.bincount(as_int - int(lo))
    return np.repeat(np.arange(counts.size, dtype=float) + lo, counts)


def _order_statistics(v: np.ndarray, percentiles: tuple[float, ...]) -> np.ndarray:
    """``v`` partitioned so that every position :func:`_grouped_percentile` reads for ``percentiles``
    holds the value a full sort would put there (``numpy.partition``: linear time, not a sort; or a
    counting sort for integer values, :func:`_counting_sort`)."""
    n = v.size
    if n == 0:
        return v.copy()
    counted = _counting_sort(v)
    if counted is not None:
        return counted
    kth = set()
    for p in percentiles:
        pos = p / 100.0 * (n - 1)
        lo = int(np.floor(pos))
        kth.update((lo, min(lo + 1, n - 1)))
    return np.partition(v, sorted(kth))


def grouped_statistics(values: np.ndarray, groups: np.ndarray | None, n_groups: int) -> dict[str, np.ndarray]:
    """IBSI intensity statistics for many groups at once.

    Parameters
    ----------
    values : numpy.ndarray
        1-D intensities (finite).
    groups : numpy.ndarray or None
        1-D int group index per value, ``0 <= g < n_groups``; None: one group (``n_groups`` 1), which
        skips the per-value group look-ups (same arithmetic, same values).
    n_groups : int
        Number of groups.

    Returns
    -------
    dict
        Short name (``"mean"``, ``"var"``, ..., the tag without ``stat_``) to an array of
        ``n_groups`` values; NaN for empty groups. Variance is the population variance; skewness
        and excess kurtosis are 0 when the variance is 0.

    Examples
    --------
    >>> import numpy as np
    >>> s = grouped_statistics(np.array([1.0, 2.0, 3.0, 10.0]), np.array([0, 0, 0, 1]), 2)
    >>> s["mean"].tolist(), s["var"].tolist()
    ([2.0, 10.0], [0.6666666666666666, 0.0])
    """
    v = np.asarray(values, dtype=float).ravel()
    single = groups is None
    if single and n_groups != 1:
        raise ValueError(f"grouped_statistics: groups=None means one group, got n_groups={n_groups}")
    g = None if single else np.asarray(groups, dtype=np.int64).ravel()

    def per_value(a: np.ndarray) -> np.ndarray:
        """``a[g]``: each value's group statistic (the one statistic itself for a single group)."""
        return a[0] if single else a[g]

    def total(weights: np.ndarray | None = None, where: np.ndarray | None = None) -> np.ndarray:
        """Per-group count (no weights) or sum of ``weights``, over the values selected by ``where``."""
        if single:
            if weights is None:
                return np.array([float(v.size if where is None else np.count_nonzero(where))])
            return _bincount(None, weights, minlength=1)
        return _bincount(g if where is None else g[where], weights, minlength=n_groups)

    n = total()
    s1 = total(v)
    mean = _divide(s1, n)
    dev = v - per_value(mean)
    dev2 = dev * dev
    m2 = _divide(total(dev2), n)
    m3 = _divide(total(dev2 * dev), n)
    m4 = _divide(total(dev2 * dev2), n)
    del dev2
    with np.errstate(divide="ignore", invalid="ignore"):
        skew = np.where(m2 > 0, m3 / np.where(m2 > 0, m2, 1) ** 1.5, 0.0)
        kurt = np.where(m2 > 0, m4 / np.where(m2 > 0, m2, 1) ** 2 - 3.0, 0.0)
    skew[n == 0] = np.nan
    kurt[n == 0] = np.nan

    counts = n.astype(np.int64)
    sv = _order_statistics(v, (0, 10, 25, 50, 75, 90, 100)) if n_groups == 1 else v[np.lexsort((v, g))]
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    median = _grouped_percentile(sv, starts, counts, 50)
    p10 = _grouped_percentile(sv, starts, counts, 10)
    p25 = _grouped_percentile(sv, starts, counts, 25)
    p75 = _grouped_percentile(sv, starts, counts, 75)
    p90 = _grouped_percentile(sv, starts, counts, 90)
    vmin = np.full(n_groups, np.nan)
    vmax = np.full(n_groups, np.nan)
    ok = counts > 0
    vmin[ok] = sv[starts[ok]]
    vmax[ok] = sv[starts[ok] + counts[ok] - 1]

    mad = _divide(total(np.abs(dev)), n)
    del dev
    inner = (v >= per_value(p10)) & (v <= per_value(p90))
    v_in = v[inner]
    n_in = total(where=inner)
    mean_in = _divide(total(v_in, inner), n_in)
    mean_in_per_value = mean_in[0] if single else mean_in[g[inner]]
    rmad = _divide(total(np.abs(v_in - mean_in_per_value), inner), n_in)
    medad = _divide(total(np.abs(v - per_value(median))), n)
    energy = total(v * v)
    energy[~ok] = np.nan
    rms = np.sqrt(_divide(energy, n))
    return {
        "mean": mean,
        "var": m2,
        "skew": skew,
        "kurt": kurt,
        "median": median,
        "min": vmin,
        "p10": p10,
        "p90": p90,
        "max": vmax,
        "iqr": p75 - p25,
        "range": vmax - vmin,
        "mad": mad,
        "rmad": rmad,
        "medad": medad,
        "cov": _divide(np.sqrt(m2), mean),
        "qcod": _divide(p75 - p25, p75 + p25),
        "energy": energy,
        "rms": rms,
    }


def intensity_features(values: np.ndarray) -> list[dict]:
    """IBSI intensity-based statistical features of the intensity-mask voxels.

    Parameters
    ----------
    values : numpy.ndarray
        Intensities inside the intensity mask (any shape, finite).

    Returns
    -------
    list of dict
        One row per feature (``tag``, ``ibsi_id``, ``aggregation``, ``family``, ``feature``, ``value``);
        NaN values for an empty ROI.

    Examples
    --------
    >>> import numpy as np
    >>> rows = intensity_features(np.array([1.0, 2.0, 3.0]))
    >>> {r["tag"]: r["value"] for r in rows}["stat_median"]
    2.0
    """
    v = np.asarray(values, dtype=float).ravel()
    stats = grouped_statistics(v, None, 1)
    return [feature_row(tag, fid, FAMILY, name, stats[tag[5:]][0]) for tag, fid, name in FEATURES]
