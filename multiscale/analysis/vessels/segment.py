"""Vessel segmentation: multi-scale vesselness with scales in millimetres, a threshold, a clean-up by size.

The vesselness is computed from the eigenvalues of the scale-normalised Hessian **in physical units**:
Gaussian-derivative filters (sigma per axis = ``scale_mm / spacing``) divided by ``spacing_i * spacing_j``
and multiplied by ``scale_mm**2``, so a tube
looks the same whatever the voxel shape. The three responses are scikit-image's formulas
(:func:`skimage.filters.frangi`, :func:`~skimage.filters.sato`, :func:`~skimage.filters.meijering`) on those
eigenvalues; on isotropic unit voxels they equal scikit-image's own filters (tested), except that
nothing is normalised by a whole-image maximum: Frangi's ``gamma`` and Meijering's normalisation are
fixed from the image's intensity range, so a volume cut in chunks gives the same answer as the whole
array. Dask images are filtered chunk by chunk with :func:`dask.array.map_overlap` (depth = the kernels'
reach, 5.7 sigma of the largest scale), so a cleared-tissue volume that does not fit in memory is segmented
piecewise: peak memory is a few float32 copies of one chunk plus the float32 vesselness and the boolean mask.

Functions
---------
vesselness
    The multi-scale vesselness image (and the scale of the best response).
segment_vessels
    Vesselness, threshold (Otsu, hysteresis, or a number), clean-up by size: a vessel mask image.
radius_map
    Local vessel radius (mm) on every vessel voxel: the wall distance at the nearest centreline point.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr
from scipy import ndimage as ndi

from multiscale.errors import AnalysisError, AnalysisWarning
from multiscale.image import like, spacing, spatial_dims

from .._depth import face_distance_mm
from .._masks import is_dask, single_channel, to_numpy

__all__ = ["vesselness", "segment_vessels", "radius_map", "METHODS", "vesselness_array"]

#: vesselness filters (scikit-image's formulas on the physical Hessian)
METHODS = ("frangi", "sato", "meijering")


def _sigmas(scales_mm: Sequence[float] | float, sp: Sequence[float]) -> list[tuple[float, np.ndarray]]:
    scales = np.atleast_1d(np.asarray(scales_mm, dtype=float))
    if scales.size == 0 or not np.all(np.isfinite(scales)) or np.any(scales <= 0):
        raise AnalysisError(f"scales_mm must be positive numbers (mm), got {scales_mm!r}; e.g. scales_mm=[0.01, 0.02]")
    return [(float(s), s / np.asarray(sp, dtype=float)) for s in scales]


def _physical_hessian(image: np.ndarray, scale_mm: float, sigma_vox: np.ndarray, sp: np.ndarray) -> list[np.ndarray]:
    """The elements (upper triangle, row by row) of ``scale_mm**2`` times the Hessian in mm (per intensity unit).

    scikit-image's Gaussian-derivative construction (two successive first-derivative Gaussian filters of
    ``sigma / sqrt(2)``, as :func:`skimage.feature.hessian_matrix` with ``use_gaussian_derivatives=True``) with
    kernels truncated at 4 of those sigmas (scikit-image truncates at 8, and at 100 below one voxel, hundreds of
    times slower; the responses agree within 1e-4 of their maximum, tested). Eigenvalues are then
    :func:`skimage.feature.hessian_matrix_eigvals`.
    """
    sig = tuple(float(v) / np.sqrt(2.0) for v in sigma_vox)
    nd = image.ndim
    orders = [[1 if k == d else 0 for k in range(nd)] for d in range(nd)]
    grads = [ndi.gaussian_filter(image, sig, order=orders[d], mode="nearest", truncate=4.0) for d in range(nd)]
    h = []
    for i in range(nd):
        for j in range(i, nd):
            el = ndi.gaussian_filter(grads[i], sig, order=orders[j], mode="nearest", truncate=4.0)
            el *= np.float32(scale_mm**2 / (sp[i] * sp[j]))
            h.append(el)
        grads[i] = None  # type: ignore[call-overload]  # free as soon as its row is done
    return h


def _response(ev: np.ndarray, method: str, alpha: float, beta: float, gamma: float, rng: float) -> np.ndarray:
    """scikit-image's Frangi / Sato / Meijering response on eigenvalues ``ev`` (decreasing, first axis)."""
    ndim = ev.shape[0]
    if method == "sato":
        lam = ev[:-1]
        return np.prod(np.maximum(lam, 0), 0) ** (1.0 / len(lam))
    if method == "meijering":
        a = 1.0 / (ndim + 1)
        mtx = np.full((ndim, ndim), a, np.float32)
        np.fill_diagonal(mtx, 1.0)
        lam = np.tensordot(mtx, ev, 1)
        vals = np.take_along_axis(lam, np.abs(lam).argmax(0)[None], 0)[0]
        return np.maximum(vals, 0) / rng
    ev = np.take_along_axis(ev, np.abs(ev).argsort(0), 0)
    l1 = ev[0]
    if ndim == 2:
        l2 = np.maximum(ev[1], 1e-10)
        ra2 = np.inf
        rb = np.abs(l1) / l2
    else:
        l2, l3 = np.maximum(ev[1], 1e-10), np.maximum(ev[2], 1e-10)
        ra2 = (l2 / l3) ** 2
        rb = np.abs(l1) / np.sqrt(l2 * l3)
    s2 = (ev**2).sum(0)
    vals = (1.0 - np.exp(-ra2 / (2 * alpha**2))) * np.exp(-(rb**2) / (2 * beta**2))
    return vals * (1.0 - np.exp(-s2 / (2 * gamma**2)))


