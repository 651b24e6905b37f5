"""Registration benchmark: the three synthetic workloads of BENCHMARKS.md section 3.

Each pair has a known transform (analytic phantom, exact ground truth) and a non-monotonic intensity
remap, so mutual information is required. Error = mean distance (in the stated unit) between where
a method sends fixed-frame points and where they truly belong, over a grid of points inside the
tissue. Methods, measured in the same run:

* ``ours``: ``multiscale.registration.register`` (``auto`` or ``affine``);
* ``sitk``: a plain SimpleITK pipeline as its documentation teaches it (geometry-centred Euler,
  Mattes MI, 1% random sampling, gradient descent with physical-shift scales, shrink 4/2/1,
  then affine, then a B-spline with LBFGSB), at full resolution;
* ``elastix``: itk-elastix with its default rigid/affine/bspline parameter maps, when importable
  from ``benchmarks/_env/bin/python`` (or ``$ELASTIX_PYTHON``); run in a subprocess, timing the
  registration call only. Its defaults assume roughly unit voxels, so it gets both images scaled by
  one common factor making the fixed voxel 1 (displacements are scaled back).

A fourth workload, ``sections`` (not part of BENCHMARKS.md's three), is cross-stain 2-D section
pairs built from a real immunohistochemistry image shipped with scikit-image
(``skimage.data.immunohistochemistry()``, bundled, no network): the tissue, cut to an irregular
outline, sits on a bright (white) slide background; fixed = its haematoxylin channel rendered as a
brightfield image, moving = its DAB channel (a different stain), turned by 90/180/270 degrees or
mirrored, plus a small extra rotation, a shift and a slight anisotropic shrink, all known. Errors
there are in pixels and in % of the image diagonal (ANHIR's rTRE convention), on a lattice of
fixed points inside the tissue; the methods are ``register(fixed, moving)`` with its defaults,
the plain SimpleITK rigid + affine pipeline (geometry-centred start) and elastix's default rigid
+ affine maps. Ours runs twice per pair (the mapped points must be identical).

Usage::

    .venv/bin/python benchmarks/registration.py [--workloads 2d msi 3d sections] [--repeats 1] [--out FILE]

Ratios printed: our error / best anchor error, our time / elastix time (the targets are <= 1).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from multiscale.image import to_sitk
from multiscale.registration import Transform, register
from multiscale.registration import _synthetic as S

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "registration"


# ------------------------------------------------------------------------------------ workloads


def workload_2d():
    """1024x1024 at 0.5 um, rigid + affine + smooth warp; start error ~27 um."""
    ext, n = 0.512, 1024
    sp = ext / n
    ph = S.Phantom(2, ext, seed=21)
    aff = S.affine_true(2, 4.0, (0.012, -0.009), (0.0, 0.0), scale=(1.03, 0.98), shear=0.02)
    fwd, inv = S.warp_true(2, 0.004, 0.25, (0.0, 0.0), affine=aff)
    org = (-ext / 2 + sp / 2,) * 2
    fixed = S.sample_image(ph, (n, n), (sp, sp), org, modality="HISTO")
    moving = S.sample_image(ph, (n, n), (sp, sp), org, inverse=inv, remap=S.remap_multimodal, modality="FLUO")
    return dict(name="2d", fixed=fixed, moving=moving, truth=fwd, unit="um", to_unit=1000.0,
                stages="deformable", pts_region=0.3 * ext)


def workload_msi():
    """MSI-like 64x64 at 8 um (pixels integrate their area) against 1024x1024 at 0.5 um, affine."""
    ext = 0.512
    ph = S.Phantom(2, ext, seed=5)
    fwd, inv = S.affine_true(2, 7.0, (0.01, -0.008), (0.0, 0.0), scale=(1.03, 0.98))
    sh, sm = ext / 1024, ext / 64
    histo = S.sample_image(ph, (1024, 1024), (sh, sh), (-ext / 2 + sh / 2,) * 2, modality="HISTO")
    msi = S.sample_image(ph, (64, 64), (sm, sm), (-ext / 2 + sm / 2,) * 2, inverse=inv,
                         remap=S.remap_multimodal, supersample=4, modality="MSI")
    return dict(name="msi", fixed=histo, moving=msi, truth=fwd, unit="um", to_unit=1000.0,
                stages="affine", pts_region=0.27 * ext)


def workload_3d():
    """128^3 at 1 mm, rigid + affine + smooth warp; start error ~10 mm."""
    n, sp = 128, 1.0
    ext = n * sp
    ph = S.Phantom(3, ext, seed=31, n_blobs=40, n_shapes=10)
    aff = S.affine_true(3, (5.0, -4.0, 7.0), (4.0, -3.0, 2.5), (0.0, 0.0, 0.0), scale=(1.04, 0.97, 1.02))
    fwd, inv = S.warp_true(3, 1.5, 40.0, (0.0, 0.0, 0.0), affine=aff)
    org = (-ext / 2 + sp / 2,) * 3
    fixed = S.sample_image(ph, (n,) * 3, (sp,) * 3, org, modality="MR")
    moving = S.sample_image(ph, (n,) * 3, (sp,) * 3, org, inverse=inv, remap=S.remap_multimodal, modality="PT")
    return dict(name="3d", fixed=fixed, moving=moving, truth=fwd, unit="mm", to_unit=1.0,
                stages="deformable", pts_region=0.3 * ext)


WORKLOADS = {"2d": workload_2d, "msi": workload_msi, "3d": workload_3d}
ALL_WORKLOADS = [*WORKLOADS, "sections"]


# ------------------------------------------------------------------------------------ sections

SECTION_N = 512  # canvas (px)
SECTION_SP = 0.004  # mm per pixel (a slide at ~2.5x, as ANHIR's pairs are usually registered)
SECTION_BG = 0.98  # brightfield slide background: the glass, white (noise 0.01 on top)
SECTION_TISSUE_T = 0.95  # transmission of unstained tissue (optical density ~0.02): darker than the glass
# name: (quarter turns, mirror x, extra rotation deg, shift px (x, y), scale (x, y))
SECTION_PAIRS = {
    "rot90": (1, False, 6.0, (12.0, -8.0), (1.02, 0.985)),
    "rot180": (2, False, -7.0, (-10.0, 14.0), (0.985, 1.015)),
    "rot270": (3, False, 5.0, (8.0, 10.0), (1.015, 1.0)),
    "mirror": (0, True, 8.0, (-12.0, -6.0), (1.0, 1.02)),
    "mirror+rot90": (1, True, -4.0, (6.0, 12.0), (1.02, 1.0)),
    "small (control)": (0, False, 9.0, (14.0, -10.0), (1.01, 0.99)),
}


def _stain_images():
    """Haematoxylin and DAB channels of skimage's IHC image, each rendered as a brightfield grey image."""
    from skimage import data
    from skimage.color import hed2rgb, rgb2gray, rgb2hed
    from skimage.transform import resize

    hed = rgb2hed(data.immunohistochemistry())
    z = np.zeros_like(hed[..., 0])
    h = rgb2gray(hed2rgb(np.stack([hed[..., 0], z, z], -1)))
    d = rgb2gray(hed2rgb(np.stack([z, z, hed[..., 2]], -1)))
    m = 400  # the tissue patch, from 512 px
    return (resize(h, (m, m), anti_aliasing=True, order=1), resize(d, (m, m), anti_aliasing=True, order=1))


