"""Figures of MSI results: top co-localised ions beside the reference, cluster maps, calibration curves.

Every function returns a matplotlib Figure on the Agg canvas (:func:`multiscale.analysis.figures.new_figure`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..figures import add_scale_bar, image_panel, new_figure

__all__ = ["map_figure", "top_hits_figure", "cluster_map_figure", "calibration_figure", "pair_figure", "rgb_figure"]


def _extent(img: Any) -> list[float] | None:
    if isinstance(img, xr.DataArray) and "x" in img.dims and "y" in img.dims:
        x, y = img.coords["x"].values, img.coords["y"].values
        dx = float(x[1] - x[0]) if x.size > 1 else 1.0
        dy = float(y[1] - y[0]) if y.size > 1 else 1.0
        return [float(x[0]) - dx / 2, float(x[-1]) + dx / 2, float(y[-1]) + dy / 2, float(y[0]) - dy / 2]
    return None


def _plane(img: Any) -> np.ndarray:
    v = np.asarray(img.values if isinstance(img, xr.DataArray) else img, dtype=float)
    while v.ndim > 2:
        v = v[v.shape[0] // 2]
    return v


def _show(ax: Any, img: Any, title: str, cmap: str = "viridis", units: str | None = None) -> None:
    """One image for print (:func:`multiscale.analysis.figures.image_panel`), scaled 0 to its 99th percentile."""
    v = _plane(img)
    pos = v[np.isfinite(v) & (v > 0)]
    vmax = float(np.percentile(pos, 99)) if pos.size else None
    shown = img if isinstance(img, xr.DataArray) and img.ndim == 2 else v
    if units is None:
        units = str(getattr(img, "attrs", {}).get("units") or "intensity (a.u.)")
    image_panel(ax, shown, title=title, units=units, cmap=cmap, vmin=0 if vmax else None, vmax=vmax)


def top_hits_figure(images: xr.DataArray, reference: Any, ranked: pd.DataFrame, n: int = 5, title: str = "") -> Any:
    """The reference beside the ``n`` best-ranked ion images, each titled with m/z, similarity and q-value.

    ``images`` is a stack with the ranked features as ``c`` (or anything with ``ion_image(mz)``).

    Examples
    --------
    >>> from multiscale.image import spatial_image
    >>> st = spatial_image(np.random.default_rng(0).random((2, 8, 8)), spacing=0.05, dims=("c", "y", "x"),
    ...                    channels=[500.0, 600.0])
    >>> ranked = pd.DataFrame({"mz": [600.0, 500.0], "similarity": [0.9, 0.1], "q_value": [0.01, 0.9]})
    >>> len(top_hits_figure(st, st.isel(c=0, drop=True), ranked).axes)   # three images and their colour bars
    6
    """
    top = ranked.head(int(n))
    cols = min(len(top) + 1, 3)
    rows = int(np.ceil((len(top) + 1) / cols))
    fig = new_figure((2.3 * cols, 2.0 * rows))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[len(top) + 1:]:
        ax.set_axis_off()
    _show(axes[0], reference, "reference", cmap="magma")
    for ax, (_, row) in zip(axes[1:], top.iterrows()):
        if hasattr(images, "ion_image"):
            img = images.ion_image(float(row["mz"]))
        else:
            cs = images.coords["c"].values
            name = row.get("feature", None)
            if name is not None and str(name) in [str(c) for c in cs]:
                img = images.isel(c=[str(c) for c in cs].index(str(name)))
            else:
                img = images.isel(c=int(np.argmin(np.abs(np.asarray(cs, dtype=float) - float(row["mz"])))))
        q = row.get("q_value", np.nan)
        _show(ax, img, f"m/z {float(row['mz']):.4f}\nsim {float(row['similarity']):.3f}, q {float(q):.2g}")
    if title:
        fig.suptitle(title, fontsize=8)
    return fig


def map_figure(img: Any, title: str = "") -> Any:
    """One map (e.g. a drug/carrier ratio map), scaled to its 99th percentile.

    Examples
    --------
    >>> len(map_figure(np.ones((4, 4))).axes)   # the map and its colour bar
    2
    """
    fig = new_figure((3.0, 2.6))
    ax = fig.add_subplot()
    _show(ax, img, title or str(getattr(img, "attrs", {}).get("agent", "")))
    return fig


def pair_figure(image: Any, reference: Any, similarity: float, title: str = "") -> Any:
    """The reference (left) and one ion image (right), each scaled to its 99th percentile, in one light axes
    (a study draws one per ion), titled with the similarity.

    Examples
    --------
    >>> a = np.random.default_rng(0).random((6, 6))
    >>> len(pair_figure(a, a, 1.0).axes)   # two images, two colour bars
    4
    """
    def scaled(img: Any) -> np.ndarray:
        v = _plane(img)
        pos = v[np.isfinite(v) & (v > 0)]
        hi = float(np.percentile(pos, 99)) if pos.size else 1.0
        return np.clip(v / (hi or 1.0), 0, 1)

    fig = new_figure((4.4, 2.0))
    axes = fig.subplots(1, 2)
    for ax, img, name in ((axes[0], reference, "reference"), (axes[1], image, "ion")):
        ext = _extent(img) if isinstance(img, xr.DataArray) and img.ndim == 2 else None
        shown = img.copy(data=scaled(img)) if ext is not None else scaled(img)
        image_panel(ax, shown, title=name, units="scaled to its 99th percentile (1)", cmap="magma", vmin=0, vmax=1)
    fig.suptitle(f"{title + ': ' if title else ''}reference | ion, similarity {similarity:.3f}", fontsize=7)
    return fig


def cluster_map_figure(labels: Any, markers: pd.DataFrame | None = None, title: str = "") -> Any:
    """Cluster (habitat) map with a legend naming each cluster's top marker m/z.

    Examples
    --------
    >>> lab = np.array([[0, 1], [2, 2]])
    >>> len(cluster_map_figure(lab).axes)
    1
    """
    v = _plane(labels)
    k = int(np.nanmax(v)) if v.size else 0
    fig = new_figure((3.4, 3.0))
    ax = fig.subplots()
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap

    base = colormaps["tab10"].resampled(max(k, 1))
    cmap = ListedColormap(["#000000"] + [base(i) for i in range(max(k, 1))])
    shown = labels if isinstance(labels, xr.DataArray) and labels.ndim == 2 else v
    image_panel(ax, shown, cmap=cmap, colorbar=False, vmin=-0.5, vmax=k + 0.5)  # a legend names the clusters
    from matplotlib.patches import Patch

    handles = []
    for i in range(1, k + 1):
        label = f"cluster {i}"
        if markers is not None and len(markers):
            top = markers[(markers["cluster"] == i) & (markers["rank"] == 1)]
            if len(top):
                label += f" (m/z {float(top['mz'].iloc[0]):.3f})"
        handles.append(Patch(color=base(i - 1), label=label))
    if handles:
        ax.legend(handles=handles, fontsize=6, loc="upper right", framealpha=0.7)
    ax.set_title(title or "MSI clusters", fontsize=8)
    ax.tick_params(labelsize=6)
    return fig


def calibration_figure(standards: pd.DataFrame, curve: Any, concentration: Any = None, title: str = "") -> Any:
    """Standards, fitted line, LOD and LOQ; the concentration map beside them when given."""
    fig = new_figure((6.4 if concentration is not None else 3.4, 2.8))
    axes = fig.subplots(1, 2 if concentration is not None else 1, squeeze=False)[0]
    ax = axes[0]
    x = np.asarray(standards["concentration"], float)
    y = np.asarray(standards["response"], float)
    ax.plot(x, y, "o", ms=4, label="standards")
    xs = np.linspace(0, max(float(x.max()), 1e-9) * 1.05, 50)
    ax.plot(xs, curve.slope * xs + curve.intercept, "-", lw=1, label=f"fit, R² {curve.r_squared:.3f}")
    for val, name, ls in ((curve.lod, "LOD", ":"), (curve.loq, "LOQ", "--")):
        ax.axvline(val, ls=ls, lw=0.8, color="grey", label=f"{name} {val:.3g} {curve.units}")
    ax.set_xlabel(f"concentration ({curve.units})", fontsize=7)
    ax.set_ylabel("response (ion intensity, a.u.)", fontsize=7)
    ax.legend(fontsize=6)
    ax.tick_params(labelsize=6)
    if concentration is not None:
        _show(axes[1], concentration, "concentration; below LOD blank", units=str(curve.units))
    if title:
        fig.suptitle(title, fontsize=8)
    return fig


def rgb_figure(rgb: Any, title: str = "") -> Any:
    """A three-ion RGB composite (:func:`multiscale.analysis.msi.rgb_composite`) with its channels named.

    Examples
    --------
    >>> from multiscale.image import spatial_image
    >>> rgb = spatial_image(np.random.default_rng(0).random((3, 6, 6)), spacing=0.05, dims=("c", "y", "x"),
    ...                     channels=["R", "G", "B"])
    >>> len(rgb_figure(rgb).axes)
    1
    """
    v = np.moveaxis(np.asarray(rgb.values, dtype=float), 0, -1)
    fig = new_figure((3.4, 3.2))
    ax = fig.subplots()
    ext = _extent(rgb.isel(c=0, drop=True))
    ax.imshow(np.clip(v, 0, 1), extent=ext, interpolation="nearest")
    names = rgb.attrs.get("rgb_channels", ["R", "G", "B"])
    # each channel scaled 0-1 (the composite has no colour bar: the title names the ion of each channel)
    ax.set_title(title or " / ".join(f"{c}: {n}" for c, n in zip("RGB", names)) + " (each scaled 0-1)", fontsize=7)
    unit = "mm" if ext is not None else "pixels"
    ax.set_xlabel(f"x ({unit})", fontsize=6)
    ax.set_ylabel(f"y ({unit})", fontsize=6)
    ax.tick_params(labelsize=5)
    if ext is not None:
        add_scale_bar(ax)
    return fig
