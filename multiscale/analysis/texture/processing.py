"""IBSI image processing before texture features: interpolation, intensity rounding, ROI re-interpolation.

IBSI 1 (reference manual, chapter "Image processing", sections *Interpolation* and *Re-segmentation*):

* **interpolation grid** (*align grid centres*): along each axis ``n_b = ceil(n_a s_a / s_b)`` points, the
  first at grid coordinate ``x_b = (n_a - 1 - (s_b / s_a)(n_b - 1)) / 2`` of the original grid, then steps of
  ``s_b / s_a``; both grids share their centre. Intensities beyond the original grid are extrapolated from
  the nearest boundary voxel (padding with boundary intensities, as IBSI recommends);
* **image interpolation**: ``"nearest"``, ``"linear"`` (trilinear, or bilinear in-plane) or ``"cubic"``
  (tricubic spline: :func:`scipy.ndimage.affine_transform` with ``order=3`` on the spline-prefiltered image);
  2-D (in-plane) interpolation keeps the slices: give the slice spacing as None (``(None, 2.0, 2.0)``);
* **intensity rounding** to the nearest integer (CT: Hounsfield units are integers), numpy's ``round``;
* **ROI interpolation**: ``"linear"`` on the 0/1 mask in float64, then the partial-volume threshold
  ``R >= delta`` (``delta = 0.5``); or ``"nearest"``;
* **re-segmentation** (range and outlier filtering) happens afterwards in
  :func:`multiscale.analysis.texture.features` (``resegment_range``, ``outlier_sigma``).

``features(image, mask, resample_spacing=2.0, interpolation="linear", round_intensities=True, ...)`` runs these
steps first; :data:`IBSI_CT_CONFIGURATIONS` holds the settings of the IBSI CT-phantom configurations A-E
(``features(ct, gtv, **IBSI_CT_CONFIGURATIONS["C"])``), as published in the IBSI documentation
(``docs/05_Reference_data_sets.rst`` of theibsi/ibsi-doc).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr
from scipy import ndimage as ndi

from multiscale import image as msi
from multiscale.errors import TextureSettingsError

__all__ = ["interpolation_grid", "interpolate_image", "interpolate_mask", "process_roi", "IBSI_CT_CONFIGURATIONS",
           "INTERPOLATIONS", "refuse_processing"]

#: interpolation name -> spline order
INTERPOLATIONS: dict[str, int] = {"nearest": 0, "linear": 1, "bilinear": 1, "trilinear": 1, "cubic": 3,
                                  "tricubic": 3, "bspline": 3}

#: the IBSI 1 CT-phantom (lung cancer CT, PAT1) processing configurations A-E as ``features`` keyword settings;
#: GLCM/NGTDM/NGLDM distance 1, NGLDM coarseness 0 and zone linkage 1 are the defaults. A and B are 2-D
#: (features aggregated per slice), C-E 3-D.
IBSI_CT_CONFIGURATIONS: dict[str, dict[str, Any]] = {
    "A": {"aggregation": ("2D",), "resegment_range": (-500.0, 400.0), "bin_width": 25.0,
          "ivh_discretisation": "none"},
    "B": {"aggregation": ("2D",), "resample_spacing": (None, 2.0, 2.0), "interpolation": "linear",
          "round_intensities": True, "mask_interpolation": "linear", "partial_volume": 0.5,
          "resegment_range": (-500.0, 400.0), "n_bins": 32, "ivh_discretisation": "none"},
    "C": {"aggregation": ("3D",), "resample_spacing": 2.0, "interpolation": "linear", "round_intensities": True,
          "mask_interpolation": "linear", "partial_volume": 0.5, "resegment_range": (-1000.0, 400.0),
          "bin_width": 25.0, "ivh_discretisation": "fbs", "ivh_bin_width": 2.5},
    "D": {"aggregation": ("3D",), "resample_spacing": 2.0, "interpolation": "linear", "round_intensities": True,
          "mask_interpolation": "linear", "partial_volume": 0.5, "outlier_sigma": 3.0, "n_bins": 32,
          "ivh_discretisation": "none"},
    "E": {"aggregation": ("3D",), "resample_spacing": 2.0, "interpolation": "cubic", "round_intensities": True,
          "mask_interpolation": "linear", "partial_volume": 0.5, "resegment_range": (-1000.0, 400.0),
          "outlier_sigma": 3.0, "n_bins": 32, "ivh_discretisation": "fbn", "ivh_n_bins": 1000,
          "ivh_range": (None, None)},  # "arbitrary intensity units": the IVH ignores the re-segmentation range
}


def _target_spacing(image: xr.DataArray, spacing: Any) -> np.ndarray:
    sp = np.asarray(msi.spacing(image), dtype=float)
    if isinstance(spacing, (int, float)):
        want = np.full(sp.shape, float(spacing))
    else:
        values = list(spacing)
        if len(values) != sp.size:
            raise TextureSettingsError(f"resample_spacing={spacing!r}: give {sp.size} values in "
                                       f"{', '.join(msi.spatial_dims(image))} order (None keeps an axis)")
        want = np.array([sp[k] if v in (None, 0) else float(v) for k, v in enumerate(values)])
    if not np.all(want > 0):
        raise TextureSettingsError(f"resample_spacing={spacing!r}: spacings must be > 0 mm")
    return want


def interpolation_grid(image: xr.DataArray, spacing: float | Sequence[float | None]) -> dict[str, Any]:
    """The IBSI *align grid centres* interpolation grid of ``image`` at ``spacing`` (mm).

    Returns
    -------
    dict
        ``shape`` (n_b per axis), ``spacing`` (mm), ``start`` (grid coordinate of the first new point in the
        original grid), ``step`` (new spacing in original grid units), ``origin`` (world position, mm, of the
        first new voxel centre), ``direction``.

    Examples
    --------
    IBSI's example: 4 points at 3 mm resampled to 2 mm give 6 points starting 0.5 mm before the original origin.

    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> g = interpolation_grid(spatial_image(np.zeros((4, 4)), spacing=3.0), 2.0)
    >>> g["shape"], np.round(g["origin"], 9).tolist(), np.round(g["start"], 9).tolist()
    ((6, 6), [-0.5, -0.5], [-0.166666667, -0.166666667])
    """
    sp = np.asarray(msi.spacing(image), dtype=float)
    want = _target_spacing(image, spacing)
    n_a = np.array(msi.shape(image), dtype=float)
    n_b = np.maximum(np.ceil(n_a * sp / want - 1e-9), 1).astype(int)
    step = want / sp
    start = 0.5 * ((n_a - 1) * sp - want * (n_b - 1)) / sp
    origin = msi.index_to_world(image, start[None, :])[0]
    return {"shape": tuple(int(v) for v in n_b), "spacing": tuple(float(v) for v in want),
            "start": tuple(float(v) for v in start), "step": tuple(float(v) for v in step),
            "origin": tuple(float(v) for v in origin), "direction": np.asarray(msi.direction(image))}


def _resampled(values: np.ndarray, grid: Mapping[str, Any], order: int) -> np.ndarray:
    return ndi.affine_transform(values, np.asarray(grid["step"]), offset=np.asarray(grid["start"]),
                                output_shape=grid["shape"], order=order, mode="nearest",
                                prefilter=order > 1)


def _order(method: str) -> int:
    key = str(method).lower()
    if key not in INTERPOLATIONS:
        raise TextureSettingsError(f"interpolation={method!r}: choose from {', '.join(INTERPOLATIONS)}")
    return INTERPOLATIONS[key]


def _on_grid(image: xr.DataArray, data: np.ndarray, grid: Mapping[str, Any], **attrs: Any) -> xr.DataArray:
    out = msi.spatial_image(data, spacing=grid["spacing"], origin=grid["origin"], direction=grid["direction"],
                            dims=msi.spatial_dims(image))
    out.attrs.update({k: v for k, v in image.attrs.items() if k not in ("direction",)})
    out.attrs.update(attrs)
    return out


def interpolate_image(image: xr.DataArray, spacing: float | Sequence[float | None], method: str = "linear",
                      round_intensities: bool = False) -> xr.DataArray:
    """``image`` interpolated to ``spacing`` (mm) on the IBSI grid (:func:`interpolation_grid`).

    Parameters
    ----------
    image : xarray.DataArray
        2-D or 3-D spatial image.
    spacing : float or sequence
        Isotropic spacing, or one per axis (z, y, x); None (or 0) keeps an axis (2-D in-plane: ``(None, 2, 2)``).
    method : {"nearest", "linear", "cubic"}
        Nearest neighbour, (tri/bi)linear, or cubic spline.
    round_intensities : bool
        Round to the nearest integer afterwards (CT in HU).

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image, spacing
    >>> ramp = spatial_image(np.arange(4.0)[None, None, :].repeat(2, 0).repeat(2, 1), spacing=(1.0, 1.0, 2.0))
    >>> out = interpolate_image(ramp, (None, None, 1.0))
    >>> spacing(out), out.values[0, 0].tolist()
    ((1.0, 1.0, 1.0), [0.0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.0])
    """
    grid = interpolation_grid(image, spacing)
    values = np.asarray(image.values, dtype=np.float64)
    out = _resampled(values, grid, _order(method))
    if round_intensities:
        out = np.round(out)
    return _on_grid(image, out, grid)


def interpolate_mask(mask: Any, image: xr.DataArray, spacing: float | Sequence[float | None],
                     method: str = "linear", partial_volume: float = 0.5, label: int | None = None) -> xr.DataArray:
    """The ROI ``mask`` (on ``image``'s grid) on the IBSI interpolation grid: ``R >= partial_volume`` after
    (tri)linear interpolation of the 0/1 mask, or nearest neighbour.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> img = spatial_image(np.zeros((1, 1, 4)), spacing=(1.0, 1.0, 2.0))
    >>> interpolate_mask(np.array([[[0, 1, 1, 0]]]), img, (None, None, 1.0)).values[0, 0].tolist()
    [0, 0, 1, 1, 1, 1, 0, 0]
    """
    m = mask.values if isinstance(mask, xr.DataArray) else np.asarray(mask)
    if m.shape != tuple(msi.shape(image)):
        raise TextureSettingsError(f"the mask's shape {m.shape} differs from the image's {tuple(msi.shape(image))}")
    binary = (m == label) if label is not None else (m != 0)
    if not 0 < float(partial_volume) <= 1:
        raise TextureSettingsError(f"partial_volume={partial_volume!r} must be in (0, 1], e.g. 0.5")
    grid = interpolation_grid(image, spacing)
    order = _order(method)
    if order > 1:
        raise TextureSettingsError("mask_interpolation: use 'nearest' or 'linear' (IBSI: they give meaningful masks)")
    frac = _resampled(binary.astype(np.float64), grid, order)
    out = (frac >= float(partial_volume) - 1e-9).astype(np.uint8)
    return _on_grid(image, out, grid, aspect="mask", units="")


def process_roi(image: xr.DataArray, mask: Any, settings: Mapping[str, Any]) -> tuple[xr.DataArray, Any]:
    """Image and mask after the IBSI processing that ``settings`` ask for (none when ``resample_spacing`` is None).

    ``settings``: normalised texture settings (``resample_spacing``, ``interpolation``, ``round_intensities``,
    ``mask_interpolation``, ``partial_volume``, ``label``). The mask comes back as a 0/1 image on the new grid
    (``label`` already applied).
    """
    spacing = settings.get("resample_spacing")
    if spacing is None:
        if settings.get("round_intensities"):
            image = image.copy(data=np.round(np.asarray(image.values, dtype=np.float64)))
        return image, mask
    if mask is None:
        mask = np.ones(msi.shape(image), dtype=np.uint8)
    new_mask = interpolate_mask(mask, image, spacing, settings.get("mask_interpolation", "linear"),
                                settings.get("partial_volume", 0.5), settings.get("label"))
    new_image = interpolate_image(image, spacing, settings.get("interpolation", "linear"),
                                  bool(settings.get("round_intensities")))
    return new_image, new_mask


def check_processing(settings: dict[str, Any]) -> None:
    """Validate the processing settings in place (called by ``texture_settings``)."""
    sp = settings.get("resample_spacing")
    if sp is not None:
        values = [sp] if isinstance(sp, (int, float)) else list(sp)
        for v in values:
            if v is not None and not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise TextureSettingsError(f"resample_spacing={sp!r}: spacings in mm (> 0; None keeps an axis)")
        settings["resample_spacing"] = float(sp) if isinstance(sp, (int, float)) else tuple(values)
    _order(settings.get("interpolation", "linear"))
    if _order(settings.get("mask_interpolation", "linear")) > 1:
        raise TextureSettingsError("mask_interpolation: use 'nearest' or 'linear'")
    pv = float(settings.get("partial_volume", 0.5))
    if not 0 < pv <= 1:
        raise TextureSettingsError(f"partial_volume={pv!r} must be in (0, 1], e.g. 0.5")
    settings["partial_volume"] = pv
    settings["round_intensities"] = bool(settings.get("round_intensities"))


def refuse_processing(settings: Mapping[str, Any], where: str) -> None:
    """Raise for settings that only :func:`multiscale.analysis.texture.features` applies (resampling, rounding,
    pyradiomics binning), so ``where`` (feature maps, regional features) never ignores them silently."""
    asked = [k for k in ("resample_spacing",) if settings.get(k) is not None]
    asked += [k for k in ("round_intensities",) if settings.get(k)]
    if settings.get("binning", "ibsi") != "ibsi":
        asked.append("binning")
    if asked:
        raise TextureSettingsError(
            f"{where} does not apply {', '.join(asked)}; interpolate the image and mask first "
            "(multiscale.analysis.texture.processing.interpolate_image / interpolate_mask) or use features()")