def _section_canvas(patch, mask):
    """The patch on a white slide: tissue inside the irregular outline (soft edge), glass elsewhere."""
    n, m = SECTION_N, patch.shape[0]
    out = np.full((n, n), SECTION_BG)
    a = (n - m) // 2
    out[a:a + m, a:a + m] = SECTION_TISSUE_T * patch * mask + SECTION_BG * (1 - mask)
    return out


def _section_mask(m: int) -> np.ndarray:
    """Irregular tissue outline (radius varying with angle, no symmetry), soft 3-px edge, in [0, 1]."""
    yy, xx = np.mgrid[:m, :m] - (m - 1) / 2.0
    r, th = np.hypot(xx, yy), np.arctan2(yy, xx)
    rad = 0.40 * m * (1 + 0.12 * np.sin(2 * th + 0.4) + 0.09 * np.sin(3 * th + 1.9) + 0.05 * np.sin(5 * th + 0.7))
    return np.clip((rad - r) / 3.0 + 0.5, 0.0, 1.0)


def section_truth(pair):
    """(A, b) of the true map fixed -> moving in world (x, y) mm: A (p - c) + c + b, c the canvas centre."""
    quarter, mirror, extra, shift, scale = SECTION_PAIRS[pair]
    th = np.deg2rad(90.0 * quarter + extra)
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    a = rot @ np.diag(scale) @ (np.diag([-1.0, 1.0]) if mirror else np.eye(2))
    return a, np.asarray(shift, float) * SECTION_SP


