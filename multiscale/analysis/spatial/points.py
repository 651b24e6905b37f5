"""Point patterns of objects (cells, particles): Ripley's K, L and g, nearest neighbours between types, dispersion.

Points are world positions in mm, in the image's ``(z,) y, x`` order: an ``(n, d)`` array or an
object table with ``centroid_<dim>_mm`` columns (and a ``type`` column for cross-type statistics).
The **window** (the region the points could have been in) is a mask image (the tissue, the tumour)
or a box; its area (volume) is what the intensity is relative to.

Edge correction: **translation** (Ohser & Stoyan) by default: each pair (i, j) weighs
``|W| / |W ∩ (W + x_j - x_i)|``, where the denominator, the window's set covariance, is computed
exactly for any mask by FFT (for a box it is ``prod(L_k - |h_k|)``); ``"border"`` (reduced sample:
only points at least r from the window's edge count as centres) and ``"none"`` are offered.

* K(r) = |W| / (n (n - 1)) Σ_{i≠j} 1{d_ij ≤ r} e_ij (CSR: πr² in 2-D, 4/3 πr³ in 3-D);
  cross-type K_ab(r) = |W| / (n_a n_b) Σ_{i∈a, j∈b} 1{d_ij ≤ r} e_ij.
* L(r) = sqrt(K / π) (2-D) or (3K / 4π)^(1/3) (3-D): r under CSR.
* g(r): the pair-correlation function by the ring estimator ΔK / Δ(ball volume) between consecutive
  radii (1 under CSR), reported at the outer radius of each ring.
* Envelopes: pointwise min/max over ``n_simulations`` patterns, from complete spatial randomness in
  the window (same n; ``"csr"``) or from random labelling of the observed points (``"labels"``,
  the default for cross-type: are b cells closer to a cells than cells in general?), and the
  global maximum-absolute-deviation test p-value on L (Diggle's MAD test, rank with ties counted).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from multiscale.errors import AnalysisError, AnalysisWarning
from multiscale.image import origin, spacing

from ..metrics import Metrics

__all__ = [
    "Window",
    "window_of",
    "points_of",
    "ripley",
    "csr_points",
    "nearest_neighbour_distances",
    "nearest_neighbour_table",
    "quadrat_dispersion",
    "CORRECTIONS",
]

#: the edge corrections :func:`ripley` offers
CORRECTIONS: tuple[str, ...] = ("translation", "border", "none")


class Window:
    """Where points could be: a mask on a grid (world mm), or a box.

    Parameters
    ----------
    mask : numpy.ndarray of bool
        The window on a grid (``(z,) y, x``).
    spacing, origin : sequence of float
        The grid's voxel size and first voxel centre (mm).

    Examples
    --------
    >>> w = Window.box([(0.0, 1.0), (0.0, 2.0)])
    >>> round(w.size, 3), w.ndim
    (2.0, 2)
    """

    def __init__(self, mask: np.ndarray, spacing: Sequence[float], origin: Sequence[float], box: Any = None):
        self.mask = np.asarray(mask, bool)
        self.spacing = np.asarray(spacing, float)
        self.origin = np.asarray(origin, float)
        self.box = None if box is None else np.asarray(box, float)
        if not self.mask.any():
            raise AnalysisError("the window (mask) is empty: no place for points")
        self._cov: np.ndarray | None = None
        self._edge: np.ndarray | None = None

    @classmethod
    def box(cls, bounds: Sequence[tuple[float, float]], voxels: int | None = None) -> Window:
        """A box ``[(lo, hi) per dim]`` in mm (set covariance exact; its grid, ``voxels`` per side, is a stand-in)."""
        b = np.asarray(bounds, float)
        if b.ndim != 2 or b.shape[1] != 2 or np.any(b[:, 1] <= b[:, 0]):
            raise AnalysisError(f"window bounds must be [(lo, hi), ...] with hi > lo, got {bounds}")
        n = max(2, int(voxels if voxels is not None else (64 if len(b) == 3 else 256)))
        sp = (b[:, 1] - b[:, 0]) / n
        return cls(np.ones((n,) * len(b), bool), sp, b[:, 0] + sp / 2, box=b)

    @property
    def ndim(self) -> int:
        return self.mask.ndim

    @property
    def size(self) -> float:
        """Area (2-D, mm²) or volume (3-D, mm³)."""
        if self.box is not None:
            return float(np.prod(self.box[:, 1] - self.box[:, 0]))
        return float(self.mask.sum() * np.prod(self.spacing))

    def contains(self, pts: np.ndarray) -> np.ndarray:
        """Which points lie in the window."""
        pts = np.asarray(pts, float).reshape(-1, self.ndim)
        if self.box is not None:
            return np.all((pts >= self.box[:, 0]) & (pts <= self.box[:, 1]), axis=1)
        idx = np.rint((pts - self.origin) / self.spacing).astype(int)
        ok = np.all((idx >= 0) & (idx < np.array(self.mask.shape)), axis=1)
        out = np.zeros(len(pts), bool)
        out[ok] = self.mask[tuple(idx[ok].T)]
        return out

    def covariance(self, offsets: np.ndarray) -> np.ndarray:
        """|W ∩ (W + h)| (mm^d) for each offset h (rows, mm): the window's set covariance."""
        h = np.abs(np.asarray(offsets, float))
        if self.box is not None:
            return np.prod(np.clip((self.box[:, 1] - self.box[:, 0]) - h, 0, None), axis=1)
        if self._cov is None:
            from scipy.signal import fftconvolve

            m = self.mask.astype(float)
            self._cov = np.clip(fftconvolve(m, m[tuple(slice(None, None, -1) for _ in m.shape)], mode="full"), 0, None)
        centre = np.array(self.mask.shape) - 1
        idx = np.rint(np.asarray(offsets, float) / self.spacing).astype(int) + centre
        idx = np.clip(idx, 0, np.array(self._cov.shape) - 1)
        return self._cov[tuple(idx.T)] * float(np.prod(self.spacing))

    def edge_distance(self, pts: np.ndarray) -> np.ndarray:
        """Distance (mm) from each point to the window's boundary."""
        pts = np.asarray(pts, float).reshape(-1, self.ndim)
        if self.box is not None:
            return np.min(np.minimum(pts - self.box[:, 0], self.box[:, 1] - pts), axis=1)
        if self._edge is None:
            from scipy import ndimage as ndi

            padded = np.pad(self.mask, 1)
            d = ndi.distance_transform_edt(padded, sampling=self.spacing)
            self._edge = d[tuple(slice(1, -1) for _ in self.mask.shape)] - 0.5 * float(self.spacing.min())
        idx = np.rint((pts - self.origin) / self.spacing).astype(int)
        idx = np.clip(idx, 0, np.array(self.mask.shape) - 1)
        return self._edge[tuple(idx.T)]


