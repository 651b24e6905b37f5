"""Heterogeneity analysis benchmark: our functions against a plain anchor measured in the same run.

Workloads (generated in memory, deterministic):

1. **Costes stepper** (Coloc 2's simple stepper) on a 128 x 128 12-bit pair: ours (all steps' Pearson
   r from one pass, O(N + steps)) vs the literal loop (one Pearson per step, as Coloc 2 runs it).
   Both must return the same thresholds.
2. **Radial profile** of a 128^3 float32 volume (dask, 48^3 chunks) in a 50 mm sphere at 0.5 mm:
   ours (anti-aliased depth, 10 shells, mean/median/quartiles/bootstrap CI) vs the minimal numpy
   anchor (in-memory ``distance_transform_edt`` + ``bincount`` means per shell).
3. **Colocalisation** (Pearson, Spearman, Kendall, Manders, ICQ, Costes bisection) on a 512 x 512
   pair, dask with 128^2 chunks, vs scikit-image's ``pearson_corr_coeff`` + ``manders_coloc_coeff``
   (which give only Pearson and Manders).

Usage::

    .venv/bin/python benchmarks/heterogeneity.py [--repeats 3] [--out benchmarks/results/heterogeneity.md]

Each line prints median seconds over the repeats and the ratio ours / anchor.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import dask.array as da
import numpy as np

from multiscale.analysis.coloc import colocalisation, costes_threshold, pearson_r
from multiscale.analysis.radial import radial_profile
from multiscale.image import spatial_image


def _median_time(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def _literal_stepper(x, y):
    n = x.size
    mx, my = x.mean(), y.mean()
    vx = ((x - mx) ** 2).sum() / (n - 1)
    vy = ((y - my) ** 2).sum() / (n - 1)
    cov = 0.5 * (((x + y - mx - my) ** 2).sum() / (n - 1) - vx - vy)
    m = (vy - vx + math.sqrt((vy - vx) ** 2 + 4 * cov * cov)) / (2 * cov)
    b = my - m * mx
    on_x = -1 < m < 1
    t, cur = (x.max() if on_x else y.max()), 1.0
    while True:
        t1 = math.floor((t if on_x else (t - b) / m) + 0.5)
        t2 = math.floor((t * m + b if on_x else t) + 0.5)
        s = (x < t1) | (y < t2)
        r = pearson_r(x[s], y[s])
        last, cur = cur, r
        t -= 1
        if t < 1 or r < 1e-4 or r > last:
            return float(t1), float(t2)


def bench_costes(repeats):
    rng = np.random.default_rng(0)
    n = 128 * 128
    bg = rng.integers(0, 400, (2, n // 2)).astype(float)
    sig = rng.integers(400, 4000, n // 2).astype(float)
    x = np.concatenate([bg[0], sig])
    y = np.concatenate([bg[1], np.clip(sig + rng.normal(0, 40, sig.size), 0, 4095).round()])
    t_ours, ours = _median_time(lambda: costes_threshold(x, y, "stepper", np.uint16), repeats)
    t_anchor, anchor = _median_time(lambda: _literal_stepper(x, y), max(1, repeats // 3))
    same = (ours["threshold_a"], ours["threshold_b"]) == anchor
    return {
        "name": "Costes simple stepper, 16,384 voxels, 12-bit",
        "ours_s": t_ours, "anchor_s": t_anchor, "ratio": t_ours / t_anchor,
        "note": f"{ours['steps']} steps; thresholds {ours['threshold_a']:g}/{ours['threshold_b']:g}, identical: {same}",
    }


def bench_radial(repeats):
    n, sp = 128, 0.5
    c = (n - 1) / 2
    zz, yy, xx = (np.mgrid[:n, :n, :n].astype(np.float32) - c) * sp
    r = np.sqrt(zz**2 + yy**2 + xx**2)
    del zz, yy, xx
    values = (100.0 - 2.0 * (25.0 - r)).astype(np.float32)
    mask_np = r <= 25.0
    img = spatial_image(da.from_array(values, chunks=48), spacing=sp)
    mask = spatial_image(mask_np, spacing=sp)

    def anchor():
        from scipy import ndimage as ndi

        depth = ndi.distance_transform_edt(mask_np, sampling=(sp, sp, sp))
        d = depth[mask_np]
        lab = np.minimum((d / d.max() * 10).astype(int), 9)
        return np.bincount(lab, values[mask_np], 10) / np.bincount(lab, minlength=10)

    t_ours, prof = _median_time(lambda: radial_profile(img, mask, shells=10, n_boot=200), repeats)
    t_anchor, _ = _median_time(anchor, repeats)
    return {
        "name": f"radial_profile, 128^3 dask volume, {int(mask_np.sum()):,} voxels in the sphere",
        "ours_s": t_ours, "anchor_s": t_anchor, "ratio": t_ours / t_anchor,
        "note": "ours adds anti-aliased depth, median/quartiles and a 200-resample bootstrap CI per shell",
    }


def bench_coloc(repeats):
    from scipy import ndimage as ndi
    from skimage.measure import manders_coloc_coeff, pearson_corr_coeff

    rng = np.random.default_rng(1)
    base = ndi.gaussian_filter(rng.random((512, 512)), 3)
    base = (base - base.min()) / np.ptp(base)
    a_np = np.round(base * 3000 + rng.normal(0, 50, base.shape)).clip(0, 4095)
    b_np = np.round(base * 2000 + rng.normal(0, 50, base.shape)).clip(0, 4095)
    a = spatial_image(da.from_array(a_np, chunks=128), spacing=0.001)
    b = spatial_image(da.from_array(b_np, chunks=128), spacing=0.001)

    def anchor():
        return pearson_corr_coeff(a_np, b_np)[0], manders_coloc_coeff(a_np, b_np > 0), manders_coloc_coeff(b_np, a_np > 0)

    t_ours, res = _median_time(lambda: colocalisation(a, b), repeats)
    t_anchor, ref = _median_time(anchor, repeats)
    agree = abs(res["pearson"] - ref[0]) < 1e-9 and abs(res["m1"] - ref[1]) < 1e-9
    return {
        "name": "colocalisation, 512^2 dask pair (all coefficients + Costes bisection)",
        "ours_s": t_ours, "anchor_s": t_anchor, "ratio": t_ours / t_anchor,
        "note": f"anchor computes Pearson and Manders only; those agree to 1e-9: {agree}",
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    rows = []
    for bench in (bench_costes, bench_radial, bench_coloc):
        rows.append(bench(args.repeats))
        print(rows[-1], flush=True)
    lines = [
        f"# Heterogeneity analysis benchmark ({_dt.date.today().isoformat()})",
        "",
        f"Command: `.venv/bin/python benchmarks/heterogeneity.py --repeats {args.repeats}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; shared and noisy.",
        "",
        "| workload | ours (s, median) | anchor (s, median) | ours / anchor | note |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(f"| {r['name']} | {r['ours_s']:.3f} | {r['anchor_s']:.3f} | {r['ratio']:.3f} | {r['note']} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=args.out.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
