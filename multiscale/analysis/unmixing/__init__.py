"""Spectral unmixing of multi-wavelength images (optoacoustics, multispectral optical imaging) and blood oxygenation.

* :func:`unmix`: per-pixel non-negative least squares against endmember spectra (haemoglobin shipped from
  Prahl's tabulation, any user absorber), returning one concentration map per endmember plus a residual map;
  lazy on dask stacks.
* :func:`so2`, :func:`total_haemoglobin`, :func:`deoxy_fraction`, :func:`oxygenation_metrics` (with the
  fraction of a region below an sO2 threshold).
* :func:`ratiometric_map` with a :func:`calibration_curve` (e.g. pH from two probes).

The study family ``unmixing`` takes the whole multi-wavelength image as ``image`` (wavelengths as ``c`` coords)
and reports the mean concentrations, residual and, with both haemoglobins, the oxygenation metrics; it saves
the concentration maps and the sO2 map and draws them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from multiscale.errors import AnalysisError

from .._masks import mask_array, to_numpy
from ..family import Family, FamilyResult, image_units, tidy_rows
from ..figures import image_panel, new_figure
from .linear import unmix, wavelengths_of
from .nnls import nnls_columns
from .oxygenation import deoxy_fraction, oxygenation_metrics, so2, total_haemoglobin
from .ratiometric import calibration_curve, ratiometric_map
from .spectra import haemoglobin_spectra, shipped_spectrum, spectra_matrix, tabulated

__all__ = [
    "unmix",
    "so2",
    "total_haemoglobin",
    "deoxy_fraction",
    "oxygenation_metrics",
    "ratiometric_map",
    "calibration_curve",
    "haemoglobin_spectra",
    "shipped_spectrum",
    "tabulated",
    "spectra_matrix",
    "nnls_columns",
    "wavelengths_of",
    "unmixing_result",
    "unmixing_table",
    "oxygenation_figure",
    "FAMILY",
]


def _endmembers(endmembers: Sequence[str] | None, spectra: Mapping[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {str(n): None for n in (endmembers if endmembers is not None else ("HbO2", "Hb"))}
    for name, spec in (spectra or {}).items():
        out[str(name)] = spec
    return out


def unmixing_result(image: xr.DataArray, mask: xr.DataArray | None = None, *,
                    endmembers: Sequence[str] | None = None,
                    spectra: Mapping[str, Any] | None = None, wavelengths: Sequence[float] | None = None,
                    so2_threshold: float = 0.4, min_total: float = 0.0) -> FamilyResult:
    """Unmix ``image`` and summarise it in ``mask``: rows, the concentration and sO2 maps (the family's evaluate).

    Rows: ``mean_<endmember>`` (the concentrations' units, ``a.u.`` for optoacoustic signal against extinction
    coefficients), ``residual_rms_mean`` (the image's units), ``residual_relative`` (mean residual over the
    mean RMS signal, 1) and, when both ``HbO2`` and ``Hb`` are endmembers, :func:`oxygenation_metrics`.
    """
    if isinstance(image, xr.DataArray) and "c" not in image.dims and wavelengths is None:
        got = f" (channel {image.coords['c'].item()!r})" if "c" in image.coords else ""
        raise AnalysisError(
            f"unmixing needs the whole multi-wavelength image (wavelengths as 'c' coords); it got a single channel"
            f"{got}. Pass the stack itself (in a study: maps: [oa], with a pipeline that passes whole images to "
            "this family), or give wavelengths= for a one-channel image")
    members = _endmembers(endmembers, spectra)
    u = unmix(image, members, wavelengths=wavelengths)
    names = list(u.attrs["endmembers"])
    conc = u.sel(c=names)
    m = mask_array(mask, u.isel(c=0, drop=True), "mask")
    values = np.asarray(to_numpy(u), dtype=float)
    sel = values[:, m]
    finite = np.isfinite(sel).all(axis=0)
    res: dict[str, Any] = {f"mean_{n}": float(sel[k, finite].mean()) if finite.any() else float("nan")
                           for k, n in enumerate(names)}
    img = image if "c" in image.dims else image.expand_dims(c=[0])
    signal = np.asarray(to_numpy(img), dtype=float).reshape(img.sizes["c"], -1)[:, m.reshape(-1)]
    rms = np.sqrt(np.nanmean(signal**2, axis=0))
    res["residual_rms_mean"] = float(sel[-1, finite].mean()) if finite.any() else float("nan")
    res["residual_relative"] = (res["residual_rms_mean"] / float(np.nanmean(rms))
                                if np.nanmean(rms) > 0 else float("nan"))
    images: dict[str, xr.DataArray] = {"concentration": conc, "residual": u.sel(c="residual", drop=True)}
    if {"HbO2", "Hb"} <= set(names):
        res.update(oxygenation_metrics(u, mask, so2_threshold=so2_threshold, min_total=min_total))
        images["sO2"] = so2(u, min_total=min_total)
        images["total_haemoglobin"] = total_haemoglobin(u)
    cu, iu = str(u.attrs.get("units") or "a.u."), image_units(image)

    def unit(metric: str) -> str:
        if metric.startswith(("so2", "fraction", "deoxy")) or metric == "residual_relative":
            return "1"
        if metric == "n_pixels":
            return "pixels"
        if metric == "residual_rms_mean":
            return iu
        return cu

    rows = tidy_rows(res, unit, detail=f"NNLS on {len(u.attrs['wavelengths_nm'])} wavelengths "
                                       f"{'/'.join(f'{w:g}' for w in u.attrs['wavelengths_nm'])} nm")
    return FamilyResult(rows=rows, images=images)


def unmixing_table(image: xr.DataArray, mask: xr.DataArray | None = None, *,
                   endmembers: list[str] | None = None, spectra: dict | None = None,
                   wavelengths: list[float] | None = None, so2_threshold: float = 0.4,
                   min_total: float = 0.0) -> list[dict[str, Any]]:
    """The study's ``unmixing``: mean concentrations, residual and oxygenation of a multi-wavelength image in a region.

    Parameters
    ----------
    image : xarray.DataArray
        The multi-wavelength image (wavelengths in nm as ``c`` coords).
    mask : xarray.DataArray, optional
        The region.
    endmembers : list of str, optional
        Shipped spectra to unmix (default ``["HbO2", "Hb"]``).
    spectra : dict, optional
        More endmembers, each ``name: {wavelength_nm: value}`` (e.g. ICG's extinction at the image's wavelengths).
    wavelengths : list of float, optional
        The channels' wavelengths when the ``c`` coords do not say.
    so2_threshold : float
        The hypoxic threshold: ``fraction_below_so2_<t>`` is the share of blood pixels with sO2 below it.
    min_total : float
        Pixels with total haemoglobin <= this have no sO2.

    Examples
    --------
    >>> from multiscale.image import spatial_image
    >>> _, A = spectra_matrix(["HbO2", "Hb"], np.array([700.0, 800.0, 900.0]))
    >>> img = spatial_image(np.einsum("lk,kyx->lyx", A, np.ones((2, 3, 3))), spacing=0.1, dims=("c", "y", "x"),
    ...                     channels=[700, 800, 900])
    >>> rows = {r["metric"]: r for r in unmixing_table(img)}
    >>> round(rows["so2_mean"]["value"], 6), rows["so2_mean"]["units"]
    (0.5, '1')
    """
    return unmixing_result(image, mask, endmembers=endmembers, spectra=spectra, wavelengths=wavelengths,
                           so2_threshold=so2_threshold, min_total=min_total).rows


def _extent(layer: xr.DataArray) -> list[float]:
    ys = np.asarray(layer.coords[layer.dims[-2]].values, dtype=float)
    xs = np.asarray(layer.coords[layer.dims[-1]].values, dtype=float)
    dy = abs(ys[1] - ys[0]) if ys.size > 1 else 1.0
    dx = abs(xs[1] - xs[0]) if xs.size > 1 else 1.0
    return [xs[0] - dx / 2, xs[-1] + dx / 2, ys[-1] + dy / 2, ys[0] - dy / 2]


def _plane(layer: xr.DataArray) -> tuple[np.ndarray, xr.DataArray]:
    a = np.asarray(to_numpy(layer), dtype=float)
    if a.ndim == 3:
        counts = np.isfinite(a).sum(axis=(1, 2))
        k = int(np.argmax(counts))
        return a[k], layer.isel({layer.dims[0]: k})
    return a, layer


def oxygenation_figure(so2_map: xr.DataArray, total: xr.DataArray | None = None, title: str = "") -> Any:
    """The sO2 map (0-1, blue hypoxic to red oxygenated) and the total haemoglobin beside it, in mm.

    Examples
    --------
    >>> from multiscale.image import spatial_image
    >>> s = spatial_image(np.linspace(0, 1, 16).reshape(4, 4), spacing=0.1, units="1")
    >>> len(oxygenation_figure(s, s).axes)   # two maps and two colour bars
    4
    """
    layers = [("sO2", so2_map, dict(cmap="RdBu_r", vmin=0.0, vmax=1.0))]
    if total is not None:
        layers.append((f"total haemoglobin ({total.attrs.get('units') or 'a.u.'})", total, dict(cmap="magma")))
    fig = new_figure((2.6 * len(layers), 2.3))
    for k, (name, layer, kw) in enumerate(layers):
        ax = fig.add_subplot(1, len(layers), k + 1)
        _, plane = _plane(layer)
        units = "sO2 (1)" if k == 0 else str(layer.attrs.get("units") or "a.u.")
        image_panel(ax, plane, title=name, units=units, **kw)
    if title:
        fig.suptitle(title, fontsize=8)
    return fig


def _figures(result: FamilyResult, title: str = "", labels: Sequence[str] = ()) -> list[tuple[str, Any]]:
    from ..figures import feature_map_figure

    if "sO2" in result.images:
        return [("sO2", oxygenation_figure(result.images["sO2"], result.images.get("total_haemoglobin"), title))]
    conc = result.images.get("concentration")
    return [] if conc is None else [("concentration", feature_map_figure(conc, title=title))]


FAMILY = Family(
    name="unmixing",
    table=unmixing_table,
    inputs=("image", "mask"),
    evaluate_fn=unmixing_result,
    figure=_figures,
    whole_image=True,
    description="per-pixel NNLS spectral unmixing (haemoglobin, user absorbers): concentrations, residual, sO2, "
                "total Hb, hypoxic fraction",
)
