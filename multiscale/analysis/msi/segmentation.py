"""Unsupervised segmentation of MSI pixels into tissue regions ("habitats") from their spectra.

Method
------
1. **Features**: the feature images of a dataset (its lazy binned datacube with one bin per feature window,
   read block of rows by block of rows) or an ion-image stack in memory (``c`` = features).
2. **Per pixel**: TIC normalisation over the features (``normalise="tic"``) and a square-root transform
   (``transform="sqrt"``, Poisson variance stabilisation; ``"log1p"`` or ``"none"``).
3. **Components**: PCA of the standardised features (``method="pca"``), exact and streaming: one pass
   accumulates the features' sums and cross-products block by block, the correlation matrix's leading
   eigenvectors are the loadings (the same components as scikit-learn's ``PCA`` on the whole matrix, tested), a
   second pass projects each block; or scikit-learn's ``MiniBatchNMF`` (``method="nmf"``) fitted with
   ``partial_fit`` block by block. Memory: one block of pixels x features, plus the feature values of the
   masked pixels kept for the cluster spectra.
4. **Spatial smoothing** (``smooth_px`` > 0): each component's score image is Gaussian-smoothed within the mask
   (normalised convolution), so that neighbouring pixels agree.
5. **Clusters**: ``KMeans`` (k-means++, ``n_init=4``) on the scores of the masked pixels; labels renumbered
   1..k by decreasing size, 0 outside the mask. Each cluster's mean spectrum (mean raw feature intensity) and
   its marker ions: features ranked by log2 fold change of the cluster's mean over the other pixels' mean.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from multiscale import image as mi
from multiscale.errors import AnalysisError, AnalysisWarning

from ..family import Family, FamilyResult

__all__ = ["Segmentation", "segment", "segment_pixels", "cluster_markers", "segmentation_table", "FAMILY"]


@dataclass
class Segmentation:
    """Result of :func:`segment`.

    Attributes
    ----------
    labels : xarray.DataArray
        Cluster label per pixel (1..k, 0 outside the mask), on the data's grid; a mask image (``aspect="mask"``)
        usable by every other analysis (``labels == k``).
    scores : xarray.DataArray
        Component score images (dim ``c`` = component).
    loadings : pandas.DataFrame
        One row per feature (``mz``), one column per component.
    cluster_spectra : pandas.DataFrame
        Mean raw intensity of every feature (columns ``mz`` and one per cluster ``cluster_k``).
    markers : pandas.DataFrame
        ``cluster``, ``mz``, ``mean_in``, ``mean_out``, ``log2_fold_change``, ``rank`` (top ``n_markers`` each).
    sizes : dict
        Pixels per cluster.
    explained_variance_ratio : list of float
        PCA only.
    """

    labels: xr.DataArray
    scores: xr.DataArray
    loadings: pd.DataFrame
    cluster_spectra: pd.DataFrame
    markers: pd.DataFrame
    sizes: dict[int, int]
    explained_variance_ratio: list[float] = field(default_factory=list)


def _transform(x: np.ndarray, normalise: str, transform: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    x = np.where(np.isfinite(x), np.maximum(x, 0.0), 0.0)
    if normalise == "tic":
        tic = x.sum(axis=1, keepdims=True)
        med = float(np.median(tic[tic > 0])) if np.any(tic > 0) else 1.0
        x = np.divide(x, tic, out=np.zeros_like(x), where=tic > 0) * med
    elif normalise != "none":
        raise ValueError(f"normalise must be 'tic' or 'none', got {normalise!r}")
    if transform == "sqrt":
        return np.sqrt(x)
    if transform == "log1p":
        return np.log1p(x)
    if transform == "none":
        return x
    raise ValueError(f"transform must be 'sqrt', 'log1p' or 'none', got {transform!r}")


def segment_pixels(
    blocks: Any,
    n_features: int,
    *,
    n_clusters: int = 4,
    n_components: int = 8,
    method: Literal["pca", "nmf"] = "pca",
    normalise: Literal["tic", "none"] = "tic",
    transform: Literal["sqrt", "log1p", "none"] = "sqrt",
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, list[float], np.ndarray]:
    """Components of pixels given as a re-iterable of ``(pixel_index, values (n_pix_block, n_features))`` blocks.

    PCA (standardised features) is exact and streaming: one pass accumulates the features' sums and their
    cross-product matrix (float64), the correlation matrix's leading eigenvectors are the loadings (each signed
    so that its largest entry is positive), a second pass projects every block. NMF uses scikit-learn's
    ``MiniBatchNMF.partial_fit`` (three passes), then projects.

    Returns ``(scores (n_pixels_total, k), loadings (n_features, k), explained_variance_ratio, raw values
    (n_pixels_total, n_features))``; rows follow the ascending pixel index of the blocks.
    """
    k = int(max(1, min(n_components, n_features)))
    if method == "pca":
        n = 0
        s1 = np.zeros(n_features)
        s2 = np.zeros((n_features, n_features))
        for _, vals in blocks():
            x = _transform(vals, normalise, transform)
            n += x.shape[0]
            s1 += x.sum(axis=0)
            s2 += x.T @ x
        if n < 2:
            raise AnalysisError(f"only {n} pixels to segment; check the mask")
        mean = s1 / n
        cov = s2 / n - np.outer(mean, mean)
        sd = np.sqrt(np.clip(np.diag(cov), 0, None))
        scale = np.where(sd > 0, sd, 1.0)
        corr = cov / np.outer(scale, scale)
        w, v = np.linalg.eigh(corr)
        order = np.argsort(w)[::-1][:k]
        loadings = v[:, order]
        loadings *= np.where(loadings[np.argmax(np.abs(loadings), axis=0), np.arange(k)] < 0, -1.0, 1.0)
        total = float(np.trace(corr)) or 1.0
        evr = [float(max(x, 0.0) / total) for x in w[order]]

        def tf(x: np.ndarray) -> np.ndarray:
            return ((_transform(x, normalise, transform) - mean) / scale) @ loadings
    elif method == "nmf":
        from sklearn.decomposition import MiniBatchNMF

        model = MiniBatchNMF(n_components=k, random_state=seed, init="nndsvda", max_iter=200)
        for _ in range(3):
            for _, vals in blocks():
                model.partial_fit(_transform(vals, normalise, transform))

        def tf(x: np.ndarray) -> np.ndarray:
            return model.transform(_transform(x, normalise, transform))

        loadings = model.components_.T
        evr = []
    else:
        raise ValueError(f"method must be 'pca' or 'nmf', got {method!r}")
    parts, idx, raw = [], [], []
    for pix, vals in blocks():
        parts.append(tf(vals))
        idx.append(pix)
        raw.append(np.asarray(vals, dtype=np.float64))
    order_px = np.argsort(np.concatenate(idx), kind="stable")
    return np.vstack(parts)[order_px], loadings, evr, np.vstack(raw)[order_px]


def _smooth_scores(scores_img: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    from scipy import ndimage

    if sigma <= 0:
        return scores_img
    sig = (0, sigma, sigma) if mask.ndim == 2 else (0, 0, sigma, sigma)
    w = ndimage.gaussian_filter(mask.astype(float)[None], sig)
    num = ndimage.gaussian_filter(np.where(mask[None], scores_img, 0.0), sig)
    return np.divide(num, w, out=np.zeros_like(num), where=w > 1e-6)


def cluster_markers(values: np.ndarray, labels: np.ndarray, mz: np.ndarray, n_markers: int = 5
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Mean spectrum of each cluster and its marker features: log2((mean in + c) / (mean out + c)), with the
    pseudo-count c a tenth of the median feature's mean intensity.

    ``values`` is ``(n_pixels, n_features)`` raw intensities of the labelled pixels, ``labels`` 1..k.

    Examples
    --------
    >>> v = np.array([[10.0, 1.0], [12.0, 1.0], [1.0, 9.0], [1.0, 11.0]])
    >>> spec, mk = cluster_markers(v, np.array([1, 1, 2, 2]), np.array([100.0, 200.0]), n_markers=1)
    >>> mk[["cluster", "mz"]].values.tolist()
    [[1.0, 100.0], [2.0, 200.0]]
    """
    ks = np.unique(labels[labels > 0])
    spec = pd.DataFrame({"mz": mz})
    rows = []
    overall = values.mean(axis=0)
    # a pseudo-count (a tenth of the median feature's mean) keeps rare noise peaks from topping the list
    eps = 0.1 * float(np.median(overall[overall > 0])) if np.any(overall > 0) else 1e-12
    for k in ks:
        inside = labels == k
        m_in = values[inside].mean(axis=0)
        m_out = values[~inside].mean(axis=0) if (~inside).any() else np.zeros_like(m_in)
        spec[f"cluster_{int(k)}"] = m_in
        lfc = np.log2((m_in + eps) / (m_out + eps))
        top = np.argsort(-lfc, kind="stable")[:n_markers]
        for r, j in enumerate(top, start=1):
            rows.append({"cluster": int(k), "mz": float(mz[j]), "mean_in": float(m_in[j]), "mean_out": float(m_out[j]),
                         "log2_fold_change": float(lfc[j]), "rank": r})
    return spec, pd.DataFrame(rows, columns=["cluster", "mz", "mean_in", "mean_out", "log2_fold_change", "rank"])


