"""What co-localises with a reference: every feature of an MSI dataset ranked by spatial similarity.

Method
------
* **Preprocessing** (ColocML; Ovchinnikova et al., Bioinformatics 36:3215, 2020, the METASPACE
  colocalisation benchmark against 2,210 expert-ranked image pairs, where the cosine score after "median
  thresholding" matched the experts best, Spearman 0.794): each image is median-filtered with a 3x3 window
  (per 2-D plane, edges repeated), then every pixel below the image's 50th percentile (numpy's linear
  interpolation, over the analysis domain) is set to 0, as metaspace-converter's ``coloc_ml_preprocessing``
  does. The reference gets the same preprocessing (``preprocess_reference=True``).
* **Similarity**: cosine (default) or Pearson over the domain (the pixels with a spectrum, inside ``mask``,
  where the reference is finite).
* **Significance** (spatially aware; pixel shuffling would ignore autocorrelation and overstate it): the
  reference is moved ``n_permutations`` times, by random toroidal shifts (``null="torus"``, default: each
  plane rolled by ``(dy, dx)``, wrapping around, so the moved reference keeps all its autocorrelation; by
  default every non-zero shift may be drawn, which keeps the test valid: shifts shorter than ``block`` in both
  directions can be excluded for power, at the price of optimistic p-values on smooth images) or by
  shuffling square tiles of ``block`` pixels (``null="tiles"``, Costes-style; only tiles wholly inside the
  domain move; ``block`` defaults to twice the reference's correlation half-length, the lag where its
  autocorrelation falls below 0.5, within [2, a third of the grid]). Each feature's similarities to the
  moved references give its null mean and SD and its ``z_score``; each null value is standardised the same
  way by the other values of its feature (the observed one included), and ``p_value`` is the upper tail of
  the observed z in the null z-values of all features pooled (so that thousands of features get p-values
  below 1 / n_permutations, with the null's real tails); on independent smooth fields 1.0 % of p-values fall
  below 0.01 and 4.6-5.5 % below 0.05 (``tests/analysis/msi/test_colocalisation.py``);
  ``p_normal`` is the normal tail of z (Coloc 2's convention), ``p_empirical`` = (1 + #null >= observed) /
  (1 + n) for the feature alone. ``q_value``: Benjamini-Hochberg over all features (statsmodels
  ``multipletests(method="fdr_bh")``).
* **Streaming**: a dataset's features are extracted ``batch_bytes`` at a time (one pass over the file per
  batch, float32), preprocessed and scored, so memory is bounded by the batch, not by the number of features.
  A batch of mostly-zero rows (the thresholding zeroes at least half of every image) is scored over its
  non-zero pixels only, otherwise by one matrix product against the reference and its shifts; a cost model
  measured on workload A chooses (same similarities to float32 rounding).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr
from scipy import ndimage, stats

from multiscale import image as mi
from multiscale._util import kernel_pool, kernel_threads, large_buffer
from multiscale.errors import AnalysisError, AnalysisWarning

from ..family import Family, FamilyResult
from ._kernels import colocml_rows, sparse_scores
from .features import feature_mz

__all__ = [
    "colocml_preprocess",
    "correlation_length",
    "block_permutations",
    "torus_shifts",
    "rank_colocalised",
    "rank_images",
    "colocalisation_table",
    "FAMILY",
]

RANK_COLUMNS = ("mz", "similarity", "p_value", "q_value", "rank", "p_empirical", "z_score", "null_mean", "null_sd",
                "n_pixels")


def colocml_preprocess(images: np.ndarray, domain: np.ndarray | None = None, *, median_size: int = 3,
                       quantile: float = 0.5) -> np.ndarray:
    """ColocML preprocessing of a stack of images: median filter, then zero everything below a quantile.

    Parameters
    ----------
    images : numpy.ndarray
        ``(n, *spatial)`` with 2-D (``ny, nx``) or 3-D (``nz, ny, nx``) images; filtered per 2-D plane.
    domain : numpy.ndarray of bool, optional
        Spatial mask of the pixels that count (quantiles are taken over it; outside it the result is 0).
    median_size : int
        Median window edge in pixels (3 as validated; 1 = no filtering).
    quantile : float
        Pixels below this quantile of the filtered image are set to 0 (0.5 as validated; 0 = none).

    Returns
    -------
    numpy.ndarray
        float32, same shape.

    Examples
    --------
    >>> a = np.arange(16, dtype=float).reshape(1, 4, 4)
    >>> colocml_preprocess(a)[0].tolist()[0]
    [0.0, 0.0, 0.0, 0.0]
    """
    a = np.asarray(images, dtype=np.float32)
    if a.ndim < 3:
        raise ValueError(f"images must be (n, ny, nx) or (n, nz, ny, nx), got shape {a.shape}")
    dom = np.ones(a.shape[1:], bool) if domain is None else np.broadcast_to(np.asarray(domain, bool), a.shape[1:])
    idx = np.flatnonzero(dom.ravel())
    rows = _preprocess_rows(a, idx, median_size, quantile)
    out = np.zeros((a.shape[0], int(np.prod(a.shape[1:]))), dtype=np.float32)
    out[:, idx] = rows
    return out.reshape(a.shape)


def _preprocess_rows(a: np.ndarray, idx: np.ndarray, median_size: int, quantile: float,
                     in_place: bool = False, sumsq: np.ndarray | None = None,
                     nnz: np.ndarray | None = None) -> np.ndarray:
    """Preprocessed domain pixels ``(n, len(idx))`` of a stack ``(n, *spatial)`` (pixels outside the domain
    are zeroed before filtering).

    ``in_place``: ``a`` (float32, C-contiguous) is overwritten and the result is a view of it (row ``k`` in
    the first ``len(idx)`` values of image ``k``: each image is read whole into a work buffer before its row
    is written), so a batch needs no second copy. ``sumsq`` (float64 ``(n,)``) and ``nnz`` (int64 ``(n,)``)
    receive each row's sum of squares and number of non-zero values. Images are split over up to two threads
    when called from the main thread (the kernel releases the GIL; rows are independent).
    """
    shape = a.shape
    n, n_pix = shape[0], int(np.prod(shape[1:]))
    if in_place and not (a.dtype == np.float32 and a.flags.c_contiguous and a.flags.writeable):
        in_place = False
    a = a if in_place else np.array(a, dtype=np.float32)  # a private copy either way
    if idx.size != n_pix:
        keep = np.zeros(n_pix, bool)
        keep[idx] = True
        a.reshape(n, n_pix)[:, ~keep] = 0
    if median_size not in (1, 3):
        planes = a.reshape(-1, shape[-2], shape[-1])
        planes[...] = ndimage.median_filter(planes, size=(1, median_size, median_size), mode="reflect")
    out = a.reshape(n, n_pix)[:, : idx.size]
    median = median_size == 3

    def run(k0: int, k1: int) -> None:
        colocml_rows(a[k0:k1], idx, quantile, median=median, out=out[k0:k1],
                     sumsq=None if sumsq is None else sumsq[k0:k1], nnz=None if nnz is None else nnz[k0:k1])

    threads = kernel_threads(2) if n >= 64 else 1
    if threads == 1:
        run(0, n)
    else:
        half = n // 2
        pool = kernel_pool(2)
        for f in [pool.submit(run, 0, half), pool.submit(run, half, n)]:
            f.result()
    return out


def correlation_length(image: np.ndarray, domain: np.ndarray | None = None, level: float = 0.5) -> float:
    """Lag (pixels) at which an image's autocorrelation along y and x first falls below ``level`` (mean of both).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> correlation_length(rng.random((64, 64))) <= 1.0
    True
    """
    a = np.asarray(image, float)
    dom = np.ones(a.shape, bool) if domain is None else np.asarray(domain, bool)
    if a.ndim == 3:  # planes stacked: use the middle plane
        k = a.shape[0] // 2
        a, dom = a[k], dom[k]
    v = np.where(dom, a - a[dom].mean() if dom.any() else 0.0, 0.0)
    w = dom.astype(float)
    sh = [2 * s for s in a.shape]
    fv, fw = np.fft.rfft2(v, sh), np.fft.rfft2(w, sh)
    acf = np.fft.irfft2(fv * np.conj(fv), sh)
    cnt = np.fft.irfft2(fw * np.conj(fw), sh)
    with np.errstate(invalid="ignore", divide="ignore"):
        acf = acf / np.maximum(np.round(cnt), 1.0)
    if acf[0, 0] <= 0:
        return 1.0
    acf = acf / acf[0, 0]
    lags = []
    for prof in (acf[: a.shape[0], 0], acf[0, : a.shape[1]]):
        below = np.flatnonzero(prof < level)
        lags.append(float(below[0]) if below.size else float(prof.size))
    return float(np.mean(lags))


def block_permutations(domain: np.ndarray, block: int, n: int, seed: int | np.random.Generator | None = 0) -> np.ndarray:
    """Source pixels that shuffle the domain in square tiles.

    Each 2-D plane is cut into ``block x block`` tiles; tiles wholly inside ``domain`` are permuted as units
    (each pixel keeps its offset within its tile), every other pixel keeps its own value.

    Returns
    -------
    numpy.ndarray
        ``(n, n_domain)`` int64 flat grid indices: shuffle ``i`` puts at the ``k``-th domain pixel (row-major)
        the value of grid pixel ``out[i, k]``.

    Examples
    --------
    >>> p = block_permutations(np.ones((4, 4), bool), 2, 3, seed=1)
    >>> p.shape, sorted(p[0].tolist()) == list(range(16))
    ((3, 16), True)
    """
    dom = np.asarray(domain, bool)
    planes = dom.reshape(-1, dom.shape[-2], dom.shape[-1])
    b = int(block)
    if b < 1:
        raise ValueError(f"block must be >= 1 pixel, got {block}")
    nz, ny, nx = planes.shape
    grid = np.arange(planes.size).reshape(planes.shape)
    ty, tx = ny // b, nx // b
    tiles = grid[:, : ty * b, : tx * b].reshape(nz, ty, b, tx, b).transpose(0, 1, 3, 2, 4).reshape(-1, b * b)
    tiles = tiles[planes.ravel()[tiles].all(axis=1)]
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    dom_idx = np.flatnonzero(planes.ravel())
    out = np.tile(dom_idx, (int(n), 1))
    if tiles.shape[0] < 2:
        return out
    pos = np.full(planes.size, -1, dtype=np.int64)
    pos[dom_idx] = np.arange(dom_idx.size)
    where = pos[tiles.ravel()]
    for i in range(int(n)):
        out[i, where] = tiles[rng.permutation(tiles.shape[0])].ravel()
    return out


def torus_shifts(domain: np.ndarray, min_shift: int, n: int, seed: int | np.random.Generator | None = 0) -> np.ndarray:
    """Source pixels of random toroidal shifts (each 2-D plane rolled by ``(dy, dx)``, wrapping around).

    Shifts with both ``|dy|`` and ``|dx|`` (the shorter way round) below ``min_shift`` are excluded; ``n``
    distinct shifts are drawn (all allowed ones when fewer). The shifted image keeps all its
    autocorrelation; values rolled in from outside the domain are those of the (zeroed) outside.

    Returns
    -------
    numpy.ndarray
        ``(n_shifts, n_domain)`` int64 flat grid indices (see :func:`block_permutations`).

    Examples
    --------
    >>> torus_shifts(np.ones((8, 8), bool), 3, 5).shape
    (5, 64)
    """
    dom = np.asarray(domain, bool)
    planes = dom.reshape(-1, dom.shape[-2], dom.shape[-1])
    nz, ny, nx = planes.shape
    dy, dx = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    ok = (np.minimum(dy, ny - dy) >= min_shift) | (np.minimum(dx, nx - dx) >= min_shift)
    cand = np.flatnonzero(ok.ravel())
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    pick = cand if cand.size <= n else rng.choice(cand, int(n), replace=False)
    dom_idx = np.flatnonzero(planes.ravel())
    sy, sx = np.divmod(pick.astype(np.int64), nx)
    # shift i takes grid pixel ((y - dy) mod ny, (x - dx) mod nx): the index grid rolled by (dy, dx), a copy per
    # shift instead of two modulos per (shift, pixel) (100 shifts of 200 x 200 pixels: 4 ms instead of 38)
    grid = np.arange(planes.size, dtype=np.int64).reshape(planes.shape)
    full = dom_idx.size == planes.size
    out = np.empty((pick.size, dom_idx.size), dtype=np.int64)
    for i in range(pick.size):
        rolled = np.roll(grid, (int(sy[i]), int(sx[i])), axis=(1, 2)).ravel()
        out[i] = rolled if full else rolled[dom_idx]
    return out


def _spatial_shape(img: xr.DataArray) -> tuple[int, ...]:
    return tuple(img.sizes[d] for d in img.dims if d in ("z", "y", "x"))


def _reference_array(reference: Any, template: xr.DataArray | None, shape: tuple[int, ...], what: str,
                     transform: Any = None) -> np.ndarray:
    """The reference as a float array on the MSI grid, or a clear error naming the fix."""
    if isinstance(reference, xr.DataArray):
        ref = reference
        if "c" in ref.dims:
            if ref.sizes["c"] != 1:
                raise AnalysisError(f"the reference has {ref.sizes['c']} channels; select one "
                                    "(multiscale.image.select_channel) before ranking")
            ref = ref.isel(c=0, drop=True)
        if "t" in ref.dims:
            raise AnalysisError("the reference has a time dim; select one frame (reference.isel(t=...)) first")
        same = template is not None and mi.same_grid(ref, template, rtol=1e-4)
        if template is not None and not same:
            g_r, g_t = mi.grid_of(ref), mi.grid_of(template)
            how = ("resampling belongs to registration: resample it first with "
                   "multiscale.registration.resample(reference, msi_grid_image, transform) and pass the result"
                   if transform is not None else
                   "resample it onto the MSI grid first (multiscale.registration.resample(reference, msi_grid_image, "
                   "transform); in a study, name the map '<name>@<msi frame>')")
            raise AnalysisError(
                f"{what}: the reference is on another grid (shape {g_r['shape']}, spacing {tuple(round(s, 6) for s in g_r['spacing'])} mm, "
                f"origin {tuple(round(o, 6) for o in g_r['origin'])} mm) than the MSI data (shape {g_t['shape']}, spacing "
                f"{tuple(round(s, 6) for s in g_t['spacing'])} mm, origin {tuple(round(o, 6) for o in g_t['origin'])} mm); {how}")
        arr = np.asarray(ref.values, dtype=np.float64)
    else:
        arr = np.asarray(reference, dtype=np.float64)
    if arr.shape != shape:
        raise AnalysisError(f"{what}: the reference has shape {arr.shape} but the MSI grid is {shape}; resample the "
                            "reference onto the MSI grid first (multiscale.registration.resample)")
    return arr


class _Scorer:
    """Scores batches of preprocessed feature rows against one reference and its shuffles."""

    def __init__(self, ref_full: np.ndarray, dom_idx: np.ndarray, metric: str, perms: np.ndarray):
        self.metric = metric
        flat = ref_full.ravel().astype(np.float32)
        self.r = self._unit(flat[dom_idx][:, None])[:, 0]
        if not np.isfinite(self.r).all():
            raise AnalysisError("the reference is constant (zero after preprocessing) over the domain; nothing can "
                                "co-localise with it; check the reference and the mask")
        # a shuffle that left no signal scores 0; pixel-major (C order): the sparse scores read one pixel's row.
        # Built shuffle by shuffle in place (one gather, one transposed copy: 32 MB of fresh memory for 100 shifts
        # of 40,000 pixels instead of 112, which on a first call in a process cost 0.1 s of page faults)
        if perms.shape[0]:
            shuffled = flat[perms]
            self._unit_rows(shuffled, fill=0.0)
            self.rp = np.ascontiguousarray(shuffled.T)
        else:
            self.rp = np.zeros((dom_idx.size, 0), np.float32)

    def _unit_rows(self, rows: np.ndarray, fill: float) -> None:
        """Rows (float32, written in place) scaled to unit norm (centred first for Pearson); ``fill`` for an
        all-zero row. Each value is divided in float64 and rounded once, as :meth:`_unit` does."""
        if self.metric == "pearson":
            rows -= rows.mean(axis=1, keepdims=True, dtype=np.float64).astype(np.float32)
        norm = np.sqrt(np.einsum("ij,ij->i", rows, rows, dtype=np.float64))
        np.divide(rows, np.where(norm > 0, norm, 1.0)[:, None], out=rows, casting="same_kind")
        rows[~(norm > 0)] = fill

    def _unit(self, cols: np.ndarray, fill: float = np.nan) -> np.ndarray:
        """Columns scaled to unit norm (centred first for Pearson), float32; ``fill`` for an all-zero column."""
        if self.metric == "pearson":
            cols = cols - cols.mean(axis=0, keepdims=True, dtype=np.float64).astype(np.float32)
        norm = np.sqrt(np.einsum("ij,ij->j", cols, cols, dtype=np.float64))
        out = (cols / np.where(norm > 0, norm, 1.0)[None, :]).astype(np.float32)
        out[:, ~(norm > 0)] = fill
        return out

    def __call__(self, f: np.ndarray, sumsq: np.ndarray | None = None, nnz: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Similarity of each preprocessed row (domain pixels) to the reference and to its shuffles
        (``sumsq``: the rows' sums of squares when already known; cosine only; ``nnz``: their non-zero counts,
        when known: mostly-zero rows are then scored over their non-zero pixels only)."""
        if self.metric == "pearson":
            f = f - f.mean(axis=1, keepdims=True, dtype=np.float64).astype(np.float32)
            sumsq = nnz = None
        if sumsq is None:
            sumsq = np.einsum("ij,ij->i", f, f, dtype=np.float64)
        norms = np.sqrt(sumsq)
        safe = np.where(norms > 0, norms, 1.0)
        if nnz is not None and _sparse_pays(f.shape, int(np.sum(nnz)), self.rp.shape[1]):
            obs, null = self._sparse(f)
            obs /= safe
            null /= safe[:, None]
        else:
            obs = (f @ self.r).astype(np.float64) / safe
            null = (f @ self.rp).astype(np.float64) / safe[:, None]
        obs[norms == 0] = np.nan
        null[norms == 0] = np.nan
        return obs, null

    def _sparse(self, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unscaled products of the rows of ``f`` with the reference and its shuffles, over non-zero pixels only,
        on up to two threads (halves of the rows; the kernel releases the GIL)."""
        obs = np.zeros(f.shape[0])
        null = np.zeros((f.shape[0], self.rp.shape[1]))
        f = np.ascontiguousarray(f, dtype=np.float32)
        rows = np.arange(f.shape[0], dtype=np.int64)

        def run(a: int, b: int) -> None:
            sparse_scores(f, rows[a:b], self.r, self.rp, obs[a:b], null[a:b], _SPARSE_BLOCK)

        if kernel_threads(2) == 1 or rows.size < 64:
            run(0, rows.size)
        else:
            half = rows.size // 2
            pool = kernel_pool(2)
            for fut in [pool.submit(run, 0, half), pool.submit(run, half, rows.size)]:
                fut.result()
        return obs, null


def _sparse_pays(shape: tuple[int, ...], nnz: int, n_shuffles: int) -> bool:
    """Whether scoring rows of ``shape`` with ``nnz`` non-zero values in all over their non-zero pixels should beat
    the dense matrix product, by costs per pixel measured on workload A (100 shuffles, 40,000 pixels, 1,700
    preprocessed rows, one core, 2026-12-05): listing the rows' non-zero pixels about 0.75 ns per pixel, then
    0.07 ns per shuffle per non-zero pixel; the product (OpenBLAS SGEMM) 0.025 ns per shuffle per pixel. With 100
    shuffles the sparse scores win below about 25 % non-zero (workload A, after the ColocML thresholding: 7-9 %)."""
    n_values = int(np.prod(shape))
    if n_values == 0 or n_shuffles == 0:
        return False
    return n_values * 0.75 + nnz * 0.07 * n_shuffles < n_values * 0.025 * n_shuffles


_SPARSE_BLOCK = 4096  # pixels per slab of the shuffled references in the sparse scores (4,096 x 100 x 4 B in L2)


def _exchangeable_null_z(obs: np.ndarray, null: np.ndarray) -> np.ndarray:
    """Each null value standardised by the mean and SD of the *other* values of its feature (the observed one
    and the remaining shifts), as the observed value is by its shifts: under no co-localisation all of them are
    then alike, so pooling the null z-values gives the observed z's distribution. (Standardising the null
    values by statistics that include themselves shrinks their tails and made the pooled p-values optimistic:
    6.6 % below 0.05 on independent smooth fields.)"""
    n = null.shape[1]
    if n < 2:
        return np.full_like(null, np.nan)
    # the same arithmetic as mean = (total - null) / n, var = (total_sq - null**2 - n * mean**2) / (n - 1),
    # z = (null - mean) / sqrt(max(var, 0)), in place in three arrays (10,000 x 100: 24 MB of fresh memory,
    # not 64, whose page faults cost 50 ms on a first call)
    sq = null * null
    total = obs[:, None] + null.sum(axis=1, keepdims=True)
    total_sq = obs[:, None] ** 2 + sq.sum(axis=1, keepdims=True)
    mean = total - null
    mean /= n
    var = np.subtract(total_sq, sq, out=sq)
    z = np.multiply(mean, mean)
    z *= n
    var -= z
    var /= n - 1
    np.maximum(var, 0.0, out=var)
    np.sqrt(var, out=var)
    np.subtract(null, mean, out=z)
    z /= var
    return z


def _sorted_parts(values: np.ndarray) -> list[np.ndarray]:
    """``values`` (a private array) sorted in place in two halves on two threads when large (numpy's sort releases
    the GIL; 1 M pooled null values: 52 ms in one sort, 26 ms in two), else in one piece; counts below a value are
    the sums over the parts."""
    if values.size < 200_000 or kernel_threads(2) == 1:
        values.sort()
        return [values]
    half = values.size // 2
    parts = [values[:half], values[half:]]
    pool = kernel_pool(2)
    for fut in [pool.submit(part.sort) for part in parts]:
        fut.result()
    return parts


def _finish(mz: np.ndarray, obs: np.ndarray, null: np.ndarray, n_pix: int, alternative: str,
            extra: dict[str, Any], names: Sequence[str] | None = None) -> pd.DataFrame:
    from statsmodels.stats.multitest import multipletests

    n_perm = null.shape[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mu = np.nanmean(null, axis=1) if n_perm else np.full(obs.size, np.nan)
        sd = np.nanstd(null, axis=1, ddof=1) if n_perm > 1 else np.full(obs.size, np.nan)
        z = (obs - mu) / sd
        zn = _exchangeable_null_z(obs, null)
    if alternative == "two-sided":
        z_t, zn_t = np.abs(z), np.abs(zn)
        p_norm = 2 * stats.norm.sf(z_t)
    elif alternative == "greater":
        z_t, zn_t = z, zn
        p_norm = stats.norm.sf(z_t)
    else:
        raise ValueError(f"alternative must be 'greater' or 'two-sided', got {alternative!r}")
    pool = zn_t[np.isfinite(zn_t)]
    parts = _sorted_parts(pool)
    with np.errstate(invalid="ignore"):
        emp = (1 + (zn_t >= z_t[:, None]).sum(axis=1)) / (1 + n_perm)
        below = sum(np.searchsorted(part, z_t, side="left") for part in parts)  # pooled null values < z
        p = (1 + pool.size - below) / (1 + pool.size) if pool.size else np.full(obs.size, np.nan)
    p = np.where(np.isfinite(z_t), p, np.nan)
    emp = np.where(np.isfinite(z_t), emp, np.nan)
    q = np.full(p.size, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        q[ok] = multipletests(p[ok], method="fdr_bh")[1]
    df = pd.DataFrame({"mz": mz, "similarity": obs, "p_value": p, "q_value": q, "p_empirical": emp,
                       "p_normal": p_norm, "z_score": z, "null_mean": mu, "null_sd": sd, "n_pixels": n_pix})
    if names is not None:
        df.insert(1, "feature", [str(n) for n in names])
    df = df.sort_values("similarity", ascending=False, kind="stable", na_position="last").reset_index(drop=True)
    df.insert(list(df.columns).index("q_value") + 1, "rank", np.arange(1, len(df) + 1))
    df.attrs.update(extra, pooled_null_size=int(pool.size))
    return df


def _domain_and_perms(ref: np.ndarray, domain: np.ndarray, null: str, block: int | None, n_permutations: int,
                      seed: Any, median_size: int, quantile: float, preprocess_reference: bool
                      ) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    domain = domain & np.isfinite(ref)
    if not domain.any():
        raise AnalysisError("no pixel is in the analysis domain (pixels with a spectrum, inside the mask, where the "
                            "reference is finite); check the mask and the reference")
    r = np.where(domain, ref, 0.0)
    rp = colocml_preprocess(r[None], domain, median_size=median_size, quantile=quantile)[0] if preprocess_reference \
        else r.astype(np.float32)
    side = min(ref.shape[-2:])
    if block is None and null == "torus":
        # every non-zero shift allowed: the observed position is then one more uniform shift and the test is
        # valid; excluding short shifts (block > 1) keeps near copies of a co-localised pattern out of the null
        # (more power) but makes the p-values optimistic on smooth fields (measured on independent fields,
        # Gaussian-smoothed sigma 4 px on 56 x 56 px: 3.1 % below 0.01 and 6.7 % below 0.05 with the old
        # default of twice the correlation length, 1.0 % and 4.6 % with every shift)
        block = 1
    elif block is None:
        half = correlation_length(rp, domain)
        block = int(np.clip(round(2 * half), 2, max(2, side // 3)))
    if null == "torus":
        perms = torus_shifts(domain, block, n_permutations, seed)
    elif null == "tiles":
        perms = block_permutations(domain, block, n_permutations, seed)
        if n_permutations and not (perms[0] != np.flatnonzero(domain.ravel())).any():
            warnings.warn(f"no {block}x{block} tile lies wholly inside the domain: no permutation is possible, "
                          "p-values are NaN; use a smaller block= or a larger mask", AnalysisWarning, stacklevel=3)
            perms = perms[:0]
    else:
        raise ValueError(f"null must be 'torus' or 'tiles', got {null!r}")
    return domain, rp, int(block), perms


_NULL_CACHE: dict[bytes, tuple[np.ndarray, int, int, _Scorer]] = {}
_NULL_CACHE_BYTES = 64 << 20  # at most this much of shuffled references kept (40,000 pixels x 100 shifts: 16 MB)


def _reference_null(ref: np.ndarray, domain: np.ndarray, null: str, block: int | None, n_permutations: int,
                    seed: Any, median_size: int, quantile: float, preprocess_reference: bool, metric: str
                    ) -> tuple[np.ndarray, int, int, _Scorer]:
    """(domain, block, number of shuffles, scorer) of a reference; kept for the next call with the same reference,
    mask and settings (a study ranks every ion of a map against one reference, one call per ion), up to
    ``_NULL_CACHE_BYTES`` of shuffled references in all."""
    import hashlib

    h = hashlib.blake2b(digest_size=20)
    for part in (np.ascontiguousarray(ref, dtype=np.float64), np.ascontiguousarray(domain, dtype=bool)):
        h.update(repr(part.shape).encode())
        h.update(part.tobytes())
    h.update(repr((null, block, n_permutations, seed, median_size, quantile, preprocess_reference, metric)).encode())
    key = h.digest()
    if key in _NULL_CACHE and not isinstance(seed, np.random.Generator):
        return _NULL_CACHE[key]
    dom, rp, blk, perms = _domain_and_perms(ref, domain, null, block, n_permutations, seed, median_size, quantile,
                                            preprocess_reference)
    out = (dom, blk, int(perms.shape[0]), _Scorer(rp, np.flatnonzero(dom.ravel()), metric, perms))
    size = out[3].rp.nbytes
    if size > _NULL_CACHE_BYTES:  # very large grids are not kept
        return out
    while _NULL_CACHE and sum(v[3].rp.nbytes for v in _NULL_CACHE.values()) + size > _NULL_CACHE_BYTES:
        _NULL_CACHE.pop(next(iter(_NULL_CACHE)))
    _NULL_CACHE[key] = out
    return out


def rank_colocalised(
    dataset: Any,
    reference: Any,
    *,
    features: Any = None,
    tol: float | Sequence[float] = 5.0,
    tol_unit: Literal["ppm", "da"] = "ppm",
    mask: Any = None,
    metric: Literal["cosine", "pearson"] = "cosine",
    median_size: int = 3,
    quantile: float = 0.5,
    preprocess_reference: bool = True,
    n_permutations: int = 100,
    null: Literal["torus", "tiles"] = "torus",
    block: int | None = None,
    alternative: Literal["greater", "two-sided"] = "greater",
    seed: int | None = 0,
    batch_bytes: int = 512 * 2**20,
    transform: Any = None,
) -> pd.DataFrame:
    """Rank every feature of an MSI dataset by spatial similarity to a reference (see the module docstring).

    Parameters
    ----------
    dataset : MSIDataset or xarray.DataArray
        What :func:`multiscale.io.read_imzml` returns (used through ``ion_images`` and ``pixel_mask``), or an
        ion-image stack with a ``c`` dim of m/z (then ``features`` selects channels, default all).
    reference : xarray.DataArray or numpy.ndarray
        An image on the MSI grid: an ion image, a registered PET or fluorescence map, a hypoxia mask...
    features : DataFrame with ``mz``, sequence of m/z, or None
        The features to rank; None: :func:`~multiscale.analysis.msi.features.feature_list` of the dataset.
    tol, tol_unit
        Ion-image window half-width (dataset input).
    mask : image or array, optional
        Region to compare in (e.g. the tissue); default every pixel with a spectrum.
    metric : {"cosine", "pearson"}
        Similarity after preprocessing.
    median_size, quantile, preprocess_reference
        ColocML preprocessing (3, 0.5, also applied to the reference).
    n_permutations, block, alternative, seed
        Block-permutation null (see the module docstring); ``n_permutations=0`` skips significance.
    batch_bytes : int
        Memory for one batch of float32 feature images.
    transform : optional
        If the reference came with a transform: accepted only when the reference is already on the MSI
        grid (resampling belongs to registration; otherwise the error names the call to make).

    Returns
    -------
    pandas.DataFrame
        Sorted by ``similarity`` (descending): ``mz`` (``feature``, the channel name, for a stack),
        ``similarity``, ``p_value``, ``q_value``, ``rank``, ``p_empirical``, ``p_normal``, ``z_score``,
        ``null_mean``, ``null_sd``, ``n_pixels``; ``attrs`` hold the settings (``block``, ``n_permutations``,
        ``null``, ``metric``, ...). A feature whose preprocessed image is empty has NaN similarity and p-values.

    Raises
    ------
    AnalysisError
        Reference on another grid, zero features, empty domain, constant reference.

    Examples
    --------
    >>> ranked = rank_colocalised(ds, ds.ion_image(544.1813), features=feature_list(ds))  # doctest: +SKIP
    >>> ranked.head()                                                                        # doctest: +SKIP
    """
    if metric not in ("cosine", "pearson"):
        raise ValueError(f"metric must be 'cosine' or 'pearson', got {metric!r}")
    if isinstance(dataset, xr.DataArray):
        return rank_images(dataset, reference, features=features, mask=mask, metric=metric, median_size=median_size,
                           quantile=quantile, preprocess_reference=preprocess_reference,
                           n_permutations=n_permutations, null=null, block=block, alternative=alternative, seed=seed,
                           transform=transform)
    if not hasattr(dataset, "ion_images") or not hasattr(dataset, "pixel_mask"):
        raise TypeError("dataset must be an MSIDataset (multiscale.io.read_imzml) or an ion-image stack with a 'c' dim")
    template = dataset.pixel_mask()
    shape = _spatial_shape(template)
    ref = _reference_array(reference, template, shape, "rank_colocalised", transform)
    mz = feature_mz(features, dataset)
    domain = np.asarray(template.values, bool) & _mask_array(mask, template, shape)
    domain, block, n_perm, scorer = _reference_null(ref, domain, null, block, n_permutations, seed, median_size,
                                                   quantile, preprocess_reference, metric)
    dom_idx = np.flatnonzero(domain.ravel())
    n_pix = int(np.prod(shape))
    per = max(1, int(batch_bytes // (4 * n_pix)))  # the extracted batch, preprocessed in place
    per = -(-mz.size // -(-mz.size // per))  # as many passes, of equal size (less fresh memory to touch)
    tol_arr = np.broadcast_to(np.asarray(tol, float), mz.shape)
    obs = np.empty(mz.size)
    nulls = np.empty((mz.size, n_perm))
    # batches of neighbouring m/z: each pass over the file then reads only that span of every spectrum
    by_mz = np.argsort(mz, kind="stable")
    # one batch buffer, reused (no fresh memory per batch), in huge pages where the system allows
    buf = large_buffer(min(per, mz.size) * n_pix, np.float32)
    # several passes: the .ibd stays mapped between them, so its pages are faulted in once, not once per pass
    mapped = dataset.mapped() if (mz.size > per and hasattr(dataset, "mapped")) else contextlib.nullcontext()
    with mapped:
        for s in range(0, mz.size, per):
            sel = by_mz[s : s + per]
            imgs = dataset.ion_images(mz[sel], tol=tol_arr[sel], tol_unit=tol_unit, dtype=np.float32,
                                      out=buf[: sel.size * n_pix])
            sumsq = np.empty(sel.size)
            nnz = np.empty(sel.size, np.int64)
            rows = _preprocess_rows(imgs.values, dom_idx, median_size, quantile, in_place=True, sumsq=sumsq,
                                    nnz=nnz)
            obs[sel], nulls[sel] = scorer(rows, sumsq, nnz)
            del imgs, rows
    return _finish(mz, obs, nulls, dom_idx.size, alternative, {
        "metric": metric, "median_size": median_size, "quantile": quantile, "block": block,
        "n_permutations": n_perm, "null": null, "alternative": alternative, "tol": float(np.max(tol_arr)),
        "tol_unit": tol_unit, "preprocessing": "ColocML: median filter then quantile thresholding"})


def _mask_array(mask: Any, template: Any, shape: tuple[int, ...]) -> np.ndarray:
    if mask is None:
        return np.ones(shape, bool)
    if isinstance(mask, xr.DataArray):
        if isinstance(template, xr.DataArray) and not mi.same_grid(mask, template, rtol=1e-4):
            raise AnalysisError("the mask is on another grid than the MSI data; resample it onto the MSI grid "
                                "(multiscale.registration.resample with interpolation='nearest')")
        m = np.asarray(mask.values)
    else:
        m = np.asarray(mask)
    if m.shape != shape:
        raise AnalysisError(f"the mask has shape {m.shape} but the MSI grid is {shape}")
    return np.nan_to_num(m.astype(float)) > 0


def rank_images(
    images: xr.DataArray,
    reference: Any,
    *,
    features: Any = None,
    mask: Any = None,
    metric: Literal["cosine", "pearson"] = "cosine",
    median_size: int = 3,
    quantile: float = 0.5,
    preprocess_reference: bool = True,
    n_permutations: int = 100,
    null: Literal["torus", "tiles"] = "torus",
    block: int | None = None,
    alternative: Literal["greater", "two-sided"] = "greater",
    seed: int | None = 0,
    transform: Any = None,
) -> pd.DataFrame:
    """:func:`rank_colocalised` for an ion-image stack already in memory (``c`` = m/z or names).

    Examples
    --------
    >>> from multiscale.image import spatial_image
    >>> yy, xx = np.mgrid[:32, :32]
    >>> blob = np.exp(-((yy - 10) ** 2 + (xx - 12) ** 2) / 40.0)
    >>> stack = spatial_image(np.stack([blob, blob[::-1, ::-1]]), spacing=0.05, dims=("c", "y", "x"),
    ...                       channels=[500.0, 600.0])
    >>> rank_images(stack, stack.isel(c=0, drop=True), n_permutations=20)["mz"].tolist()
    [500.0, 600.0]
    """
    if "c" not in images.dims:
        images = images.expand_dims(c=[images.attrs.get("channel", 0)])
    template = images.isel(c=0, drop=True)
    if "t" in template.dims:
        raise AnalysisError("the images have a time dim; select one frame first")
    shape = _spatial_shape(template)
    ref = _reference_array(reference, template, shape, "rank_images", transform)
    coords = images.coords["c"].values
    if features is not None:
        want = feature_mz(features, None)
        num = np.asarray(coords, dtype=float) if np.issubdtype(np.asarray(coords).dtype, np.number) else None
        if num is None and "targets_mz" in images.attrs:
            num = np.array([float(images.attrs["targets_mz"].get(str(c), np.nan)) for c in coords])
        if num is None:
            raise AnalysisError("features= selects m/z channels, but the stack's channels are names without m/z")
        pick = [int(np.nanargmin(np.abs(num - w))) for w in want]
        images = images.isel(c=pick)
        coords = images.coords["c"].values
    domain = _mask_array(mask, template, shape)
    domain, block, n_perm, scorer = _reference_null(ref, domain, null, block, n_permutations, seed, median_size,
                                                   quantile, preprocess_reference, metric)
    dom_idx = np.flatnonzero(domain.ravel())
    data = np.asarray(images.transpose("c", *template.dims).values, dtype=np.float32)
    data = np.nan_to_num(data, nan=0.0)
    sumsq = np.empty(data.shape[0])
    nnz = np.empty(data.shape[0], np.int64)
    obs, nulls = scorer(_preprocess_rows(data, dom_idx, median_size, quantile, sumsq=sumsq, nnz=nnz), sumsq, nnz)
    mzcol = _channel_mz(images, coords)
    return _finish(mzcol, obs, nulls, dom_idx.size, alternative, {
        "metric": metric, "median_size": median_size, "quantile": quantile, "block": block,
        "n_permutations": n_perm, "null": null, "alternative": alternative,
        "preprocessing": "ColocML: median filter then quantile thresholding"}, names=[str(c) for c in coords])


def _channel_mz(images: xr.DataArray, coords: np.ndarray) -> np.ndarray:
    try:
        return np.asarray(coords, dtype=float)
    except (TypeError, ValueError):
        tm = images.attrs.get("targets_mz") or {}
        return np.array([float(tm.get(str(c), np.nan)) for c in coords])


# ---------------------------------------------------------------------------------------------- study family
_UNITS = {"similarity": "1", "p_value": "1", "q_value": "1", "p_normal": "1", "p_empirical": "1", "z_score": "1",
          "null_mean": "1", "null_sd": "1", "n_pixels": "pixels"}


def _family_inputs(image: xr.DataArray, mask: xr.DataArray | None, reference: xr.DataArray | None
                   ) -> tuple[xr.DataArray, Any]:
    """(reference, domain mask): the region mask is the reference when no reference is given."""
    if reference is None:
        if mask is None:
            raise AnalysisError("msi_colocalisation needs a reference (inputs: {reference: <map>}) or a mask")
        return mask.astype(float), None
    return reference, mask


def colocalisation_result(
    image: xr.DataArray,
    mask: xr.DataArray | None = None,
    reference: xr.DataArray | None = None,
    *,
    metric: Literal["cosine", "pearson"] = "cosine",
    n_permutations: int = 100,
    null: Literal["torus", "tiles"] = "torus",
    block: int | None = None,
    median_size: int = 3,
    quantile: float = 0.5,
    seed: int = 0,
) -> FamilyResult:
    """:func:`colocalisation_table`'s rows with the ranking and images its figure draws."""
    ref, domain = _family_inputs(image, mask, reference)
    if "c" in ref.dims:
        ref = ref.isel(c=0, drop=True)
    ranked = rank_images(image, ref, mask=domain, metric=metric, n_permutations=n_permutations, null=null,
                         block=block, median_size=median_size, quantile=quantile, seed=seed)
    multi = "c" in image.dims and image.sizes["c"] > 1
    rows: list[dict[str, Any]] = []
    detail = (f"{metric} after ColocML preprocessing (median {median_size}x{median_size}, quantile {quantile}); "
              + (f"null: {ranked.attrs['n_permutations']} toroidal shifts of at least {ranked.attrs['block']} px"
                 if null == "torus" else f"null: {ranked.attrs['n_permutations']} shuffles of "
                 f"{ranked.attrs['block']} px tiles")
              + ("" if reference is not None else "; reference = the region mask, compared over the whole image"))
    if multi:
        for _, r in ranked.iterrows():
            for m in ("similarity", "p_value", "q_value"):
                rows.append({"metric": m, "value": float(r[m]), "units": "1", "bin": int(r["rank"]),
                             "bin_units": "rank", "channel": str(r["feature"]),
                             "detail": f"{r['feature']} (m/z {float(r['mz']):.4f}); {detail}"})
    else:
        r = ranked.iloc[0]
        for m in ("similarity", "p_value", "p_normal", "z_score", "null_mean", "null_sd", "n_pixels"):
            rows.append({"metric": m, "value": float(r[m]), "units": _UNITS[m],
                         "detail": detail + ("; p_value from this map's shifts alone" if m == "p_value" else "")})
    return FamilyResult(rows=pd.DataFrame(rows), data={"ranked": ranked, "image": image, "reference": ref})


