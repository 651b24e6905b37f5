"""Texture features: multiscale vs pyradiomics 3.0.1 in the same run (BENCHMARKS.md section 2).

Workload (generated once into benchmarks/data/texture/workload.npz, deterministic): a 64x256x256 int16
volume at 1 mm, Gaussian-smoothed noise (sigma 2 voxels) and white noise, a 926,496-voxel ellipsoid ROI
(semi-axes 24, 96, 96 voxels) and a 33,552-voxel sphere (radius 20); 32 bins (FBN).

pyradiomics lives in a benchmark-only environment, ``benchmarks/_env_pyrad`` (or ``benchmarks/_env``; never a
project dependency)::

    python -m venv benchmarks/_env_pyrad
    benchmarks/_env_pyrad/bin/pip install numpy setuptools wheel versioneer
    benchmarks/_env_pyrad/bin/pip install --no-build-isolation pyradiomics==3.0.1

Run::

    .venv/bin/python benchmarks/texture.py                 # everything (about 10 minutes on 2 busy cores)
    .venv/bin/python benchmarks/texture.py --no-maps       # section 1 only -> results/texture_whole_roi.md
    .venv/bin/python benchmarks/texture.py --quick         # smooth texture only, fewer map voxels
    .venv/bin/python benchmarks/texture.py --no-pyradiomics

Prints and writes benchmarks/results/texture.md:
1. whole-ROI time of every family, ours (all IBSI aggregations; and 3D only) vs pyradiomics per class
   (shape~morph, firstorder~stat+ih, glcm, glrlm, glszm, gldm~ngldm, ngtdm) and all together; ratios. The bold
   "all but shape" row is the like-for-like total: our stat+ih+glcm+glrlm+glszm+ngtdm+ngldm, 3-D aggregations
   only, in one ``features`` call against pyradiomics with firstorder+glcm+glrlm+glszm+gldm+ngtdm enabled in
   one ``execute`` call (GLDZM, local intensity and IVH have no pyradiomics counterpart and are left out).
2. voxel-map throughput (ROI voxels per second) and peak RSS of each matrix family (5^3 kernel,
   radius 2) on the sphere, each in a fresh process, vs pyradiomics' voxel-based GLCM in the same run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "texture"
WORKLOAD = DATA / "workload.npz"
RESULTS = HERE / "results" / "texture.md"
#: the benchmark-only pyradiomics environment: ``_env_pyrad`` where it exists (``_env`` now holds itk-elastix)
PYRAD_PY = next((p for p in (HERE / "_env_pyrad" / "bin" / "python", HERE / "_env" / "bin" / "python") if p.exists()),
                HERE / "_env_pyrad" / "bin" / "python")
MAP_FAMILIES = ("glcm", "glrlm", "glszm", "gldzm", "ngtdm", "ngldm")
#: our families that pyradiomics also has (no shape), against its firstorder+glcm+glrlm+glszm+gldm+ngtdm in one call
COMMON = ("stat", "ih", "glcm", "glrlm", "glszm", "ngtdm", "ngldm")
PAIRS = {  # pyradiomics class -> our families
    "shape": ("morph",),
    "firstorder": ("stat", "ih"),
    "glcm": ("glcm",),
    "glrlm": ("glrlm",),
    "glszm": ("glszm",),
    "gldm": ("ngldm",),
    "ngtdm": ("ngtdm",),
}


def make_workload() -> None:
    """Write the deterministic workload (atomic replace)."""
    from scipy import ndimage

    DATA.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    smooth = ndimage.gaussian_filter(rng.normal(size=(64, 256, 256)), 2.0)
    smooth = np.round(smooth / smooth.std() * 100 + 1000).astype(np.int16)
    white = np.round(rng.normal(1000, 100, size=(64, 256, 256))).astype(np.int16)
    z, y, x = np.ogrid[:64, :256, :256]
    ell = ((z - 31.5) / 24) ** 2 + ((y - 127.5) / 96) ** 2 + ((x - 127.5) / 96) ** 2 <= 1
    sph = (z - 31.5) ** 2 + (y - 127.5) ** 2 + (x - 127.5) ** 2 <= 400
    assert int(ell.sum()) == 926_496 and int(sph.sum()) == 33_552
    tmp = DATA / "workload.tmp.npz"
    np.savez(tmp, smooth=smooth, white=white, ellipsoid=ell, sphere=sph)
    os.replace(tmp, WORKLOAD)


def ours_roi(texture: str, roi: str, repeats: int = 1) -> dict:
    from multiscale.analysis.texture import FAMILIES, features
    from multiscale.image import spatial_image

    d = np.load(WORKLOAD)
    img = spatial_image(d[texture], spacing=1.0)
    mask = d[roi]
    out: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        features(spatial_image(d[texture][:6, :6, :6], spacing=1.0), n_bins=32)  # numba compilation, not timed
        def run(key: str, **kw):
            t, c = time.perf_counter(), time.process_time()
            df = features(img, mask, n_bins=32, **kw)
            out[key] = min(out.get(key, np.inf), time.perf_counter() - t)
            out[key + "_cpu"] = min(out.get(key + "_cpu", np.inf), time.process_time() - c)
            return df

        for _ in range(repeats):  # the minimum over repeats: the machine is shared
            for fam in FAMILIES:
                run(fam, families=fam)
            out["all_n"] = len(run("all"))
            out["all_3d_n"] = len(run("all_3d", aggregation="3D"))
            out["common_3d_n"] = len(run("common_3d", families=list(COMMON), aggregation="3D"))
    return out


def pyradiomics(*args: str, repeats: int = 1) -> dict | None:
    """Run the pyradiomics side; with repeats, the minimum of each timing."""
    best: dict | None = None
    for _ in range(repeats):
        r = _pyradiomics_once(*args)
        if r is None:
            return best
        best = r if best is None else {k: (min(v, r[k]) if isinstance(v, float) else v) for k, v in best.items()}
    return best


_PYRAD_COMMON_CHILD = r"""
import json, logging, sys, time
import numpy as np, SimpleITK as sitk
from radiomics import featureextractor
logging.getLogger("radiomics").setLevel(logging.ERROR)
d = np.load(sys.argv[1])
img = sitk.GetImageFromArray(d[sys.argv[2]]); mask = sitk.GetImageFromArray(d[sys.argv[3]].astype(np.uint8))
for im in (img, mask):
    im.SetSpacing((1.0, 1.0, 1.0))