def _stack_blocks(data: np.ndarray, dom_idx: np.ndarray, rows: int):
    """Blocks of an in-memory stack ``(n_features, n_pix)``: pixels of the domain, ``rows`` at a time."""
    def gen():
        for s in range(0, dom_idx.size, rows):
            pix = dom_idx[s : s + rows]
            yield pix, data[:, pix].T
    return gen


def _cube_blocks(cube: xr.DataArray, keep_bins: np.ndarray, domain: np.ndarray):
    """Blocks of a lazy datacube (``c`` bins, spatial): each dask block of rows computed once per call."""
    import dask.array as da

    arr = cube.data if isinstance(cube.data, da.Array) else da.from_array(np.asarray(cube.values))
    flat_dom = domain.ravel()
    spatial = arr.shape[1:]
    n_pix = int(np.prod(spatial))
    grid = np.arange(n_pix).reshape(spatial)

    def gen():
        # blocks along the row axis (the datacube is chunked by rows); other axes whole
        axis = len(spatial) - 1  # y is the second to last spatial dim
        ycuts = np.cumsum((0,) + arr.chunks[axis])
        for y0, y1 in zip(ycuts[:-1], ycuts[1:]):
            sl = [slice(None)] * arr.ndim
            sl[axis] = slice(int(y0), int(y1))
            block = np.asarray(arr[tuple(sl)].compute())[keep_bins]
            pix = grid[tuple(sl[1:])].ravel()
            vals = block.reshape(block.shape[0], -1).T
            sel = flat_dom[pix]
            if sel.any():
                yield pix[sel], vals[sel]
    return gen