_STAINS: list = []  # the two stain images, computed once


def workload_sections(pair):
    from scipy import ndimage

    from multiscale.image import spatial_image

    if not _STAINS:
        _STAINS.extend(_stain_images())
    h, d = _STAINS
    mask = _section_mask(h.shape[0])
    n, sp = SECTION_N, SECTION_SP
    fixed_np = _section_canvas(h, mask)
    mov_src = _section_canvas(d, mask)
    tissue = np.zeros((n, n), bool)  # the outline on the canvas (fixed frame)
    o = (n - mask.shape[0]) // 2
    tissue[o:o + mask.shape[0], o:o + mask.shape[0]] = mask > 0.5
    a, b = section_truth(pair)
    c = np.full(2, (n - 1) / 2.0 * sp)
    # moving(q) = source(A^-1 (q - c - b) + c): in (row, col) pixel indices through the swap P
    ainv = np.linalg.inv(a)
    P = np.array([[0.0, 1.0], [1.0, 0.0]])
    c_px, b_px = c / sp, b / sp
    matrix = P @ ainv @ P
    offset = P @ (c_px - ainv @ (c_px + b_px))
    moving_np = ndimage.affine_transform(mov_src, matrix, offset=offset, order=3, mode="constant", cval=SECTION_BG)
    rng = np.random.default_rng(sum(map(ord, pair)))  # sensor noise, reproducible per pair
    fixed_np = np.clip(fixed_np + rng.normal(0, 0.01, fixed_np.shape), 0, 1).astype(np.float32)
    moving_np = np.clip(moving_np + rng.normal(0, 0.01, moving_np.shape), 0, 1).astype(np.float32)
    fixed = spatial_image(fixed_np, spacing=(sp, sp), name="H", modality="HISTO")
    moving = spatial_image(moving_np, spacing=(sp, sp), name="DAB", modality="IHC")

    def truth(pts):
        return (pts - c) @ a.T + c + b

    # lattice of fixed points inside the tissue (every 16 px, at least 6 px inside the outline)
    inner = ndimage.binary_erosion(tissue, iterations=6)
    rows, cols = np.meshgrid(np.arange(8, n, 16), np.arange(8, n, 16), indexing="ij")
    keep = inner[rows, cols]
    idx = np.stack([rows[keep], cols[keep]], axis=1)
    pts = np.stack([idx[:, 1] * sp, idx[:, 0] * sp], axis=1)  # (x, y) mm; origin 0
    name = "sections_" + "".join(ch if ch.isalnum() else "_" for ch in pair)
    return dict(name=name, fixed=fixed, moving=moving, truth=truth, unit="px", to_unit=1.0 / sp,
                stages="affine", pts=pts, idx=idx, diag_px=float(np.hypot(n, n)))


def run_ours_default(w, pts):
    """``register(fixed, moving)`` exactly as a user calls it (transform="auto", Mattes MI)."""
    import warnings as _w

    t0 = time.perf_counter()
    with _w.catch_warnings(record=True) as caught:
        _w.simplefilter("always")
        t = register(w["fixed"], w["moving"])
    elapsed = time.perf_counter() - t0
    init = t.info.get("initialisation", {})
    extra = {
        "stages_kept": t.info["stages_kept"],
        "init_angle_deg": None if init.get("angle_deg") is None else round(float(init["angle_deg"]), 1),
        "flipped": init.get("flipped"),
        "margin": None if init.get("margin") is None else round(float(init["margin"]), 3),
        "returned_initial": t.info.get("quality_check", {}).get("returned_initial"),
        "warnings": len(t.info.get("warnings", [])) or len(caught),
        "search_s": None if init.get("time_s") is None else round(float(init["time_s"]), 2),
    }
    return t.transform_points(pts), elapsed, extra


