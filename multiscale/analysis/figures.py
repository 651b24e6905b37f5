"""Figures made from the analysis tables (never recomputed from the images).

Every function returns a :class:`matplotlib.figure.Figure` bound to the Agg canvas (no pyplot, no
window): save it with ``fig.savefig("profile.png", dpi=300)``. Figures are drawn for print: small
(panels about 2 in across), units on every axis, a colour bar with units beside every image and a
scale bar on every image in mm (:func:`image_panel` draws such a panel).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from multiscale.image import spacing, spatial_dims

from ._masks import AnalysisError

__all__ = ["radial_profile_figure", "colocalisation_figure", "feature_map_figure", "new_figure", "add_scale_bar",
           "image_panel", "image_extent"]


def new_figure(figsize: tuple[float, float]) -> Any:
    """A matplotlib Figure on the Agg canvas (no pyplot state, no window), with constrained layout.

    Examples
    --------
    >>> new_figure((3, 2)).get_size_inches().tolist()
    [3.0, 2.0]
    """
    return _new_figure(figsize)


def add_scale_bar(ax: Any, length_mm: float | None = None, *, location: str = "lower right",
                  color: str = "white") -> Any:
    """Draw a scale bar on an image axes whose data coordinates are mm (matplotlib's ``AnchoredSizeBar``).

    Without ``length_mm``, a 1-2-5 length near a fifth of the axes' width; labelled in mm, or in
    µm below 1 mm.

    Examples
    --------
    >>> fig = new_figure((3, 3))
    >>> ax = fig.add_subplot()
    >>> ax.set_xlim(0, 12.0); ax.set_ylim(0, 12.0)  # doctest: +ELLIPSIS
    (...)
    >>> add_scale_bar(ax).txt_label.get_text()
    '2 mm'
    """
    import math

    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    x0, x1 = ax.get_xlim()
    width = abs(x1 - x0)
    if length_mm is None:
        target = width / 5
        p = 10 ** math.floor(math.log10(target))
        length_mm = max(m * p for m in (1, 2, 5) if m * p <= target)
    label = f"{length_mm:g} mm" if length_mm >= 1 else f"{length_mm * 1000:g} µm"
    bar = AnchoredSizeBar(ax.transData, length_mm, label, location, pad=0.3, color=color, frameon=False,
                          size_vertical=width / 100, fontproperties={"size": 7})
    ax.add_artist(bar)
    return bar


def image_extent(img: Any) -> list[float] | None:
    """The imshow ``extent`` (left, right, bottom, top) in mm of an image's last two spatial dims; None for an array.

    Examples
    --------
    >>> from multiscale.image import spatial_image
    >>> image_extent(spatial_image(np.zeros((2, 4)), spacing=0.5))
    [-0.25, 1.75, 0.75, -0.25]
    """
    import xarray as xr

    if not isinstance(img, xr.DataArray):
        return None
    sd = [d for d in spatial_dims(img) if d in img.dims][-2:]
    if len(sd) < 2 or any(d not in img.coords for d in sd):
        return None
    ys = np.asarray(img.coords[sd[0]].values, dtype=float)
    xs = np.asarray(img.coords[sd[1]].values, dtype=float)
    sp = dict(zip(spatial_dims(img), spacing(img)))
    dy, dx = float(sp.get(sd[0], 1.0)), float(sp.get(sd[1], 1.0))
    return [float(xs[0]) - dx / 2, float(xs[-1]) + dx / 2, float(ys[-1]) + dy / 2, float(ys[0]) - dy / 2]


def image_panel(ax: Any, image: Any, *, title: str = "", units: str | None = None, cmap: str = "viridis",
                colorbar: bool = True, scale_bar: bool = True, fontsize: float = 6, **imshow: Any) -> Any:
    """Draw a 2-D image on ``ax`` for print: axes in mm, a scale bar, and a colour bar labelled with its units.

    ``image`` is a DataArray (its last two spatial dims; a 3-D image shows the slice holding most
    finite voxels) or an array (axes in pixels, no scale bar). ``units`` defaults to the image's
    ``units`` attribute (``a.u.`` without one). An RGB(A) array (last axis 3 or 4) gets no colour
    bar. Extra keywords go to ``imshow``.

    Returns
    -------
    matplotlib.image.AxesImage

    Examples
    --------
    >>> from multiscale.image import spatial_image
    >>> fig = new_figure((2.5, 2))
    >>> ax = fig.add_subplot()
    >>> im = image_panel(ax, spatial_image(np.random.default_rng(0).random((8, 8)), spacing=0.5), units="SUVbw")
    >>> ax.get_xlabel(), im.colorbar.ax.get_ylabel(), type(ax.artists[0]).__name__
    ('x (mm)', 'SUVbw', 'AnchoredSizeBar')
    """
    ext = image_extent(image)
    if units is None:
        units = str(getattr(image, "attrs", {}).get("units") or "a.u.")
    v = np.asarray(getattr(image, "values", image), dtype=float)
    rgb = v.ndim == 3 and v.shape[-1] in (3, 4) and ext is None
    while v.ndim > 2 and not rgb:
        counts = np.isfinite(v).sum(axis=tuple(range(1, v.ndim)))
        v = v[int(np.argmax(counts))] if counts.any() else v[v.shape[0] // 2]
    imshow.setdefault("interpolation", "nearest")
    im = ax.imshow(v, cmap=None if rgb else cmap, extent=ext, **imshow)
    unit = "mm" if ext is not None else "pixels"
    ax.set_xlabel(f"x ({unit})", fontsize=fontsize)
    ax.set_ylabel(f"y ({unit})", fontsize=fontsize)
    ax.tick_params(labelsize=fontsize - 1)
    if title:
        ax.set_title(title, fontsize=fontsize + 1)
    if colorbar and not rgb:
        cb = ax.figure.colorbar(im, ax=ax, fraction=0.05, pad=0.02)
        cb.set_label(units, fontsize=fontsize)
        cb.ax.tick_params(labelsize=fontsize - 1)
    if scale_bar and ext is not None:
        add_scale_bar(ax)
    return im


def _new_figure(figsize: tuple[float, float]):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def radial_profile_figure(
    profiles: pd.DataFrame | Mapping[str, pd.DataFrame],
    x: str | None = None,
    title: str = "",
    figsize: tuple[float, float] = (5.0, 3.6),
) -> Any:
    """Plot radial profiles: the mean with its bootstrap CI band, the median with its IQR band.

    Parameters
    ----------
    profiles : pandas.DataFrame or mapping name -> DataFrame
        Output(s) of :func:`multiscale.analysis.radial.radial_profile` (several maps on one axis).
    x : str, optional
        Column for the x axis: ``depth_mm`` (default), ``normalised_depth``, or the vessel columns
        for vessel profiles.
    title : str
        Axes title.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import pandas as pd
    >>> p = pd.DataFrame({"depth_mm": [0.5, 1.5], "mean": [4.0, 2.0], "mean_ci_low": [3.5, 1.5],
    ...                   "mean_ci_high": [4.5, 2.5], "units": ["SUV", "SUV"]})
    >>> fig = radial_profile_figure(p)
    >>> fig.axes[0].get_xlabel()
    'depth below the boundary (mm)'
    """
    items = {"": profiles} if isinstance(profiles, pd.DataFrame) else dict(profiles)
    if not items:
        raise AnalysisError("radial_profile_figure needs at least one profile table")
    fig = _new_figure(figsize)
    ax = fig.add_subplot()
    units = ""
    for name, df in items.items():
        col = x
        if col is None:
            col = next((c for c in ("depth_mm", "vessel_distance_mm") if c in df.columns), None)
        if col is None or col not in df.columns or "mean" not in df.columns:
            raise AnalysisError(
                f"profile {name!r} lacks the columns to plot ({col!r} and 'mean'); pass a radial_profile() table"
            )
        df = df[df.get("n", pd.Series(1, index=df.index)) > 0] if "n" in df.columns else df
        xs = df[col].to_numpy(float)
        line = ax.plot(xs, df["mean"], marker="o", ms=3, label=f"{name} mean".strip())[0]
        if {"mean_ci_low", "mean_ci_high"} <= set(df.columns) and df["mean_ci_low"].notna().any():
            ax.fill_between(xs, df["mean_ci_low"], df["mean_ci_high"], color=line.get_color(), alpha=0.25, lw=0)
        if "median" in df.columns:
            ax.plot(xs, df["median"], ls="--", color=line.get_color(), label=f"{name} median".strip())
            if {"p25", "p75"} <= set(df.columns):
                ax.fill_between(xs, df["p25"], df["p75"], color=line.get_color(), alpha=0.1, lw=0)
        if "units" in df.columns and len(df):
            units = str(df["units"].iloc[0])
    labels = {
        "depth_mm": "depth below the boundary (mm)",
        "normalised_depth": "normalised depth (0 rim, 1 core)",
        "vessel_distance_mm": "distance to the nearest vessel (mm)",
        "normalised_vessel_distance": "normalised distance to vessels",
    }
    ax.set_xlabel(labels.get(col, col))
    ax.set_ylabel(f"signal ({units})" if units else "signal")
    if title:
        ax.set_title(title)
    ax.legend(frameon=False, fontsize="small")
    return fig


def colocalisation_figure(
    histogram: pd.DataFrame,
    result: Mapping[str, Any] | None = None,
    kind: str = "histogram",
    labels: tuple[str, str] = ("channel 1", "channel 2"),
    log: bool = True,
    figsize: tuple[float, float] = (4.6, 4.0),
) -> Any:
    """Coloc 2 style 2-D histogram (or scatter of the occupied bins) with Costes' line and thresholds.

    Parameters
    ----------
    histogram : pandas.DataFrame
        Output of :func:`multiscale.analysis.coloc.joint_histogram`.
    result : mapping, optional
        Output of :func:`multiscale.analysis.coloc.colocalisation`: draws the regression line
        ``ch2 = slope ch1 + intercept`` and the two thresholds when present, and writes Pearson's r.
    kind : {"histogram", "scatter"}
        Coloured bins, or one dot per occupied bin sized by its count.
    labels : tuple of str
        Axis labels.
    log : bool
        Logarithmic colour scale for the counts.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import pandas as pd
    >>> h = pd.DataFrame({"a_low": [0.0, 1.0], "a_high": [1.0, 2.0], "b_low": [0.0, 1.0],
    ...                   "b_high": [1.0, 2.0], "count": [5, 3]})
    >>> fig = colocalisation_figure(h, {"costes_slope": 1.0, "costes_intercept": 0.0,
    ...                                 "threshold_a": 1.0, "threshold_b": 1.0, "pearson": 0.9})
    >>> len(fig.axes[0].lines)   # regression line and the two thresholds
    3
    """
    need = {"a_low", "a_high", "b_low", "b_high", "count"}
    if not need <= set(histogram.columns):
        raise AnalysisError(f"histogram lacks columns {sorted(need - set(histogram.columns))}; pass joint_histogram()")
    if kind not in ("histogram", "scatter"):
        raise AnalysisError(f"kind={kind!r}; use 'histogram' or 'scatter'")
    from matplotlib.colors import LogNorm, Normalize

    fig = _new_figure(figsize)
    ax = fig.add_subplot()
    ea = histogram.attrs.get("a_edges")
    eb = histogram.attrs.get("b_edges")
    if ea is None or eb is None:
        ea = np.unique(np.concatenate([histogram["a_low"], histogram["a_high"]]))
        eb = np.unique(np.concatenate([histogram["b_low"], histogram["b_high"]]))
    counts = histogram["count"].to_numpy(float)
    vmax = max(float(counts.max()) if counts.size else 1.0, 1.0)
    norm = LogNorm(vmin=1, vmax=vmax) if log else Normalize(vmin=0, vmax=vmax)
    if kind == "histogram":
        grid = np.full((len(ea) - 1, len(eb) - 1), np.nan)
        ia = np.clip(np.searchsorted(ea, histogram["a_low"].to_numpy(float), side="right") - 1, 0, len(ea) - 2)
        ib = np.clip(np.searchsorted(eb, histogram["b_low"].to_numpy(float), side="right") - 1, 0, len(eb) - 2)
        grid[ia, ib] = counts
        mesh = ax.pcolormesh(ea, eb, grid.T, norm=norm, cmap="viridis")
    else:
        xa = (histogram["a_low"] + histogram["a_high"]) / 2
        xb = (histogram["b_low"] + histogram["b_high"]) / 2
        sizes = 4 + 40 * np.sqrt(counts / vmax)
        mesh = ax.scatter(xa, xb, c=counts, s=sizes, norm=norm, cmap="viridis", lw=0)
    fig.colorbar(mesh, ax=ax, label="voxels")
    ax.set_xlabel(labels[0] + (f" ({histogram.attrs['a_units']})" if histogram.attrs.get("a_units") else ""))
    ax.set_ylabel(labels[1] + (f" ({histogram.attrs['b_units']})" if histogram.attrs.get("b_units") else ""))
    ax.set_xlim(ea[0], ea[-1])
    ax.set_ylim(eb[0], eb[-1])
    if result:
        m, b = result.get("costes_slope", np.nan), result.get("costes_intercept", np.nan)
        if np.isfinite(m) and np.isfinite(b):
            xs = np.array([ea[0], ea[-1]])
            ax.plot(xs, m * xs + b, color="white", lw=1.2)
        ta, tb = result.get("threshold_a", np.nan), result.get("threshold_b", np.nan)
        if np.isfinite(ta):
            ax.axvline(ta, color="orange", lw=1, ls="--")
        if np.isfinite(tb):
            ax.axhline(tb, color="orange", lw=1, ls="--")
        r = result.get("pearson", np.nan)
        if np.isfinite(r):
            ax.set_title(f"Pearson r = {r:.3f}", fontsize="small")
    return fig


def feature_map_figure(fmap: Any, title: str = "", max_layers: int = 4) -> Any:
    """Up to ``max_layers`` channels of a voxel-wise map side by side, in mm, each with its colour bar.

    A 3-D map is shown at the z slice holding most of its finite voxels.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> fmap = spatial_image(np.random.default_rng(0).random((2, 5, 5)), spacing=0.5, dims=("c", "y", "x"),
    ...                      channels=["cm_contrast", "cm_joint_avg"])
    >>> len(feature_map_figure(fmap).axes)   # two maps and two colour bars
    4
    """
    layers = [(str(c), fmap.sel(c=c, drop=True)) for c in fmap.coords["c"].values] if "c" in fmap.dims else [
        (str(fmap.attrs.get("feature", "feature")), fmap)]
    layers = layers[:max_layers]
    fig = _new_figure((2.6 * len(layers), 2.3))
    for k, (name, layer) in enumerate(layers):
        ax = fig.add_subplot(1, len(layers), k + 1)
        units = str(layer.attrs.get("units") or fmap.attrs.get("units") or "a.u.")
        image_panel(ax, layer, title=name, units=units, cmap="magma", interpolation="antialiased")
    if title:
        fig.suptitle(title, fontsize=8)
    return fig
