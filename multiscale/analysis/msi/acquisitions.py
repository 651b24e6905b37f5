"""Several acquisitions of one section on one grid, and multi-ion RGB composites.

Two polarities, or a second matrix after delipidation, image the same section on grids that registration
brings together (:mod:`multiscale.registration`; resampling belongs there). :func:`combine_acquisitions` checks
that the stacks already share one grid and joins their channels, each prefixed with its acquisition's name
(``"pos:544.1813"``, ``"neg:885.5499"``); :func:`rgb_composite` makes a three-ion overlay (each channel scaled
to [0, 1] between 0 and its ``percentile``-th percentile, METASPACE-style hotspot clipping).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from multiscale import image as mi
from multiscale.errors import AnalysisError

__all__ = ["combine_acquisitions", "rgb_composite"]


def combine_acquisitions(acquisitions: Mapping[str, xr.DataArray]) -> xr.DataArray:
    """One stack from several acquisitions already on one grid; channels named ``"<acquisition>:<channel>"``.

    ``attrs['targets_mz']`` maps each new channel name to its m/z (when numeric) and ``attrs['acquisition']``
    to its acquisition.

    Raises
    ------
    AnalysisError
        An acquisition on another grid (the message says to resample it with its registration first).

    Examples
    --------
    >>> from multiscale.image import spatial_image
    >>> pos = spatial_image(np.ones((1, 2, 2)), spacing=0.05, dims=("c", "y", "x"), channels=[544.18])
    >>> neg = spatial_image(np.zeros((1, 2, 2)), spacing=0.05, dims=("c", "y", "x"), channels=[885.55])
    >>> combine_acquisitions({"pos": pos, "neg": neg}).coords["c"].values.tolist()
    ['pos:544.18', 'neg:885.55']
    """
    if not acquisitions:
        raise AnalysisError("no acquisition given")
    items = list(acquisitions.items())
    first_name, first = items[0]
    first = first if "c" in first.dims else first.expand_dims(c=[first.attrs.get("channel", first_name)])
    template = first.isel(c=0, drop=True)
    parts, names, mzs, acq = [], [], {}, {}
    for name, img in items:
        img = img if "c" in img.dims else img.expand_dims(c=[img.attrs.get("channel", name)])
        one = img.isel(c=0, drop=True)
        if not mi.same_grid(one, template, rtol=1e-4):
            g, t = mi.grid_of(one), mi.grid_of(template)
            raise AnalysisError(
                f"acquisition {name!r} is on another grid (shape {g['shape']}, spacing {g['spacing']}, origin "
                f"{g['origin']}) than {first_name!r} ({t['shape']}, {t['spacing']}, {t['origin']}); register it and "
                f"resample it onto {first_name!r}'s grid first (multiscale.registration.resample)")
        tm = img.attrs.get("targets_mz") or {}
        for c in img.coords["c"].values:
            label = f"{name}:{c}"
            names.append(label)
            acq[label] = name
            try:
                mzs[label] = float(c)
            except (TypeError, ValueError):
                if str(c) in tm:
                    mzs[label] = float(tm[str(c)])
        parts.append(np.asarray(img.transpose("c", *template.dims).values, dtype=np.float64))
    data = np.concatenate(parts, axis=0)
    out = mi.like(first, data, dims=("c",) + tuple(template.dims))
    out = out.assign_coords(c=names)
    out.attrs = dict(first.attrs, targets_mz=mzs, acquisition=acq, agent=f"{len(items)} acquisitions combined")
    return out


def rgb_composite(images: xr.DataArray, channels: Sequence[Any], percentile: float = 99.0) -> xr.DataArray:
    """Three (or two) ion images as one RGB image, each scaled to [0, 1] up to its ``percentile``.

    Returns an image with ``c`` = ``["R", "G", "B"]``; ``attrs['rgb_channels']`` names the ions.

    Examples
    --------
    >>> from multiscale.image import spatial_image
    >>> st = spatial_image(np.stack([np.eye(3), np.ones((3, 3)), np.zeros((3, 3))]), spacing=0.05,
    ...                    dims=("c", "y", "x"), channels=["a", "b", "c"])
    >>> rgb = rgb_composite(st, ["a", "b"])
    >>> rgb.sizes["c"], float(rgb.sel(c="R").max()), float(rgb.sel(c="B").max())
    (3, 1.0, 0.0)
    """
    if not 1 <= len(channels) <= 3:
        raise AnalysisError(f"an RGB composite takes 1 to 3 channels, got {len(channels)}")
    from .composition import channel_index

    template = images.isel(c=0, drop=True)
    planes = []
    for ch in channels:
        v = np.asarray(images.isel(c=channel_index(images, ch)).values, dtype=np.float64)
        pos = v[np.isfinite(v) & (v > 0)]
        hi = float(np.percentile(pos, percentile)) if pos.size else 1.0
        planes.append(np.clip(np.nan_to_num(v) / (hi if hi > 0 else 1.0), 0, 1))
    while len(planes) < 3:
        planes.append(np.zeros(template.shape))
    out = mi.like(template, np.stack(planes), dims=("c",) + tuple(template.dims), units="1", aspect="composite")
    out = out.assign_coords(c=["R", "G", "B"])
    out.attrs["rgb_channels"] = [str(c) for c in channels]
    return out