def run_sections(args, exe):
    """The cross-stain section pairs: per-pair and median rTRE, ratios, start errors, repeatability."""
    rows, saved = [], {}
    previous = np.load(args.compare_points) if args.compare_points else None
    for pair in SECTION_PAIRS:
        t_gen = time.perf_counter()
        w = workload_sections(pair)
        pts, idx = w["pts"], w["idx"]
        truth = w["truth"](pts)
        to_px = w["to_unit"]
        start = float(np.linalg.norm(pts - truth, axis=1).mean()) * to_px
        print(f"[sections/{pair}] generated in {time.perf_counter() - t_gen:.1f} s; {len(pts)} error points; "
              f"start error {start:.1f} px ({100 * start / w['diag_px']:.2f} % diag)", flush=True)
        methods = [("ours", lambda: run_ours_default(w, pts))]
        if not args.no_sitk:
            methods.append(("sitk", lambda: run_sitk(w, pts)))
        if exe:
            methods.append(("elastix", lambda: run_elastix(w, pts, idx, exe)))
        res, mapped_ours = {}, []
        for mname, fn in methods:
            reps = max(args.repeats, 2) if mname == "ours" else args.repeats  # ours twice: repeatability
            times, errs, extra = [], [], {}
            for _ in range(reps):
                mapped, elapsed, extra = fn()
                if mname == "ours":
                    mapped_ours.append(mapped)
                times.append(elapsed)
                errs.append(float(np.linalg.norm(mapped - truth, axis=1).mean()) * to_px)
            e = float(np.median(errs))
            res[mname] = {"error": e, "rtre_pct": 100 * e / w["diag_px"], "time_s": float(np.median(times)),
                          "worse_than_start": e > start, **extra}
            print(f"[sections/{pair}] {mname:8s} error {e:.3g} px ({res[mname]['rtre_pct']:.3g} % diag)  "
                  f"time {res[mname]['time_s']:.2f} s{'  WORSE THAN START' if e > start else ''}  "
                  f"{extra if extra else ''}", flush=True)
        rep = float(max(np.abs(m - mapped_ours[0]).max() for m in mapped_ours[1:])) * to_px
        res["ours"]["repeat_max_diff_px"] = float(f"{rep:.3g}")
        saved[pair] = mapped_ours[0]
        if previous is not None and pair in previous.files:
            res["ours"]["vs_previous_run_max_diff_px"] = float(
                f"{float(np.abs(previous[pair] - mapped_ours[0]).max()) * to_px:.3g}")
            print(f"[sections/{pair}] ours vs --compare-points run: max difference "
                  f"{res['ours']['vs_previous_run_max_diff_px']:.3g} px", flush=True)
        anchors = {k: v for k, v in res.items() if k != "ours"}
        best = min(anchors.values(), key=lambda r: r["error"]) if anchors else None
        r_err = res["ours"]["error"] / best["error"] if best else float("nan")
        r_time = res["ours"]["time_s"] / res["elastix"]["time_s"] if "elastix" in res else float("nan")
        print(f"[sections/{pair}] ours run twice: max difference of mapped points {rep:.3g} px; "
              f"ratio error ours/best anchor = {r_err:.3g}; time ours/elastix = {r_time:.3g}", flush=True)
        rows.append((pair, start, 100 * start / w["diag_px"], res, r_err, r_time))
    print("[sections] median rTRE (% diag): start "
          f"{np.median([r[2] for r in rows]):.3g}; " + "; ".join(
              f"{m} {np.median([r[3][m]['rtre_pct'] for r in rows]):.3g}" for m in rows[0][3]), flush=True)
    worse = [(r[0], m) for r in rows for m in r[3] if r[3][m]["worse_than_start"]]
    print(f"[sections] pairs ending worse than their start: {worse if worse else 'none'}", flush=True)
    if args.points_out:
        np.savez(args.points_out, **saved)
    return rows


