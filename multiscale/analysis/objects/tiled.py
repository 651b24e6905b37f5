"""Segmentation and per-object tables of large images tile by tile: memory bounded by the tile, not the image.

:func:`segment_tiled` reads a (dask-backed) multichannel image one tile plus a halo at a time. Two passes:

1. the nuclear channel, smoothed tile by tile, is histogrammed (1024 bins between the image's minimum and
   maximum) and Otsu's threshold is taken from the merged histogram, so every tile uses one threshold;
2. each tile with its halo is segmented (:func:`~multiscale.analysis.objects.segment_nuclei`, then
   :func:`~multiscale.analysis.objects.segment_cells`) and quantified (:func:`object_table`); a tile keeps
   the objects whose centroid lies in its core (the halo, by default three cell diameters, holds every object
   that reaches into the core whole), renumbered after the objects of the tiles before it, so labels are unique
   across tiles and every object is counted once.

Tiles run on dask's threaded scheduler (``workers`` at a time, never a distributed Client): peak memory is
about ``workers x (tile + 2 halo)^2 x channels`` voxels plus the output label image (int32).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from multiscale.errors import AnalysisError
from multiscale.image import spatial_dims

from ._inputs import channel_names, label_image, pixel_um
from .segment import segment_cells, segment_nuclei
from .tables import object_table

__all__ = ["segment_tiled", "tile_grid"]


def tile_grid(shape: Sequence[int], tile: int) -> list[tuple[slice, slice]]:
    """The core (y, x) slices of the tiles covering a 2-D shape, row by row.

    Examples
    --------
    >>> [(s.start, s.stop, t.start, t.stop) for s, t in tile_grid((5, 7), 4)]
    [(0, 4, 0, 4), (0, 4, 4, 7), (4, 5, 0, 4), (4, 5, 4, 7)]
    """
    ny, nx = int(shape[0]), int(shape[1])
    return [(slice(y, min(y + tile, ny)), slice(x, min(x + tile, nx)))
            for y in range(0, ny, tile) for x in range(0, nx, tile)]


def _padded(core: tuple[slice, slice], halo: int, shape: tuple[int, int]) -> tuple[slice, slice]:
    return tuple(slice(max(0, s.start - halo), min(n, s.stop + halo)) for s, n in zip(core, shape))  # type: ignore


def _global_threshold(nuc: xr.DataArray, tiles: list, halo: int, sigma_px: np.ndarray, workers: int) -> float:
    import dask
    from scipy import ndimage as ndi
    from skimage.filters import threshold_otsu

    data = nuc.data
    lo_hi = (data.min(), data.max()) if hasattr(data, "compute") else (np.min(data), np.max(data))
    lo, hi = (float(v) for v in dask.compute(*lo_hi)) if hasattr(data, "compute") else (float(v) for v in lo_hi)
    if hi <= lo:
        return float("inf")
    edges = np.linspace(lo, hi, 1025)
    shape = tuple(nuc.shape)

    def one(core):
        pad = _padded(core, halo, shape)
        block = np.asarray(nuc.data[pad], dtype=np.float64)
        if hasattr(block, "compute"):
            block = block.compute()
        sm = ndi.gaussian_filter(block, sigma_px) if np.any(sigma_px > 0) else block
        inner = tuple(slice(c.start - p.start, c.stop - p.start) for c, p in zip(core, pad))
        return np.histogram(sm[inner], bins=edges)[0]

    counts = np.zeros(1024, np.int64)
    for k in range(0, len(tiles), workers):
        parts = dask.compute(*[dask.delayed(one)(c) for c in tiles[k:k + workers]], scheduler="threads",
                             num_workers=workers)
        for p in parts:
            counts += p
    centres = (edges[:-1] + edges[1:]) / 2
    return float(threshold_otsu(hist=(counts, centres)))


def segment_tiled(
    image: xr.DataArray,
    *,
    nuclei_channel: str,
    channels: Sequence[str] | None = None,
    tile_px: int = 1024,
    halo_px: int | None = None,
    sigma_um: float = 1.0,
    diameter_um: float = 8.0,
    expand_um: float = 4.0,
    threshold: float | None = None,
    cells: bool = True,
    workers: int = 2,
) -> tuple[xr.DataArray, pd.DataFrame]:
    """Segment nuclei (and cells) of a large 2-D multichannel image tile by tile and quantify every object.

    Parameters
    ----------
    image : xarray.DataArray
        ``(c, y, x)`` image, best dask-backed (each tile is read when processed).
    nuclei_channel : str
        The channel segmented (an unknown name lists the channels).
    channels : sequence of str, optional
        Channels quantified per object (default all).
    tile_px : int
        Core tile size (pixels).
    halo_px : int, optional
        Overlap read around each tile (default three times diameter + expansion, in pixels).
    sigma_um, diameter_um, expand_um
        As for :func:`~multiscale.analysis.objects.segment_nuclei` / :func:`segment_cells`.
    threshold : float, optional
        Foreground threshold (default: Otsu's of the whole smoothed channel, from merged tile histograms).
    cells : bool
        Expand nuclei into cells (False: the objects are the nuclei).
    workers : int
        Tiles processed at once (dask threads).

    Returns
    -------
    labels : xarray.DataArray
        ``int32`` labels on the image grid (numpy), unique across tiles.
    table : pandas.DataFrame
        One row per object (:func:`object_table` columns, ``label`` matching ``labels``) plus ``tile``.

    Examples
    --------
    >>> import numpy as np
    >>> from multiscale.image import spatial_image
    >>> yy, xx = np.mgrid[:64, :64]
    >>> dna = sum(((yy - y) ** 2 + (xx - x) ** 2 < 12) * 10.0 for y in range(6, 64, 13) for x in range(6, 64, 13))
    >>> img = spatial_image(np.stack([dna, dna / 2]), spacing=0.001, dims=("c", "y", "x"), channels=["DNA", "CD45"])
    >>> labels, table = segment_tiled(img, nuclei_channel="DNA", tile_px=24, diameter_um=7, expand_um=2)
    >>> len(table), int(labels.max()), table["label"].is_unique
    (25, 25, True)
    """
    import dask

    if spatial_dims(image) != ("y", "x") or "c" not in image.dims or "t" in image.dims:
        raise AnalysisError(f"segment_tiled needs a 2-D multichannel (c, y, x) image, got dims {image.dims}")
    names = channel_names(image)
    if nuclei_channel not in names:
        raise AnalysisError(f"no channel {nuclei_channel!r}; channels are {names}")
    quant = names if channels is None else [str(c) for c in channels]
    bad = [c for c in quant if c not in names]
    if bad:
        raise AnalysisError(f"no channel {bad[0]!r}; channels are {names}")
    nuc = image.isel(c=names.index(nuclei_channel), drop=True)
    px = pixel_um(nuc)
    reach_px = int(np.ceil((diameter_um + (expand_um if cells else 0.0)) / float(px.min())))
    halo = int(halo_px) if halo_px is not None else 3 * reach_px
    shape = (nuc.sizes["y"], nuc.sizes["x"])
    tiles = tile_grid(shape, int(tile_px))
    workers = max(1, int(workers))
    sigma_px = np.asarray(sigma_um, float) / px
    thr = float(threshold) if threshold is not None else _global_threshold(nuc, tiles, halo, sigma_px, workers)
    sel = [names.index(c) for c in quant]

    def one(k: int, core: tuple[slice, slice]) -> tuple[int, pd.DataFrame, np.ndarray, tuple[slice, slice]]:
        pad = _padded(core, halo, shape)
        block = image.isel(y=pad[0], x=pad[1])
        block = block.copy(data=block.data.compute() if hasattr(block.data, "compute") else np.asarray(block.data))
        n_img = block.isel(c=names.index(nuclei_channel), drop=True)
        n_img.attrs = dict(image.attrs, channel=nuclei_channel)
        lab = segment_nuclei(n_img, sigma_um=sigma_um, threshold=thr, diameter_um=diameter_um)
        if cells:
            lab = segment_cells(lab, expand_um=expand_um)
        table = object_table(lab, block.isel(c=sel))
        if len(table):
            y0 = float(block.coords["y"].values[0])
            x0 = float(block.coords["x"].values[0])
            sy, sx = (float(v) for v in px / 1000.0)
            iy = np.rint((table["centroid_y_mm"].to_numpy() - y0) / sy).astype(int) + pad[0].start
            ix = np.rint((table["centroid_x_mm"].to_numpy() - x0) / sx).astype(int) + pad[1].start
            mine = (iy >= core[0].start) & (iy < core[0].stop) & (ix >= core[1].start) & (ix < core[1].stop)
            table = table[mine].reset_index(drop=True)
        keep = np.zeros(int(lab.values.max()) + 1, bool)
        keep[table["label"].astype(int).to_numpy()] = True
        arr = np.asarray(lab.values)
        local = np.where(keep[arr], arr, 0).astype(np.int32)
        return k, table, local, pad

    labels = np.zeros(shape, np.int32)
    tables = []
    offset = 0
    for start in range(0, len(tiles), workers):
        batch = dask.compute(*[dask.delayed(one)(k, c) for k, c in enumerate(tiles[start:start + workers],
                                                                           start=start)],
                             scheduler="threads", num_workers=workers)
        for k, table, local, pad in sorted(batch, key=lambda b: b[0]):
            if not len(table):
                continue
            old = table["label"].astype(np.int64).to_numpy()
            lut = np.zeros(int(local.max()) + 1, np.int32)
            lut[old] = np.arange(offset + 1, offset + 1 + old.size, dtype=np.int32)
            new = lut[local]
            view = labels[pad]
            free = (new > 0) & (view == 0)
            view[free] = new[free]
            table = table.assign(label=lut[old].astype(float), tile=k)
            tables.append(table)
            offset += old.size
    if tables:
        out = pd.concat(tables, ignore_index=True)
        out.attrs["units"] = dict(tables[0].attrs.get("units", {}), tile="1")
    else:
        out = object_table(label_image(nuc, labels, "cells"), None).assign(tile=pd.Series(dtype=float))
    lab_img = label_image(nuc, labels, "cells" if cells else "nuclei")
    lab_img.attrs["threshold"] = thr
    lab_img.attrs["tiles"] = {"tile_px": int(tile_px), "halo_px": halo, "n_tiles": len(tiles)}
    return lab_img, out