ex = featureextractor.RadiomicsFeatureExtractor(binCount=32)
ex.disableAllFeatures()
for cls in ("firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm"):
    ex.enableFeatureClassByName(cls)
t, c = time.perf_counter(), time.process_time()
res = ex.execute(img, mask)
print(json.dumps({"common": time.perf_counter() - t, "common_cpu": time.process_time() - c,
                  "common_n": sum(1 for k in res if k.startswith("original_"))}))
"""


def pyradiomics_common(texture: str, roi: str, repeats: int = 1) -> dict | None:
    """pyradiomics with every class we share except shape (firstorder, glcm, glrlm, glszm, gldm, ngtdm) in one
    call; the minimum of each timing over ``repeats`` runs, each in a fresh process."""
    best: dict | None = None
    for _ in range(repeats):
        if not PYRAD_PY.exists():
            return None
        proc = subprocess.run([str(PYRAD_PY), "-c", _PYRAD_COMMON_CHILD, str(WORKLOAD), texture, roi],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stderr[-2000:], file=sys.stderr)
            return best
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        best = r if best is None else {k: min(v, r[k]) for k, v in best.items()}
    return best


def _pyradiomics_once(*args: str) -> dict | None:
    if not PYRAD_PY.exists():
        return None
    proc = subprocess.run([str(PYRAD_PY), str(HERE / "_texture_pyradiomics.py"), str(WORKLOAD), *args],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stderr[-2000:], file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


_MAP_CHILD = r"""
def hwm_mb():  # peak RSS of this process (VmHWM; ru_maxrss would include the parent's peak across exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

import json, sys, time, warnings
import numpy as np
from multiscale.image import spatial_image
from multiscale.analysis.texture import feature_map
family, crop = sys.argv[1], sys.argv[2] == "crop"
d = np.load(sys.argv[3])
sl = (slice(9, 54), slice(105, 150), slice(105, 150)) if crop else (slice(None),) * 3
img = spatial_image(d["smooth"][sl], spacing=1.0); mask = d["sphere"][sl]
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    feature_map(spatial_image(d["smooth"][:8, :8, :8], spacing=1.0), family=family, radius=1, bins=8).compute()
    base = hwm_mb()
    t = time.perf_counter()
    m = feature_map(img, mask=mask, family=family, radius=2, bins=32).compute()
    sec = time.perf_counter() - t