def csr_points(window: Window, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` points of complete spatial randomness (binomial process) in the window.

    Examples
    --------
    >>> import numpy as np
    >>> p = csr_points(Window.box([(0, 1), (0, 1)]), 5, np.random.default_rng(0))
    >>> p.shape, bool(((p >= 0) & (p <= 1)).all())
    ((5, 2), True)
    """
    if window.box is not None:
        lo, hi = window.box[:, 0], window.box[:, 1]
        return lo + rng.random((n, window.ndim)) * (hi - lo)
    flat = np.flatnonzero(window.mask.ravel())
    pick = flat[rng.integers(0, flat.size, n)]
    idx = np.stack(np.unravel_index(pick, window.mask.shape), axis=1).astype(float)
    idx += rng.random(idx.shape) - 0.5
    return window.origin + idx * window.spacing


def window_of(window: Any, pts: np.ndarray | None = None) -> Window:
    """A :class:`Window` from a mask image, a :class:`Window`, box bounds, or (None) the points' bounding box.

    The bounding box of the points underestimates the window (the intensity is then too high); a
    warning says so.
    """
    if isinstance(window, Window):
        return window
    if isinstance(window, xr.DataArray):
        m = window
        for d in ("t", "c"):
            if d in m.dims:
                m = m.isel({d: 0}, drop=True)
        data = m.data.compute() if hasattr(m.data, "compute") else m.values
        return Window(np.asarray(data) != 0, spacing(m), origin(m))
    if window is None:
        if pts is None or len(pts) < 2:
            raise AnalysisError("give a window (the region's mask or box bounds) for fewer than two points")
        warnings.warn("no window given: the points' bounding box is used, which underestimates the region and "
                      "biases K upwards; pass the region's mask", AnalysisWarning, stacklevel=3)
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        return Window.box(list(zip(lo, np.maximum(hi, lo + 1e-9))))
    return Window.box(window)


def points_of(points_or_table: Any, types: Any = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(points (n, d) in mm, types or None) from an array or an object table.

    Examples
    --------
    >>> import pandas as pd
    >>> pts, kinds = points_of(pd.DataFrame({"centroid_y_mm": [0.1], "centroid_x_mm": [0.2], "type": ["a"]}))
    >>> pts.tolist(), kinds.tolist()
    ([[0.1, 0.2]], ['a'])
    """
    if isinstance(points_or_table, pd.DataFrame):
        t = points_or_table
        cols = [f"centroid_{d}_mm" for d in ("z", "y", "x") if f"centroid_{d}_mm" in t.columns]
        if len(cols) < 2:
            raise AnalysisError(f"the table has no centroid_<dim>_mm columns (columns: {list(t.columns)[:12]}); "
                                "give an object table or an (n, d) array of positions in mm")
        pts = t[cols].to_numpy(float)
        if types is None and "type" in t.columns:
            types = t["type"].to_numpy(object)
    else:
        pts = np.asarray(points_or_table, float)
        if pts.ndim != 2 or pts.shape[1] not in (2, 3):
            raise AnalysisError(f"points must be an (n, 2) or (n, 3) array in mm, got shape {pts.shape}")
    kinds = None if types is None else np.asarray(types, dtype=object)
    if kinds is not None and len(kinds) != len(pts):
        raise AnalysisError(f"{len(kinds)} types for {len(pts)} points")
    return pts, kinds


def _ball(r: np.ndarray, d: int) -> np.ndarray:
    return np.pi * r ** 2 if d == 2 else 4.0 / 3.0 * np.pi * r ** 3


def _l_of(k: np.ndarray, d: int) -> np.ndarray:
    k = np.clip(k, 0, None)
    return np.sqrt(k / np.pi) if d == 2 else np.cbrt(3.0 * k / (4.0 * np.pi))


def _pairs(pa: np.ndarray, pb: np.ndarray | None, rmax: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ordered pairs (i in a, j in b, i != j when b is a) closer than rmax: (i, j, offset rows)."""
    from scipy.spatial import cKDTree

    ta = cKDTree(pa)
    if pb is None:
        ij = ta.query_pairs(rmax, output_type="ndarray")
        i = np.r_[ij[:, 0], ij[:, 1]]
        j = np.r_[ij[:, 1], ij[:, 0]]
        return i, j, pa[j] - pa[i]
    coo = ta.sparse_distance_matrix(cKDTree(pb), rmax, output_type="coo_matrix")
    i, j = coo.row, coo.col
    return i, j, pb[j] - pa[i]


def _k_curve(i: np.ndarray, j: np.ndarray, off: np.ndarray, radii: np.ndarray, window: Window,
             centres: np.ndarray, n_a: int, n_b: int, same: bool, correction: str) -> np.ndarray:
    """K at ``radii`` from the pairs of one pattern."""
    dist = np.sqrt((off ** 2).sum(axis=1))
    bins = np.searchsorted(radii, dist, side="left")  # d <= r_k counted from k on
    area = window.size
    if correction == "translation":
        w = area / np.maximum(window.covariance(off), 1e-300)
        counts = np.bincount(bins, weights=w, minlength=radii.size + 1)[: radii.size]
        return area / (n_a * (n_b - 1 if same else n_b)) * np.cumsum(counts)
    if correction == "none":
        counts = np.bincount(bins, minlength=radii.size + 1)[: radii.size]
        return area / (n_a * (n_b - 1 if same else n_b)) * np.cumsum(counts)
    # border (reduced sample): centres at least r from the edge
    b = window.edge_distance(centres)
    lam_b = (n_b - 1 if same else n_b) / area
    out = np.zeros(radii.size)
    bi = b[i]
    for k, r in enumerate(radii):
        ok = (dist <= r) & (bi >= r)
        n_r = int((b >= r).sum())
        out[k] = ok.sum() / (n_r * lam_b) if n_r else np.nan
    return out


def ripley(
    points_or_table: Any,
    *,
    radii_mm: Sequence[float],
    window: Any = None,
    types: Sequence[Any] | None = None,
    of: Any = None,
    to: Any = None,
    correction: Literal["translation", "border", "none"] = "translation",
    n_simulations: int = 99,
    envelope: Literal["csr", "labels"] | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Ripley's K, Besag's L and the pair-correlation g with simulation envelopes, univariate or cross-type.

    Parameters
    ----------
    points_or_table : (n, d) array in mm, or object table
        Positions (``centroid_<dim>_mm`` columns and, for types, a ``type`` column).
    radii_mm : sequence of float
        Increasing radii (mm).
    window : mask image, :class:`Window`, box bounds ``[(lo, hi), ...]``, optional
        The region the points could occupy; default the points' bounding box (with a warning).
    types : sequence, optional
        Type of every point (default: the table's ``type`` column).
    of, to : optional
        ``of`` alone: K of the points of that type; ``of`` and ``to``: cross-type K_of,to (pairs
        from an ``of`` point to a ``to`` point). Neither: all points.
    correction : {"translation", "border", "none"}
        Edge correction (module docstring).
    n_simulations : int
        Patterns simulated for the envelopes (0: none).
    envelope : {"csr", "labels"}, optional
        CSR in the window (default for one type or all points), or random labelling of the
        observed points (default for cross-type; for one type: is that type more clustered than
        the points in general?).
    seed : int
        Random generator seed.

    Returns
    -------
    pandas.DataFrame
        One row per radius: ``radius_mm``, ``K`` (mm^d), ``L`` (mm), ``g`` (1), ``K_csr``
        (πr² or 4/3 πr³), with ``K_lo/K_hi``, ``L_lo/L_hi``, ``g_lo/g_hi`` (pointwise envelope)
        and ``L_sim_mean``. ``attrs``: ``p_value`` (MAD test on L), ``n_a``, ``n_b``,
        ``intensity_per_mm<d>``, ``correction``, ``envelope``, ``n_simulations``, ``window_size``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> pts = rng.random((400, 2))                       # CSR in the unit square (mm)
    >>> k = ripley(pts, radii_mm=[0.05, 0.1], window=[(0, 1), (0, 1)], n_simulations=19)
    >>> (k["K"] / (np.pi * k["radius_mm"] ** 2)).round(1).tolist()   # K ~ pi r^2
    [1.0, 1.0]
    >>> bool(k.attrs["p_value"] > 0.05)
    True
    """
    pts, kinds = points_of(points_or_table, types)
    radii = np.asarray(radii_mm, float)
    if radii.ndim != 1 or radii.size == 0 or np.any(np.diff(radii) <= 0) or radii[0] <= 0:
        raise AnalysisError(f"radii_mm must be increasing positive distances, got {list(radii_mm)}")
    if correction not in CORRECTIONS:
        raise AnalysisError(f"correction={correction!r}; use one of {CORRECTIONS}")
    win = window_of(window, pts)
    if win.ndim != pts.shape[1]:
        raise AnalysisError(f"the window is {win.ndim}-D but the points are {pts.shape[1]}-D")
    inside = win.contains(pts)
    if not inside.all():
        warnings.warn(f"{int((~inside).sum())} of {len(pts)} points lie outside the window and were left out",
                      AnalysisWarning, stacklevel=2)
        pts = pts[inside]
        kinds = kinds[inside] if kinds is not None else None
    if of is not None or to is not None:
        if kinds is None:
            raise AnalysisError("of=/to= need point types (a 'type' column or types=)")
        present = sorted({str(k) for k in kinds})
        for t in (of, to):
            if t is not None and str(t) not in present:
                raise AnalysisError(f"no points of type {t!r}; types are {present}")
    kinds_s = None if kinds is None else np.array([str(k) for k in kinds], dtype=object)
    cross = of is not None and to is not None and str(of) != str(to)
    sel_a = np.ones(len(pts), bool) if of is None else kinds_s == str(of)
    sel_b = sel_a if not cross else kinds_s == str(to)
    n_a, n_b = int(sel_a.sum()), int(sel_b.sum())
    d = pts.shape[1]
    mode = envelope or ("labels" if cross else "csr")
    if mode not in ("csr", "labels"):
        raise AnalysisError(f"envelope={envelope!r}; use 'csr' or 'labels'")
    if mode == "labels" and of is None:
        raise AnalysisError("envelope='labels' relabels typed points; give of= (and to=), or use envelope='csr'")
    nan_out = n_a < 2 or (cross and n_b < 1)
    rmax = float(radii[-1])

    def curve(p: np.ndarray, a: np.ndarray, b: np.ndarray, same: bool) -> np.ndarray:
        pa = p[a]
        if same:
            i, j, off = _pairs(pa, None, rmax)
        else:
            i, j, off = _pairs(pa, p[b], rmax)
        return _k_curve(i, j, off, radii, win, pa, int(a.sum()), int(b.sum()), same, correction)

    ball = _ball(radii, d)
    if nan_out:
        warnings.warn(f"too few points for K (n_a={n_a}, n_b={n_b}); the curve is NaN", AnalysisWarning, stacklevel=2)
        k_obs = np.full(radii.size, np.nan)
    else:
        k_obs = curve(pts, sel_a, sel_b, not cross)
    rng = np.random.default_rng(seed)
    sims = []
    if n_simulations and not nan_out:
        if mode == "labels":
            # relabel the observed points; the pairs of all points are found once
            i_all, j_all, off_all = _pairs(pts, None, rmax)
            dist_all = np.sqrt((off_all ** 2).sum(axis=1))
            w_all = win.size / np.maximum(win.covariance(off_all), 1e-300) if correction == "translation" else \
                np.ones(dist_all.size)
            bins_all = np.searchsorted(radii, dist_all, side="left")
            labels = np.zeros(len(pts), int)
            labels[sel_a] = 1
            if cross:
                labels[sel_b] = 2
            for _ in range(int(n_simulations)):
                lab = rng.permutation(labels)
                a, b = lab == 1, (lab == 2) if cross else (lab == 1)
                if correction == "border":
                    sims.append(curve(pts, a, b, not cross))
                    continue
                keep = a[i_all] & b[j_all]
                counts = np.bincount(bins_all[keep], weights=w_all[keep], minlength=radii.size + 1)[: radii.size]
                sims.append(win.size / (n_a * (n_b - 1 if not cross else n_b)) * np.cumsum(counts))
        else:
            for _ in range(int(n_simulations)):
                if cross:
                    p = np.vstack([csr_points(win, n_a, rng), csr_points(win, n_b, rng)])
                    a = np.r_[np.ones(n_a, bool), np.zeros(n_b, bool)]
                    sims.append(curve(p, a, ~a, False))
                else:
                    p = csr_points(win, n_a, rng)
                    a = np.ones(n_a, bool)
                    sims.append(curve(p, a, a, True))
    out = pd.DataFrame({"radius_mm": radii, "K": k_obs, "L": _l_of(k_obs, d), "g": _g_of(k_obs, radii, d),
                        "K_csr": ball})
    p_value = float("nan")
    if sims:
        ks = np.vstack(sims)
        ls = _l_of(ks, d)
        gs = np.vstack([_g_of(k, radii, d) for k in ks])
        for name, arr in (("K", ks), ("L", ls), ("g", gs)):
            out[f"{name}_lo"] = np.nanmin(arr, axis=0)
            out[f"{name}_hi"] = np.nanmax(arr, axis=0)
        out["L_sim_mean"] = np.nanmean(ls, axis=0)
        ref = radii if mode == "csr" else np.nanmean(ls, axis=0)
        t_obs = np.nanmax(np.abs(out["L"].to_numpy() - ref))
        t_sim = np.nanmax(np.abs(ls - ref), axis=1)
        p_value = float((1 + np.sum(t_sim >= t_obs)) / (len(t_sim) + 1))
    out.attrs.update({"p_value": p_value, "n_a": n_a, "n_b": n_b if cross else n_a,
                      f"intensity_per_mm{d}": n_a / win.size, "correction": correction, "envelope": mode,
                      "n_simulations": len(sims), "window_size": win.size, "cross": cross,
                      "of": None if of is None else str(of), "to": None if to is None else str(to), "ndim": d})
    return out


def _g_of(k: np.ndarray, radii: np.ndarray, d: int) -> np.ndarray:
    ball = _ball(radii, d)
    dk = np.diff(np.r_[0.0, k])
    dv = np.diff(np.r_[0.0, ball])
    return dk / dv


# ------------------------------------------------------------------------------------------------
# nearest neighbours and dispersion
# ------------------------------------------------------------------------------------------------


def nearest_neighbour_distances(from_points: np.ndarray, to_points: np.ndarray, same: bool = False) -> np.ndarray:
    """Distance (mm) from each point of ``from_points`` to the nearest of ``to_points`` (itself excluded if ``same``).

    Examples
    --------
    >>> import numpy as np
    >>> nearest_neighbour_distances(np.array([[0.0, 0.0]]), np.array([[0.0, 0.3], [0.4, 0.0]])).tolist()
    [0.3]
    """
    from scipy.spatial import cKDTree

    a = np.asarray(from_points, float)
    b = np.asarray(to_points, float)
    if len(a) == 0 or len(b) < (2 if same else 1):
        return np.full(len(a), np.nan)
    d, _ = cKDTree(b).query(a, k=2 if same else 1)
    return d[:, 1] if same else d


def nearest_neighbour_table(
    points_or_table: Any,
    of: Any,
    to: Any,
    *,
    types: Sequence[Any] | None = None,
    n_simulations: int = 99,
    seed: int = 0,
) -> Metrics:
    """Nearest-neighbour distances from type ``of`` to type ``to``, against random labelling.

    Random labelling keeps every position and shuffles the types: it asks whether ``of`` cells sit
    closer to ``to`` cells than cells in general do.

    Returns
    -------
    Metrics
        A dict; ``.to_frame()`` is the tidy table (counts in points/tiles, distances in mm, others 1):
        ``n_from``, ``n_to``, ``mean_mm``, ``median_mm``, ``p90_mm``, ``mean_random_mm`` (the mean
        over relabelled patterns), ``ratio`` (mean / mean_random: below 1 means closer than
        random), ``p_closer`` (one-sided rank p-value that the mean is smaller than random).

    Examples
    --------
    >>> import numpy as np
    >>> pts = np.array([[0.0, 0.0], [0.0, 0.01], [1.0, 1.0], [1.0, 1.01], [0.5, 0.2], [0.2, 0.7]])
    >>> r = nearest_neighbour_table(pts, "m", "t", types=["m", "t", "m", "t", "x", "x"], n_simulations=99)
    >>> round(r["mean_mm"], 3), r["ratio"] < 1
    (0.01, True)
    """
    pts, kinds = points_of(points_or_table, types)
    if kinds is None:
        raise AnalysisError("nearest neighbours between types need types (a 'type' column or types=)")
    kinds = np.array([str(k) for k in kinds], dtype=object)
    present = sorted(set(kinds))
    for t in (of, to):
        if str(t) not in present:
            raise AnalysisError(f"no points of type {t!r}; types are {present}")
    same = str(of) == str(to)
    a, b = kinds == str(of), kinds == str(to)
    d = nearest_neighbour_distances(pts[a], pts[b], same)
    rng = np.random.default_rng(seed)
    sims = []
    for _ in range(int(n_simulations)):
        k = rng.permutation(kinds)
        sims.append(np.nanmean(nearest_neighbour_distances(pts[k == str(of)], pts[k == str(to)], same)))
    sims = np.asarray(sims, float)
    mean = float(np.nanmean(d)) if d.size and np.isfinite(d).any() else float("nan")
    rand = float(np.nanmean(sims)) if sims.size else float("nan")
    return Metrics({"n_from": int(a.sum()), "n_to": int(b.sum()), "mean_mm": mean,
                    "median_mm": float(np.nanmedian(d)) if np.isfinite(d).any() else float("nan"),
                    "p90_mm": float(np.nanpercentile(d, 90)) if np.isfinite(d).any() else float("nan"),
                    "mean_random_mm": rand, "ratio": mean / rand if rand else float("nan"),
                    "p_closer": float((1 + np.sum(sims <= mean)) / (sims.size + 1)) if sims.size else float("nan")},
                   lambda k: "points" if k.startswith("n_") else ("mm" if k.endswith("_mm") else "1"))


def quadrat_dispersion(points_or_table: Any, window: Any, tile_mm: float, *, min_cover: float = 0.99) -> Metrics:
    """Over-dispersion of counts per tile: variance / mean of the counts in square tiles wholly in the window.

    Under complete spatial randomness the counts are Poisson: variance / mean = 1 and
    ``(m - 1) variance / mean`` follows chi-squared with m - 1 degrees of freedom (m tiles);
    clustering gives > 1, regular spacing < 1.

    Returns
    -------
    Metrics
        A dict; ``.to_frame()`` is the tidy table (counts in points/tiles, distances in mm, others 1):
        ``n_tiles``, ``mean_count``, ``variance``, ``dispersion_index`` (variance / mean),
        ``p_clustered`` (upper chi-squared tail), ``p_regular`` (lower tail), ``tile_mm``.

    Examples
    --------
    >>> import numpy as np
    >>> pts = np.random.default_rng(1).random((4000, 2))     # CSR: Poisson counts, index ~ 1 (SD ~0.16 here)
    >>> r = quadrat_dispersion(pts, [(0, 1), (0, 1)], 0.1)
    >>> r["n_tiles"], 0.7 < r["dispersion_index"] < 1.3
    (100, True)
    """
    from scipy import stats

    pts, _ = points_of(points_or_table)
    win = window_of(window, pts)
    lo = win.box[:, 0] if win.box is not None else win.origin - win.spacing / 2
    hi = win.box[:, 1] if win.box is not None else win.origin + (np.array(win.mask.shape) - 0.5) * win.spacing
    n_t = np.floor((hi - lo) / tile_mm).astype(int)
    if np.any(n_t < 1):
        raise AnalysisError(f"tile_mm={tile_mm} is larger than the window ({hi - lo} mm)")
    tile = np.floor((pts - lo) / tile_mm).astype(int)
    ok = np.all((tile >= 0) & (tile < n_t), axis=1)
    counts = np.zeros(tuple(n_t), float)
    np.add.at(counts, tuple(tile[ok].T), 1)
    if win.box is None:
        # the fraction of each tile inside the mask
        idx = np.indices(win.mask.shape).reshape(win.ndim, -1).T
        centres = win.origin + idx * win.spacing
        t = np.floor((centres - lo) / tile_mm).astype(int)
        good = np.all((t >= 0) & (t < n_t), axis=1)
        cover = np.zeros(tuple(n_t))
        total = np.zeros(tuple(n_t))
        np.add.at(cover, tuple(t[good].T), win.mask.ravel()[good].astype(float))
        np.add.at(total, tuple(t[good].T), 1.0)
        use = (total > 0) & (cover / np.maximum(total, 1) >= min_cover)
    else:
        use = np.ones(tuple(n_t), bool)
    c = counts[use]
    m = c.size
    if m < 2:
        raise AnalysisError(f"only {m} tile(s) of {tile_mm} mm lie wholly in the window; use smaller tiles")
    mean = float(c.mean())
    var = float(c.var(ddof=1))
    vmr = var / mean if mean > 0 else float("nan")
    chi = (m - 1) * vmr
    return Metrics({"n_tiles": int(m), "mean_count": mean, "variance": var, "dispersion_index": vmr,
                    "p_clustered": float(stats.chi2.sf(chi, m - 1)) if np.isfinite(chi) else float("nan"),
                    "p_regular": float(stats.chi2.cdf(chi, m - 1)) if np.isfinite(chi) else float("nan"),
                    "tile_mm": float(tile_mm)},
                   {"n_tiles": "tiles", "mean_count": "points", "variance": "points^2", "dispersion_index": "1",
                    "p_clustered": "1", "p_regular": "1", "tile_mm": "mm"})

