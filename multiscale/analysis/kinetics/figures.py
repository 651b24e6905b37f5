"""Figures of the time families: curves with their fits, and parameter maps (Agg canvas, no pyplot).

Examples
--------
>>> import numpy as np
>>> t = np.arange(10.0)
>>> fig = curves_figure(t, {"tumour": np.exp(-t / 5)}, units="mM", title="demo")
>>> fig.axes[0].get_xlabel()
'time (s)'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..figures import image_panel, new_figure

__all__ = ["curves_figure", "dce_figure", "maps_panel"]


def curves_figure(
    t: Any,
    curves: Mapping[str, Any],
    *,
    fits: Mapping[str, Any] | None = None,
    units: str = "",
    title: str = "",
    bands: Mapping[str, Any] | None = None,
) -> Any:
    """Curves over time (s), optional fitted curves (dashed) and +-SD bands."""
    fig = new_figure((5.0, 3.4))
    ax = fig.add_subplot()
    t = np.asarray(t, float)
    for name, c in curves.items():
        (line,) = ax.plot(t, np.asarray(c, float), "o-", ms=3, lw=1, label=name)
        if bands and name in bands:
            sd = np.asarray(bands[name], float)
            ax.fill_between(t, np.asarray(c) - sd, np.asarray(c) + sd, color=line.get_color(), alpha=0.15, lw=0)
        if fits and name in fits:
            ax.plot(t, np.asarray(fits[name], float), "--", color=line.get_color(), lw=1.5, label=f"{name} fit")
    ax.set_xlabel("time (s)")
    ax.set_ylabel(f"signal ({units})" if units else "signal (a.u.)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return fig


def maps_panel(fig: Any, maps: Mapping[str, Any], row: int, nrows: int, truth: Mapping[str, Any] | None = None) -> None:
    """Mid-slice of each map in one row of ``fig``, with the truth beside it (same slice, same colour scale) when given.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.analysis.figures import new_figure
    >>> fig = new_figure((4, 2))
    >>> maps_panel(fig, {"ktrans": np.ones((3, 4, 4))}, 0, 1, truth={"ktrans": np.ones((3, 4, 4))})
    >>> [ax.get_title() for ax in fig.axes if ax.get_title()]
    ['ktrans fitted', 'ktrans truth']
    """
    truth = truth or {}
    ncols = max(1, sum(2 if name in truth else 1 for name in maps))
    k = 0
    for name, m in maps.items():
        arr = np.asarray(m.values if hasattr(m, "values") else m, float)
        ref = np.asarray(truth[name], float) if name in truth else None
        plane = m if hasattr(m, "dims") else None  # keeps the map's coordinates (mm) for the axes and scale bar
        if arr.ndim == 3:
            z = int(np.nanargmax(np.isfinite(arr).sum(axis=(1, 2))))
            arr = arr[z]
            ref = ref[z] if ref is not None and ref.ndim == 3 else ref
            plane = plane.isel({plane.dims[0]: z}) if plane is not None and plane.ndim == 3 else None
        units = getattr(m, "attrs", {}).get("units", "") or "1"
        panels = [(f"{name} fitted" if ref is not None else name, arr)]
        if ref is not None:
            panels.append((f"{name} truth", ref))
        both = np.concatenate([p[1][np.isfinite(p[1])].ravel() for p in panels])
        lo, hi = (float(np.percentile(both, 1)), float(np.percentile(both, 99))) if both.size else (None, None)
        for label, a in panels:
            ax = fig.add_subplot(nrows, ncols, row * ncols + k + 1)
            shown = plane.copy(data=a) if plane is not None and plane.shape == a.shape else a
            image_panel(ax, shown, title=label, units=f"{name} ({units})", cmap="viridis", vmin=lo, vmax=hi,
                        fontsize=5)
            k += 1


def dce_figure(data: Mapping[str, Any], title: str = "") -> Any:
    """The region's mean concentration (+-SD), the model fit, the AIF, and the first two parameter maps."""
    fig = new_figure((7.2, 4.4) if data.get("truth") else (6.0, 4.4))
    ax = fig.add_subplot(2, 1, 1)
    t = np.asarray(data["t"], float)
    ax.fill_between(t, data["mean"] - data["sd"], data["mean"] + data["sd"], alpha=0.2, lw=0)
    ax.plot(t, data["mean"], "o", ms=3, label="region mean")
    ax.plot(t, data["fit"], "-", lw=1.5, label=f"{data['model']} fit")
    ax2 = ax.twinx()
    ax2.plot(t, data["aif"], ":", color="grey", label="AIF (plasma)")
    ax2.set_ylabel("AIF (mM)", fontsize=8)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(f"concentration ({data['units']})")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    maps_panel(fig, data.get("maps", {}), 1, 2, truth=data.get("truth"))
    return fig
