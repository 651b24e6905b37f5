"""Brightfield histology: colour deconvolution (H&E, H-DAB) into stain maps, tissue detection, DAB-positive fraction.

Colour deconvolution follows Ruifrok and Johnston (2001) through :func:`skimage.color.separate_stains`: the RGB
image's optical density is projected on the inverse of the stains' OD vectors (``hed_from_rgb`` for
haematoxylin / eosin / DAB, ``hdx_from_rgb`` for haematoxylin / DAB with a residual channel). scikit-image
returns each stain in units of ``OD / log10(1e6)``; here the maps are multiplied by ``log10(1e6) = 6`` so that
they are in decadic **optical density** (``units = "OD"``): the same separation, in a physical unit
(``stain_maps(...) == 6 * skimage.color.rgb2hed(...)``, tested).

A dask RGB slide is deconvolved tile by tile (:func:`dask.array.map_blocks`, the colour axis in one chunk), so a
whole-slide image at full resolution is never held in memory whole.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import xarray as xr

from multiscale.errors import AnalysisError, AnalysisWarning
from multiscale.image import spatial_dims, validate

from ._masks import mask_array, masked_values, single_channel, to_numpy
from .family import Family, FamilyResult, image_units, tidy_rows
from .figures import image_panel, new_figure
from .metrics import Metrics

__all__ = ["STAIN_SETS", "stain_maps", "tissue_mask", "positive_fraction", "stain_metric_unit", "stains_result",
           "stains_table",
           "stain_figure", "OD_PER_SKIMAGE_UNIT", "FAMILY"]

#: scikit-image's stain unit in decadic optical density: its maps are OD / log10(1e6)
OD_PER_SKIMAGE_UNIT = 6.0

#: stain sets: name -> (channel names, scikit-image matrix name)
STAIN_SETS: dict[str, tuple[tuple[str, ...], str]] = {
    "HED": (("haematoxylin", "eosin", "DAB"), "hed_from_rgb"),
    "HDAB": (("haematoxylin", "DAB", "residual"), "hdx_from_rgb"),
}


def _rgb_first(image: xr.DataArray, what: str = "RGB image") -> xr.DataArray:
    if not isinstance(image, xr.DataArray):
        raise AnalysisError(f"{what} must be a spatial image (xarray.DataArray), got {type(image).__name__}")
    validate(image)
    if "c" not in image.dims or image.sizes["c"] not in (3, 4):
        n = image.sizes.get("c", 1)
        raise AnalysisError(f"{what} has {n} channel(s); colour deconvolution needs an RGB image (3 channels, "
                            "R, G, B along 'c'); in a study name the whole image (maps: [slide]), not one channel")
    if "t" in image.dims:
        raise AnalysisError(f"{what} has a 't' dim; select one frame first")
    if image.sizes["c"] == 4:
        image = image.isel(c=slice(0, 3))
    return image.transpose("c", *spatial_dims(image))


def _deconvolve_block(block: np.ndarray, conv: np.ndarray, scale: float = 1.0) -> np.ndarray:
    from skimage.color import separate_stains

    rgb = np.moveaxis(np.asarray(block), 0, -1)
    if scale != 1.0:
        rgb = rgb * scale  # float RGB in 0-255
    out = separate_stains(rgb, conv) * OD_PER_SKIMAGE_UNIT
    return np.moveaxis(out, -1, 0)


def stain_maps(image: xr.DataArray, stains: Literal["HED", "HDAB"] | str = "HED",
               stain_vectors: Sequence[Sequence[float]] | None = None,
               names: Sequence[str] | None = None) -> xr.DataArray:
    """Colour deconvolution of a brightfield RGB image into stain optical-density maps.

    Parameters
    ----------
    image : xarray.DataArray
        RGB with the colours along ``c`` (uint8 0-255, uint16, or float 0-1; a numpy float image in 0-255 is
        recognised), numpy or dask.
    stains : {"HED", "HDAB"}
        H&E with DAB (``hed_from_rgb``) or haematoxylin-DAB with a residual channel (``hdx_from_rgb``).
    stain_vectors, names : optional
        Own stain OD vectors (3 rows of R, G, B optical densities, as measured on single-stain slides) and
        their names; the inverse is used as in scikit-image's ``separate_stains``.

    Returns
    -------
    xarray.DataArray
        ``c`` = the stain names, values in decadic optical density (``units = "OD"``), same grid.

    Examples
    --------
    >>> from skimage import data
    >>> from skimage.color import rgb2hed
    >>> from multiscale.image import spatial_image
    >>> ihc = data.immunohistochemistry()[:64, :64]
    >>> img = spatial_image(np.moveaxis(ihc, -1, 0), spacing=0.0005, dims=("c", "y", "x"), channels=["R", "G", "B"])
    >>> s = stain_maps(img)
    >>> [str(c) for c in s.coords["c"].values], bool(np.allclose(s.sel(c="DAB").values, 6 * rgb2hed(ihc)[..., 2]))
    (['haematoxylin', 'eosin', 'DAB'], True)
    """
    import skimage.color as skc

    rgb = _rgb_first(image)
    if stain_vectors is not None:
        vec = np.asarray(stain_vectors, dtype=float)
        if vec.shape != (3, 3):
            raise AnalysisError(f"stain_vectors must be 3 stains x (R, G, B) optical densities, got shape {vec.shape}")
        vec = vec / np.linalg.norm(vec, axis=1, keepdims=True)
        conv = np.linalg.inv(vec)
        labels = tuple(names) if names is not None else ("stain1", "stain2", "stain3")
        if len(labels) != 3:
            raise AnalysisError(f"names must name the 3 stains, got {list(labels)}")
    else:
        key = str(stains).upper().replace("-", "").replace("&", "")
        if key not in STAIN_SETS:
            raise AnalysisError(f"unknown stain set {stains!r}; use one of {sorted(STAIN_SETS)} or give stain_vectors=")
        labels, matrix = STAIN_SETS[key]
        conv = getattr(skc, matrix)
    data = rgb.data
    scale = 1.0
    if np.dtype(data.dtype).kind == "f" and not hasattr(data, "dask") and data.size and np.nanmax(data) > 1.0:
        scale = 1.0 / 255.0  # float RGB in 0-255 (a lazy float image is taken as 0-1)
    if hasattr(data, "dask"):
        import dask.array as da

        data = data.rechunk({0: -1})
        out = da.map_blocks(_deconvolve_block, data, conv, scale, dtype=np.float64,
                            chunks=((3,),) + data.chunks[1:])
    else:
        out = _deconvolve_block(np.asarray(data), conv, scale)
    sd = spatial_dims(rgb)
    coords = {d: rgb.coords[d].values for d in sd}
    coords["c"] = list(labels)
    attrs = dict(image.attrs, units="OD")
    return xr.DataArray(out, dims=("c",) + sd, coords=coords, attrs=attrs, name="stains")


def tissue_mask(image: xr.DataArray, *, threshold: float | None = None, min_size_mm2: float = 0.0) -> xr.DataArray:
    """Tissue (not glass) of a brightfield RGB image: pixels darker than Otsu's threshold of the grey level.

    Parameters
    ----------
    image : xarray.DataArray
        RGB along ``c``. A whole slide should be passed at a low pyramid level.
    threshold : float, optional
        Grey level (0-1) below which a pixel is tissue; Otsu's threshold when omitted.
    min_size_mm2 : float
        Tissue islands and holes smaller than this area are removed / filled.

    Examples
    --------
    >>> from multiscale.image import spatial_image
    >>> rgb = np.full((3, 20, 20), 240, np.uint8); rgb[:, 5:15, 5:15] = 120
    >>> int(tissue_mask(spatial_image(rgb, spacing=0.01, dims=("c", "y", "x"))).values.sum())
    100
    """
    from skimage.color import rgb2gray
    from skimage.filters import threshold_otsu
    from skimage.morphology import remove_small_holes, remove_small_objects

    rgb = _rgb_first(image)
    arr = np.moveaxis(np.asarray(to_numpy(rgb)), 0, -1)
    if arr.dtype.kind == "f" and arr.size and np.nanmax(arr) > 1.0:
        arr = arr / 255.0
    grey = rgb2gray(arr)
    if threshold is None:
        if np.ptp(grey) == 0:
            raise AnalysisError("the image is uniform: no tissue can be told from glass; give threshold=")
        threshold = float(threshold_otsu(grey))
    tissue = grey < threshold
    if min_size_mm2 > 0:
        sp = [float(abs(rgb.coords[d].values[1] - rgb.coords[d].values[0])) if rgb.sizes[d] > 1 else 1.0
              for d in spatial_dims(rgb)]
        px = max(int(round(min_size_mm2 / float(np.prod(sp)))), 1)
        tissue = remove_small_objects(tissue, max_size=px)
        tissue = remove_small_holes(tissue, max_size=px)
    sd = spatial_dims(rgb)
    attrs = {k: v for k, v in image.attrs.items() if k not in ("units",)}
    attrs.update(units="", aspect="mask", tissue_threshold=float(threshold))
    return xr.DataArray(tissue.astype(np.uint8), dims=sd, coords={d: rgb.coords[d].values for d in sd},
                        attrs=attrs, name="tissue")


def stain_metric_unit(metric: str) -> str:
    """The unit of a stain metric: ``mm^2`` for areas (``*_mm2``), ``1`` for fractions, else ``OD``.

    Examples
    --------
    >>> stain_metric_unit("DAB_positive_area_mm2"), stain_metric_unit("positive_fraction"), stain_metric_unit("mean_od")
    ('mm^2', '1', 'OD')
    """
    if metric.endswith("_mm2"):
        return "mm^2"
    if "fraction" in metric:
        return "1"
    return "OD"


def positive_fraction(stain: xr.DataArray, mask: xr.DataArray | None = None, threshold: float = 0.3) -> Metrics:
    """Share of a region's pixels whose stain optical density exceeds ``threshold`` (e.g. DAB-positive fraction).

    Returns a :class:`~multiscale.analysis.metrics.Metrics`: ``positive_fraction`` (1), ``positive_area_mm2``,
    ``region_area_mm2`` (mm^2), ``mean_od``, ``mean_od_positive`` (OD).

    Examples
    --------
    >>> from multiscale.image import spatial_image
    >>> dab = spatial_image(np.array([[0.0, 0.1], [0.5, 0.8]]), spacing=0.1, units="OD")
    >>> positive_fraction(dab, threshold=0.3)["positive_fraction"]
    0.5
    """
    stain = single_channel(stain, "stain map")
    m = mask_array(mask, stain, "mask")
    vals, _ = masked_values(stain, m, "stain map")
    px = float(np.prod([abs(float(stain.coords[d].values[1] - stain.coords[d].values[0])) if stain.sizes[d] > 1
                        else 1.0 for d in spatial_dims(stain)]))
    pos = vals > threshold
    return Metrics({"positive_fraction": float(pos.mean()), "positive_area_mm2": float(pos.sum() * px),
                    "region_area_mm2": float(vals.size * px), "mean_od": float(vals.mean()),
                    "mean_od_positive": float(vals[pos].mean()) if pos.any() else float("nan")}, stain_metric_unit)


def _grey(block: np.ndarray, scale: float) -> np.ndarray:
    """scikit-image's rgb2gray (ITU-R 709 luminance) of a channels-first RGB block, in 0-1."""
    from skimage.util import img_as_float

    rgb = img_as_float(np.asarray(block)) if scale == 1.0 else np.asarray(block, dtype=np.float64) * scale
    return 0.2125 * rgb[0] + 0.7154 * rgb[1] + 0.0721 * rgb[2]