def segment(
    data: Any,
    *,
    features: Any = None,
    tol: float = 5.0,
    mask: Any = None,
    n_clusters: int = 4,
    n_components: int = 8,
    method: Literal["pca", "nmf"] = "pca",
    normalise: Literal["tic", "none"] = "tic",
    transform: Literal["sqrt", "log1p", "none"] = "sqrt",
    smooth_px: float = 1.0,
    n_markers: int = 5,
    seed: int = 0,
    block_pixels: int = 20_000,
) -> Segmentation:
    """Cluster the pixels of an MSI dataset (or ion-image stack) into regions (see the module docstring).

    Parameters
    ----------
    data : MSIDataset or xarray.DataArray
        A dataset (features read from its lazy ``datacube``, one bin per feature window ``+-tol`` ppm) or a
        stack with a ``c`` dim (one channel per feature).
    features : DataFrame with ``mz``, sequence of m/z, or None
        Dataset: the features (default :func:`~multiscale.analysis.msi.features.feature_list`). Stack: ignored.
    mask : image or array, optional
        Pixels to cluster (default: pixels with a spectrum / all pixels).
    n_clusters, n_components, method, normalise, transform, smooth_px, seed
        See the module docstring.
    n_markers : int
        Marker features reported per cluster.
    block_pixels : int
        Pixels per block of the in-memory stack.

    Returns
    -------
    Segmentation

    Examples
    --------
    >>> from multiscale.image import spatial_image
    >>> rng = np.random.default_rng(0)
    >>> truth = np.zeros((20, 20), int); truth[:, 10:] = 1
    >>> stack = np.stack([5 + 20 * (truth == 0), 5 + 20 * (truth == 1), np.full((20, 20), 10)]) + rng.random((3, 20, 20))
    >>> seg = segment(spatial_image(stack, spacing=0.05, dims=("c", "y", "x"), channels=[100.0, 200.0, 300.0]),
    ...               n_clusters=2, n_components=2)
    >>> sorted(seg.sizes.values())
    [200, 200]
    """
    from sklearn.cluster import KMeans

    if n_clusters < 1:
        raise AnalysisError(f"n_clusters must be >= 1, got {n_clusters}")
    if isinstance(data, xr.DataArray):
        stack = data if "c" in data.dims else data.expand_dims(c=[data.attrs.get("channel", 0)])
        template = stack.isel(c=0, drop=True)
        shape = tuple(template.sizes[d] for d in template.dims)
        domain = _domain(mask, template, shape)
        coords = stack.coords["c"].values
        try:
            mz = np.asarray(coords, dtype=float)
        except (TypeError, ValueError):
            tm = stack.attrs.get("targets_mz") or {}
            mz = np.array([float(tm.get(str(c), np.nan)) for c in coords])
        values = np.asarray(stack.transpose("c", *template.dims).values, dtype=np.float64).reshape(len(coords), -1)
        dom_idx = np.flatnonzero(domain.ravel())
        blocks = _stack_blocks(values, dom_idx, int(block_pixels))
        n_feat = values.shape[0]
        del values
    elif hasattr(data, "datacube") and hasattr(data, "pixel_mask"):
        from .features import feature_mz

        template = data.pixel_mask()
        shape = tuple(template.sizes[d] for d in template.dims)
        domain = _domain(mask, template, shape) & np.asarray(template.values, bool)
        mz = np.sort(feature_mz(features, data))
        lo, hi = mz * (1 - tol * 1e-6), mz * (1 + tol * 1e-6)
        if np.any(lo[1:] <= hi[:-1]):
            raise AnalysisError(f"feature windows of +-{tol} ppm overlap; lower tol= or merge close features")
        edges = np.empty(2 * mz.size)
        edges[0::2], edges[1::2] = lo, hi
        cube = data.datacube(bins=edges)
        keep = np.arange(0, 2 * mz.size - 1, 2)
        blocks = _cube_blocks(cube, keep, domain)
        n_feat = mz.size
        dom_idx = np.flatnonzero(domain.ravel())
    else:
        raise TypeError("data must be an MSIDataset (multiscale.io.read_imzml) or an image stack with a 'c' dim")
    if dom_idx.size < n_clusters:
        raise AnalysisError(f"{dom_idx.size} pixels in the mask for {n_clusters} clusters; check the mask")
    if n_feat == 0:
        raise AnalysisError("zero features to segment on; pass features= or lower feature_list's snr")
    scores, loadings, evr, vals = segment_pixels(blocks, n_feat, n_clusters=n_clusters, n_components=n_components,
                                              method=method, normalise=normalise, transform=transform, seed=seed)
    n_pix = int(np.prod(shape))
    k = scores.shape[1]
    full = np.zeros((k, n_pix))
    full[:, dom_idx] = scores.T  # rows of scores follow the (ascending) domain pixels
    simg = _smooth_scores(full.reshape((k,) + shape), domain, float(smooth_px))
    x = simg.reshape(k, -1)[:, dom_idx].T
    km = KMeans(n_clusters=int(n_clusters), n_init=4, random_state=seed).fit(x)
    raw = km.labels_
    counts = np.bincount(raw, minlength=n_clusters)
    order = np.argsort(-counts, kind="stable")
    relabel = np.empty(n_clusters, dtype=np.int64)
    relabel[order] = np.arange(1, n_clusters + 1)
    lab = np.zeros(n_pix, dtype=np.int32)
    lab[dom_idx] = relabel[raw]
    labels = mi.like(template, lab.reshape(shape), dims=template.dims, units="", aspect="mask",
                     agent=f"{n_clusters} MSI clusters ({method.upper()} + k-means)", name="msi_clusters")
    labels.attrs["label_names"] = {int(i): f"cluster_{i}" for i in range(1, n_clusters + 1)}
    scores_img = xr.DataArray(simg, dims=("c",) + tuple(template.dims),
                              coords={"c": [f"{method}{i + 1}" for i in range(k)],
                                      **{d: template.coords[d] for d in template.dims}},
                              attrs={**{a: template.attrs.get(a) for a in ("direction",) if a in template.attrs},
                                     "units": "a.u.", "agent": f"{method.upper()} scores"}, name="msi_components")
    spectra, markers = cluster_markers(vals, lab[dom_idx], mz, n_markers)
    loading_df = pd.DataFrame(loadings, columns=[f"{method}{i + 1}" for i in range(k)])
    loading_df.insert(0, "mz", mz)
    sizes = {int(i): int((lab == i).sum()) for i in range(1, n_clusters + 1)}
    if min(sizes.values()) == 0:
        warnings.warn("a cluster is empty; lower n_clusters", AnalysisWarning, stacklevel=2)
    return Segmentation(labels, scores_img, loading_df, spectra, markers, sizes, evr)


