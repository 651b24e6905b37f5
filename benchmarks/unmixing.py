"""Vectorised NNLS unmixing against scipy.optimize.nnls pixel by pixel (the anchor), in one run.

Workload: a 6-wavelength (700-900 nm) optoacoustic-like stack of N x N pixels made from Prahl's haemoglobin
spectra plus a third absorber, noise at SNR 50. Ours: ``multiscale.analysis.unmixing.unmix`` (enumerated active
sets, all pixels of a block at once; numpy in memory and dask in 256 px blocks). Anchor: ``scipy.optimize.nnls``
called per pixel on a random subset, scaled to the same pixel count. Printed: pixels per second (medians over
repeats), the ratio, and the largest difference from scipy on the subset.

Run:  .venv/bin/python benchmarks/unmixing.py [--size 1024] [--repeats 3] [--endmembers 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def main(argv: list[str] | None = None) -> int:
    import dask
    import dask.array as da
    import scipy.optimize

    from multiscale.analysis.unmixing import spectra_matrix, unmix
    from multiscale.image import spatial_image

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--endmembers", type=int, default=3, choices=(2, 3))
    args = ap.parse_args(argv)
    wl = np.array([700.0, 730.0, 760.0, 800.0, 850.0, 900.0])
    members: dict = {"HbO2": "HbO2", "Hb": "Hb"}
    if args.endmembers == 3:
        members["dye"] = lambda w: 1500.0 * np.exp(-0.5 * ((np.asarray(w) - 800.0) / 30.0) ** 2)
    _, A = spectra_matrix(members, wl)
    n = args.size
    rng = np.random.default_rng(0)
    conc = rng.uniform(0.0, 1.0, (A.shape[1], n, n)) * 1e-3
    stack = np.einsum("lk,kyx->lyx", A, conc)
    stack += rng.normal(0, stack.mean() / 50, stack.shape)
    img = spatial_image(stack, spacing=0.1, dims=("c", "y", "x"), channels=wl)
    ours, lazy, anchor = [], [], []
    sub = rng.choice(n * n, 2000, replace=False)
    B = stack.reshape(len(wl), -1)[:, sub]
    for _ in range(args.repeats):
        t = time.perf_counter()
        u = unmix(img, members)
        ours.append(time.perf_counter() - t)
        limg = img.copy(data=da.from_array(stack, chunks=(len(wl), 256, 256)))
        t = time.perf_counter()
        with dask.config.set(scheduler="threads", num_workers=2):
            unmix(limg, members).compute()
        lazy.append(time.perf_counter() - t)
        t = time.perf_counter()
        ref = np.array([scipy.optimize.nnls(A, B[:, j])[0] for j in range(B.shape[1])]).T
        anchor.append((time.perf_counter() - t) * (n * n) / B.shape[1])
    got = u.values[: A.shape[1]].reshape(A.shape[1], -1)[:, sub]
    px = n * n
    print(f"{px:,} pixels, {len(wl)} wavelengths, {A.shape[1]} endmembers")
    print(f"ours (numpy, one block): {px / statistics.median(ours) / 1e6:.2f} Mpx/s; "
          f"ours (dask, 256 px blocks, 2 threads): {px / statistics.median(lazy) / 1e6:.2f} Mpx/s; "
          f"anchor scipy.optimize.nnls per pixel: {px / statistics.median(anchor) / 1e6:.4f} Mpx/s")
    print(f"speed-up {statistics.median(anchor) / statistics.median(ours):.0f}x (numpy), "
          f"{statistics.median(anchor) / statistics.median(lazy):.0f}x (dask); "
          f"max |ours - scipy| on {B.shape[1]} pixels: {np.abs(got - ref).max():.2e} (concentrations ~1e-3)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