def error_points(w) -> np.ndarray:
    """Fixed voxel centres on a coarse sub-grid inside the tissue (so fields can be read exactly)."""
    img = w["fixed"]
    dims = [d for d in img.dims]
    axes = []
    for d in dims:
        c = img.coords[d].values
        keep = np.where(np.abs(c) <= w["pts_region"])[0]
        axes.append(keep[:: max(1, len(keep) // 12)])
    idx = np.array(np.meshgrid(*axes, indexing="ij")).reshape(len(dims), -1).T
    world_zyx = np.stack([img.coords[d].values[idx[:, i]] for i, d in enumerate(dims)], axis=1)
    return world_zyx[:, ::-1].copy(), idx  # (x, y[, z]) rows and their (z, y, x) indices


# ------------------------------------------------------------------------------------ methods


def run_ours(w, pts):
    kind = "auto" if w["stages"] == "deformable" else "affine"
    t0 = time.perf_counter()
    t = register(w["fixed"], w["moving"], transform=kind, metric="mattes_mi")
    elapsed = time.perf_counter() - t0
    return t.transform_points(pts), elapsed, {"stages_kept": t.info["stages_kept"],
                                               "working_spacing_mm": t.info["working_spacing_mm"]}


def run_sitk(w, pts):
    """SimpleITK as its documentation teaches it (Registration notebooks / examples)."""
    f = sitk.Cast(to_sitk(w["fixed"]), sitk.sitkFloat32)
    m = sitk.Cast(to_sitk(w["moving"]), sitk.sitkFloat32)
    dim = f.GetDimension()
    t0 = time.perf_counter()

    def method():
        reg = sitk.ImageRegistrationMethod()
        reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=50)
        reg.SetMetricSamplingStrategy(reg.RANDOM)
        reg.SetMetricSamplingPercentage(0.01, 1)
        reg.SetInterpolator(sitk.sitkLinear)
        reg.SetShrinkFactorsPerLevel([4, 2, 1])
        reg.SetSmoothingSigmasPerLevel([2, 1, 0])
        reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
        return reg

    base = sitk.Euler2DTransform() if dim == 2 else sitk.Euler3DTransform()
    rigid = sitk.CenteredTransformInitializer(f, m, base, sitk.CenteredTransformInitializerFilter.GEOMETRY)
    def fit_linear(tx):
        reg = method()
        reg.SetOptimizerAsGradientDescent(learningRate=1.0, numberOfIterations=100, convergenceMinimumValue=1e-6,
                                          convergenceWindowSize=10)
        reg.SetOptimizerScalesFromPhysicalShift()
        reg.SetInitialTransform(tx, inPlace=True)
        reg.Execute(f, m)

    fit_linear(rigid)
    aff = sitk.AffineTransform(dim)
    aff.SetCenter(rigid.GetCenter())
    aff.SetMatrix(rigid.GetMatrix())
    aff.SetTranslation(rigid.GetTranslation())
    fit_linear(aff)
    final = aff
    if w["stages"] == "deformable":
        bsp = sitk.BSplineTransformInitializer(f, [8] * dim, 3)
        reg = method()
        reg.SetShrinkFactorsPerLevel([2, 1])
        reg.SetSmoothingSigmasPerLevel([1, 0])
        reg.SetOptimizerAsLBFGSB(gradientConvergenceTolerance=1e-5, numberOfIterations=100)
        reg.SetMovingInitialTransform(aff)
        reg.SetInitialTransform(bsp, inPlace=True)
        reg.Execute(f, m)
        final = sitk.CompositeTransform([aff, bsp])
    elapsed = time.perf_counter() - t0
    return Transform(final).transform_points(pts), elapsed, {}


ELASTIX_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np, itk
    fixed_path, moving_path, maps, out = sys.argv[1], sys.argv[2], sys.argv[3].split(","), sys.argv[4]
    f = itk.imread(fixed_path, itk.F); m = itk.imread(moving_path, itk.F)
    p = itk.ParameterObject.New()
    for name in maps:
        p.AddParameterMap(p.GetDefaultParameterMap(name))
    t0 = time.perf_counter()
    _, rp = itk.elastix_registration_method(f, m, parameter_object=p, log_to_console=False)
    elapsed = time.perf_counter() - t0
    field = itk.transformix_deformation_field(m, rp)
    np.save(out, itk.array_from_image(field))
    print(json.dumps({"time_s": elapsed}))
    """
)


def elastix_python() -> str | None:
    exe = os.environ.get("ELASTIX_PYTHON") or str(HERE / "_env" / "bin" / "python")
    if not Path(exe).exists():
        return None
    ok = subprocess.run([exe, "-c", "import itk; itk.elastix_registration_method"], capture_output=True)
    return exe if ok.returncode == 0 else None


def run_elastix(w, pts, idx, exe):
    DATA.mkdir(parents=True, exist_ok=True)
    fp, mp = DATA / f"{w['name']}_fixed.mha", DATA / f"{w['name']}_moving.mha"
    # elastix's defaults (grid spacing 16, step lengths) assume roughly unit voxels: hand it both images
    # scaled so that the fixed voxel is 1, and scale the displacements back
    scale = 1.0 / min(to_sitk(w["fixed"]).GetSpacing())
    for img, path in ((w["fixed"], fp), (w["moving"], mp)):
        s = sitk.Cast(to_sitk(img), sitk.sitkFloat32)
        s.SetSpacing(tuple(v * scale for v in s.GetSpacing()))
        s.SetOrigin(tuple(v * scale for v in s.GetOrigin()))
        sitk.WriteImage(s, str(path))
    maps = "rigid,affine,bspline" if w["stages"] == "deformable" else "rigid,affine"
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "run.py"
        script.write_text(ELASTIX_SCRIPT)
        out = Path(tmp) / "field.npy"
        res = subprocess.run([exe, str(script), str(fp), str(mp), maps, str(out)], capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(res.stderr[-2000:])
        elapsed = json.loads(res.stdout.strip().splitlines()[-1])["time_s"]
        field = np.load(out)  # (z, y, x, d) displacements in (x, y, z) order, fixed grid
    disp = field[tuple(idx.T)] / scale
    return pts + disp, elapsed, {"maps": maps, "unit_voxel_scaling": True}


# ------------------------------------------------------------------------------------ main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=ALL_WORKLOADS)
    ap.add_argument("--repeats", type=int, default=1, help="timing repeats (median reported)")
    ap.add_argument("--out", default=str(HERE / "results" / "registration.md"))
    ap.add_argument("--no-elastix", action="store_true")
    ap.add_argument("--no-sitk", action="store_true")
    ap.add_argument("--sections-grey-glass", action="store_true",
                    help="sections: the first, harsher design (glass 0.93, unstained tissue as bright as white, so "
                         "the DAB image's pale stroma is brighter than the glass)")
    ap.add_argument("--points-out", help="sections: save our mapped points (npz) to compare runs")
    ap.add_argument("--compare-points", help="sections: an npz of --points-out from an earlier run")
    args = ap.parse_args(argv)
    if args.sections_grey_glass:
        global SECTION_BG, SECTION_TISSUE_T
        SECTION_BG, SECTION_TISSUE_T = 0.93, 1.0
    exe = None if args.no_elastix else elastix_python()
    rows, section_rows = [], None
    for name in args.workloads:
        if name == "sections":
            section_rows = run_sections(args, exe)
            continue
        t_gen = time.perf_counter()
        w = WORKLOADS[name]()
        pts, idx = error_points(w)
        truth = w["truth"](pts)
        start = float(np.linalg.norm(pts - truth, axis=1).mean()) * w["to_unit"]
        print(f"[{name}] generated in {time.perf_counter() - t_gen:.1f} s; {len(pts)} error points; "
              f"start error {start:.3g} {w['unit']}", flush=True)
        methods = [("ours", lambda: run_ours(w, pts))]
        if not args.no_sitk:
            methods.append(("sitk", lambda: run_sitk(w, pts)))
        if exe:
            methods.append(("elastix", lambda: run_elastix(w, pts, idx, exe)))
        res = {}
        for mname, fn in methods:
            times, errs, extra = [], [], {}
            for _ in range(args.repeats):
                mapped, elapsed, extra = fn()
                times.append(elapsed)
                errs.append(float(np.linalg.norm(mapped - truth, axis=1).mean()) * w["to_unit"])
            res[mname] = {"error": float(np.median(errs)), "time_s": float(np.median(times)), **extra}
            print(f"[{name}] {mname:8s} error {res[mname]['error']:.4g} {w['unit']}  time {res[mname]['time_s']:.2f} s"
                  f"  {extra if extra else ''}", flush=True)
        anchors = {k: v for k, v in res.items() if k != "ours"}
        best = min(anchors.values(), key=lambda r: r["error"]) if anchors else None
        ratio_err = res["ours"]["error"] / best["error"] if best else float("nan")
        ratio_time = res["ours"]["time_s"] / res["elastix"]["time_s"] if "elastix" in res else float("nan")
        print(f"[{name}] ratio error ours/best anchor = {ratio_err:.3g}; time ours/elastix = {ratio_time:.3g}",
              flush=True)
        rows.append((name, w["unit"], start, res, ratio_err, ratio_time))
    write_results(Path(args.out), rows, args, exe is not None, section_rows)
    return 0


def write_results(path: Path, rows, args, have_elastix: bool, section_rows=None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Registration benchmark (BENCHMARKS.md section 3)",
        "",
        f"Date: {_dt.datetime.now().isoformat(timespec='minutes')}; machine: {platform.node()} "
        f"({os.cpu_count()} cores, shared and noisy); repeats: {args.repeats}.",
        f"Command: `.venv/bin/python benchmarks/registration.py --workloads {' '.join(args.workloads)} "
        f"--repeats {args.repeats}`",
        f"Anchors: plain SimpleITK pipeline; itk-elastix defaults {'(itk-elastix 0.25.4)' if have_elastix else '(not installed)'}.",
    ]
    if rows:
        lines += ["", "| workload | start error | method | error | time (s) | notes |", "| --- | --- | --- | --- | --- | --- |"]
    for name, unit, start, res, r_err, r_time in rows:
        for m, r in res.items():
            notes = {k: v for k, v in r.items() if k not in ("error", "time_s")}
            lines.append(f"| {name} | {start:.3g} {unit} | {m} | {r['error']:.4g} {unit} | {r['time_s']:.2f} | "
                         f"{notes if notes else ''} |")
        lines.append(f"| {name} | | **ratio** | ours/best anchor error **{r_err:.3g}** | ours/elastix time "
                     f"**{r_time:.3g}** | |")
    if section_rows:
        lines += [
            "",
            "Cross-stain sections (skimage's IHC image: haematoxylin vs DAB, white background, known transform); "
            "error = mean distance on a lattice inside the tissue, px and % of the image diagonal (rTRE).",
            "",
            "| pair | start | method | error (px) | rTRE (% diag) | time (s) | notes |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for pair, start, start_pct, res, r_err, r_time in section_rows:
            for m, r in res.items():
                notes = {k: v for k, v in r.items() if k not in ("error", "rtre_pct", "time_s")}
                lines.append(f"| {pair} | {start:.1f} px ({start_pct:.2f} %) | {m} | {r['error']:.3g} | "
                             f"{r['rtre_pct']:.3g} | {r['time_s']:.2f} | {notes} |")
            lines.append(f"| {pair} | | **ratio** | ours/best anchor error **{r_err:.3g}** | | ours/elastix time "
                         f"**{r_time:.3g}** | |")
        meds = {m: float(np.median([r[3][m]["rtre_pct"] for r in section_rows])) for m in section_rows[0][3]}
        lines.append(f"| **median** | {np.median([r[2] for r in section_rows]):.3g} % | | | "
                     + ", ".join(f"{m} {v:.3g} %" for m, v in meds.items()) + " | | |")
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
