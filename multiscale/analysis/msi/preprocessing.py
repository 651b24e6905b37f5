"""Mass-spectrometry imaging: normalisation, hotspot clipping, peak picking on the mean spectrum.

Plain functions over ion images (the image object, dims ``("c", ["z",] "y", "x")``) and numpy
arrays; nothing here reads files (a dataset's per-pixel TIC/RMS/median images come from
``MSIDataset.tic()`` / ``MSIDataset.normalization_image(method)``).

Conventions
-----------
* **Normalisation** divides every ion image by a per-pixel factor and, by default, multiplies by
  the median factor over pixels that have one, so values stay on the scale of counts. Factors:
  ``tic`` = sum of the spectrum, ``rms`` = sqrt(mean(I**2)) over the stored values, ``median`` =
  median of the non-zero intensities, ``reference`` = one ion's image. Pixels whose factor is
  zero, negative or not finite get ``fill_value`` (0).
* **Hotspot clipping** (as METASPACE does): per ion image, values above the 99th percentile of the
  image's positive values are set to that percentile.
* **Peak picking** (:func:`pick_peaks`): local maxima of the mean spectrum whose signal-to-noise
  ratio ``(height - baseline) / noise`` reaches ``snr``, with ``baseline`` = median and ``noise`` =
  1.4826 x MAD (median absolute deviation) of the spectrum's non-zero intensities, a robust
  Gaussian-equivalent noise level; peaks closer than ``min_distance_ppm`` to a taller one are
  dropped; the reported m/z is the intensity-weighted centroid of the contiguous points at or above
  half the apex height (profile data), which is the apex itself for centroided/binned data.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

__all__ = [
    "normalization_factors",
    "normalize",
    "reference_ion_normalize",
    "clip_hotspots",
    "pick_peaks",
    "MAD_TO_SIGMA",
]

#: 1 / Phi^-1(3/4): scales a median absolute deviation to a Gaussian standard deviation
MAD_TO_SIGMA = 1.482602218505602

_METHOD_LABEL = {"tic": "TIC", "rms": "RMS", "median": "median", "reference": "reference-ion", "max": "base-peak"}


def normalization_factors(spectra: Any, method: Literal["tic", "rms", "median", "max"] = "tic", axis: int = -1) -> np.ndarray:
    """Per-spectrum normalisation factors of a dense array of spectra.

    Parameters
    ----------
    spectra : array_like
        Intensities, one spectrum along ``axis`` (e.g. ``(n_pixels, n_mz)``).
    method : {"tic", "rms", "median", "max"}
        ``tic`` sum; ``rms`` sqrt(mean(I**2)); ``median`` median of the non-zero values (0 if none);
        ``max`` the base-peak intensity.

    Returns
    -------
    numpy.ndarray
        One factor per spectrum (``axis`` removed).

    Examples
    --------
    >>> normalization_factors([[1.0, 0.0, 3.0], [2.0, 2.0, 2.0]], "median").tolist()
    [2.0, 2.0]
    >>> normalization_factors([[3.0, 4.0]], "rms").round(6).tolist()
    [3.535534]
    """
    a = np.moveaxis(np.asarray(spectra, dtype=np.float64), axis, -1)
    if method == "tic":
        return a.sum(axis=-1)
    if method == "rms":
        return np.sqrt(np.mean(a * a, axis=-1)) if a.shape[-1] else np.zeros(a.shape[:-1])
    if method == "max":
        return a.max(axis=-1, initial=0.0)
    if method == "median":
        masked = np.where(a != 0, a, np.nan)
        with warnings.catch_warnings():  # all-zero spectra: "All-NaN slice", median 0 below
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(masked, axis=-1)
        return np.nan_to_num(med, nan=0.0)
    raise ValueError(f"method must be 'tic', 'rms', 'median' or 'max', got {method!r}")


def _factor_array(images: xr.DataArray, factor: Any) -> xr.DataArray:
    sdims = [d for d in images.dims if d in ("z", "y", "x")]
    if isinstance(factor, xr.DataArray):
        extra = [d for d in factor.dims if d not in images.dims]
        if extra:
            raise ValueError(f"factor has dims {factor.dims} that the images lack ({extra})")
        for d in factor.dims:
            if factor.sizes[d] != images.sizes[d]:
                raise ValueError(f"factor's {d} size {factor.sizes[d]} differs from the images' {images.sizes[d]}")
        return xr.DataArray(np.asarray(factor.transpose(*[d for d in images.dims if d in factor.dims]).values, dtype=float),
                            dims=[d for d in images.dims if d in factor.dims])
    arr = np.asarray(factor, dtype=float)
    if arr.ndim == 0:
        return xr.DataArray(arr)
    if arr.shape != tuple(images.sizes[d] for d in sdims):
        raise ValueError(f"factor shape {arr.shape} does not match the images' spatial shape {tuple(images.sizes[d] for d in sdims)}")
    return xr.DataArray(arr, dims=sdims)


def normalize(
    images: xr.DataArray,
    factor: Any,
    method: str = "tic",
    scale: Literal["median", "mean"] | float | None = "median",
    fill_value: float = 0.0,
) -> xr.DataArray:
    """Divide ion images by a per-pixel normalisation factor.

    Parameters
    ----------
    images : xarray.DataArray
        Ion images (any dims; the factor broadcasts over ``c``).
    factor : xarray.DataArray or array_like
        Per-pixel factor, e.g. ``MSIDataset.tic()`` or ``MSIDataset.normalization_image("rms")``.
    method : str
        Name of the factor, for ``attrs['units']`` ("tic", "rms", "median", "reference", ...).
    scale : {"median", "mean"}, float or None
        Multiply by the median (default) or mean of the usable factors, by a number, or not at all.
    fill_value : float
        Result where the factor is 0, negative or not finite.

    Returns
    -------
    xarray.DataArray
        Same geometry; ``attrs['units']`` e.g. ``"TIC-normalised counts"``.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> img = spatial_image(np.array([[[2.0, 6.0]]]), spacing=0.02, dims=("c", "y", "x"), channels=[500.0])
    >>> normalize(img, np.array([[1.0, 3.0]]), scale=None).values.tolist()
    [[[2.0, 2.0]]]
    """
    f = _factor_array(images, factor)
    ok = np.isfinite(f.values) & (f.values > 0)
    if scale is None:
        s = 1.0
    elif isinstance(scale, str):
        good = f.values[ok]
        if good.size == 0:
            raise ValueError("no pixel has a positive, finite normalisation factor")
        s = float(np.median(good)) if scale == "median" else float(np.mean(good)) if scale == "mean" else None
        if s is None:
            raise ValueError(f"scale must be 'median', 'mean', a number or None, got {scale!r}")
    else:
        s = float(scale)
    okx = xr.DataArray(ok, dims=f.dims)
    safe = xr.where(okx, f, 1.0)
    out = xr.where(okx, images * (s / safe), fill_value)
    out = out.transpose(*images.dims)
    attrs = dict(images.attrs)
    label = _METHOD_LABEL.get(method, method)
    attrs["units"] = f"{label}-normalised {images.attrs.get('units') or 'counts'}".strip()
    prov = dict(attrs.get("provenance") or {})
    prov.setdefault("steps", [])
    prov = {**prov, "steps": list(prov["steps"]) + [{"operation": "normalize", "method": method, "scale": s}]}
    attrs["provenance"] = prov
    out.attrs = attrs
    out.name = images.name
    return out


def reference_ion_normalize(
    images: xr.DataArray,
    reference: xr.DataArray | float,
    scale: Literal["median", "mean"] | float | None = "median",
    fill_value: float = 0.0,
    rtol: float = 1e-6,
) -> xr.DataArray:
    """Normalise by one ion's image (an internal standard, or a matrix ion).

    ``reference`` is an image with the images' spatial dims, or an m/z value naming a channel of
    ``images`` (matched within ``rtol`` relative).

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> img = spatial_image(np.array([[[2.0, 6.0]], [[1.0, 2.0]]]), spacing=0.02, dims=("c", "y", "x"),
    ...                     channels=[500.0, 600.0])
    >>> reference_ion_normalize(img, 600.0, scale=None).sel(c=500.0).values.tolist()
    [[2.0, 3.0]]
    """
    if not isinstance(reference, xr.DataArray):
        if "c" not in images.dims:
            raise ValueError("a reference m/z needs images with a 'c' dim of m/z values")
        cs = np.asarray(images.coords["c"].values, dtype=float)
        k = int(np.argmin(np.abs(cs - float(reference))))
        if abs(cs[k] - float(reference)) > rtol * float(reference):
            raise ValueError(f"reference m/z {reference} is not among the images' channels {cs.tolist()[:10]}")
        reference = images.isel(c=k, drop=True)
    elif "c" in reference.dims:
        raise ValueError("the reference image must have no 'c' dim; select one channel first")
    return normalize(images, reference, method="reference", scale=scale, fill_value=fill_value)


def clip_hotspots(images: xr.DataArray, percentile: float = 99.0, positive_only: bool = True) -> xr.DataArray:
    """Clip each ion image at a high percentile of its values (hotspot removal).

    Parameters
    ----------
    images : xarray.DataArray
        Ion images; each ``c`` channel is clipped on its own.
    percentile : float
        Percentile (0-100) above which values are clipped; 99 by default.
    positive_only : bool
        Take the percentile over the image's positive values only (METASPACE's rule; zeros
        outside the tissue do not pull it down). NaN pixels are ignored either way.

    Returns
    -------
    xarray.DataArray
        Clipped images; ``attrs['hotspot_threshold']`` holds each channel's threshold.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> img = spatial_image(np.arange(1.0, 101.0).reshape(10, 10), spacing=0.05)
    >>> round(float(clip_hotspots(img, 90).max()), 6)
    90.1
    """
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    data = np.array(images.values, dtype=np.float64)
    has_c = "c" in images.dims
    moved = np.moveaxis(data, images.dims.index("c"), 0) if has_c else data[None]
    flat = moved.reshape(moved.shape[0], -1)  # a view on ``moved``: clipping below edits it in place
    thresholds = []
    for k in range(flat.shape[0]):
        v = flat[k]
        sel = np.isfinite(v) & (v > 0) if positive_only else np.isfinite(v)
        if not sel.any():
            thresholds.append(float("nan"))
            continue
        q = float(np.percentile(v[sel], percentile))
        thresholds.append(q)
        np.minimum(v, q, out=v, where=np.isfinite(v))
    data = np.moveaxis(flat.reshape(moved.shape), 0, images.dims.index("c")) if has_c else flat.reshape(data.shape)
    out = images.copy(data=data)
    out.attrs = dict(images.attrs)
    out.attrs["hotspot_threshold"] = thresholds if has_c else thresholds[0]
    prov = dict(out.attrs.get("provenance") or {})
    prov["steps"] = list(prov.get("steps", [])) + [
        {"operation": "clip_hotspots", "percentile": percentile, "positive_only": positive_only}
    ]
    out.attrs["provenance"] = prov
    return out


def pick_peaks(
    mz: Any,
    intensity: Any,
    snr: float = 3.0,
    min_distance_ppm: float = 10.0,
    centroid: bool = True,
    top_n: int | None = None,
) -> pd.DataFrame:
    """Pick peaks on a (mean) spectrum: local maxima with a robust signal-to-noise ratio >= ``snr``.

    Method (see the module docstring): baseline = median and noise = 1.4826 x MAD of the non-zero
    intensities; a point is a candidate when it is a local maximum (strictly greater than its left
    neighbour, not smaller than its right one) and ``(height - baseline) / noise >= snr``; candidates
    within ``min_distance_ppm`` of a taller one are dropped; the m/z of a peak is the
    intensity-weighted centroid of the contiguous points >= half its height (``centroid=True``)
    or the apex m/z.

    Parameters
    ----------
    mz, intensity : array_like
        The spectrum, m/z ascending (e.g. from ``MSIDataset.mean_spectrum()``).
    snr : float
        Minimum signal-to-noise ratio.
    min_distance_ppm : float
        Minimum distance between reported peaks.
    centroid : bool
        Report the half-height centroid rather than the apex m/z.
    top_n : int, optional
        Keep only the ``top_n`` tallest peaks.

    Returns
    -------
    pandas.DataFrame
        One row per peak, by ascending m/z: ``mz``, ``apex_mz``, ``intensity`` (apex height),
        ``snr``, ``apex_index``. ``attrs`` hold ``baseline`` and ``noise``.

    Examples
    --------
    >>> import numpy as np
    >>> mz = np.linspace(100, 110, 1001)
    >>> spec = 1 + 0.01 * np.sin(mz * 37) + 50 * np.exp(-0.5 * ((mz - 104.2) / 0.02) ** 2)
    >>> peaks = pick_peaks(mz, spec, snr=5)
    >>> [round(v, 3) for v in peaks["mz"]]
    [104.2]
    """
    x = np.asarray(mz, dtype=np.float64)
    y = np.asarray(intensity, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"mz and intensity must be 1-D arrays of equal length, got {x.shape} and {y.shape}")
    if x.size > 1 and np.any(np.diff(x) < 0):
        raise ValueError("mz must be ascending")
    cols = ["mz", "apex_mz", "intensity", "snr", "apex_index"]
    nonzero = y[np.isfinite(y) & (y != 0)]
    if nonzero.size == 0 or x.size < 1:
        df = pd.DataFrame({c: [] for c in cols})
        df.attrs.update(baseline=0.0, noise=0.0)
        return df
    baseline = float(np.median(nonzero))
    noise = float(MAD_TO_SIGMA * np.median(np.abs(nonzero - baseline)))
    if noise <= 0:  # e.g. all non-zero values equal: fall back to the spread around zero
        noise = float(MAD_TO_SIGMA * np.median(np.abs(nonzero))) or 1.0
    left = np.concatenate([[-np.inf], y[:-1]])
    right = np.concatenate([y[1:], [-np.inf]])
    cand = np.flatnonzero((y > left) & (y >= right) & np.isfinite(y))
    s = (y[cand] - baseline) / noise
    keep = s >= snr
    cand, s = cand[keep], s[keep]
    order = np.argsort(-y[cand], kind="stable")
    cand, s = cand[order], s[order]
    chosen: list[int] = []
    chosen_mz = np.empty(0)
    for i, c in enumerate(cand):
        if chosen_mz.size and np.min(np.abs(chosen_mz - x[c])) <= min_distance_ppm * 1e-6 * x[c]:
            continue
        chosen.append(i)
        chosen_mz = np.append(chosen_mz, x[c])
        if top_n is not None and len(chosen) >= top_n:
            break
    cand, s = cand[chosen], s[chosen]
    cmz = x[cand].copy()
    if centroid:
        for k, c in enumerate(cand):
            half = 0.5 * y[c]
            a = c
            while a > 0 and y[a - 1] >= half and y[a - 1] <= y[a]:
                a -= 1
            b = c
            while b < y.size - 1 and y[b + 1] >= half and y[b + 1] <= y[b]:
                b += 1
            w = y[a : b + 1]
            cmz[k] = float(np.sum(w * x[a : b + 1]) / np.sum(w))
    df = pd.DataFrame({"mz": cmz, "apex_mz": x[cand], "intensity": y[cand], "snr": s, "apex_index": cand})
    df = df.sort_values("mz", kind="stable").reset_index(drop=True)
    df.attrs.update(baseline=baseline, noise=noise, snr_threshold=snr, method="median/MAD local maxima")
    return df