#: voxels per slab when eigenvalues and responses are computed (bounds their temporaries, ~150 bytes/voxel)
_SLAB_VOXELS = 1 << 20


def vesselness_array(image: np.ndarray, spacing_mm: Sequence[float], scales_mm: Sequence[float] | float,
                     method: str = "frangi", *, bright: bool = True, alpha: float = 0.5, beta: float = 0.5,
                     gamma: float | None = None, return_scale: bool = False) -> Any:
    """Multi-scale vesselness of a numpy array with voxel size ``spacing_mm`` (the maximum over scales).

    ``gamma`` (Frangi's structuredness constant) defaults to a quarter of the image's intensity range;
    Meijering's response is divided by the intensity range (scikit-image divides by each scale's maximum).
    With ``return_scale`` also the scale (mm) of the best response per voxel (NaN where the response is 0).

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:21, :21]
    >>> line = np.exp(-((xx - 10.0) ** 2) / 4.0)  # a bright ridge along y
    >>> v = vesselness_array(line, (1.0, 1.0), [1.5, 2.0])
    >>> bool(v[10, 10] > 10 * v[10, 3])
    True
    """
    if method not in METHODS:
        raise AnalysisError(f"method={method!r} is not a vesselness filter; use one of {METHODS}")
    img = np.asarray(image, dtype=np.float32)
    if img.ndim not in (2, 3):
        raise AnalysisError(f"vesselness needs a 2-D or 3-D image, got {img.ndim}-D; select a plane or a channel first")
    sp = np.asarray(spacing_mm, dtype=float)
    finite = np.isfinite(img)
    if not finite.all():
        img = np.where(finite, img, np.nanmedian(img) if finite.any() else 0.0).astype(np.float32)
    if not bright:
        img = -img
    rng = float(img.max() - img.min()) if img.size else 0.0
    rng = rng if rng > 0 else 1.0
    if gamma is None:
        gamma = 0.25 * rng
    from skimage.feature import hessian_matrix_eigvals

    best = np.zeros(img.shape, np.float32)
    best_scale = np.full(img.shape, np.nan, np.float32) if return_scale else None
    step = max(1, _SLAB_VOXELS // max(1, int(np.prod(img.shape[1:]))))
    for scale_mm, sig in _sigmas(scales_mm, sp):
        h = _physical_hessian(-img, scale_mm, sig, sp)  # bright ridges: negate, as scikit-image does
        for z0 in range(0, img.shape[0], step):  # eigenvalues and responses slab by slab (memory)
            sl = slice(z0, z0 + step)
            ev = hessian_matrix_eigvals([e[sl] for e in h])
            vals = np.asarray(_response(ev, method, alpha, beta, gamma, rng), np.float32)
            if best_scale is not None:
                best_scale[sl][vals > best[sl]] = scale_mm
            np.maximum(best[sl], vals, out=best[sl])
        del h
    return (best, best_scale) if return_scale else best


def _image_grid(image: xr.DataArray, what: str) -> tuple[xr.DataArray, np.ndarray]:
    image = single_channel(image, what)
    sd = spatial_dims(image)
    if len(sd) not in (2, 3):
        raise AnalysisError(f"{what} must be 2-D or 3-D, got spatial dims {sd}")
    return image, np.asarray(spacing(image), dtype=float)


def vesselness(image: xr.DataArray, *, scales_mm: Sequence[float] | float, method: str = "frangi",
               bright: bool = True, gamma: float | None = None, chunks: Any = None) -> xr.DataArray:
    """Multi-scale vesselness (maximum over ``scales_mm``) as an image on the input grid.

    Parameters
    ----------
    image : xarray.DataArray
        One channel, 2-D or 3-D (a vessel stain, dextran, haem ion image, contrast CT/MRI, Doppler power).
        Dask-backed images stay lazy: each chunk is filtered with an overlap of the kernels' reach.
    scales_mm : sequence of float
        Gaussian scales in mm; a tube of radius ``r`` answers best near ``r / sqrt(2)`` (2-D: ``r / 2``).
    method : {"frangi", "sato", "meijering"}
    bright : bool
        Vessels brighter than the background (False for dark vessels, e.g. in transmitted light).
    gamma : float, optional
        Frangi's structuredness constant; a quarter of the image's intensity range when not given.
    chunks : optional
        Rechunk a dask image (or chunk a numpy one) before filtering, e.g. ``(64, 256, 256)``.

    Returns
    -------
    xarray.DataArray
        float32, ``units="1"``, same coords and geometry as ``image``.
    """
    image, sp = _image_grid(image, "image")
    sig_max = max(float(np.max(s[1])) for s in _sigmas(scales_mm, sp))
    if chunks is not None and not is_dask(image):
        image = image.chunk(dict(zip(spatial_dims(image), np.broadcast_to(chunks, (len(sp),)).tolist())))
    elif chunks is not None:
        image = image.chunk(dict(zip(spatial_dims(image), np.broadcast_to(chunks, (len(sp),)).tolist())))
    if is_dask(image):
        import dask.array as da

        data = image.data.astype(np.float32)
        lo, hi = da.compute(data.min(), data.max())
        sig_all = [s[1] for s in _sigmas(scales_mm, sp)]
        # two successive kernels of sigma / sqrt(2), each truncated at 4 of those
        depth = tuple(int(np.ceil(2 * 4 / np.sqrt(2) * max(float(s[k]) for s in sig_all))) + 1
                      for k in range(len(sp)))
        depth = tuple(min(d, max(c) if c else d) for d, c in zip(depth, data.chunks))
        g = 0.25 * float(hi - lo) if gamma is None else gamma
        rng = float(hi - lo) if hi > lo else 1.0

        def block(x: np.ndarray) -> np.ndarray:
            # the intensity range is the whole image's, so chunks agree with the whole array
            return _vessel_block(x, sp, scales_mm, method, bright, g, rng)

        # no padding at the image's edges: each edge block's filters use mode="nearest" there, as the whole array's do
        out = da.map_overlap(block, data, depth=depth, boundary="none", dtype=np.float32)
    else:
        del sig_max
        out = vesselness_array(to_numpy(image), sp, scales_mm, method, bright=bright, gamma=gamma)
    return like(image, out, units="1", aspect="vesselness")


def _vessel_block(x: np.ndarray, sp: np.ndarray, scales_mm: Any, method: str, bright: bool, gamma: float,
                  rng: float) -> np.ndarray:
    """One chunk's vesselness with the whole image's constants (gamma, intensity range)."""
    v = vesselness_array(x, sp, scales_mm, method, bright=bright, gamma=gamma)
    if method == "meijering":
        local = float(x.max() - x.min()) or 1.0
        v = v * (local / rng)
    return v


def _threshold_value(values: Any, threshold: str | float) -> float:
    from skimage.filters import threshold_otsu

    if isinstance(threshold, (int, float)) and not isinstance(threshold, bool):
        return float(threshold)
    if threshold not in ("otsu", "hysteresis"):
        raise AnalysisError(f"threshold={threshold!r}: use 'otsu', 'hysteresis' or a number (vesselness units)")
    if hasattr(values, "dask"):
        import dask.array as da

        top = float(values.max().compute())
        if top <= 0:
            return np.inf
        counts, edges = da.histogram(values, bins=1024, range=(0.0, top))
        counts = counts.compute()
    else:
        top = float(values.max()) if values.size else 0.0
        if top <= 0:
            return np.inf
        counts, edges = np.histogram(values, bins=1024, range=(0.0, top))
    centres = 0.5 * (edges[:-1] + edges[1:])
    # Otsu on the vesselness histogram without its spike at 0 (the background answers exactly 0)
    counts = counts.copy()
    counts[0] = 0
    if counts.sum() == 0:
        return np.inf
    return float(threshold_otsu(hist=(counts, centres)))


def segment_vessels(
    image: xr.DataArray,
    *,
    scales_mm: Sequence[float] | float,
    method: str = "frangi",
    threshold: str | float = "otsu",
    low_fraction: float = 0.5,
    min_size: float | None = None,
    bright: bool = True,
    gamma: float | None = None,
    mask: xr.DataArray | None = None,
    chunks: Any = None,
    grow: bool = False,
) -> xr.DataArray:
    """Vessel mask of an image: multi-scale vesselness, a threshold, clean-up by size.

    Parameters
    ----------
    image : xarray.DataArray
        One channel, 2-D or 3-D; dask images are filtered chunk by chunk (see :func:`vesselness`).
    scales_mm : sequence of float
        Gaussian scales (mm), e.g. ``[r_min / 2, r_max / 2]`` for radii between ``r_min`` and ``r_max``.
    method : {"frangi", "sato", "meijering"}
    threshold : {"otsu", "hysteresis"} or float
        ``otsu``: Otsu's threshold on the non-zero vesselness; ``hysteresis``: voxels above Otsu's
        threshold grown into connected voxels above ``low_fraction`` of it
        (:func:`skimage.filters.apply_hysteresis_threshold`); a number: that vesselness.
    min_size : float, optional
        Connected components smaller than this (mm^3 in 3-D, mm^2 in 2-D) are dropped; by default
        those smaller than a ball (disc) whose radius is the largest scale.
    mask : xarray.DataArray, optional
        Region where vessels are sought (same grid); outside it the result is False.
    grow : bool
        Grow the mask into the connected voxels brighter than half contrast (midway between the median
        intensity of the vesselness mask and that of the rest of the image): connected components of those
        voxels that touch the vesselness mask. Vesselness masks are
        narrower than the vessels and dip at junctions (blob-like there); growing recovers the wall at half
        contrast and reconnects the branches. The image is then read into memory once (as float32).

    Returns
    -------
    xarray.DataArray
        uint8 mask (1 = vessel) on the input grid, ``units=""``; ``attrs["vesselness_threshold"]`` holds
        the threshold used. No vessel found gives an empty mask and an :class:`AnalysisWarning`.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> yy, xx = np.mgrid[:40, :40] * 0.01
    >>> img = spatial_image(np.exp(-((xx - 0.2) ** 2) / (2 * 0.02**2)), spacing=0.01)
    >>> m = segment_vessels(img, scales_mm=[0.02, 0.03])
    >>> int(m.sum(dim="y").max()) == 40, m.attrs["units"]
    (True, '')
    """
    image, sp = _image_grid(image, "image")
    v = vesselness(image, scales_mm=scales_mm, method=method, bright=bright, gamma=gamma, chunks=chunks)
    data = v.data
    lazy = hasattr(data, "dask")
    if lazy:
        data = data.persist()  # computed once: the threshold and the mask both read it
    thr = _threshold_value(data, threshold)
    if lazy:
        data = np.asarray(data.compute())  # float32 vesselness in memory (4 bytes/voxel), the mask below 1
    if threshold == "hysteresis":
        from skimage.filters import apply_hysteresis_threshold

        seg = apply_hysteresis_threshold(data, low_fraction * thr, thr) if np.isfinite(thr) else np.zeros(data.shape, bool)
    else:
        seg = data > thr
    del data
    if grow and seg.any():
        arr = np.asarray(to_numpy(image), np.float32)
        arr = -arr if not bright else arr
        # half contrast: midway between the vessels' median (the vesselness mask) and the background's
        level = 0.5 * (float(np.nanmedian(arr[seg])) + float(np.nanmedian(arr[~seg])))
        bright_vox = arr > level
        lab, _ = ndi.label(bright_vox | seg, structure=np.ones((3,) * seg.ndim))
        seg = np.isin(lab, np.unique(lab[seg])) & (bright_vox | seg)
        del arr, lab
    if mask is not None:
        from .._masks import mask_array

        seg &= mask_array(mask, image, "region mask")
    if min_size is None:
        r = max(s for s, _ in _sigmas(scales_mm, sp))
        min_size = (4.0 / 3.0 * np.pi * r**3) if len(sp) == 3 else np.pi * r**2
    vox = float(np.prod(sp))
    seg = remove_small(seg, int(np.floor(float(min_size) / vox)))
    if not seg.any():
        warnings.warn(f"no vessel found (vesselness threshold {thr:.4g}); the vessel mask is empty",
                      AnalysisWarning, stacklevel=2)
    return like(image, seg.astype(np.uint8), units="", aspect="vessels", vesselness_threshold=float(thr),
                vesselness_method=method, scales_mm=[float(s) for s, _ in _sigmas(scales_mm, sp)])


def remove_small(mask: np.ndarray, min_voxels: int) -> np.ndarray:
    """``mask`` without its connected components (full connectivity) of fewer than ``min_voxels`` voxels.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((5, 5), bool); m[0, 0] = True; m[2:5, 2:5] = True
    >>> int(remove_small(m, 2).sum())
    9
    """
    mask = np.asarray(mask, bool)
    if min_voxels <= 1 or not mask.any():
        return mask
    lab, n = ndi.label(mask, structure=np.ones((3,) * mask.ndim))
    sizes = np.bincount(lab.ravel())
    keep = sizes >= min_voxels
    keep[0] = False
    return keep[lab]


def radius_map(mask: xr.DataArray) -> xr.DataArray:
    """Local vessel radius (mm) on every vessel voxel, NaN elsewhere.

    The radius at a centreline voxel (the skeleton of the mask) is its distance to the vessel wall
    (the nearest outside voxel's face, exact Euclidean in physical spacing); every other vessel voxel
    takes the radius of its nearest centreline voxel.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> yy, xx = np.mgrid[:21, :30]
    >>> tube = spatial_image((np.abs(yy - 10) <= 3).astype(np.uint8), spacing=0.5)  # 7 voxels = 3.5 mm wide
    >>> float(np.nanmedian(radius_map(tube).values))
    1.75
    """
    from skimage.morphology import skeletonize

    mask = single_channel(mask, "vessel mask")
    sp = np.asarray(spacing(mask), dtype=float)
    m = to_numpy(mask) != 0
    out = np.full(m.shape, np.nan)
    if m.any():
        skel = skeletonize(m) & m
        if not skel.any():
            skel = m
        wall = face_distance_mm(m, sp)
        _, idx = ndi.distance_transform_edt(~skel, sampling=sp, return_indices=True)
        r = wall[tuple(idx)]
        out[m] = r[m]
    return like(mask, out, units="mm", aspect="vessel radius")
