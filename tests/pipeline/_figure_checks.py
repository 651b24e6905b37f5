"""What a print-ready figure holds, read from the matplotlib Figure: units on the axes, colour bars, scale bars."""

from __future__ import annotations

import re
from typing import Any

UNITS = re.compile(r"\(.+\)|\[.+\]")


def _is_colorbar(ax: Any) -> bool:
    return any(getattr(c, "ax", None) is ax for c in _colorbars(ax.figure))


def _colorbars(fig: Any) -> list[Any]:
    found = []
    for ax in fig.axes:
        for im in list(ax.images) + list(ax.collections):
            cb = getattr(im, "colorbar", None)
            if cb is not None:
                found.append(cb)
    return found


def _categorical(ax: Any, axis: str) -> bool:
    """Whether an axis is labelled by names (groups, subjects, metrics) rather than numbers."""
    ticks = ax.get_xticklabels() if axis == "x" else ax.get_yticklabels()
    texts = [t.get_text().replace("\u2212", "-") for t in ticks if t.get_text()]
    if not texts:
        return False
    try:
        [float(t) for t in texts]
    except ValueError:
        return True
    return False


def _has_colour_bar(im: Any, bars: list[Any]) -> bool:
    """``im`` has its own colour bar, or shares one drawn for another image with its colour map and limits."""
    if getattr(im, "colorbar", None) is not None:
        return True
    return any(cb.mappable.get_cmap().name == im.get_cmap().name and cb.mappable.norm.vmin == im.norm.vmin
               and cb.mappable.norm.vmax == im.norm.vmax for cb in bars)


def figure_problems(fig: Any) -> list[str]:
    """Every way ``fig`` falls short of print: an axis without units, an image without colour bar or scale bar.

    An axes drawn (axis on) needs x and y labels with units in brackets, unless the axis is
    labelled by names (groups, subjects); an axes with images (imshow) or meshes needs a colour
    bar with a label for one of them (an anatomy drawn under a map needs none), unless they are
    RGB or a legend names their classes; an image whose axes are in mm needs a scale bar
    (``AnchoredSizeBar``). Hidden axes without images (dendrograms, placeholders) are skipped.
    """
    problems = []
    bars = _colorbars(fig)
    for ax in fig.axes:
        if _is_colorbar(ax):
            cb = next(c for c in bars if c.ax is ax)
            if not (cb.ax.get_ylabel() or cb.ax.get_xlabel()):
                problems.append("a colour bar without a label")
            continue
        name = ax.get_title() or ax.get_label() or "axes"
        images = [im for im in ax.images] + [c for c in ax.collections if type(c).__name__ == "QuadMesh"]
        if not ax.axison:
            if images:
                problems.append(f"{name}: an image with its axes hidden")
            continue
        for label, text in (("x", ax.get_xlabel()), ("y", ax.get_ylabel())):
            if _categorical(ax, label) or not (ax.xaxis if label == "x" else ax.yaxis).get_visible():
                continue  # names on the axis, or a twin axes sharing the other's
            if not text:
                problems.append(f"{name}: no {label} label")
            elif not UNITS.search(text):
                problems.append(f"{name}: {label} label {text!r} without units")
        scalar = [im for im in images if not (im.get_array() is not None and im.get_array().ndim == 3)]
        if scalar and ax.get_legend() is None and not any(_has_colour_bar(im, bars) for im in scalar):
            problems.append(f"{name}: an image without a colour bar")
        if ax.images and "mm" in ax.get_xlabel():
            if not any(type(a).__name__ == "AnchoredSizeBar" for a in ax.artists):
                problems.append(f"{name}: an image in mm without a scale bar")
    return problems


def png_dpi(png: bytes) -> float | None:
    """The resolution a PNG records (its pHYs chunk, pixels per metre -> per inch); None without one."""
    pos = 8
    while pos + 8 <= len(png):
        length = int.from_bytes(png[pos:pos + 4], "big")
        kind = png[pos + 4:pos + 8]
        if kind == b"pHYs":
            ppm = int.from_bytes(png[pos + 8:pos + 12], "big")
            return ppm * 0.0254 if png[pos + 16] == 1 else None
        pos += 12 + length
    return None
