"""Object segmentation: nuclei (smoothing, Otsu, distance-transform watershed), cells, spots (LoG).

Every function takes a spatial image (physical spacing in mm) and sizes in µm, and returns a label
image on the same grid (``int32``, 0 = background, objects numbered 1..n, coordinates kept) or, for
spots, a table. 2-D and 3-D images are both handled (anisotropic voxels honoured).

A deep-learning segmenter is a hook, never a requirement: ``segment_nuclei(method=...)`` accepts
``"cellpose"`` or ``"stardist"`` when that package is installed, or any callable
``segmenter(array, pixel_um) -> labels``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import ndimage as ndi

from multiscale.errors import AnalysisError
from multiscale.image import index_to_world

from ._inputs import UM_PER_MM, as_float, label_image, pick_channel, pixel_um, region_array

__all__ = ["segment_nuclei", "segment_cells", "detect_spots", "spot_spacing_um", "foreground_threshold", "SEGMENTERS"]

#: the named segmentation methods of :func:`segment_nuclei`
SEGMENTERS: tuple[str, ...] = ("classical", "cellpose", "stardist")


def foreground_threshold(values: np.ndarray) -> float:
    """Otsu's threshold of ``values`` (scikit-image), or +inf for a constant set (nothing is foreground).

    Examples
    --------
    >>> import numpy as np
    >>> 0 < foreground_threshold(np.r_[np.zeros(50), np.ones(50)]) < 1
    True
    """
    from skimage.filters import threshold_otsu

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0 or np.ptp(v) == 0:
        return float("inf")
    return float(threshold_otsu(v))


def _sigma_px(sigma_um: float, px_um: np.ndarray) -> np.ndarray:
    return np.asarray(sigma_um, dtype=float) / px_um


def _classical(data: np.ndarray, region: np.ndarray | None, px_um: np.ndarray, sigma_um: float,
               threshold: float | None, diameter_um: float, min_area_um: float | None,
               split: bool) -> np.ndarray:
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    smooth = ndi.gaussian_filter(data, _sigma_px(sigma_um, px_um)) if sigma_um > 0 else data
    inside = smooth[region] if region is not None else smooth
    thr = foreground_threshold(inside) if threshold is None else float(threshold)
    fg = smooth > thr
    if region is not None:
        fg &= region
    fg = ndi.binary_fill_holes(fg)
    voxel = float(np.prod(px_um))
    if min_area_um is None:  # a tenth of a nucleus
        d = diameter_um
        min_area_um = 0.1 * (np.pi / 4 * d * d if data.ndim == 2 else np.pi / 6 * d ** 3)
    cc, n = ndi.label(fg)
    if n == 0:
        return np.zeros(data.shape, np.int32)
    sizes = np.bincount(cc.ravel())
    small = sizes * voxel < min_area_um
    small[0] = False
    if small.any():
        cc[small[cc]] = 0
        fg = cc > 0
        cc, n = ndi.label(fg)
    if n == 0 or not split:
        return cc.astype(np.int32)
    dist = ndi.distance_transform_edt(fg, sampling=px_um)
    # peaks of the distance map at least ~0.3 nucleus diameters apart: two touching nuclei keep two peaks
    # (the neck between them is narrower than either), one nucleus keeps one
    half = np.maximum(1, np.rint(0.3 * diameter_um / px_um).astype(int))   # per axis: anisotropic voxels
    grids = np.meshgrid(*[np.arange(-h, h + 1) / h for h in half], indexing="ij")
    footprint = sum(g ** 2 for g in grids) <= 1.0
    peaks = peak_local_max(dist, footprint=footprint, labels=cc, exclude_border=False)
    markers = np.zeros(data.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1, dtype=np.int32)
    # a component without a peak (a plateau) still gets one marker, at its distance maximum
    has = np.zeros(n + 1, bool)
    has[cc[tuple(peaks.T)]] = True
    missing = np.flatnonzero(~has[1:]) + 1
    if missing.size:
        pos = ndi.maximum_position(dist, cc, missing)
        for k, p in enumerate(pos, start=len(peaks) + 1):
            markers[p] = k
    # markers of one plateau that touch are merged into one seed
    markers, _ = ndi.label(ndi.binary_dilation(markers > 0) & fg)
    labels = watershed(-dist, markers, mask=fg)
    return _sequential(_radical_split(labels, fg, px_um))


def _circle_fit(points: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Least-squares circle (sphere) through points (Kasa): centre, radius and RMS radial residual."""
    a = np.column_stack([points, np.ones(len(points))])
    b = (points ** 2).sum(axis=1)
    sol, *_ = np.linalg.lstsq(a, b, rcond=None)
    centre = sol[:-1] / 2.0
    r2 = float(sol[-1] + centre @ centre)
    if r2 <= 0:
        return centre, float("nan"), float("inf")
    r = float(np.sqrt(r2))
    res = float(np.sqrt(np.mean((np.linalg.norm(points - centre, axis=1) - r) ** 2)))
    return centre, r, res


