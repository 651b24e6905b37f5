"""Vessel segmentation + graph on a synthetic cleared-tissue volume: multiscale (chunked) vs scikit-image + skan by hand.

Workload: a 512 x 512 x 256 (x, y, z) float32 volume, voxels 0.01 x 0.01 x 0.02 mm (x, y, z: anisotropic), holding a
random binary tree of tubes (depth 5, 63 tubes, radii 80 um down to 26 um, ``branching_tree``) with partial-volume
edges, a 20 um optical blur and Gaussian noise (SD 0.05 on a contrast of 1). Both pipelines take Frangi at scales
0.03 and 0.05 mm (sigma 1.5-2.5 voxels along z, 3-5 voxels in-plane), Otsu's threshold of the vesselness grown into
the connected voxels above half contrast, a size clean-up, Lee's skeleton and skan:

* **multiscale**: ``segment_vessels(dask image, scales_mm=..., chunks=...)`` then ``vessel_graph(mask)`` (spur
  pruning, smoothed lengths, diameters, tip correction, branch-point merging), dask's threaded scheduler;
* **anchor, by hand on the whole array**: ``skimage.filters.frangi(volume, sigmas=[(1.5, 3, 3), (2.5, 5, 5)])``
  (per-axis sigmas in voxels), ``threshold_otsu``, ``remove_small_objects``, ``skeletonize``,
  ``skan.summarize(skan.Skeleton(skel, spacing=...))``.

Each pipeline runs in its own process reading the volume from a memory-mapped .npy (so its peak RSS is its own
and not the generator's); the table gives wall and CPU time (medians over ``--repeats``), their ratios, the peak RSS
and the recovered total length and branch points against the planted tree.

Run::

    .venv/bin/python benchmarks/vessels.py                  # 512 x 512 x 256 (the issue's size)
    .venv/bin/python benchmarks/vessels.py --size 256 256 128 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "vessels"
SPACING = (0.02, 0.01, 0.01)  # z, y, x mm
SCALES = (0.03, 0.05)


def make_volume(shape: tuple[int, int, int]) -> tuple[Path, dict]:
    """The synthetic volume (.npy) and its planted tree's truth (generated once per size)."""
    from multiscale.analysis.vessels.synthetic import branching_tree, vessel_intensity

    DATA.mkdir(parents=True, exist_ok=True)
    tag = "x".join(str(s) for s in shape)
    path, truth_path = DATA / f"volume_{tag}.npy", DATA / f"truth_{tag}.json"
    extent = tuple(n * s for n, s in zip(shape, SPACING))
    scale = min(extent) / 5.12
    tree = branching_tree(extent, depth=5, root_radius=0.08 * max(scale, 0.5), seed=3)
    if not path.exists() or not truth_path.exists():
        img = vessel_intensity(tree, shape, SPACING, noise=0.05, blur_mm=0.02, seed=3)
        np.save(path, img.astype(np.float32))
        truth_path.write_text(json.dumps({"total_length_mm": tree.total_length_mm,
                                          "n_branch_points": int(len(tree.branch_points)),
                                          "n_tubes": len(tree.tubes), "clearance_mm": tree.clearance_mm()}))
    return path, json.loads(truth_path.read_text())


def run_multiscale(path: Path, chunks: tuple[int, int, int]) -> dict:
    import dask
    import dask.array as da

    from multiscale.analysis.vessels import segment_vessels, vessel_graph
    from multiscale.image import spatial_image

    vol = np.load(path, mmap_mode="r")
    img = spatial_image(da.from_array(vol, chunks=chunks), spacing=SPACING, units="a.u.")
    t0, c0 = time.perf_counter(), time.process_time()
    with dask.config.set(scheduler="threads", num_workers=2):
        mask = segment_vessels(img, scales_mm=list(SCALES), method="frangi", chunks=chunks, grow=True)
    t1 = time.perf_counter()
    g = vessel_graph(mask, keep_skeleton=False)
    t2, c2 = time.perf_counter(), time.process_time()
    return {"wall_s": t2 - t0, "cpu_s": c2 - c0, "segment_s": t1 - t0, "graph_s": t2 - t1,
            "total_length_mm": g.metric("total_length_mm"), "n_branch_points": g.metric("n_branch_points"),
            "vessel_voxels": int(mask.values.sum())}