def _domain(mask: Any, template: xr.DataArray, shape: tuple[int, ...]) -> np.ndarray:
    if mask is None:
        return np.ones(shape, bool)
    if isinstance(mask, xr.DataArray):
        if not mi.same_grid(mask, template, rtol=1e-4):
            raise AnalysisError("the mask is on another grid than the MSI data; resample it onto the MSI grid "
                                "(multiscale.registration.resample with interpolation='nearest')")
        m = np.asarray(mask.values)
    else:
        m = np.asarray(mask)
    if m.shape != shape:
        raise AnalysisError(f"the mask has shape {m.shape} but the MSI grid is {shape}")
    return np.nan_to_num(m.astype(float)) > 0


# ---------------------------------------------------------------------------------------------- study family
def segmentation_result(
    image: xr.DataArray,
    mask: xr.DataArray | None = None,
    *,
    n_clusters: int = 4,
    n_components: int = 8,
    method: Literal["pca", "nmf"] = "pca",
    smooth_px: float = 1.0,
    n_markers: int = 3,
    seed: int = 0,
) -> FamilyResult:
    """:func:`segmentation_table`'s rows, the cluster map (saved as a mask image) and the figure's data."""
    multi = "c" in image.dims and image.sizes["c"] > 1
    if not multi:
        warnings.warn("msi_segmentation got a single map: its pixels are clustered by that map's intensity only; "
                      "spectral segmentation needs the whole ion-image stack (see the family's docstring)",
                      AnalysisWarning, stacklevel=2)
    seg = segment(image, mask=mask, n_clusters=n_clusters, n_components=n_components, method=method,
                  normalise="tic" if multi else "none", transform="sqrt" if multi else "none", smooth_px=smooth_px,
                  n_markers=n_markers, seed=seed)
    px = float(np.prod(mi.spacing(seg.labels)))
    total = sum(seg.sizes.values())
    area_units = "mm2" if seg.labels.ndim == 2 else "mm3"
    rows: list[dict[str, Any]] = []
    for k, n in seg.sizes.items():
        rows.append({"metric": "area_fraction", "value": n / total if total else np.nan, "units": "1", "bin": k,
                     "bin_units": "cluster"})
        rows.append({"metric": "area", "value": n * px, "units": area_units, "bin": k, "bin_units": "cluster"})
        top = seg.markers[seg.markers["cluster"] == k] if multi else seg.markers.iloc[:0]
        for _, m in top.iterrows():
            rows.append({"metric": f"marker_{int(m['rank'])}_mz", "value": float(m["mz"]), "units": "m/z", "bin": k,
                         "bin_units": "cluster", "detail": f"log2 fold change {float(m['log2_fold_change']):.2f}"})
    for i, v in enumerate(seg.explained_variance_ratio, start=1):
        rows.append({"metric": f"explained_variance_{method}{i}", "value": v, "units": "1"})
    return FamilyResult(rows=pd.DataFrame(rows), images={"clusters": seg.labels},
                        data={"labels": seg.labels, "markers": seg.markers})


