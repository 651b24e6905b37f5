"""Voxel-wise texture maps: throughput (voxels/s) and peak memory per family, against pyradiomics.

Workload (BENCHMARKS.md section 2): a 64x256x256 int16 volume at 1 mm (Gaussian-smoothed noise or
white noise), a 33,552-voxel sphere (radius 20) or the 926,496-voxel ellipsoid (semi-axes 96, 96,
24), 32 bins, 5x5x5 kernels (radius 2).

Each measurement runs in a fresh process (so its peak RSS is its own): the map is computed with
``feature_map(...).data.compute()`` on dask's threaded scheduler after a warm-up that loads the
compiled kernels. The anchor, pyradiomics 3.0.1's GLCM voxel map (``voxelBased=True``,
``kernelRadius=2``, ``binCount=32``), is measured in the same run on a smaller sphere of the same
volume (it runs at a few hundred voxels/s), in the benchmark-only environment ``benchmarks/_env_pyrad`` (or
``benchmarks/_env``): ``python3 -m venv benchmarks/_env_pyrad && pip install numpy setuptools wheel versioneer &&
pip install --no-build-isolation pyradiomics==3.0.1``.

Run::

    .venv/bin/python benchmarks/texture_maps.py                 # sphere, smoothed noise
    .venv/bin/python benchmarks/texture_maps.py --roi ellipsoid --sink zarr   # memory bounded by chunks

Prints one row per family with voxels/s, the ratio to pyradiomics' GLCM map throughput, the CPU
time of the map (all threads; median run by throughput) and the peak RSS, and writes the table to
``benchmarks/results/texture_maps.md``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = HERE / "data" / "texture_maps"
RESULTS = HERE / "results" / "texture_maps.md"
#: benchmark-only environments holding pyradiomics 3.0.1 (the first that exists is used)
PYRAD_ENVS = (HERE / "_env_pyrad", HERE / "_env")
PYRAD_PYTHON = next((e / "bin" / "python" for e in PYRAD_ENVS if (e / "bin" / "python").exists()), PYRAD_ENVS[0] / "bin" / "python")
FAMILIES = ("glcm", "glrlm", "glszm", "gldzm", "ngtdm", "ngldm")
PYRAD_CLASSES = {"glcm": "glcm", "glrlm": "glrlm", "glszm": "glszm", "ngtdm": "ngtdm", "ngldm": "gldm"}
SHAPE = (64, 256, 256)


def make_workload(noise: str) -> Path:
    """The section-2 volume and ROIs as .npy files (generated once, under benchmarks/data)."""
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"volume_{noise}.npy"
    if not path.exists():
        from scipy import ndimage

        rng = np.random.default_rng(20261125)
        vol = rng.normal(size=SHAPE)
        if noise == "smooth":
            vol = ndimage.gaussian_filter(vol, 2.0)
        vol = np.clip(vol / vol.std() * 200.0 + 1000.0, -32768, 32767).astype(np.int16)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, vol)
        os.replace(tmp, path)
    for name in ("sphere", "ellipsoid", "anchor"):
        mpath = DATA / f"mask_{name}.npy"
        if mpath.exists():
            continue
        z, y, x = np.ogrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
        cz, cy, cx = (s / 2 - 0.5 for s in SHAPE)
        if name == "sphere":
            m = (z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 <= 20**2
        elif name == "ellipsoid":
            m = ((z - cz) / 24) ** 2 + ((y - cy) / 96) ** 2 + ((x - cx) / 96) ** 2 <= 1
        else:  # the anchor's small sphere, radius 5
            m = (z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 <= 5**2
        tmp = mpath.with_suffix(".tmp.npy")
        np.save(tmp, m.astype(np.uint8))
        os.replace(tmp, mpath)
    return path


class _RssMonitor:
    """The process's largest resident set (MB) while the ``with`` block runs, sampled every 10 ms.

    ``ru_maxrss`` keeps the largest value of the whole process (warm-up and the read-back included);
    this measures the map alone: ``peak_above_mb`` is the largest rise over the RSS at entry.
    """

    def __enter__(self) -> _RssMonitor:
        import threading

        import psutil

        self._proc = psutil.Process()
        self.start_mb = self._proc.memory_info().rss / 2**20
        self.peak_mb = self.start_mb
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak_mb = max(self.peak_mb, self._proc.memory_info().rss / 2**20)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self._proc.memory_info().rss / 2**20)

    @property
    def peak_above_mb(self) -> float:
        return self.peak_mb - self.start_mb


def run_ours(family: str, noise: str, roi: str, chunk: int, sink: str, crop: bool = False,
             dtype: str = "float32") -> dict:
    """One family's map in this process (called in a child process)."""
    import dask

    from multiscale.analysis.texture.maps import feature_map
    from multiscale.image import spatial_image

    vol = np.load(DATA / f"volume_{noise}.npy")
    mask = np.load(DATA / f"mask_{roi}.npy").astype(bool)
    image = spatial_image(vol, spacing=1.0)
    small = spatial_image(vol[:12, :12, :12], spacing=1.0)
    feature_map(small, family=family, radius=2, bins=32, chunks=6).data.compute()  # load compiled kernels
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with dask.config.set(scheduler="threads"):
        monitor = _RssMonitor().__enter__()
        t0 = time.perf_counter()
        c0 = time.process_time()  # CPU of every thread of this process: steadier than wall time on a shared machine
        fmap = feature_map(image, mask, family=family, radius=2, bins=32, chunks=chunk, crop=crop, dtype=dtype)
        if sink == "zarr":  # stream chunk by chunk to disk: memory stays bounded by the chunks
            store = DATA / f"map_{family}.zarr"
            fmap.data.to_zarr(str(store), overwrite=True)
            seconds = time.perf_counter() - t0
            cpu = time.process_time() - c0
            monitor.__exit__(None, None, None)
            import zarr

            # read back after the memory was measured (a slice through every chunk decompresses them all)
            if crop:  # the small ROI box: read it all
                values = zarr.open_array(str(store), mode="r")[:]
                finite = float(np.isfinite(values[0]).sum() / mask.sum())
            else:  # the middle slice only, so the check does not load the whole grid
                values = zarr.open_array(str(store), mode="r")[:, SHAPE[0] // 2]
                finite = float(np.isfinite(values[:, mask[SHAPE[0] // 2]]).mean())
            result_mb = fmap.data.nbytes / 2**20
        else:
            values = fmap.data.compute()
            seconds = time.perf_counter() - t0
            cpu = time.process_time() - c0
            monitor.__exit__(None, None, None)
            finite = float(np.isfinite(values[0]).sum() / mask.sum()) if crop else float(
                np.isfinite(values[:, mask]).mean())
            result_mb = values.nbytes / 2**20
    n = int(mask.sum())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "family": family, "voxels": n, "seconds": seconds, "voxels_per_s": n / seconds, "cpu_seconds": cpu,
        "peak_rss_mb": rss,
        "rss_before_mb": rss0, "n_features": int(values.shape[0]), "result_mb": result_mb,
        "map_peak_above_mb": monitor.peak_above_mb,
        "finite_fraction": finite,
    }


PYRAD_SCRIPT = r"""
import json, logging, sys, time, resource
import numpy as np, SimpleITK as sitk
from radiomics import featureextractor
logging.getLogger("radiomics").setLevel(logging.ERROR)
vol = np.load(sys.argv[1]); mask = np.load(sys.argv[2])
cls = sys.argv[3]
ext = featureextractor.RadiomicsFeatureExtractor(binCount=32, kernelRadius=2, maskedKernel=False, voxelBatch=2000)
ext.disableAllFeatures(); ext.enableFeatureClassByName(cls)
img = sitk.GetImageFromArray(vol); msk = sitk.GetImageFromArray(mask)
t0 = time.perf_counter(); ext.execute(img, msk, voxelBased=True); s = time.perf_counter() - t0
n = int(mask.sum())
print(json.dumps({"family": cls, "voxels": n, "seconds": s, "voxels_per_s": n / s,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_pyradiomics(cls: str, noise: str) -> dict | None:
    if not PYRAD_PYTHON.exists():
        return None
    out = subprocess.run(
        [str(PYRAD_PYTHON), "-c", PYRAD_SCRIPT, str(DATA / f"volume_{noise}.npy"), str(DATA / "mask_anchor.npy"), cls],
        capture_output=True, text=True, check=False,
    )
    if out.returncode != 0:
        print(out.stderr[-2000:], file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def child(family: str, noise: str, roi: str, chunk: int, sink: str, crop: bool = False,
          dtype: str = "float32") -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", family, "--noise", noise, "--roi", roi, "--chunk", str(chunk),
         "--sink", sink, "--dtype", dtype] + (["--crop"] if crop else []),
        capture_output=True, text=True, check=False, cwd=str(ROOT),
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--roi", choices=("sphere", "ellipsoid"), default="sphere")
    ap.add_argument("--noise", choices=("smooth", "white"), default="smooth")
    ap.add_argument("--chunk", type=int, default=64)
    ap.add_argument("--sink", choices=("memory", "zarr"), default="memory",
                    help="compute the map into memory, or stream it to a zarr store under benchmarks/data")
    ap.add_argument("--crop", action="store_true",
                    help="return the map on the ROI's bounding box grown by the kernel (crop=True), not the whole grid")
    ap.add_argument("--families", nargs="*", default=list(FAMILIES))
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="the map's dtype")
    ap.add_argument("--cap-mb", type=float, default=None,
                    help="a memory cap: report whether the map's own peak (RSS rise while it is computed and "
                         "stored) stays under it, and the result's size as a multiple of it")
    ap.add_argument("--repeats", type=int, default=1, help="runs per family; the median is reported")
    ap.add_argument("--pyradiomics-all", action="store_true", help="also time pyradiomics' other voxel maps")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_ours(args.child, args.noise, args.roi, args.chunk, args.sink, args.crop, args.dtype)))
        return
    make_workload(args.noise)
    anchor = run_pyradiomics("glcm", args.noise)
    others = {}
    if args.pyradiomics_all:
        for fam, cls in PYRAD_CLASSES.items():
            if fam != "glcm":
                others[fam] = run_pyradiomics(cls, args.noise)
    rows = []
    for fam in args.families:
        runs = [child(fam, args.noise, args.roi, args.chunk, args.sink, args.crop, args.dtype)
                for _ in range(args.repeats)]
        runs.sort(key=lambda r: r["voxels_per_s"])
        rows.append(runs[len(runs) // 2])
    anchor_rate = anchor["voxels_per_s"] if anchor else float("nan")
    lines = [
        f"# Texture voxel maps ({_dt.datetime.now():%Y-%m-%d %H:%M})",
        "",
        f"Command: `.venv/bin/python benchmarks/texture_maps.py --roi {args.roi} --noise {args.noise} "
        f"--chunk {args.chunk} --sink {args.sink}{' --crop' if args.crop else ''} --repeats {args.repeats}"
        f"{' --dtype ' + args.dtype if args.dtype != 'float32' else ''}"
        f"{f' --cap-mb {args.cap_mb:g}' if args.cap_mb else ''}"
        f"{' --families ' + ' '.join(args.families) if list(args.families) != list(FAMILIES) else ''}"
        f"{' --pyradiomics-all' if args.pyradiomics_all else ''}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores (shared; load average "
        f"{', '.join(f'{v:.1f}' for v in os.getloadavg())} at the end).  ",
        f"Workload: 64x256x256 int16, 1 mm, {args.noise} noise; ROI {args.roi}; 32 bins (FBN); 5x5x5 kernel; "
        f"dask chunks {args.chunk}^3, threaded scheduler; {args.dtype} output "
        f"{'streamed to a zarr store' if args.sink == 'zarr' else 'computed into memory'} "
        f"({'ROI bounding box + kernel halo, crop=True' if args.crop else 'full 64x256x256 grid'}).",
        "",
        (
            f"Anchor (same run): pyradiomics 3.0.1 GLCM voxel map, {anchor['voxels']} voxels in "
            f"{anchor['seconds']:.1f} s = **{anchor_rate:.0f} voxels/s**, peak RSS {anchor['peak_rss_mb']:.0f} MB."
            if anchor
            else "Anchor: pyradiomics not available (no benchmarks/_env_pyrad or benchmarks/_env); ratios are NaN."
        ),
        "",
        "| family | ROI voxels | seconds | voxels/s | x pyradiomics GLCM map | CPU s (us/voxel) | peak RSS (MB) "
        "| RSS before map (MB) | result (MB) | map's own peak (RSS rise, MB) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['family']} | {r['voxels']} | {r['seconds']:.2f} | {r['voxels_per_s']:.0f} | "
            f"{r['voxels_per_s'] / anchor_rate:.0f} | {r['cpu_seconds']:.2f} ({1e6 * r['cpu_seconds'] / r['voxels']:.1f}) | "
            f"{r['peak_rss_mb']:.0f} | {r['rss_before_mb']:.0f} | "
            f"{r['result_mb']:.0f} | {r['map_peak_above_mb']:.0f} |"
        )
    if args.cap_mb:
        for r in rows:
            ok = r["map_peak_above_mb"] <= args.cap_mb
            lines.append(
                f"\n{r['family']}: memory cap {args.cap_mb:g} MB, result {r['result_mb']:.0f} MB = "
                f"{r['result_mb'] / args.cap_mb:.1f}x the cap; the map's own peak {r['map_peak_above_mb']:.0f} MB "
                f"({'under' if ok else 'OVER'} the cap)"
            )
    if others:
        lines += ["", "pyradiomics' other voxel maps (same small sphere): " + ", ".join(
            f"{fam} ({PYRAD_CLASSES[fam]}) {o['voxels_per_s']:.0f} voxels/s" for fam, o in others.items() if o
        )]
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    previous = RESULTS.read_text() if RESULTS.exists() else ""
    tmp = RESULTS.with_suffix(".tmp")
    tmp.write_text(text + ("\n" + previous if previous else ""))
    os.replace(tmp, RESULTS)


if __name__ == "__main__":
    main()