def _region_stats(image: xr.DataArray, maps: xr.DataArray, mask: xr.DataArray | None, positive: str,
                  threshold: float, tissue_only: bool) -> tuple[dict[str, Any], dict[str, float]]:
    """Region statistics of the stain maps as dask reductions: a whole slide is read tile by tile.

    Tissue is the grey level below Otsu's threshold of the whole image (its histogram of 256 bins over the image's
    range, as :func:`skimage.filters.threshold_otsu` computes it), decided without holding the image in memory.
    """
    import dask
    import dask.array as da
    from skimage.filters import threshold_otsu

    rgb = _rgb_first(image)
    data = rgb.data if hasattr(rgb.data, "dask") else da.from_array(np.asarray(rgb.data), chunks=(3, 2048, 2048))
    data = data.rechunk({0: -1})
    scale = 1.0 / 255.0 if (data.dtype.kind == "f" and not hasattr(rgb.data, "dask")
                            and float(np.nanmax(np.asarray(rgb.data))) > 1.0) else 1.0
    spatial_chunks = data.chunks[1:]
    region_np = mask_array(mask, maps.isel(c=0, drop=True), "mask")
    region = da.from_array(region_np, chunks=spatial_chunks)
    stain = maps.data if hasattr(maps.data, "dask") else da.from_array(np.asarray(maps.data),
                                                                         chunks=((3,),) + spatial_chunks)
    stain = stain.rechunk(((maps.sizes["c"],),) + spatial_chunks)
    rows: dict[str, Any] = {}
    sel = region
    n_region = float(region_np.sum())
    if tissue_only:
        grey = da.map_blocks(_grey, data, scale, drop_axis=0, dtype=np.float64)
        lo, hi = dask.compute(grey.min(), grey.max())
        if hi <= lo:
            raise AnalysisError("the image is uniform: no tissue can be told from glass; set tissue_only: false")
        counts, edges = da.histogram(grey, bins=256, range=(float(lo), float(hi)))
        centres = (edges[:-1] + edges[1:]) / 2
        thr = float(threshold_otsu(hist=(np.asarray(counts.compute()), centres)))
        sel = region & (grey < thr)
    names = [str(c) for c in maps.coords["c"].values]
    k = names.index(positive)
    pos = sel & (stain[k] > threshold)
    sums = [da.where(sel, stain[i], 0.0).sum() for i in range(len(names))]
    n_sel, n_pos, od_pos = dask.compute(sel.sum(), pos.sum(), da.where(pos, stain[k], 0.0).sum())
    sums = dask.compute(*sums)
    n_sel, n_pos = float(n_sel), float(n_pos)
    if tissue_only:
        rows["tissue_fraction"] = n_sel / max(n_region, 1.0)
    if n_sel == 0:
        raise AnalysisError("no tissue detected in the region (all glass); check the mask or set tissue_only: false")
    for name, total in zip(names, sums):
        rows[f"mean_od_{name}"] = float(total) / n_sel
    px = float(np.prod([abs(float(maps.coords[d].values[1] - maps.coords[d].values[0])) if maps.sizes[d] > 1
                        else 1.0 for d in spatial_dims(maps)]))
    stats = {"positive_fraction": n_pos / n_sel, "positive_area_mm2": n_pos * px, "region_area_mm2": n_sel * px,
             "mean_od_positive": float(od_pos) / n_pos if n_pos else float("nan")}
    return rows, stats