def run_by_hand(path: Path) -> dict:
    from skan import Skeleton, summarize
    from skimage.filters import frangi, threshold_otsu
    from skimage.morphology import remove_small_objects, skeletonize

    vol = np.asarray(np.load(path, mmap_mode="r"))
    sig = [tuple(s / sp for sp in SPACING) for s in SCALES]
    t0, c0 = time.perf_counter(), time.process_time()
    v = frangi(vol, sigmas=sig, black_ridges=False, mode="nearest")
    thr = threshold_otsu(v[v > 0])
    mask = v > thr
    del v
    # grow into the connected voxels brighter than half contrast (as segment_vessels(grow=True))
    from scipy import ndimage as ndi

    bright = vol > 0.5 * (float(np.median(vol[mask])) + float(np.median(vol[~mask])))
    lab, _ = ndi.label(bright | mask, structure=np.ones((3, 3, 3)))
    mask = np.isin(lab, np.unique(lab[mask])) & (bright | mask)
    del lab, bright
    r = max(SCALES)  # segment_vessels' default clean-up: a ball whose radius is the largest scale
    mask = remove_small_objects(mask, int(4 / 3 * np.pi * r**3 / np.prod(SPACING)), connectivity=3)
    t1 = time.perf_counter()
    skel = skeletonize(mask)
    df = summarize(Skeleton(skel, spacing=SPACING), separator="_")
    sk = Skeleton(skel, spacing=SPACING)
    t2, c2 = time.perf_counter(), time.process_time()
    return {"wall_s": t2 - t0, "cpu_s": c2 - c0, "segment_s": t1 - t0, "graph_s": t2 - t1,
            "total_length_mm": float(df["branch_distance"].sum()),
            "n_branch_points": int((sk.degrees >= 3).sum()), "vessel_voxels": int(mask.sum())}


def _child(which: str, path: str, chunks: list[int]) -> None:
    out = run_multiscale(Path(path), tuple(chunks)) if which == "multiscale" else run_by_hand(Path(path))
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(out))


def _spawn(which: str, path: Path, chunks: tuple[int, int, int]) -> dict:
    cmd = [sys.executable, __file__, "--child", which, "--path", str(path), "--chunks", *map(str, chunks)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"{which} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return json.loads(line[len("RESULT "):])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, nargs=3, default=[512, 512, 256], metavar=("X", "Y", "Z"))
    ap.add_argument("--chunks", type=int, nargs=3, default=None, metavar=("Z", "Y", "X"),
                    help="dask chunks (z, y, x); default: half the volume along z, whole planes")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--child", choices=["multiscale", "by_hand"])
    ap.add_argument("--path")
    args = ap.parse_args()
    if args.child:
        _child(args.child, args.path, args.chunks)
        return
    shape = (args.size[2], args.size[1], args.size[0])
    chunks = tuple(args.chunks) if args.chunks else (max(shape[0] // 2, 16), shape[1], shape[2])
    t = time.perf_counter()
    path, truth = make_volume(shape)
    print(f"volume {shape[::-1]} (x, y, z) voxels {SPACING[::-1]} mm: {path.stat().st_size / 2**20:.0f} MB, "
          f"made in {time.perf_counter() - t:.0f} s; planted tree {truth}")
    print(f"chunks (z, y, x) {chunks}: {np.prod(chunks) * 4 / 2**20:.0f} MB of float32 per chunk; "
          f"load average {os.getloadavg()[0]:.1f}")
    res: dict[str, list[dict]] = {"multiscale": [], "by_hand": []}
    for _ in range(args.repeats):
        for which in ("multiscale", "by_hand"):
            res[which].append(_spawn(which, path, chunks))
            print(which, json.dumps(res[which][-1]))

    def med(which: str, key: str) -> float:
        return float(np.median([r[key] for r in res[which]]))

    print(f"\nload average {os.getloadavg()[0]:.1f}")
    print("| figure | multiscale (chunked) | scikit-image + skan by hand | ratio hand / multiscale |")
    print("| --- | --- | --- | --- |")
    for key, unit in (("wall_s", "s"), ("cpu_s", "s"), ("segment_s", "s"), ("graph_s", "s"), ("peak_rss_mb", "MB")):
        a, b = med("multiscale", key), med("by_hand", key)
        print(f"| {key} | {a:.1f} {unit} | {b:.1f} {unit} | {b / a:.2f}x |")
    for key in ("total_length_mm", "n_branch_points", "vessel_voxels"):
        print(f"| {key} (planted {truth.get(key, '-')}) | {med('multiscale', key):.6g} | {med('by_hand', key):.6g} | |")


if __name__ == "__main__":
    main()
