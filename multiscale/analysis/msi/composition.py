"""ROI spectra and composition: mean spectrum per region, parent vs metabolite enrichment, ratio maps, homogenates.

Definitions
-----------
* **Region mean spectrum** (:func:`region_spectra`): the mean intensity of every feature (channel) over each
  region's pixels (a label image or named masks).
* **Enrichment** (:func:`enrichment`): for each ion, mean intensity in a deposit over the mean in its
  surroundings (a ring ``ring_px`` pixels wide around the deposit, inside ``tissue`` when given), and
  log2 of it; ``metabolite_to_parent`` = (metabolite mean / parent mean) in the deposit and around it.
* **Limit of detection of an ion image** (:func:`detection_limit`): mean + 3 SD of the ion's intensity over
  blank pixels (off-tissue or a blank spot), the usual 3-sigma criterion.
* **Ratio map** (:func:`ratio_map`): numerator / denominator per pixel, NaN where either is below its LOD (or
  the denominator is 0); per region, the ratio of the summed intensities over the pixels above both LODs and
  the median of the pixel ratios, with the fraction of pixels masked.
* **Virtual homogenate** (:func:`virtual_homogenate`): the area-weighted mean over the union of the regions
  (what a homogenised tissue would measure) beside each region's own (stratified) mean and area fraction.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import ndimage

from multiscale import image as mi
from multiscale.errors import AnalysisError

from ..family import Family, FamilyResult

__all__ = ["channel_index", "region_masks", "region_spectra", "enrichment", "detection_limit", "ratio_map", "ratio_summary",
           "virtual_homogenate", "composition_table", "FAMILY"]


def _arr(img: Any) -> np.ndarray:
    return np.asarray(img.values if isinstance(img, xr.DataArray) else img)


def region_masks(regions: Any) -> dict[str, np.ndarray]:
    """Named boolean masks from a label image (``label_names`` attr used when present) or a mapping of masks.

    Examples
    --------
    >>> sorted(region_masks(np.array([[0, 1], [2, 2]])))
    ['1', '2']
    """
    if isinstance(regions, Mapping):
        return {str(k): np.nan_to_num(_arr(v).astype(float)) > 0 for k, v in regions.items()}
    lab = _arr(regions)
    names = getattr(regions, "attrs", {}).get("label_names", {}) if isinstance(regions, xr.DataArray) else {}
    out = {}
    for v in np.unique(lab[np.isfinite(lab)] if lab.dtype.kind == "f" else lab):
        if v == 0:
            continue
        out[str(names.get(int(v), int(v)))] = lab == v
    if not out:
        raise AnalysisError("the label image has no region (every pixel is 0)")
    return out


def region_spectra(images: xr.DataArray, regions: Any) -> pd.DataFrame:
    """Mean intensity of every channel in every region: one row per (region, channel).

    Returns
    -------
    pandas.DataFrame
        ``region``, ``channel``, ``mz`` (when numeric), ``mean``, ``n_pixels``, ``units``.

    Examples
    --------
    >>> from multiscale.image import spatial_image
    >>> st = spatial_image(np.stack([np.ones((2, 2)), np.arange(4.0).reshape(2, 2)]), spacing=0.05,
    ...                    dims=("c", "y", "x"), channels=[100.0, 200.0])
    >>> region_spectra(st, {"top": np.array([[1, 1], [0, 0]])})["mean"].tolist()
    [1.0, 0.5]
    """
    if "c" not in images.dims:
        images = images.expand_dims(c=[images.attrs.get("channel", "image")])
    masks = region_masks(regions)
    data = np.asarray(images.transpose("c", ...).values, dtype=np.float64).reshape(images.sizes["c"], -1)
    rows = []
    for name, m in masks.items():
        sel = m.ravel()
        if sel.size != data.shape[1]:
            raise AnalysisError(f"region {name!r} has {sel.size} pixels but the images have {data.shape[1]}; same grid needed")
        means = np.nanmean(data[:, sel], axis=1) if sel.any() else np.full(data.shape[0], np.nan)
        for c, v in zip(images.coords["c"].values, means):
            try:
                mzv = float(c)
            except (TypeError, ValueError):
                mzv = float((images.attrs.get("targets_mz") or {}).get(str(c), np.nan))
            rows.append({"region": name, "channel": str(c), "mz": mzv, "mean": float(v), "n_pixels": int(sel.sum()),
                         "units": str(images.attrs.get("units") or "a.u.")})
    return pd.DataFrame(rows)


def detection_limit(image: Any, blank: Any, k: float = 3.0) -> float:
    """Intensity LOD of an ion image: mean + ``k`` SD (ddof 1) over the blank pixels.

    Examples
    --------
    >>> detection_limit(np.array([1.0, 2.0, 3.0, 50.0]), np.array([1, 1, 1, 0]))
    5.0
    """
    v = _arr(image).astype(float)[np.nan_to_num(_arr(blank).astype(float)) > 0]
    v = v[np.isfinite(v)]
    if v.size < 2:
        raise AnalysisError("the blank region has fewer than 2 pixels; an LOD needs a blank area (off-tissue or a "
                            "blank spot)")
    return float(v.mean() + k * v.std(ddof=1))


def enrichment(images: xr.DataArray, deposit: Any, *, parent: Any = None, metabolites: Any = (),
               surroundings: Any = None, ring_px: int = 3, tissue: Any = None) -> pd.DataFrame:
    """Mean of every channel in a deposit vs its surroundings, and metabolite/parent ratios in both.

    Parameters
    ----------
    images : xarray.DataArray
        Ion images with a ``c`` dim.
    deposit : mask
        The deposit (drug hot spot, carrier aggregate).
    parent, metabolites : channel names/m/z, optional
        The parent drug's channel and its metabolites' channels (matched to ``c`` as text or nearest m/z).
    surroundings : mask, optional
        Default: a ring ``ring_px`` pixels wide around the deposit (inside ``tissue`` when given).

    Returns
    -------
    pandas.DataFrame
        One row per channel: ``channel``, ``mean_deposit``, ``mean_surroundings``, ``enrichment``,
        ``log2_enrichment``, and for metabolites ``metabolite_to_parent_deposit`` / ``_surroundings``.

    Examples
    --------
    >>> from multiscale.image import spatial_image
    >>> a = np.zeros((9, 9)); a[3:6, 3:6] = 10; a += 1
    >>> st = spatial_image(np.stack([a, a / 2 + 1]), spacing=0.05, dims=("c", "y", "x"), channels=["drug", "met"])
    >>> dep = a > 5
    >>> enrichment(st, dep, parent="drug", metabolites=["met"])["enrichment"].round(2).tolist()
    [11.0, 4.33]
    """
    if "c" not in images.dims:
        raise AnalysisError("enrichment needs ion images with a 'c' dim")
    dep = np.nan_to_num(_arr(deposit).astype(float)) > 0
    if not dep.any():
        raise AnalysisError("the deposit mask is empty")
    if surroundings is None:
        ring = ndimage.binary_dilation(dep, iterations=int(ring_px)) & ~dep
        if tissue is not None:
            ring &= np.nan_to_num(_arr(tissue).astype(float)) > 0
        sur = ring
    else:
        sur = (np.nan_to_num(_arr(surroundings).astype(float)) > 0) & ~dep
    if not sur.any():
        raise AnalysisError("the surroundings of the deposit are empty; give surroundings= or a larger ring_px")
    data = np.asarray(images.transpose("c", ...).values, dtype=np.float64)
    names = [str(c) for c in images.coords["c"].values]

    def idx(ch: Any) -> int:
        return channel_index(images, ch)

    m_dep = np.array([np.nanmean(d[dep]) for d in data])
    m_sur = np.array([np.nanmean(d[sur]) for d in data])
    with np.errstate(divide="ignore", invalid="ignore"):
        enr = m_dep / m_sur
    df = pd.DataFrame({"channel": names, "mean_deposit": m_dep, "mean_surroundings": m_sur, "enrichment": enr,
                       "log2_enrichment": np.log2(enr), "n_deposit": int(dep.sum()), "n_surroundings": int(sur.sum())})
    if parent is not None:
        ip = idx(parent)
        df["role"] = ""
        df.loc[ip, "role"] = "parent"
        for m in metabolites or ():
            j = idx(m)
            df.loc[j, "role"] = "metabolite"
            with np.errstate(divide="ignore", invalid="ignore"):
                df.loc[j, "metabolite_to_parent_deposit"] = m_dep[j] / m_dep[ip]
                df.loc[j, "metabolite_to_parent_surroundings"] = m_sur[j] / m_sur[ip]
    return df


def channel_index(images: xr.DataArray, ch: Any) -> int:
    """Index along ``c`` of a channel given by name (compared as text) or m/z (nearest).

    Examples
    --------
    >>> from multiscale.image import spatial_image
    >>> st = spatial_image(np.zeros((2, 2, 2)), spacing=0.05, dims=("c", "y", "x"), channels=[544.18, 790.63])
    >>> channel_index(st, 790.6)
    1
    """
    names = [str(c) for c in images.coords["c"].values]
    if str(ch) in names:
        return names.index(str(ch))
    try:
        vals = np.asarray(images.coords["c"].values, dtype=float)
        return int(np.argmin(np.abs(vals - float(ch))))
    except (TypeError, ValueError):
        tm = images.attrs.get("targets_mz") or {}
        raise AnalysisError(f"channel {ch!r} is not among {names} (targets {tm})") from None


def ratio_map(numerator: xr.DataArray, denominator: xr.DataArray, *, lod_numerator: float = 0.0,
              lod_denominator: float = 0.0) -> xr.DataArray:
    """Pixel ratio numerator / denominator, NaN where either is below its LOD or the denominator is 0.

    ``attrs['masked_fraction']`` is the fraction of pixels masked; ``attrs['units']`` is ``1`` when both
    images share units, else ``<num units>/<den units>``.

    Examples
    --------
    >>> from multiscale.image import spatial_image
    >>> n = spatial_image(np.array([[4.0, 1.0]]), spacing=0.05); d = spatial_image(np.array([[2.0, 2.0]]), spacing=0.05)
    >>> ratio_map(n, d, lod_numerator=2.0).values.tolist()
    [[2.0, nan]]
    """
    if not mi.same_grid(numerator, denominator, rtol=1e-4):
        raise AnalysisError("numerator and denominator are on different grids; resample one onto the other first")
    a = np.asarray(numerator.values, dtype=np.float64)
    b = np.asarray(denominator.values, dtype=np.float64)
    ok = (a >= lod_numerator) & (b >= lod_denominator) & (b > 0) & np.isfinite(a) & np.isfinite(b)
    r = np.full(a.shape, np.nan)
    r[ok] = a[ok] / b[ok]
    ua, ub = numerator.attrs.get("units") or "a.u.", denominator.attrs.get("units") or "a.u."
    out = mi.like(numerator, r, units="1" if ua == ub else f"{ua}/{ub}", aspect="ratio",
                  agent=f"{numerator.attrs.get('channel', 'numerator')} / {denominator.attrs.get('channel', 'denominator')}")
    out.attrs["masked_fraction"] = float(1 - ok.mean()) if ok.size else 1.0
    out.attrs["lod"] = {"numerator": float(lod_numerator), "denominator": float(lod_denominator)}
    return out


def ratio_summary(numerator: xr.DataArray, denominator: xr.DataArray, regions: Any, *, lod_numerator: float = 0.0,
                  lod_denominator: float = 0.0) -> pd.DataFrame:
    """Per region: ratio of sums over the pixels above both LODs, median pixel ratio, fraction masked.

    Examples
    --------
    >>> from multiscale.image import spatial_image
    >>> n = spatial_image(np.array([[4.0, 2.0]]), spacing=0.05); d = spatial_image(np.array([[2.0, 2.0]]), spacing=0.05)
    >>> ratio_summary(n, d, {"all": np.ones((1, 2))})["ratio_of_sums"].tolist()
    [1.5]
    """
    r = ratio_map(numerator, denominator, lod_numerator=lod_numerator, lod_denominator=lod_denominator)
    a, b, rv = np.asarray(numerator.values, float), np.asarray(denominator.values, float), np.asarray(r.values)
    rows = []
    for name, m in region_masks(regions).items():
        ok = m & np.isfinite(rv)
        rows.append({"region": name, "ratio_of_sums": float(a[ok].sum() / b[ok].sum()) if ok.any() else np.nan,
                     "median_pixel_ratio": float(np.median(rv[ok])) if ok.any() else np.nan,
                     "masked_fraction": float(1 - ok.sum() / max(1, m.sum())), "n_pixels": int(m.sum())})
    return pd.DataFrame(rows)


def virtual_homogenate(image: xr.DataArray, regions: Any) -> pd.DataFrame:
    """Area-weighted mean over all regions (a virtual homogenate) beside each region's stratified mean.

    Returns
    -------
    pandas.DataFrame
        Rows ``region`` = each region (``mean``, ``area_fraction``, ``area_mm2``) and ``"homogenate"`` (the
        area-weighted mean = the mean over the union of the regions' pixels).

    Examples
    --------
    >>> from multiscale.image import spatial_image
    >>> img = spatial_image(np.array([[1.0, 1.0, 1.0, 9.0]]), spacing=0.1)
    >>> virtual_homogenate(img, np.array([[1, 1, 1, 2]]))["mean"].tolist()
    [1.0, 9.0, 3.0]
    """
    v = np.asarray(image.values, dtype=np.float64)
    if "c" in getattr(image, "dims", ()):
        raise AnalysisError("virtual_homogenate takes one channel; select it first")
    masks = region_masks(regions)
    px_area = float(np.prod(mi.spacing(image)[-2:])) if isinstance(image, xr.DataArray) else 1.0
    union = np.zeros(v.shape, bool)
    rows = []
    for m in masks.values():
        union |= m & np.isfinite(v)
    total = int(union.sum())
    if total == 0:
        raise AnalysisError("the regions hold no finite pixel")
    for name, m in masks.items():
        sel = m & np.isfinite(v)
        rows.append({"region": name, "mean": float(v[sel].mean()) if sel.any() else np.nan,
                     "area_fraction": float(sel.sum() / total), "area_mm2": float(sel.sum() * px_area),
                     "units": str(image.attrs.get("units") or "a.u.")})
    rows.append({"region": "homogenate", "mean": float(v[union].mean()), "area_fraction": 1.0,
                 "area_mm2": float(total * px_area), "units": str(image.attrs.get("units") or "a.u.")})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------- study family
def composition_result(
    image: xr.DataArray,
    mask: xr.DataArray,
    denominator: xr.DataArray | None = None,
    blank: xr.DataArray | None = None,
    strata: xr.DataArray | None = None,
    *,
    lod_numerator: float | None = None,
    lod_denominator: float | None = None,
    lod_k: float = 3.0,
) -> FamilyResult:
    """:func:`composition_table`'s rows and the ratio map."""
    units = str(image.attrs.get("units") or "a.u.")
    region = np.nan_to_num(_arr(mask).astype(float)) > 0
    v = np.asarray(image.values, dtype=np.float64)
    rows: list[dict[str, Any]] = [{"metric": "mean", "value": float(np.nanmean(v[region])) if region.any() else np.nan,
                                   "units": units}]
    images: dict[str, Any] = {}
    if lod_numerator is None and blank is not None:
        lod_numerator = detection_limit(image, blank, lod_k)
    if denominator is not None:
        if lod_denominator is None and blank is not None:
            lod_denominator = detection_limit(denominator, blank, lod_k)
        ln, ld = float(lod_numerator or 0.0), float(lod_denominator or 0.0)
        summ = ratio_summary(image, denominator, {"region": region}, lod_numerator=ln, lod_denominator=ld).iloc[0]
        r = ratio_map(image, denominator, lod_numerator=ln, lod_denominator=ld)
        ru = r.attrs["units"]
        du = str(denominator.attrs.get("units") or "a.u.")
        rows += [{"metric": "ratio_of_sums", "value": float(summ["ratio_of_sums"]), "units": ru},
                 {"metric": "median_pixel_ratio", "value": float(summ["median_pixel_ratio"]), "units": ru},
                 {"metric": "masked_fraction", "value": float(summ["masked_fraction"]), "units": "1",
                  "detail": "pixels below either LOD or with a zero denominator"},
                 {"metric": "lod_numerator", "value": ln, "units": units},
                 {"metric": "lod_denominator", "value": ld, "units": du}]
        images["ratio"] = r.where(xr.DataArray(region, dims=r.dims)) if region.shape == r.shape else r
    elif lod_numerator is not None:
        rows.append({"metric": "lod_numerator", "value": float(lod_numerator), "units": units})
        rows.append({"metric": "fraction_below_lod", "value": float(np.mean(v[region] < lod_numerator))
                     if region.any() else np.nan, "units": "1"})
    if strata is not None:
        lab = np.nan_to_num(_arr(strata).astype(float)).astype(np.int64) * region
        h = virtual_homogenate(image, lab)
        for _, row in h.iterrows():
            if row["region"] == "homogenate":
                rows.append({"metric": "homogenate_mean", "value": float(row["mean"]), "units": units,
                             "detail": "area-weighted mean over the strata (a virtual homogenate)"})
                continue
            b = int(row["region"]) if str(row["region"]).isdigit() else None
            rows.append({"metric": "stratum_mean", "value": float(row["mean"]), "units": units, "bin": b,
                         "bin_units": "stratum"})
            rows.append({"metric": "stratum_area_fraction", "value": float(row["area_fraction"]), "units": "1",
                         "bin": b, "bin_units": "stratum"})
    return FamilyResult(rows=pd.DataFrame(rows), images=images, data={"ratio": images.get("ratio"), "image": image})


def composition_table(
    image: xr.DataArray,
    mask: xr.DataArray,
    denominator: xr.DataArray | None = None,
    blank: xr.DataArray | None = None,
    strata: xr.DataArray | None = None,
    *,
    lod_numerator: float | None = None,
    lod_denominator: float | None = None,
    lod_k: float = 3.0,
) -> pd.DataFrame:
    """Region composition of an ion image (the ``msi_composition`` family).

    Rows: ``mean`` (image units) in the region; with a ``denominator`` map (e.g. the carrier lipid):
    ``ratio_of_sums`` and ``median_pixel_ratio`` over the pixels above both LODs, ``masked_fraction``, and the
    LODs used (given, or mean + ``lod_k`` SD over a ``blank`` mask); with ``strata`` (a label map of regions):
    ``stratum_mean`` and ``stratum_area_fraction`` per label (``bin``) and ``homogenate_mean``, the
    area-weighted mean a homogenised sample would give. The ratio map is saved.

    Examples
    --------
    >>> from multiscale.image import spatial_image
    >>> num = spatial_image(np.array([[4.0, 2.0]]), spacing=0.05, units="counts")
    >>> den = spatial_image(np.array([[2.0, 2.0]]), spacing=0.05, units="counts")
    >>> rows = composition_table(num, num * 0 + 1, den)
    >>> r = rows.set_index("metric").loc["ratio_of_sums"]
    >>> float(r["value"]), r["units"]
    (1.5, '1')
    """
    return composition_result(image, mask, denominator, blank, strata, lod_numerator=lod_numerator,
                              lod_denominator=lod_denominator, lod_k=lod_k).rows


def composition_figures(result: FamilyResult, title: str = "", labels: Any = ()) -> list[tuple[str, Any]]:
    """The ratio map (with a denominator), else the image."""
    from .figures import map_figure

    shown = result.data.get("ratio")
    return [("ratio" if shown is not None else "map", map_figure(shown if shown is not None else result.data["image"],
                                                                 title=title))]


FAMILY = Family(
    name="msi_composition",
    table=composition_table,
    inputs=("image", "mask"),
    optional=("denominator", "blank", "strata"),
    evaluate_fn=composition_result,
    figure=composition_figures,
    description="MSI: region mean, drug/carrier ratio with LOD masking, stratified means and virtual homogenate",
)