def _radical_split(labels: np.ndarray, fg: np.ndarray, px_um: np.ndarray, max_residual: float = 0.1) -> np.ndarray:
    """Touching round nuclei re-split along the radical axis of their circles instead of the watershed line.

    The watershed of the distance map splits two overlapping discs of unequal size where their distance
    ridges meet, not along their common chord: the smaller one loses area. Each label's circle (sphere in 3-D)
    is fitted to its outer boundary (the pixels that touch the background, which the split does not bias);
    where both fits are round (RMS residual under ``max_residual`` of the radius), the pixels of the two
    labels go to the lower power distance ``|x - c|^2 - r^2``. For two overlapping circles the equal-power
    line is the line through their intersection points: the common chord. Other pairs keep the watershed.
    """
    n = int(labels.max())
    if n < 2:
        return labels
    ndim = labels.ndim
    # pairs of labels that touch (face neighbours)
    pairs = set()
    for ax in range(ndim):
        a = np.moveaxis(labels, ax, 0)
        u, v = a[:-1].ravel(), a[1:].ravel()
        sel = (u > 0) & (v > 0) & (u != v)
        for x, y in zip(u[sel], v[sel]):
            pairs.add((int(min(x, y)), int(max(x, y))))
    if not pairs:
        return labels
    outer = fg & ~ndi.binary_erosion(fg, border_value=0)  # the foreground's own boundary, not the split lines
    fits: dict[int, tuple[np.ndarray, float, float]] = {}
    slices = ndi.find_objects(labels)
    out = labels.copy()
    for a_id, b_id in sorted(pairs):
        for k in (a_id, b_id):
            if k not in fits:
                sl = slices[k - 1]
                pts = np.argwhere(outer[sl] & (labels[sl] == k)) + np.array([s.start for s in sl])
                fits[k] = _circle_fit(pts * px_um) if len(pts) >= 3 * ndim else (np.zeros(ndim), float("nan"), np.inf)
        (ca, ra, ea), (cb, rb, eb) = fits[a_id], fits[b_id]
        if not (np.isfinite(ra) and np.isfinite(rb) and ea < max_residual * ra and eb < max_residual * rb):
            continue
        both = (out == a_id) | (out == b_id)
        idx = np.argwhere(both)
        x = idx * px_um
        pa = ((x - ca) ** 2).sum(axis=1) - ra * ra
        pb = ((x - cb) ** 2).sum(axis=1) - rb * rb
        out[tuple(idx.T)] = np.where(pa <= pb, a_id, b_id)
    return out


def _sequential(labels: np.ndarray) -> np.ndarray:
    from skimage.segmentation import relabel_sequential

    return relabel_sequential(labels.astype(np.int32, copy=False))[0]