def stains_result(image: xr.DataArray, mask: xr.DataArray | None = None, *, stains: str = "HED",
                  positive: str = "DAB", threshold: float = 0.3, tissue_only: bool = True) -> FamilyResult:
    """The family's evaluate: stain maps of an RGB image, their means and the positive fraction in the region.

    A single-channel image is taken as a stain map already (e.g. a saved DAB map): its mean and positive
    fraction are reported. With ``tissue_only`` the region is restricted to detected tissue (glass left out).
    """
    rows: dict[str, Any] = {}
    images: dict[str, xr.DataArray] = {}
    data: dict[str, Any] = {}
    if "c" in image.dims and image.sizes["c"] in (3, 4):
        maps = stain_maps(image, stains)
        if positive not in maps.coords["c"].values:
            raise AnalysisError(f"positive={positive!r} is not a stain of the {stains} set "
                                f"({list(maps.coords['c'].values)})")
        rows, stats = _region_stats(image, maps, mask, positive, threshold, tissue_only)
        images["stains"] = maps
    else:
        colour = str(image.coords["c"].values.reshape(-1)[0]) if "c" in image.coords else ""
        if colour.upper() in ("R", "G", "B", "A", "RED", "GREEN", "BLUE"):
            raise AnalysisError(f"stains got one colour channel ({colour!r}) of an RGB image; colour deconvolution "
                                "needs the three together: pass the RGB image itself (in a study: maps: [slide], with "
                                "a pipeline that passes whole images to this family)")
        one = single_channel(image, "stain map")
        if image_units(one) != "OD":
            warnings.warn(f"the image's units are {image_units(one)!r}, not OD: its values are taken as a stain's "
                          "optical density", AnalysisWarning, stacklevel=2)
        stats = positive_fraction(one, mask, threshold)
        data["map"] = one.expand_dims(c=[positive])
    rows.update({f"{positive}_{k}": v for k, v in stats.items()})
    return FamilyResult(rows=tidy_rows(rows, stain_metric_unit, detail=f"{stains} colour deconvolution, {positive} > {threshold:g} OD"),
                        images=images, data=data)


