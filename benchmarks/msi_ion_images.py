"""Ion images from imzML: multiscale vs pyimzML's ``getionimage`` (BENCHMARKS.md section 1), same run.

Generate the workloads first::

    .venv/bin/python benchmarks/make_msi_workloads.py [--scale 1.0]
    .venv/bin/python benchmarks/msi_ion_images.py [--workloads A B] [--repeats 3]

Prints, per workload: imzML parse time (pyimzML, ours cold) and reopen time (ours, cached index);
1 / 100 / 1,000 ion times (pyimzML for 1 and 100; its 1,000-ion time is 10x its 100-ion time,
stated as an extrapolation); the ratios; for the continuous B, the anchor "one vectorised numpy pass
over the .ibd" (:func:`numpy_pass_continuous`) and our time with today's per-spectrum search; the largest relative difference between our 100 images
and pyimzML's; and peak RSS of each method measured in a fresh subprocess. Targets are drawn at
random from the ion pool (A) or the m/z axis (B); 5 ppm windows; summed intensity.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).parent / "data" / "msi"
FILES = {"A": "A_processed.imzML", "B": "B_continuous.imzML"}
PPM = 5.0


def targets_for(name: str, n: int, data: Path, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed + n)
    if name == "A":
        pool = np.load(data / "A_pool.npy")
        return rng.choice(pool, n, replace=False)
    axis = np.load(data / "B_axis.npy")
    return rng.choice(axis[10:-10], n, replace=False)


CPU: dict[str, float] = {}


def timed(fn, repeats: int = 1, key: str | None = None):
    """Median wall time (and, under ``key`` in CPU, median CPU time: steadier on a shared machine)."""
    times, cpu, out = [], [], None
    for _ in range(repeats):
        out = None  # free the previous result first: holding two 320 MB stacks is not the workload
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    if key:
        CPU[key] = statistics.median(cpu)
    return statistics.median(times), out


def pyimzml_images(parser, targets: np.ndarray) -> np.ndarray:
    from pyimzml.ImzMLParser import getionimage

    return np.stack([getionimage(parser, float(t), tol=float(t) * PPM * 1e-6) for t in targets])


def ours_images(ds, targets: np.ndarray, exact_da: bool = False) -> np.ndarray:
    if exact_da:  # the very same window arithmetic as pyimzML (mz -+ mz * 5e-6), for the equality check
        return ds.ion_images(targets, tol=targets * PPM * 1e-6, tol_unit="da").values
    return ds.ion_images(targets, tol=PPM, tol_unit="ppm").values


def numpy_pass_continuous(parser, targets: np.ndarray, via: str = "read", chunk_bytes: int = 64 << 20) -> np.ndarray:
    """The anchor for B: one vectorised numpy pass over the .ibd, using pyimzML's parsed offsets only.

    The windows' index ranges are found once on the shared axis; the intensity block is then read
    (``via="read"``: ``readinto`` a reused buffer; ``"mmap"``: a ``numpy.memmap`` view, only the
    touched pages are read) about ``chunk_bytes`` at a time, the window columns gathered, cast to
    float64 and summed with one ``add.reduceat`` per chunk.
    """
    lo, hi = targets * (1 - PPM * 1e-6), targets * (1 + PPM * 1e-6)
    ibd = parser.m.name  # the .ibd pyimzML opened
    with open(ibd, "rb") as fh:
        fh.seek(parser.mzOffsets[0])
        axis = np.fromfile(fh, dtype=parser.mzPrecision, count=parser.mzLengths[0]).astype(np.float64)
    a = np.searchsorted(axis, lo, side="left")
    b = np.maximum(np.searchsorted(axis, hi, side="right"), a)
    cols = np.concatenate([np.arange(x, y) for x, y in zip(a, b)] + [np.zeros(1, np.int64)])
    starts = np.concatenate([[0], np.cumsum(b - a)[:-1]])
    L = int(parser.intensityLengths[0])
    dt = np.dtype(parser.intensityPrecision)
    offs = np.asarray(parser.intensityOffsets, dtype=np.int64)
    assert np.all(np.diff(offs) == L * dt.itemsize), "the anchor expects consecutive intensity arrays"
    n = offs.size
    per = max(1, chunk_bytes // (L * dt.itemsize))
    vals = np.empty((n, targets.size))
    buf = np.empty(per * L, dtype=dt)
    mm = np.memmap(ibd, dtype=dt, mode="r", offset=int(offs[0]), shape=(n, L)) if via == "mmap" else None
    with open(ibd, "rb") as fh:
        fh.seek(int(offs[0]))
        for s0 in range(0, n, per):
            k = min(per, n - s0)
            if via == "mmap":
                block = mm[s0 : s0 + k]
            else:
                fh.readinto(memoryview(buf)[: k * L * dt.itemsize].cast("B"))
                block = buf[: k * L].reshape(k, L)
            g = block[:, cols].astype(np.float64)
            g[:, -1] = 0.0  # the last column is a zero sentinel (the last window sums up to it)
            vals[s0 : s0 + k] = np.add.reduceat(g, starts, axis=1)
    vals[:, b == a] = 0.0
    xs, ys = np.array([c[0] for c in parser.coordinates]), np.array([c[1] for c in parser.coordinates])
    out = np.zeros((targets.size, ys.max(), xs.max()))
    out[:, ys - 1, xs - 1] = vals.T
    return out


def worker(method: str, name: str, n: int, data: Path) -> None:
    """Run one extraction in this (fresh) process and print its peak RSS."""
    path = data / FILES[name]
    targets = targets_for(name, n, data)
    if method == "pyimzml":
        from pyimzml.ImzMLParser import ImzMLParser
    else:
        from multiscale.io import read_imzml
        from multiscale.io._imzml_kernels import window_reduce

        window_reduce(np.ones(1), np.zeros(1, np.int64), np.ones(1), np.zeros(1, np.int64), np.ones(1, np.int64),
                      np.ones(1), np.ones(1))  # load the compiled kernel before the baseline
    base = vm_hwm_mb()
    t = time.perf_counter()
    if method == "pyimzml":
        pyimzml_images(ImzMLParser(str(path)), targets)
    else:
        ours_images(read_imzml(path, engine=method), targets)
    dt = time.perf_counter() - t
    print(json.dumps({"rss_mb": vm_hwm_mb(), "baseline_mb": base, "seconds": dt}))


def vm_hwm_mb() -> float:
    """Peak resident set of this process (VmHWM; unlike ru_maxrss it is not inherited across fork+exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss(method: str, name: str, n: int, data: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", method, name, str(n), "--data", str(data)],
        capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def first_touch_cost(n_values: int) -> tuple[float, float]:
    """Seconds to allocate and fill a float64 array of ``n_values`` (the size of the 1,000-ion stack):
    on memory this process never used (two arrays alive), then on memory it just freed. Machine
    context for the 1,000-ion times, not our code: see the README of the results."""
    def fill() -> tuple[float, np.ndarray]:
        t = time.perf_counter()
        a = np.empty(n_values)
        a[:] = 1.0
        return time.perf_counter() - t, a

    kept = [fill() for _ in range(2)]  # both alive: the second cannot reuse the first's memory
    fresh = [t for t, _ in kept]
    kept = []
    reused = [fill()[0] for _ in range(2)]  # each freed before the next
    return max(fresh), min(reused)


def bench(name: str, data: Path, repeats: int, skip_pyimzml_100: bool) -> dict:
    from pyimzml.ImzMLParser import ImzMLParser

    from multiscale.io import read_imzml

    path = data / FILES[name]
    ibd_gb = path.with_suffix(".ibd").stat().st_size / 1e9
    r: dict = {"workload": name, "ibd_GB": round(ibd_gb, 2), "load_average_start": " ".join(f"{x:.2f}" for x in os.getloadavg())}
    # warm the page cache once so that both readers see the same state
    with open(path.with_suffix(".ibd"), "rb") as fh:
        while fh.read(64 << 20):
            pass
    r["parse_pyimzml_s"], parser = timed(lambda: ImzMLParser(str(path)), key="parse_pyimzml_s")
    r["parse_ours_cold_s"], ds = timed(lambda: read_imzml(path, cache=False), key="parse_ours_cold_s")
    read_imzml(path)  # writes the cache
    r["reopen_ours_s"], ds = timed(lambda: read_imzml(path), repeats=5, key="reopen_ours_s")
    r["engine"] = "numba" if __import__("multiscale.io._imzml_kernels", fromlist=["x"]).HAVE_NUMBA else "numpy"
    t1, t100, t1000 = (targets_for(name, n, data) for n in (1, 100, 1000))
    r["pyimzml_1_s"], _ = timed(lambda: pyimzml_images(parser, t1), repeats=repeats, key="pyimzml_1_s")
    ours_images(ds, t1)  # numba compilation (cached on disk after the first run) is not timed
    r["ours_1_s"], _ = timed(lambda: ours_images(ds, t1), repeats=repeats, key="ours_1_s")
    # The first call of each size in this process is timed on its own and reported apart: in this VM
    # the first touch of memory the guest never used costs about 0.5 s per 320 MB (host-side
    # faulting), whatever the code that allocates it; the medians below are of the calls after it.
    r["ours_100_first_s"], _ = timed(lambda: ours_images(ds, t100), key="ours_100_first_s")
    r["ours_100_s"], _ = timed(lambda: ours_images(ds, t100), repeats=repeats, key="ours_100_s")
    r["ours_1000_first_s"], _ = timed(lambda: ours_images(ds, t1000), key="ours_1000_first_s")
    r["ours_1000_s"], _ = timed(lambda: ours_images(ds, t1000), repeats=repeats, key="ours_1000_s")
    if name == "B":
        # the anchor of BENCHMARKS.md: one vectorised numpy pass over the .ibd (both variants; the
        # faster is the anchor), and our images against it (the same ppm windows: identical expected)
        r["numpy_pass_read_100_s"], ref_np = timed(lambda: numpy_pass_continuous(parser, t100, "read"), repeats=repeats, key="numpy_pass_read_100_s")
        r["numpy_pass_mmap_100_s"], ref_mm = timed(lambda: numpy_pass_continuous(parser, t100, "mmap"), repeats=repeats, key="numpy_pass_mmap_100_s")
        r["numpy_pass_100_s"] = min(r["numpy_pass_read_100_s"], r["numpy_pass_mmap_100_s"])
        ours = ours_images(ds, t100)
        r["identical_to_numpy_pass"] = bool(np.array_equal(ours, ref_np) and np.array_equal(ours, ref_mm))
        ds._shared_axis_path = False  # today's per-spectrum search, for comparison
        r["ours_100_per_spectrum_search_s"], old = timed(lambda: ours_images(ds, t100), repeats=repeats)
        ds._shared_axis_path = True
        r["identical_to_per_spectrum_search"] = bool(np.array_equal(ours, old))
        del ours, old, ref_np, ref_mm
    # after the timings, so as not to warm the memory they use
    r["touch_fresh_output_s"], r["touch_reused_output_s"] = first_touch_cost(1000 * ds.n_spectra)
    ds_np = read_imzml(path, engine="numpy")
    r["ours_numpy_100_s"], _ = timed(lambda: ours_images(ds_np, t100), repeats=1, key="ours_numpy_100_s")
    ours100 = ours_images(ds, t100, exact_da=True)
    if skip_pyimzml_100:
        sub = t100[:10]
        r["pyimzml_10_s"], ref = timed(lambda: pyimzml_images(parser, sub), key="pyimzml_10_s")
        r["pyimzml_100_s"] = r["pyimzml_10_s"] * 10
        r["pyimzml_100_note"] = "extrapolated from 10 ions"
        ours_cmp = ours100[:10]
    else:
        r["pyimzml_100_s"], ref = timed(lambda: pyimzml_images(parser, t100), key="pyimzml_100_s")
        ours_cmp = ours100
    nz = ref != 0
    r["max_rel_diff_vs_pyimzml"] = float(np.max(np.abs(ours_cmp[nz] - ref[nz]) / np.abs(ref[nz]))) if nz.any() else 0.0
    r["max_abs_diff_where_pyimzml_zero"] = float(np.max(np.abs(ours_cmp[~nz]))) if (~nz).any() else 0.0
    r["nonzero_pixels_compared"] = int(nz.sum())
    for k, v in CPU.items():
        r[k[:-2] + "_cpu_s"] = v
    if "pyimzml_10_s" in CPU:
        r["pyimzml_100_cpu_s"] = CPU["pyimzml_10_s"] * 10
    r["ratio_100_pyimzml_over_ours_cpu"] = r["pyimzml_100_cpu_s"] / r["ours_100_cpu_s"]
    r["ratio_1000_over_100_ours_cpu"] = r["ours_1000_cpu_s"] / r["ours_100_cpu_s"]
    CPU.clear()
    r["ratio_100_pyimzml_over_ours"] = r["pyimzml_100_s"] / r["ours_100_s"]
    r["ratio_1_pyimzml_over_ours"] = r["pyimzml_1_s"] / r["ours_1_s"]
    r["ratio_1000_over_100_ours"] = r["ours_1000_s"] / r["ours_100_s"]
    if "numpy_pass_100_s" in r:
        r["ratio_ours_over_numpy_pass_100"] = r["ours_100_s"] / r["numpy_pass_100_s"]
        r["ratio_ours_over_numpy_pass_100_cpu"] = r["ours_100_cpu_s"] / min(r["numpy_pass_read_100_cpu_s"], r["numpy_pass_mmap_100_cpu_s"])
    r["ratio_1000_over_100_ours_first_calls"] = r["ours_1000_first_s"] / r["ours_100_first_s"]
    r["reopen_under_0.1s"] = r["reopen_ours_s"] < 0.1
    r["load_average_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    for method, n in (("pyimzml", 1), (r["engine"], 1), (r["engine"], 100), (r["engine"], 1000)):
        m = peak_rss(method, name, n, data)
        r[f"peak_rss_{method}_{n}_MB"] = round(m["rss_mb"], 1)
        r[f"peak_rss_above_imports_{method}_{n}_MB"] = round(m["rss_mb"] - m["baseline_mb"], 1)
    return r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workloads", nargs="+", default=["A", "B"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--skip-pyimzml-100", action="store_true", help="time pyimzML on 10 ions and extrapolate")
    ap.add_argument("--worker", nargs=3, metavar=("METHOD", "WORKLOAD", "N"))
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()
    if args.worker:
        worker(args.worker[0], args.worker[1], int(args.worker[2]), args.data)
        return
    scale = (args.data / "SCALE").read_text().strip() if (args.data / "SCALE").exists() else "?"
    results = []
    for name in args.workloads:
        r = bench(name, args.data, args.repeats, args.skip_pyimzml_100)
        r["scale"] = scale
        results.append(r)
        print(f"\n== workload {name} ({r['ibd_GB']} GB .ibd, scale {scale}, engine {r['engine']})")
        for k, v in r.items():
            print(f"  {k:34s} {v:.4g}" if isinstance(v, float) else f"  {k:34s} {v}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
