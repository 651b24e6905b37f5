"""Generate the imzML benchmark workloads A and B (BENCHMARKS.md section 1) with pyimzML's writer.

A: processed centroid file, 200x200 pixels, 5,000 peaks per spectrum drawn from a pool of 20,000
   ions with ~1.5 ppm jitter; m/z float64, intensity float32 (about 2.4 GB .ibd).
B: continuous profile file, 150x150 pixels, 20,000 m/z bins; m/z float64, intensity float32
   (about 1.8 GB .ibd).

``--scale s`` multiplies the number of pixels by ``s`` (the side by sqrt(s)), e.g. ``--scale 0.1``.

Usage::

    .venv/bin/python benchmarks/make_msi_workloads.py [--scale 1.0] [--only A|B] [--out benchmarks/data/msi]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from pyimzml.ImzMLWriter import ImzMLWriter

POOL_SIZE = 20_000
PEAKS = 5_000
BINS = 20_000


def side(full: int, scale: float) -> int:
    return max(2, int(round(full * np.sqrt(scale))))


def make_pool(seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.sort(rng.uniform(150.0, 1000.0, POOL_SIZE))


def write_a(out: Path, scale: float, seed: int = 2) -> Path:
    n = side(200, scale)
    pool = make_pool()
    np.save(out / "A_pool.npy", pool)
    rng = np.random.default_rng(seed)
    pool_int = rng.lognormal(3.0, 1.0, POOL_SIZE).astype(np.float64)  # each ion's typical abundance
    path = out / "A_processed.imzML"
    with ImzMLWriter(str(path), mz_dtype=np.float64, intensity_dtype=np.float32, mode="processed", spec_type="centroid", polarity="positive") as w:
        for y in range(1, n + 1):
            for x in range(1, n + 1):
                pick = np.sort(rng.permutation(POOL_SIZE)[:PEAKS])
                mz = pool[pick] * (1.0 + rng.normal(0.0, 1.5e-6, PEAKS))
                order = np.argsort(mz, kind="stable")
                inten = (pool_int[pick] * rng.gamma(4.0, 0.25, PEAKS)).astype(np.float32)
                w.addSpectrum(mz[order], inten[order], (x, y))
    _add_pixel_size(path, 20.0)
    return path


def write_b(out: Path, scale: float, seed: int = 3) -> Path:
    n = side(150, scale)
    rng = np.random.default_rng(seed)
    mz = np.linspace(150.0, 1000.0, BINS)
    np.save(out / "B_axis.npy", mz)
    centres = rng.uniform(160.0, 990.0, 300)
    # a fixed profile: 300 Gaussian peaks (sigma ~ 3 bins) on a baseline; pixels scale peak heights
    width = 3 * (mz[1] - mz[0])
    k = np.searchsorted(mz, centres)
    path = out / "B_continuous.imzML"
    with ImzMLWriter(str(path), mz_dtype=np.float64, intensity_dtype=np.float32, mode="continuous", spec_type="profile", polarity="positive") as w:
        for y in range(1, n + 1):
            for x in range(1, n + 1):
                prof = rng.gamma(2.0, 0.5, BINS)
                heights = rng.lognormal(3.0, 1.0, centres.size)
                for off in range(-8, 9):
                    idx = np.clip(k + off, 0, BINS - 1)
                    prof[idx] += heights * np.exp(-0.5 * ((mz[idx] - centres) / width) ** 2)
                w.addSpectrum(mz, prof.astype(np.float32), (x, y))
    _add_pixel_size(path, 50.0)
    return path


def _add_pixel_size(path: Path, um: float) -> None:
    """pyimzML's writer omits the pixel size; add the scanSettings cvParams (IMS:1000046/47)."""
    text = path.read_text(encoding="latin-1")
    anchor = '<cvParam cvRef="IMS" accession="IMS:1000043"'
    i = text.index(anchor)
    j = text.index("\n", i)
    extra = (
        f'\n      <cvParam cvRef="IMS" accession="IMS:1000046" name="pixel size (x)" value="{um}" unitCvRef="UO" unitAccession="UO:0000017" unitName="micrometer"/>'
        f'\n      <cvParam cvRef="IMS" accession="IMS:1000047" name="pixel size y" value="{um}" unitCvRef="UO" unitAccession="UO:0000017" unitName="micrometer"/>'
    )
    tmp = path.with_suffix(".imzML.tmp")
    tmp.write_text(text[:j] + extra + text[j:], encoding="latin-1")
    tmp.replace(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the full pixel count (default 1.0)")
    ap.add_argument("--only", choices=["A", "B"], default=None)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "data" / "msi")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, fn in (("A", write_a), ("B", write_b)):
        if args.only and args.only != name:
            continue
        t = time.perf_counter()
        p = fn(args.out, args.scale)
        ibd = p.with_suffix(".ibd")
        print(f"{name}: {p} ({ibd.stat().st_size / 1e9:.2f} GB .ibd) in {time.perf_counter() - t:.0f} s, scale {args.scale}")
    (args.out / "SCALE").write_text(str(args.scale))


if __name__ == "__main__":
    main()