n = int(mask.sum())
print(json.dumps({"family": family, "n_voxels": n, "seconds": sec, "voxels_per_s": n / sec, "channels": int(m.sizes["c"]),
                  "output_mb": m.nbytes / 2**20, "base_rss_mb": base,
                  "peak_rss_mb": hwm_mb()}))
"""


def ours_map(family: str, crop: bool) -> dict:
    proc = subprocess.run([sys.executable, "-c", _MAP_CHILD, family, "crop" if crop else "full", str(WORKLOAD)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _map_section(args: argparse.Namespace, use_pr: bool, lines: list[str]) -> None:
    """Section 2: voxel-map throughput of each family (fresh processes) vs pyradiomics' GLCM map."""
    lines += [
        "",
        "## 2. Voxel-wise maps (kernel 5x5x5, radius 2), sphere ROI (33,552 voxels)",
        "",
        "Ours: `feature_map(image, mask=sphere, family=f, radius=2, bins=32).compute()` (all features of the family, "
        "dask `map_overlap`, default chunks), each in a fresh process; 'full' = the whole 64x256x256 image passed, "
        "'crop' = the sphere's 45^3 bounding box. Peak RSS = VmHWM of that process (base = after imports "
        "and numba compilation). pyradiomics: voxel-based GLCM (kernelRadius 2, all 24 GLCM features) on "
        f"{args.pyradiomics_map_voxels if not args.quick else 300} voxels of the sphere.",
        "",
        "| family | image | ROI voxels/s | x pyradiomics GLCM map | seconds | channels | base RSS MB | peak RSS MB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    prm = pyradiomics("map", "smooth", str(300 if args.quick else args.pyradiomics_map_voxels)) if use_pr else None
    pr_rate = prm["voxels_per_s"] if prm else float("nan")
    if prm:
        lines.append(f"| pyradiomics glcm | full | {pr_rate:.0f} | 1 | {prm['seconds']:.1f} | 24 | | "
                     f"{prm['peak_rss_mb']:.0f} |")
        print(f"pyradiomics GLCM map: {pr_rate:.0f} voxels/s, peak RSS {prm['peak_rss_mb']:.0f} MB", flush=True)
    for fam in MAP_FAMILIES:
        for crop in (False, True):
            r = ours_map(fam, crop)
            ratio = r["voxels_per_s"] / pr_rate
            lines.append(f"| {fam} | {'crop' if crop else 'full'} | {r['voxels_per_s']:.0f} | {ratio:.0f} | "
                         f"{r['seconds']:.2f} | {r['channels']} | {r['base_rss_mb']:.0f} | {r['peak_rss_mb']:.0f} |")
            print(f"map {fam:6s} {'crop' if crop else 'full'}: {r['voxels_per_s']:8.0f} voxels/s = {ratio:5.0f} x "
                  f"pyradiomics GLCM; peak RSS {r['peak_rss_mb']:.0f} MB (output {r['output_mb']:.0f} MB)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smooth texture only; 300 pyradiomics map voxels")
    ap.add_argument("--no-pyradiomics", action="store_true")
    ap.add_argument("--pyradiomics-map-voxels", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=3, help="whole-ROI timings: minimum over this many runs")
    ap.add_argument("--no-maps", action="store_true",
                    help="whole-ROI section only; written to results/texture_whole_roi.md")
    args = ap.parse_args()
    if not WORKLOAD.exists():
        make_workload()
    use_pr = not args.no_pyradiomics and PYRAD_PY.exists()
    textures = ("smooth",) if args.quick else ("smooth", "white")
    lines = [
        "# Texture benchmark (BENCHMARKS.md section 2)",
        "",
        f"- date: {dt.datetime.now().isoformat(timespec='minutes')}; host: {platform.node()}, {os.cpu_count()} cores "
        f"(shared with other engineers: timings are noisy, ratios are from the same run)",
        f"- command: `.venv/bin/python benchmarks/texture.py {' '.join(sys.argv[1:])}`",
        "- workload: 64x256x256 int16, 1 mm; ellipsoid ROI 926,496 voxels, sphere 33,552; FBN 32 bins",
        "",
        "## 1. Whole ROI, every family",
        "",
        "Ours: `features(image, mask, families=f, n_bins=32)` (all IBSI aggregations: 6 for GLCM/GLRLM, 3 for the "
        "other matrices; morph includes mesh, convex hull, PCA, Moran's I and Geary's C over all voxel pairs). "
        "pyradiomics: `RadiomicsFeatureExtractor(binCount=32)` with one class enabled. ratio = pyradiomics / ours. "
        f"Each time is the minimum of {args.repeats} runs (pyradiomics: {min(args.repeats, 2)}); CPU = process time, less sensitive than wall time to "
        "the other engineers' load on the shared machine (our kernels that use threads are charged for every "
        "thread, so the CPU ratio is conservative for us). Bold 'all but shape' row: our "
        f"{'+'.join(COMMON)} with `aggregation=\"3D\"` in one call vs pyradiomics with firstorder+glcm+glrlm+glszm+"
        "gldm+ngtdm enabled in one `execute` call (each pyradiomics run in a fresh process).",
        "",
        "| texture | ROI | pyradiomics class | pyradiomics wall s | pyradiomics CPU s | our families | ours wall s "
        "| ours CPU s | ratio wall | ratio CPU |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for texture in textures:
        for roi in ("ellipsoid", "sphere"):
            ours = ours_roi(texture, roi, args.repeats)
            pr = pyradiomics("roi", texture, roi, repeats=min(args.repeats, 2)) if use_pr else None
            prc = pyradiomics_common(texture, roi, repeats=min(args.repeats, 2)) if use_pr else None
            if pr is not None and prc is not None:
                pr.update(prc)
            nan = float("nan")

            def row(cls: str, p_key: str, label: str, keys: tuple[str, ...], bold: bool = False) -> None:
                pw, pc = (pr[p_key], pr[p_key + "_cpu"]) if pr and p_key else (nan, nan)
                ow, oc = sum(ours[k] for k in keys), sum(ours[k + "_cpu"] for k in keys)
                cells = [cls, f"{pw:.2f}", f"{pc:.2f}", label, f"{ow:.2f}", f"{oc:.2f}", f"{pw / ow:.1f}",
                         f"{pc / oc:.1f}"]
                if bold:
                    cells = [f"**{c}**" for c in cells]
                lines.append(f"| {texture} | {roi} | " + " | ".join(cells) + " |")

            for cls, fams in PAIRS.items():
                row(cls, cls, "+".join(fams), fams)
            row("(none)", "", "loc+ivh", ("loc", "ivh"))
            row("all", "all", f"all, {ours['all_n']} features", ("all",), bold=True)
            row("all", "all", f"all, 3D only, {ours['all_3d_n']} features", ("all_3d",))
            row(f"all but shape ({pr['common_n'] if pr and 'common_n' in pr else '?'} features)",
                "common" if pr and "common" in pr else "",
                f"{'+'.join(COMMON)}, 3D only, {ours['common_3d_n']} features", ("common_3d",), bold=True)
            if pr:
                print(f"{texture:6s} {roi:9s} pyradiomics all {pr['all']:7.2f} s wall, {pr['all_cpu']:7.2f} s CPU | "
                      f"ours all {ours['all']:6.2f} s wall, {ours['all_cpu']:6.2f} s CPU | ratio wall "
                      f"{pr['all'] / ours['all']:.1f}, CPU {pr['all_cpu'] / ours['all_cpu']:.1f}", flush=True)
                worst = min((pr[c + "_cpu"] / sum(ours[f + "_cpu"] for f in fs), c) for c, fs in PAIRS.items())
                print(f"    lowest family CPU ratio: {worst[1]} {worst[0]:.1f}", flush=True)
                if "common" in pr:
                    print(f"    all but shape, 3D only: pyradiomics {pr['common']:.2f} s wall, {pr['common_cpu']:.2f} s "
                          f"CPU | ours {ours['common_3d']:.3f} s wall, {ours['common_3d_cpu']:.3f} s CPU | ratio wall "
                          f"{pr['common'] / ours['common_3d']:.1f}, CPU {pr['common_cpu'] / ours['common_3d_cpu']:.1f}",
                          flush=True)

    if not args.no_maps:
        _map_section(args, use_pr, lines)
    out_path = RESULTS.with_name("texture_whole_roi.md") if args.no_maps else RESULTS
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, out_path)
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
