"""Depth maps inside masks: sub-voxel k-d tree (ours) vs fast marching (scikit-fmm) vs distance to the staircase.

Usage: ``nice .venv/bin/python benchmarks/depth_maps.py [--repeats 5]``

Issue 21 asked to justify scikit-fmm with numbers or make it optional. ``multiscale.analysis._depth`` now finds
the 0.5 level of the smoothed mask by linear interpolation along grid edges and takes exact Euclidean distances
to those points (scipy's cKDTree): no compiled extension of its own. This compares, on voxelised spheres (depth
known: R - r) and on the example study's tumour mask (``example_datasets/generated/tumour_mask.nii.gz``, if
generated), the slope of depth against the true depth, the mean error, and the time (median of repeats); the
anchor is scikit-fmm's second-order fast marching on the same smoothed mask, measured in the same run when
scikit-fmm is installed.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from multiscale.analysis import _depth

ROOT = Path(__file__).resolve().parents[1]


def _fmm_depth(mask: np.ndarray, sp: np.ndarray) -> np.ndarray | None:
    try:
        import skfmm
    except ImportError:
        return None
    # the same bounding box and face fallback as the library's, fast marching instead of the k-d tree
    idx = np.nonzero(mask)
    box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in idx)
    sub = mask[box]
    pad = 5
    phi = ndi.gaussian_filter(np.pad(sub, pad).astype(np.float64), 1.0) - 0.5
    d = skfmm.distance(phi, dx=[float(v) for v in sp], order=2)[tuple(slice(pad, -pad) for _ in range(mask.ndim))]
    face = _depth._edt_to_face(sub, sp)
    out = np.zeros(mask.shape)
    out[box] = np.where(sub, np.where(sub & (d > 0), d, face), 0.0)
    return out


METHODS = {
    "k-d tree (ours)": lambda m, sp: _depth._inside_depth_mm(m, sp),
    "fast marching (scikit-fmm)": _fmm_depth,
    "EDT to the staircase": lambda m, sp: np.where(m, _depth._edt_to_face(m, sp), 0.0),
}


def _median_time(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)), out


def _sphere(radius: float, sp: np.ndarray):
    n = [int(2 * radius / s) + 6 for s in sp]
    grids = np.meshgrid(*[(np.arange(k) - (k - 1) / 2) * s for k, s in zip(n, sp)], indexing="ij")
    r = np.sqrt(sum(g * g for g in grids))
    return r < radius, radius - r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    cases = [("sphere R 12 mm, 1 mm voxels", *_sphere(12.0, np.array([1.0, 1.0, 1.0])), np.array([1.0, 1.0, 1.0])),
             ("sphere R 10 mm, 2 x 0.7 x 0.7 mm", *_sphere(10.0, np.array([2.0, 0.7, 0.7])), np.array([2.0, 0.7, 0.7]))]
    tumour = ROOT / "example_datasets" / "generated" / "tumour_mask.nii.gz"
    if tumour.is_file():
        from multiscale import io
        from multiscale.image import spacing

        m = io.load(tumour)
        cases.append(("example study tumour (no analytic depth)", np.asarray(m.values) > 0, None,
                      np.asarray(spacing(m), dtype=float)))
    print("| mask | method | slope vs true depth | mean abs error mm | median s | x fast marching time |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, mask, truth, sp in cases:
        t_anchor = None
        rows = []
        for method, fn in METHODS.items():
            dt, d = _median_time(lambda fn=fn, mask=mask, sp=sp: fn(mask, sp), args.repeats)
            if d is None:
                continue
            if method.startswith("fast"):
                t_anchor = dt
            if truth is not None:
                sel = mask & (truth > 1.5)
                slope = np.polyfit(truth[sel], d[sel], 1)[0]
                err = float(np.abs(d[sel] - truth[sel]).mean())
                rows.append((method, f"{slope:.4f}", f"{err:.3f}", dt))
            else:
                ref = _fmm_depth(mask, sp)
                diff = f"{np.abs(d - ref)[mask].mean():.3f} vs fmm" if ref is not None else "-"
                rows.append((method, "-", diff, dt))
        for method, slope, err, dt in rows:
            ratio = f"{dt / t_anchor:.2f}" if t_anchor else "-"
            print(f"| {name} | {method} | {slope} | {err} | {dt:.4f} | {ratio} |")


if __name__ == "__main__":
    main()
