"""Cells at scale: a 4,000 x 4,000 px, 40-channel multiplex (~30,000 cells) segmented and quantified tile by tile.

Workload: a synthetic multiplex written once (block by block; one channel x 1000 x 1000 px per chunk) to a Zarr
store under ``benchmarks/data/objects``:
a jittered lattice of cells (pitch 23 px, 1 µm pixels), nuclei of radius 5 px in channel 0 (``DNA``, with
Gaussian noise), cytoplasm rings to radius 9 px; each cell has one of 8 types and channel c (1..39) is expressed
in the cytoplasm of the cells of type c mod 8. The true number of cells is printed.

Two runs, each in a fresh process (so its peak RSS is its own):

* ``tiled``: :func:`multiscale.analysis.objects.segment_tiled` on the lazily read store (dask, tiles of
  ``--tile`` px with a halo, ``--workers`` tiles at a time): nuclei (smoothing, Otsu, distance-transform
  watershed), cells (expanded nuclei), and the per-object table of all 40 channels;
* ``whole`` (the anchor): the same scikit-image/scipy calls done by hand on the whole array in memory
  (``gaussian_filter``, ``threshold_otsu``, ``binary_fill_holes``, ``distance_transform_edt``,
  ``peak_local_max``, ``watershed``, ``expand_labels``, ``regionprops_table`` with the 40-channel intensity
  image).

Run::

    .venv/bin/python benchmarks/objects.py                       # 4000 px, 40 channels, 1 repeat
    .venv/bin/python benchmarks/objects.py --size 2000 --repeats 3

Prints the time and peak RSS of each and their ratios (tiled / whole), and the cells found by each.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "objects"
PITCH, R_NUC, R_CELL, N_TYPES = 23.0, 5.0, 9.0, 8


def _cells(size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Cell centres (y, x) and types of the whole workload (deterministic)."""
    rng = np.random.default_rng(seed)
    n = int(size // PITCH)
    g = (np.mgrid[:n, :n].reshape(2, -1).T + 0.5) * PITCH
    g = g + rng.uniform(-3.0, 3.0, g.shape)
    return g, rng.integers(0, N_TYPES, len(g))


def _block(size: int, channels: int, y0: int, x0: int, h: int, w: int, centres, types, seed: int) -> np.ndarray:
    """The (c, h, w) uint16 counts of one chunk."""
    cell = np.zeros((h, w), np.int32)
    nuc = np.zeros((h, w), bool)
    near = np.all((centres > [y0 - R_CELL - 1, x0 - R_CELL - 1]) & (centres < [y0 + h + R_CELL + 1,
                                                                                 x0 + w + R_CELL + 1]), axis=1)
    yy, xx = np.mgrid[y0:y0 + h, x0:x0 + w]
    for k in np.flatnonzero(near):
        cy, cx = centres[k]
        ys = slice(max(0, int(cy - R_CELL) - y0 - 1), min(h, int(cy + R_CELL) - y0 + 2))
        xs = slice(max(0, int(cx - R_CELL) - x0 - 1), min(w, int(cx + R_CELL) - x0 + 2))
        d2 = (yy[ys, xs] - cy) ** 2 + (xx[ys, xs] - cx) ** 2
        cell[ys, xs][d2 <= R_CELL ** 2] = k + 1
        nuc[ys, xs] |= d2 <= R_NUC ** 2
    out = np.empty((channels, h, w), np.uint16)
    rng = np.random.default_rng(seed * 7919 + y0 * 4001 + x0)
    out[0] = np.clip(np.where(nuc, 60.0, 5.0) + rng.normal(0, 4.0, (h, w)), 0, None).astype(np.uint16)
    ctype = np.r_[-1, types][cell]
    cyto = (cell > 0) & ~nuc
    for c in range(1, channels):
        out[c] = np.where(cyto & (ctype == c % N_TYPES), 40, 2).astype(np.uint16)
    return out


def make_workload(size: int, channels: int, seed: int = 0) -> Path:
    """Write the workload to a Zarr store once (chunk by chunk: memory bounded by a chunk)."""
    import zarr

    path = DATA / f"multiplex_{size}_{channels}_{seed}_c1.zarr"
    if (path / "zarr.json").exists() and (path / "done").exists():
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    centres, types = _cells(size, seed)
    chunk = 1000
    # one channel per chunk (as OME-Zarr multiplex stores are written): a tile reads only its own pixels
    arr = zarr.create_array(str(path), shape=(channels, size, size), chunks=(1, chunk, chunk), dtype="uint16",
                            overwrite=True)
    for y0 in range(0, size, chunk):
        for x0 in range(0, size, chunk):
            h, w = min(chunk, size - y0), min(chunk, size - x0)
            arr[:, y0:y0 + h, x0:x0 + w] = _block(size, channels, y0, x0, h, w, centres, types, seed)
    (path / "done").write_text(str(len(centres)))
    return path


def _image(path: Path, lazy: bool):
    import dask.array as da

    from multiscale.image import spatial_image

    data = da.from_zarr(str(path))
    if not lazy:
        data = data.compute()
    names = ["DNA"] + [f"M{c:02d}" for c in range(1, data.shape[0])]
    return spatial_image(data, spacing=0.001, dims=("c", "y", "x"), channels=names, units="counts")


def run_tiled(path: Path, tile: int, workers: int) -> dict:
    from multiscale.analysis.objects import segment_tiled

    img = _image(path, lazy=True)
    t0 = time.perf_counter()
    labels, table = segment_tiled(img, nuclei_channel="DNA", tile_px=tile, workers=workers, sigma_um=1.0,
                                  diameter_um=10.0, expand_um=4.0)
    return {"seconds": time.perf_counter() - t0, "cells": len(table), "columns": table.shape[1]}


def run_whole(path: Path) -> dict:
    from scipy import ndimage as ndi
    from skimage.feature import peak_local_max
    from skimage.filters import threshold_otsu
    from skimage.measure import regionprops_table
    from skimage.segmentation import expand_labels, watershed

    img = np.asarray(_image(path, lazy=False).data)
    t0 = time.perf_counter()
    smooth = ndi.gaussian_filter(img[0].astype(np.float64), 1.0)
    fg = ndi.binary_fill_holes(smooth > threshold_otsu(smooth))
    cc, _ = ndi.label(fg)
    small = np.bincount(cc.ravel()) < 0.1 * np.pi / 4 * 10.0 ** 2      # a tenth of a 10 µm nucleus
    small[0] = False
    fg &= ~small[cc]
    cc, _ = ndi.label(fg)
    dist = ndi.distance_transform_edt(fg)
    half = 3
    g = np.mgrid[-half:half + 1, -half:half + 1] / half
    peaks = peak_local_max(dist, footprint=(g ** 2).sum(0) <= 1, labels=cc, exclude_border=False)
    seeds = np.zeros(fg.shape, bool)
    seeds[tuple(peaks.T)] = True
    markers, _ = ndi.label(ndi.binary_dilation(seeds) & fg)               # touching plateau peaks: one seed
    nuclei = watershed(-dist, markers, mask=fg)
    cells = expand_labels(nuclei, 4)
    # the properties object_table reports: shape (regionprops) and every channel's mean
    table = regionprops_table(cells, np.moveaxis(img, 0, -1),
                              properties=("label", "area", "centroid", "equivalent_diameter_area",
                                          "major_axis_length", "minor_axis_length", "eccentricity", "solidity",
                                          "perimeter", "intensity_mean"))
    return {"seconds": time.perf_counter() - t0, "cells": len(table["label"]), "columns": len(table)}


def _child(mode: str, path: Path, tile: int, workers: int) -> dict:
    out = run_tiled(path, tile, workers) if mode == "tiled" else run_whole(path)
    use = resource.getrusage(resource.RUSAGE_SELF)
    out["peak_rss_mb"] = use.ru_maxrss / 1024.0
    out["cpu_seconds"] = use.ru_utime + use.ru_stime          # the whole process: reading included
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=4000)
    ap.add_argument("--channels", type=int, default=40)
    ap.add_argument("--tile", type=int, default=1024)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--child", choices=["tiled", "whole"])
    ap.add_argument("--path")
    a = ap.parse_args()
    if a.child:
        print(json.dumps(_child(a.child, Path(a.path), a.tile, a.workers)))
        return
    t0 = time.perf_counter()
    path = make_workload(a.size, a.channels)
    n_true = int((path / "done").read_text())
    print(f"workload: {a.size} x {a.size} px, {a.channels} channels, {n_true} cells "
          f"(store {path}, made in {time.perf_counter() - t0:.1f} s)")
    results: dict[str, list[dict]] = {"tiled": [], "whole": []}
    for _ in range(a.repeats):
        for mode in ("tiled", "whole"):
            cmd = [sys.executable, __file__, "--child", mode, "--path", str(path), "--tile", str(a.tile),
                   "--workers", str(a.workers)]
            res = subprocess.run(cmd, capture_output=True, text=True, check=True)
            results[mode].append(json.loads(res.stdout.strip().splitlines()[-1]))
    med = {m: {k: float(np.median([r[k] for r in rs])) for k in ("seconds", "cpu_seconds", "peak_rss_mb", "cells")}
           for m, rs in results.items()}
    print(f"{'run':8s} {'wall (s)':>10s} {'CPU (s)':>10s} {'peak RSS (MB)':>14s} {'cells':>8s}")
    for m in ("tiled", "whole"):
        print(f"{m:8s} {med[m]['seconds']:10.1f} {med[m]['cpu_seconds']:10.1f} {med[m]['peak_rss_mb']:14.0f} "
              f"{med[m]['cells']:8.0f}")
    print(f"ratio tiled / whole: wall {med['tiled']['seconds'] / med['whole']['seconds']:.2f}, "
          f"CPU {med['tiled']['cpu_seconds'] / med['whole']['cpu_seconds']:.2f}, "
          f"peak RSS {med['tiled']['peak_rss_mb'] / med['whole']['peak_rss_mb']:.2f} "
          f"(medians of {a.repeats}; tiles {a.tile} px, {a.workers} workers; true cells {n_true})")


if __name__ == "__main__":
    main()
