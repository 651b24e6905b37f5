"""Intensity-volume histogram features (IBSI chapter 3.5, ``ivh_*``).

The IVH gives, for each intensity ``i`` of a grid, the fraction ``v(i)`` of the ROI with intensity
at least ``i``; ``gamma(i) = (i - X_min) / (X_max - X_min)`` is the intensity fraction.

* ``V_x``: ``v`` at the smallest grid intensity with ``gamma >= x``.
* ``I_x``: the smallest grid intensity with ``v <= x`` (``X_max`` plus one step when none).

The grid follows ``ivh_discretisation``: ``"none"`` (unit steps of ``ivh_bin_width`` from the
minimum when given, otherwise the intensities present), ``"fbn"`` (levels 1..Ng) or ``"fbs"``
(bin centres ``X_min + (k - 0.5) w``). ``X_min``/``X_max`` come from ``ivh_range``, else the
re-segmentation range where finite, else the ROI.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ._discretise import discretise
from ._rows import feature_row

__all__ = ["FAMILY", "ivh_features", "ivh_curve"]

FAMILY = "ivh"


def _bounds(values: np.ndarray, settings: Mapping[str, Any]) -> tuple[float, float]:
    lo, hi = float(values.min()), float(values.max())
    rng = settings.get("ivh_range") or settings.get("resegment_range")
    if rng is not None:
        if np.isfinite(rng[0]):
            lo = float(rng[0])
        if np.isfinite(rng[1]):
            hi = float(rng[1])
    return lo, hi


def ivh_curve(values: np.ndarray, settings: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The intensity-volume histogram of ``values``.

    Parameters
    ----------
    values : numpy.ndarray
        Intensities inside the intensity mask (finite, not empty).
    settings : Mapping
        Normalised texture settings (``ivh_discretisation``, ``ivh_bin_width``, ``ivh_n_bins``,
        ``ivh_range``, ``resegment_range``).

    Returns
    -------
    intensities, volume_fraction, intensity_fraction : numpy.ndarray
        The grid ``i``, ``v(i)`` and ``gamma(i)``.
    step : float
        Grid step (NaN when the grid is the intensities present).

    Examples
    --------
    >>> import numpy as np
    >>> i, v, g, w = ivh_curve(np.array([1.0, 1.0, 3.0, 4.0]), {"ivh_discretisation": "none", "ivh_bin_width": 1.0})
    >>> i.tolist(), v.tolist()
    ([1.0, 2.0, 3.0, 4.0], [1.0, 0.5, 0.5, 0.25])
    """
    x = np.asarray(values, dtype=float).ravel()
    mode = settings.get("ivh_discretisation", "none")
    step = float("nan")
    if mode == "fbn":
        ng = int(settings["ivh_n_bins"])
        x = discretise(x, "fbn", n_bins=ng).astype(float)
        grid = np.arange(1, ng + 1, dtype=float)
        lo, hi = 1.0, float(ng)
        step = 1.0
    elif mode == "fbs":
        w = float(settings["ivh_bin_width"])
        lo, hi = _bounds(x, settings)
        k = discretise(x, "fbs", bin_width=w, min_anchor=lo)
        x = lo + (k - 0.5) * w
        kmax = max(int(k.max()), int(np.floor((hi - lo) / w)) + 1 if hi > lo else 1)
        grid = lo + (np.arange(1, kmax + 1) - 0.5) * w
        lo, hi = float(grid[0]), float(grid[-1])
        step = w
    else:
        lo, hi = _bounds(x, settings)
        w = settings.get("ivh_bin_width")
        if w:
            step = float(w)
            grid = lo + step * np.arange(int(np.floor((hi - lo) / step + 1e-9)) + 1)
        else:
            grid = np.unique(x)
    xs = np.sort(x)
    v = (xs.size - np.searchsorted(xs, grid, side="left")) / xs.size
    with np.errstate(divide="ignore", invalid="ignore"):
        gamma = (grid - lo) / (hi - lo) if hi > lo else np.full(grid.shape, np.nan)
    return grid, v, gamma, step


def ivh_features(values: np.ndarray, settings: Mapping[str, Any]) -> list[dict]:
    """IBSI IVH features ``ivh_v10``, ``ivh_v90``, ``ivh_i10``, ``ivh_i90`` and their differences.

    Parameters
    ----------
    values : numpy.ndarray
        Intensities inside the intensity mask.
    settings : Mapping
        Normalised texture settings.

    Returns
    -------
    list of dict
        One row per feature; NaN for an empty ROI (and NaN ``V_x`` for a constant one).

    Examples
    --------
    >>> import numpy as np
    >>> rows = ivh_features(np.array([1.0, 1.0, 3.0, 4.0]), {"ivh_discretisation": "none", "ivh_bin_width": 1.0})
    >>> {r["tag"]: r["value"] for r in rows}["ivh_i10"]
    5.0
    """
    x = np.asarray(values, dtype=float).ravel()
    if x.size == 0:
        v10 = v90 = i10 = i90 = float("nan")
    else:
        grid, v, gamma, step = ivh_curve(x, settings)

        def vol_at(frac: float) -> float:
            idx = np.flatnonzero(gamma >= frac - 1e-12)
            return float(v[idx[0]]) if idx.size else float("nan")

        def int_at(frac: float) -> float:
            idx = np.flatnonzero(v <= frac + 1e-12)
            if idx.size:
                return float(grid[idx[0]])
            return float(grid[-1] + (step if np.isfinite(step) else 0.0))

        v10, v90, i10, i90 = vol_at(0.1), vol_at(0.9), int_at(0.1), int_at(0.9)
    return [
        feature_row("ivh_v10", "BC2M", FAMILY, "Volume at intensity fraction 10%", v10),
        feature_row("ivh_v90", "BC2M", FAMILY, "Volume at intensity fraction 90%", v90),
        feature_row("ivh_i10", "GBPN", FAMILY, "Intensity at volume fraction 10%", i10),
        feature_row("ivh_i90", "GBPN", FAMILY, "Intensity at volume fraction 90%", i90),
        feature_row("ivh_diff_v10_v90", "DDTU", FAMILY,
                    "Volume fraction difference between intensity fractions 10% and 90%", v10 - v90),
        feature_row("ivh_diff_i10_i90", "CNV2", FAMILY,
                    "Intensity fraction difference between volume fractions 10% and 90%", i10 - i90),
    ]