def colocalisation_table(
    image: xr.DataArray,
    mask: xr.DataArray | None = None,
    reference: xr.DataArray | None = None,
    *,
    metric: Literal["cosine", "pearson"] = "cosine",
    n_permutations: int = 100,
    null: Literal["torus", "tiles"] = "torus",
    block: int | None = None,
    median_size: int = 3,
    quantile: float = 0.5,
    seed: int = 0,
) -> pd.DataFrame:
    """Similarity of ion images to a reference with spatially aware significance (``msi_colocalisation``).

    ``image`` is one ion image (the pipeline hands each channel of ``maps: [msi]`` in turn: rows
    ``similarity``, ``p_value`` (from this map's own shifts), ``p_normal``, ``z_score``, ``null_mean``,
    ``null_sd``, ``n_pixels``) or a whole stack with a ``c`` dim (rows ``similarity``, ``p_value``, ``q_value``
    per feature, ``bin`` = its rank, ``detail`` its name and m/z). ``reference`` (optional input role) is the map
    to compare with, on the same grid (``msi:doxorubicin``, ``pet@fluorescence``, a hypoxia map); without it
    the region mask is the reference, compared over the whole image. All values are dimensionless (``1``).

    Examples
    --------
    >>> from multiscale.image import spatial_image
    >>> yy, xx = np.mgrid[:24, :24]
    >>> blob = spatial_image(np.exp(-((yy - 8) ** 2 + (xx - 9) ** 2) / 30.0), spacing=0.05)
    >>> rows = colocalisation_table(blob, None, blob, n_permutations=20)
    >>> round(float(rows.set_index("metric").loc["similarity", "value"]), 6)
    1.0
    """
    return colocalisation_result(image, mask, reference, metric=metric, n_permutations=n_permutations, null=null,
                                 block=block, median_size=median_size, quantile=quantile, seed=seed).rows


def colocalisation_figures(result: Any, title: str = "", labels: Sequence[str] = ()) -> list[tuple[str, Any]]:
    """The top hits beside the reference (a stack), or the map beside its reference (one map)."""
    from .figures import pair_figure, top_hits_figure

    ranked, image, ref = result.data["ranked"], result.data["image"], result.data["reference"]
    if "c" in image.dims and image.sizes["c"] > 1:
        return [("top_hits", top_hits_figure(image, ref, ranked, n=5, title=title))]
    img = image.isel(c=0, drop=True) if "c" in image.dims else image
    return [("pair", pair_figure(img, ref, float(ranked["similarity"].iloc[0]), title=title))]


FAMILY = Family(
    name="msi_colocalisation",
    whole_image=True,
    table=colocalisation_table,
    inputs=("image", "mask"),
    optional=("reference",),
    evaluate_fn=colocalisation_result,
    figure=colocalisation_figures,
    description="MSI: similarity to a reference (ColocML cosine) with toroidal-shift significance and FDR",
)