def stains_table(image: xr.DataArray, mask: xr.DataArray | None = None, *, stains: Literal["HED", "HDAB"] = "HED",
                 positive: str = "DAB", threshold: float = 0.3, tissue_only: bool = True) -> list[dict[str, Any]]:
    """The study's ``stains``: mean stain optical densities and the positive fraction (e.g. DAB) in a region.

    Parameters
    ----------
    image : xarray.DataArray
        A brightfield RGB image (``c`` = R, G, B) or a single stain map in OD.
    mask : xarray.DataArray, optional
        The region (an annotation mask on the slide's grid).
    stains : {"HED", "HDAB"}
        The stain set (see :func:`stain_maps`).
    positive : str
        The stain whose positive fraction is reported (``DAB``).
    threshold : float
        Optical density above which a pixel is positive.
    tissue_only : bool
        Leave glass (Otsu on the grey level) out of the region.

    Examples
    --------
    >>> from multiscale.image import spatial_image
    >>> rows = stains_table(spatial_image(np.array([[0.0, 0.5]]), spacing=0.1, units="OD"), threshold=0.3)
    >>> [(r["metric"], r["value"]) for r in rows][:1]
    [('DAB_positive_fraction', 0.5)]
    """
    return stains_result(image, mask, stains=stains, positive=positive, threshold=threshold,
                         tissue_only=tissue_only).rows