def _deep(method: str | Callable[..., Any], data: np.ndarray, px_um: np.ndarray, diameter_um: float) -> np.ndarray:
    if callable(method):
        out = np.asarray(method(data, tuple(float(p) for p in px_um)))
        if out.shape != data.shape:
            raise AnalysisError(f"the segmenter returned shape {out.shape} for an image of shape {data.shape}")
        return out
    if method == "cellpose":
        try:
            from cellpose import models
        except ImportError as exc:
            raise AnalysisError("method='cellpose' needs the cellpose package (pip install cellpose); or use "
                                "method='classical'") from exc
        model = models.CellposeModel(model_type="nuclei") if hasattr(models, "CellposeModel") else models.Cellpose()
        result = model.eval(data, diameter=diameter_um / float(px_um.mean()), channels=[0, 0])
        return np.asarray(result[0])
    if method == "stardist":
        try:
            from stardist.models import StarDist2D
        except ImportError as exc:
            raise AnalysisError("method='stardist' needs the stardist package (pip install stardist); or use "
                                "method='classical'") from exc
        if data.ndim != 2:
            raise AnalysisError("method='stardist' here uses the pretrained 2-D model; give a 2-D image")
        lo, hi = np.percentile(data, [1, 99.8])
        model = StarDist2D.from_pretrained("2D_versatile_fluo")
        return np.asarray(model.predict_instances((data - lo) / max(hi - lo, 1e-12))[0])
    raise AnalysisError(f"method={method!r}; use one of {SEGMENTERS} or a callable segmenter(array, pixel_um)")


def segment_nuclei(
    image: xr.DataArray,
    *,
    channel: str | None = None,
    mask: xr.DataArray | None = None,
    sigma_um: float = 1.0,
    threshold: float | None = None,
    diameter_um: float = 8.0,
    min_area_um: float | None = None,
    split: bool = True,
    method: str | Callable[..., Any] = "classical",
) -> xr.DataArray:
    """Label image of nuclei (or any bright blobs): smoothing, Otsu threshold, distance-transform watershed.

    Parameters
    ----------
    image : xarray.DataArray
        2-D or 3-D image (numpy or dask), with a ``c`` dim when ``channel`` names one (a DNA or
        Histone H3 channel).
    channel : str, optional
        The channel to segment; an unknown name raises an error that lists the channels.
    mask : xarray.DataArray, optional
        Region on the image grid; nothing outside is foreground, and the threshold is Otsu's of
        the region's smoothed values.
    sigma_um : float
        Gaussian smoothing (µm, per axis converted with the pixel size).
    threshold : float, optional
        Foreground threshold on the smoothed image (default: Otsu's).
    diameter_um : float
        Typical nucleus diameter (µm): peaks of the distance map closer than 0.3 diameters are
        one nucleus; objects smaller than a tenth of a nucleus are dropped (``min_area_um``:
        µm² in 2-D, µm³ in 3-D, overrides it).
    split : bool
        Split touching nuclei by the watershed of the distance transform (False: connected
        components).
    method : {"classical", "cellpose", "stardist"} or callable
        The deep-learning hook: ``"cellpose"``/``"stardist"`` when installed (never required),
        or ``segmenter(array, pixel_um) -> labels``.

    Returns
    -------
    xarray.DataArray
        ``int32`` labels 1..n on the image's grid (coords, spacing and origin kept); 0 is
        background; ``attrs["objects"] = "nuclei"``. An image without objects gives all zeros.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> yy, xx = np.mgrid[:40, :60]
    >>> dna = ((yy - 20) ** 2 + (xx - 15) ** 2 < 64) | ((yy - 20) ** 2 + (xx - 29) ** 2 < 64)
    >>> img = spatial_image(dna * 100.0, spacing=0.001, dims=("y", "x"))   # 1 µm pixels
    >>> labels = segment_nuclei(img, diameter_um=16, sigma_um=0.5)
    >>> int(labels.max()), labels.dtype.name    # two touching nuclei split
    (2, 'int32')
    """
    img = pick_channel(image, channel, "nucleus image")
    px = pixel_um(img)
    data = as_float(img)
    if not np.isfinite(data).all():
        data = np.where(np.isfinite(data), data, np.nanmin(data) if np.isfinite(data).any() else 0.0)
    region = region_array(mask, img)
    if method == "classical":
        labels = _classical(data, region, px, sigma_um, threshold, diameter_um, min_area_um, split)
    else:
        labels = _deep(method, data, px, diameter_um)
        if region is not None:
            labels = np.where(region, labels, 0)
        labels = _sequential(labels)
    return label_image(img, labels, "nuclei")


