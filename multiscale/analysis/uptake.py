"""Uptake metrics of a PET/SPECT lesion: SUVmax, SUVmean, SUVpeak, MTV, TLG, fractions above thresholds.

SUVpeak follows PERCIST: the highest mean SUV in a sphere of 1 cm^3 (radius
``(3 / (4 pi) * 1000 mm^3)^(1/3) = 6.2035 mm``) whose centre may be anywhere in the lesion. Here:

* candidate centres are the centres of the lesion's voxels (no sub-voxel search);
* a voxel belongs to the sphere when its centre lies within the radius of the sphere's centre
  (distances in mm from the voxel spacing; no partial-voxel weighting at the sphere's edge);
* the sphere takes voxels from the whole image, not only from the mask (a lesion smaller than
  the sphere is averaged with its surroundings, as PERCIST intends); voxels outside the image or NaN
  are left out of the mean.

Only the lesion's bounding box plus the sphere's radius is read, so a dask-backed whole-body volume
is never loaded whole.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import xarray as xr

from multiscale.errors import UnitsWarning
from multiscale.image import as_image, index_to_world, is_spatial_image, voxel_volume
from multiscale.image import spacing as image_spacing

from ._masks import AnalysisError, bounding_slices, check_mask, mask_array, masked_values, to_numpy, warn_nan
from .family import Family, image_units, tidy_rows
from .metrics import Metrics

__all__ = ["uptake_metrics", "uptake_table", "uptake_unit", "suv_peak", "sphere_offsets", "FAMILY"]

#: radius (mm) of a 1 cm^3 sphere
PERCIST_RADIUS_MM = (3.0 * 1000.0 / (4.0 * math.pi)) ** (1.0 / 3.0)


def sphere_offsets(spacing_mm, radius_mm: float) -> np.ndarray:
    """Integer voxel offsets whose centres lie within ``radius_mm`` of the origin (shape ``(K, ndim)``).

    Examples
    --------
    >>> len(sphere_offsets((1.0, 1.0, 1.0), 1.0))  # the centre and its 6 face neighbours
    7
    """
    sp = np.asarray(spacing_mm, dtype=float)
    reach = np.floor(radius_mm / sp + 1e-9).astype(int)
    grids = np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij")
    off = np.stack([g.ravel() for g in grids], axis=-1)
    d2 = ((off * sp) ** 2).sum(axis=1)
    return off[d2 <= radius_mm**2 * (1 + 1e-12)]


def _sphere_kernel(sp: np.ndarray, radius_mm: float) -> np.ndarray:
    off = sphere_offsets(sp, radius_mm)
    reach = np.abs(off).max(axis=0)
    k = np.zeros(tuple(2 * reach + 1))
    k[tuple((off + reach).T)] = 1.0
    return k


def suv_peak(suv_image: xr.DataArray, mask: xr.DataArray, volume_ml: float = 1.0) -> Metrics:
    """PERCIST SUVpeak: the highest mean in a sphere of ``volume_ml`` centred on a lesion voxel.

    Returns
    -------
    Metrics
        ``suv_peak``, ``suv_peak_centre_mm`` (world position, array order ``(z, y, x)``),
        ``suv_peak_radius_mm``, ``suv_peak_n_voxels`` (voxels in the sphere); ``.to_frame()`` is the
        tidy table with units (the centre, a position, stays in the mapping only).

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> v = np.ones((15, 15, 15)); v[7, 7, 7] = 100.0
    >>> m = np.zeros(v.shape, bool); m[5:10, 5:10, 5:10] = True
    >>> r = suv_peak(spatial_image(v, spacing=2.0), spatial_image(m, spacing=2.0))
    >>> r["suv_peak_n_voxels"], round(r["suv_peak"], 4)   # 123 voxel centres within 6.2 mm: 1 + 99 / 123
    (123, 1.8049)
    """
    from scipy import ndimage as ndi
    from scipy.signal import fftconvolve

    suv_image, m = check_mask(suv_image, mask, "SUV image")
    if volume_ml <= 0:
        raise AnalysisError(f"volume_ml must be > 0, got {volume_ml}")
    sp = np.asarray(image_spacing(suv_image))
    radius = (3.0 * volume_ml * 1000.0 / (4.0 * math.pi)) ** (1.0 / 3.0)
    kernel = _sphere_kernel(sp, radius)
    reach = (np.asarray(kernel.shape) - 1) // 2
    box = bounding_slices(m, reach)
    vals = np.asarray(to_numpy(suv_image.data[box]), dtype=np.float64)
    valid = np.isfinite(vals)
    vals = np.where(valid, vals, 0.0)
    mb = m[box]
    if kernel.sum() > 200:
        num = fftconvolve(vals, kernel, mode="same")
        den = np.rint(fftconvolve(valid.astype(float), kernel, mode="same"))
    else:
        num = ndi.correlate(vals, kernel, mode="constant", cval=0.0)
        den = ndi.correlate(valid.astype(float), kernel, mode="constant", cval=0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        local = np.where(den > 0, num / np.maximum(den, 1), np.nan)
    local = np.where(mb, local, np.nan)
    if np.all(np.isnan(local)):
        raise AnalysisError("the SUV image has no finite value around the lesion")
    best = np.unravel_index(int(np.nanargmax(local)), local.shape)
    centre_idx = np.array([best[k] + box[k].start for k in range(len(best))], dtype=float)
    units = image_units(suv_image)
    return Metrics({
        "suv_peak": float(local[best]),
        "suv_peak_centre_mm": tuple(float(v) for v in index_to_world(suv_image, centre_idx)),
        "suv_peak_radius_mm": float(radius),
        "suv_peak_n_voxels": int(kernel.sum()),
    }, lambda k: uptake_unit(k, units))


def _fmt(v: float) -> str:
    return f"{v:g}"


def uptake_metrics(
    suv_image: xr.DataArray,
    mask: xr.DataArray,
    *,
    suv_thresholds: tuple[float, ...] = (2.5,),
    percent_of_max: tuple[float, ...] = (41.0, 50.0),
    reference_mask: xr.DataArray | None = None,
    reference_factor: float = 1.0,
    reference_sd: float = 0.0,
    fraction_above: tuple[float, ...] = (),
    peak_volume_ml: float = 1.0,
    body_weight_g: float | None = None,
    injected_dose_bq: float | None = None,
    spacing: Any = None,
) -> Metrics:
    """Uptake metrics of a lesion on an SUV (or activity-concentration) volume.

    Parameters
    ----------
    suv_image : xarray.DataArray or numpy.ndarray
        3-D SUV map (numpy or dask). NaN voxels are ignored with a warning. An image whose
        ``units`` are not SUV (``SUVbw``, ``SUVlbm``, ..., ``g/ml``; ``Bq/ml`` with
        ``injected_dose_bq``) gives a :class:`~multiscale.errors.UnitsWarning`: the ``suv_*`` keys are
        then in the image's units and SUV thresholds mean nothing. A plain array needs ``spacing=``
        and is taken as SUV.
    mask : xarray.DataArray
        The lesion, on the same grid.
    suv_thresholds : tuple of float
        Fixed SUV thresholds for MTV/TLG (``mtv_suv2.5_ml``, ``tlg_suv2.5``). Voxels >= threshold.
    percent_of_max : tuple of float
        Thresholds as % of SUVmax (``mtv_41pct_ml``, ``tlg_41pct``). Voxels >= p/100 x SUVmax.
    reference_mask : xarray.DataArray, optional
        Reference region (blood pool, liver, muscle) on the same grid: threshold =
        ``reference_factor * mean + reference_sd * SD`` (PERCIST's liver threshold is 1.5 x mean +
        2 x SD); gives ``mtv_reference_ml``, ``tlg_reference``, ``fraction_above_reference``.
    fraction_above : tuple of float
        SUV values: the fraction of the lesion's voxels above each (``fraction_above_<t>``).
    peak_volume_ml : float
        Volume of the SUVpeak sphere (PERCIST: 1 ml).
    body_weight_g : float, optional
        For an SUVbw image: %ID/g = 100 x SUV / body weight (g) (keys ``pidg_mean``, ``pidg_max``,
        ``pidg_peak``).
    injected_dose_bq : float, optional
        For an activity-concentration image in Bq/ml: %ID/g = 100 x C / dose (tissue at 1 g/ml).
    spacing : float or sequence of float, optional
        Voxel spacing in mm (z, y, x) when ``suv_image`` is a plain array (its units are then ``SUV``).

    Returns
    -------
    Metrics
        A dict (``.to_frame()``: the tidy table with units, as the study's rows): ``suv_max``, ``suv_mean``, ``suv_sd``, ``suv_median``, ``suv_min``, ``n_voxels``,
        ``volume_ml``, the SUVpeak keys (see :func:`suv_peak`), the MTV (ml) and TLG (ml x SUV)
        for every threshold, the fractions, the reference keys and %ID/g when calibrated.
        A threshold that no voxel reaches gives MTV 0 and TLG 0.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> v = np.full((10, 10, 10), 3.0); v[2:5, 2:5, 2:5] = 8.0
    >>> m = np.zeros(v.shape, bool); m[1:9, 1:9, 1:9] = True
    >>> u = uptake_metrics(spatial_image(v, spacing=2.0, units="SUVbw"), spatial_image(m, spacing=2.0),
    ...                    suv_thresholds=(5,))
    >>> u["suv_max"], u["mtv_suv5_ml"], u["tlg_suv5"]   # 27 voxels of 8 mm^3 at SUV 8
    (8.0, 0.216, 1.728)
    """
    if not is_spatial_image(suv_image):
        suv_image = as_image(suv_image, spacing=spacing, units="SUV")
    if not is_spatial_image(mask):  # a plain mask on the image's grid
        mask = as_image(mask, like=suv_image)
    _check_suv_units(suv_image, injected_dose_bq)
    suv_image, m = check_mask(suv_image, mask, "SUV image")
    if len(image_spacing(suv_image)) != 3:
        raise AnalysisError("uptake metrics need a 3-D (z, y, x) volume; got a 2-D image")
    if body_weight_g is not None and injected_dose_bq is not None:
        raise AnalysisError("give body_weight_g (SUV image) or injected_dose_bq (Bq/ml image), not both")
    vals, _ = masked_values(suv_image, m, "SUV image")
    vml = voxel_volume(suv_image) / 1000.0
    out: dict[str, Any] = {
        "suv_max": float(vals.max()),
        "suv_mean": float(vals.mean()),
        "suv_sd": float(vals.std(ddof=1)) if vals.size > 1 else float("nan"),
        "suv_median": float(np.median(vals)),
        "suv_min": float(vals.min()),
        "n_voxels": int(vals.size),
        "volume_ml": float(m.sum() * vml),
    }
    out.update(suv_peak(suv_image, mask, peak_volume_ml))

    def mtv_tlg(thr: float) -> tuple[float, float]:
        sel = vals >= thr
        mtv = float(sel.sum() * vml)
        return mtv, float(mtv * vals[sel].mean()) if sel.any() else 0.0

    for t in suv_thresholds:
        out[f"mtv_suv{_fmt(t)}_ml"], out[f"tlg_suv{_fmt(t)}"] = mtv_tlg(float(t))
    for p in percent_of_max:
        if not 0 < p <= 100:
            raise AnalysisError(f"percent_of_max values must be in (0, 100], got {p}")
        out[f"mtv_{_fmt(p)}pct_ml"], out[f"tlg_{_fmt(p)}pct"] = mtv_tlg(p / 100.0 * out["suv_max"])
    for t in fraction_above:
        out[f"fraction_above_{_fmt(t)}"] = float((vals > t).mean())
    if reference_mask is not None:
        ref = mask_array(reference_mask, suv_image, "reference mask")
        rv, _ = masked_values(suv_image, ref, "SUV image (reference region)")
        rmean = float(rv.mean())
        rsd = float(rv.std(ddof=1)) if rv.size > 1 else 0.0
        thr = reference_factor * rmean + reference_sd * rsd
        out.update(reference_mean=rmean, reference_sd=rsd, reference_threshold=thr)
        out["mtv_reference_ml"], out["tlg_reference"] = mtv_tlg(thr)
        out["fraction_above_reference"] = float((vals > thr).mean())
        out["tumour_to_reference_ratio"] = out["suv_mean"] / rmean if rmean != 0 else warn_nan(
            "reference mean is 0; tumour-to-reference ratio is NaN")
    scale = None
    if body_weight_g is not None:
        if body_weight_g <= 0:
            raise AnalysisError(f"body_weight_g must be > 0 g, got {body_weight_g}")
        scale = 100.0 / body_weight_g
    elif injected_dose_bq is not None:
        if injected_dose_bq <= 0:
            raise AnalysisError(f"injected_dose_bq must be > 0 Bq, got {injected_dose_bq}")
        scale = 100.0 / injected_dose_bq
    if scale is not None:
        out.update(pidg_mean=out["suv_mean"] * scale, pidg_max=out["suv_max"] * scale,
                   pidg_peak=out["suv_peak"] * scale)
    out["units"] = suv_image.attrs.get("units", "")
    units = image_units(suv_image)
    return Metrics(out, lambda k: uptake_unit(k, units))


#: units that are SUV (or equal to it: g/ml is DICOM's GML)
SUV_UNITS = ("suv", "g/ml", "gml", "g/ml (suv)")


def _check_suv_units(image: xr.DataArray, injected_dose_bq: float | None) -> None:
    """Warn (:class:`UnitsWarning`) when ``image`` is not in SUV (nor Bq/ml with a dose given)."""
    units = str(image.attrs.get("units", "") or "")
    key = units.strip().lower().replace(" ", "")
    if key.startswith("suv") or key in SUV_UNITS:
        return
    if injected_dose_bq is not None and key in ("bq/ml", "bqml", "bq/cc", "kbq/ml", "mbq/ml"):
        return
    shown = repr(units) if units else "none"
    warnings.warn(
        f"uptake_metrics: the image's units are {shown}, not SUV: suv_* values are in these units and the SUV "
        "thresholds (e.g. 2.5) mean nothing; convert PET to SUV first (multiscale.io.load(..., suv=True) for "
        "DICOM, or set attrs['units'] = 'SUVbw' when the values already are SUV)",
        UnitsWarning, stacklevel=3)


def uptake_unit(metric: str, units: str) -> str:
    """The unit of an :func:`uptake_metrics` key on an image in ``units``.

    SUV statistics and reference levels carry the image's units; volumes are mL, TLG is
    ``<units>*mL``, counts are voxels, fractions and ratios are 1, %ID/g is ``%ID/g``.

    Examples
    --------
    >>> uptake_unit("tlg_41pct", "SUVbw"), uptake_unit("mtv_suv2.5_ml", "SUVbw"), uptake_unit("suv_peak", "SUVbw")
    ('SUVbw*mL', 'mL', 'SUVbw')
    """
    k = metric.lower()
    if k.endswith("_ml"):
        return "mL"
    if k.endswith("_mm"):
        return "mm"
    if k.endswith("n_voxels"):
        return "voxels"
    if k.startswith("tlg"):
        return f"{units}*mL" if units else "mL"
    if k.startswith("fraction") or k.endswith("_ratio"):
        return "1"
    if k.startswith("pidg"):
        return "%ID/g"
    if k.startswith(("suv", "sul", "reference_")):
        return units or "1"
    raise KeyError(f"uptake: no unit defined for metric {metric!r}")


def uptake_table(
    image: xr.DataArray,
    mask: xr.DataArray,
    reference: xr.DataArray | None = None,
    *,
    suv_thresholds: tuple[float, ...] = (2.5,),
    percent_of_max: tuple[float, ...] = (41.0, 50.0),
    reference_factor: float = 1.0,
    reference_sd: float = 0.0,
    fraction_above: tuple[float, ...] = (),
    peak_volume_ml: float = 1.0,
    body_weight_g: float | None = None,
    injected_dose_bq: float | None = None,
) -> list[dict[str, Any]]:
    """:func:`uptake_metrics` as tidy rows (``metric``, ``value``, ``units``); the study's ``uptake``.

    ``reference`` is the reference region's mask (the ``reference_mask`` of :func:`uptake_metrics`).

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> v = spatial_image(np.full((6, 6, 6), 3.0), spacing=2.0, units="SUVbw")
    >>> m = spatial_image(np.ones((6, 6, 6), bool), spacing=2.0)
    >>> rows = uptake_table(v, m, peak_volume_ml=0.01)
    >>> [(r["metric"], r["units"]) for r in rows if r["metric"] in ("suv_max", "tlg_41pct")]
    [('suv_max', 'SUVbw'), ('tlg_41pct', 'SUVbw*mL')]
    """
    res = uptake_metrics(image, mask, suv_thresholds=tuple(suv_thresholds), percent_of_max=tuple(percent_of_max),
                         reference_mask=reference, reference_factor=reference_factor, reference_sd=reference_sd,
                         fraction_above=tuple(fraction_above), peak_volume_ml=peak_volume_ml,
                         body_weight_g=body_weight_g, injected_dose_bq=injected_dose_bq)
    units = image_units(image)
    return tidy_rows(res, lambda k: uptake_unit(k, units))


FAMILY = Family(
    name="uptake",
    table=uptake_table,
    inputs=("image", "mask"),
    optional=("reference",),
    description="SUVmax/mean/peak (PERCIST sphere), MTV and TLG by fixed, %max and reference thresholds, %ID/g",
)