def stain_figure(maps: xr.DataArray, title: str = "") -> Any:
    """Each stain's optical-density map side by side (the DAB map in brown), in mm.

    Examples
    --------
    >>> from multiscale.image import spatial_image
    >>> m = spatial_image(np.random.default_rng(0).random((2, 8, 8)), spacing=0.1, dims=("c", "y", "x"),
    ...                   channels=["haematoxylin", "DAB"])
    >>> len(stain_figure(m).axes)
    4
    """
    cmaps = {"haematoxylin": "Blues", "eosin": "RdPu", "DAB": "YlOrBr"}
    names = [str(c) for c in maps.coords["c"].values if str(c) != "residual"]
    fig = new_figure((2.4 * len(names), 2.3))
    for k, name in enumerate(names):
        ax = fig.add_subplot(1, len(names), k + 1)
        image_panel(ax, maps.sel(c=name, drop=True), title=name, units="optical density (OD)",
                    cmap=cmaps.get(name, "magma"), vmin=0.0)
    if title:
        fig.suptitle(title, fontsize=8)
    return fig


def _figures(result: FamilyResult, title: str = "", labels: Sequence[str] = ()) -> list[tuple[str, Any]]:
    maps = result.images.get("stains", result.data.get("map"))
    return [] if maps is None else [("stains", stain_figure(maps, title))]


FAMILY = Family(
    name="stains",
    table=stains_table,
    inputs=("image", "mask"),
    evaluate_fn=stains_result,
    figure=_figures,
    whole_image=True,
    description="colour deconvolution of H&E / IHC (H-DAB) slides: stain optical densities, DAB-positive fraction, "
                "tissue fraction",
)