def segment_cells(
    nuclei: xr.DataArray,
    *,
    expand_um: float = 5.0,
    membrane: xr.DataArray | None = None,
    channel: str | None = None,
    mask: xr.DataArray | None = None,
    sigma_um: float = 1.0,
) -> xr.DataArray:
    """Cell label image from nuclei: expanded by ``expand_um``, or grown by watershed on a membrane channel.

    Parameters
    ----------
    nuclei : xarray.DataArray
        Label image from :func:`segment_nuclei`; each cell keeps its nucleus's label.
    expand_um : float
        Without ``membrane``: every nucleus grows by this distance (µm) without overlapping its
        neighbours (scikit-image ``expand_labels``, physical spacing). With ``membrane``: the
        furthest a cell reaches from its nucleus.
    membrane : xarray.DataArray, optional
        Membrane (or cytoplasm-boundary) image on the same grid: cells are the watershed of its
        smoothed intensity seeded by the nuclei, within ``expand_um`` of a nucleus.
    channel : str, optional
        The membrane channel when ``membrane`` has several.
    mask : xarray.DataArray, optional
        Region: cells are cut to it.
    sigma_um : float
        Smoothing of the membrane image (µm).

    Returns
    -------
    xarray.DataArray
        ``int32`` cell labels (same numbers as the nuclei), ``attrs["objects"] = "cells"``.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> n = np.zeros((20, 20), np.int32); n[5, 5] = 1; n[14, 14] = 2
    >>> nuc = spatial_image(n, spacing=0.001)
    >>> cells = segment_cells(nuc, expand_um=3)
    >>> int((cells.values == 1).sum())     # a disc of radius 3 µm: 29 pixels of 1 µm
    29
    """
    from skimage.segmentation import expand_labels, watershed

    for d in ("t", "c"):
        if d in nuclei.dims:
            raise AnalysisError(f"the nuclei label image has a {d!r} dim; give a single label image")
    lab = np.rint(as_float(nuclei)).astype(np.int32)
    px = pixel_um(nuclei)
    region = region_array(mask, nuclei)
    if membrane is None:
        cells = expand_labels(lab, distance=float(expand_um), spacing=px)
    else:
        mem = pick_channel(membrane, channel, "membrane image")
        if tuple(mem.shape) != lab.shape:
            raise AnalysisError(f"the membrane image's shape {tuple(mem.shape)} differs from the nuclei's {lab.shape}")
        m = as_float(mem)
        if sigma_um > 0:
            m = ndi.gaussian_filter(m, _sigma_px(sigma_um, px))
        reach = ndi.distance_transform_edt(lab == 0, sampling=px) <= float(expand_um)
        cells = watershed(m, lab, mask=reach)
    if region is not None:
        cells = np.where(region, cells, 0)
    return label_image(nuclei, cells.astype(np.int32), "cells")