def segmentation_table(
    image: xr.DataArray,
    mask: xr.DataArray | None = None,
    *,
    n_clusters: int = 4,
    n_components: int = 8,
    method: Literal["pca", "nmf"] = "pca",
    smooth_px: float = 1.0,
    n_markers: int = 3,
    seed: int = 0,
) -> pd.DataFrame:
    """Pixels of the region clustered into regions (``msi_segmentation``): rows per cluster (``bin``).

    With an ion-image stack (``c`` dim) the clusters come from the spectra (TIC, sqrt, PCA/NMF, smoothing,
    k-means; see :func:`segment`); a single map (what the pipeline hands per channel today) is clustered on its
    intensity, with a warning. Rows: ``area_fraction`` (1), ``area`` (mm2), ``marker_<r>_mz`` (m/z; detail the
    log2 fold change) per cluster, and the PCA's ``explained_variance_*``. The cluster map is saved as an image.

    Examples
    --------
    >>> from multiscale.image import spatial_image
    >>> truth = np.zeros((16, 16)); truth[:, 8:] = 1
    >>> st = spatial_image(np.stack([1 + 9 * truth, 10 - 9 * truth]), spacing=0.05, dims=("c", "y", "x"),
    ...                    channels=[100.0, 200.0])
    >>> rows = segmentation_table(st, None, n_clusters=2, n_components=2)
    >>> rows.loc[rows.metric == "area_fraction", "value"].tolist()
    [0.5, 0.5]
    """
    return segmentation_result(image, mask, n_clusters=n_clusters, n_components=n_components, method=method,
                               smooth_px=smooth_px, n_markers=n_markers, seed=seed).rows


def segmentation_figures(result: FamilyResult, title: str = "", labels: Any = ()) -> list[tuple[str, Any]]:
    """The cluster map with each cluster's top marker."""
    from .figures import cluster_map_figure

    return [("clusters", cluster_map_figure(result.data["labels"], result.data["markers"], title=title))]


FAMILY = Family(
    name="msi_segmentation",
    whole_image=True,
    table=segmentation_table,
    inputs=("image", "mask"),
    evaluate_fn=segmentation_result,
    figure=segmentation_figures,
    description="MSI: unsupervised segmentation (PCA/NMF + k-means) into regions with marker ions",
)