def detect_spots(
    image: xr.DataArray,
    *,
    channel: str | None = None,
    mask: xr.DataArray | None = None,
    radius_um: tuple[float, float] = (0.5, 3.0),
    num_sigma: int = 6,
    threshold: float | None = None,
    threshold_rel: float | None = 0.1,
) -> pd.DataFrame:
    """Spots (single liposomes, nanoparticles, puncta) by the Laplacian of Gaussian (scikit-image ``blob_log``).

    Parameters
    ----------
    image : xarray.DataArray
        2-D or 3-D image; ``channel`` picks one of several.
    mask : xarray.DataArray, optional
        Only spots whose centre is inside are kept.
    radius_um : (float, float)
        Smallest and largest spot radius (µm); the LoG scales are ``radius / sqrt(ndim)`` per axis
        in pixels.
    num_sigma : int
        Scales tried between the two.
    threshold, threshold_rel : float, optional
        ``blob_log``'s absolute and relative (to the largest response) thresholds.

    Returns
    -------
    pandas.DataFrame
        One row per spot: ``spot``, ``centroid_<dim>_mm``, ``radius_um``, ``peak`` (smoothed-free
        intensity at the centre) and ``sum_disc`` (sum of the image within the radius, in image
        units x voxels). Empty (same columns) when nothing is found.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> yy, xx = np.mgrid[:40, :40]
    >>> img = sum(np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 4.0) for y, x in [(10, 10), (25, 30)])
    >>> spots = detect_spots(spatial_image(img, spacing=0.0005), radius_um=(0.5, 2.0))
    >>> len(spots), spots["radius_um"].round(1).tolist()   # Gaussian sigma 0.71 µm: LoG radius sigma * sqrt(2)
    (2, [1.1, 1.1])
    """
    from skimage.feature import blob_log

    img = pick_channel(image, channel, "spot image")
    px = pixel_um(img)
    data = as_float(img)
    nd = data.ndim
    lo, hi = (float(r) for r in radius_um)
    sig_lo = lo / np.sqrt(nd) / px
    sig_hi = hi / np.sqrt(nd) / px
    from multiscale.image import spatial_dims

    sd = spatial_dims(img)
    cols = ["spot"] + [f"centroid_{d}_mm" for d in sd] + ["radius_um", "peak", "sum_disc"]
    finite = np.isfinite(data)
    if not finite.all():
        data = np.where(finite, data, np.nanmin(data) if finite.any() else 0.0)
    if data.size == 0 or np.ptp(data) == 0:  # a flat frame has no spot (and every voxel would be a LoG peak)
        blobs = np.zeros((0, nd + 1))
    else:
        blobs = blob_log(data, min_sigma=sig_lo, max_sigma=sig_hi, num_sigma=int(num_sigma),
                         threshold=threshold, threshold_rel=threshold_rel, exclude_border=False)
    if blobs.size == 0:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in cols})
    pos = blobs[:, :nd]
    sig = blobs[:, nd:] if blobs.shape[1] > nd + 1 else np.repeat(blobs[:, nd:nd + 1], nd, axis=1)
    radius = (sig * px).mean(axis=1) * np.sqrt(nd)
    idx = np.round(pos).astype(int)
    region = region_array(mask, img)
    keep = np.ones(len(pos), bool) if region is None else region[tuple(idx.T)]
    pos, radius, idx = pos[keep], radius[keep], idx[keep]
    world = index_to_world(img, pos) if len(pos) else np.zeros((0, nd))
    grids = np.indices(data.shape, sparse=True)
    sums = []
    for p, r in zip(pos, radius):
        d2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grids, p, px))
        sums.append(float(data[d2 <= r * r].sum()))
    out = {"spot": np.arange(1, len(pos) + 1)}
    for k, d in enumerate(sd):
        out[f"centroid_{d}_mm"] = world[:, k]
    out["radius_um"] = radius
    out["peak"] = data[tuple(idx.T)] if len(idx) else np.zeros(0)
    out["sum_disc"] = sums
    df = pd.DataFrame(out)
    df.attrs["units"] = {"radius_um": "µm", "peak": img.attrs.get("units", "") or "a.u.",
                         "sum_disc": f"{img.attrs.get('units', '') or 'a.u.'} x voxel"}
    return df.sort_values([f"centroid_{d}_mm" for d in sd]).reset_index(drop=True).assign(
        spot=lambda t: np.arange(1, len(t) + 1))


def spot_spacing_um(spots: pd.DataFrame) -> float:
    """Median nearest-neighbour distance between spots (µm), NaN for fewer than two.

    Examples
    --------
    >>> import pandas as pd
    >>> spot_spacing_um(pd.DataFrame({"centroid_y_mm": [0.0, 0.0, 0.0], "centroid_x_mm": [0.0, 0.01, 0.03]}))
    10.0
    """
    from scipy.spatial import cKDTree

    cols = [c for c in spots.columns if c.startswith("centroid_")]
    pts = spots[cols].to_numpy(float) * UM_PER_MM
    if len(pts) < 2:
        return float("nan")
    d, _ = cKDTree(pts).query(pts, k=2)
    return float(np.median(d[:, 1]))
