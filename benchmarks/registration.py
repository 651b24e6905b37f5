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

Usage::

    .venv/bin/python benchmarks/registration.py [--workloads 2d msi 3d] [--repeats 1] [--out FILE]

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
    ap.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    ap.add_argument("--repeats", type=int, default=1, help="timing repeats (median reported)")
    ap.add_argument("--out", default=str(HERE / "results" / "registration.md"))
    ap.add_argument("--no-elastix", action="store_true")
    ap.add_argument("--no-sitk", action="store_true")
    args = ap.parse_args(argv)
    exe = None if args.no_elastix else elastix_python()
    rows = []
    for name in args.workloads:
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
    write_results(Path(args.out), rows, args, exe is not None)
    return 0


def write_results(path: Path, rows, args, have_elastix: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Registration benchmark (BENCHMARKS.md section 3)",
        "",
        f"Date: {_dt.datetime.now().isoformat(timespec='minutes')}; machine: {platform.node()} "
        f"({os.cpu_count()} cores, shared and noisy); repeats: {args.repeats}.",
        f"Command: `.venv/bin/python benchmarks/registration.py --workloads {' '.join(args.workloads)} "
        f"--repeats {args.repeats}`",
        f"Anchors: plain SimpleITK pipeline; itk-elastix defaults {'(itk-elastix 0.25.4)' if have_elastix else '(not installed)'}.",
        "",
        "| workload | start error | method | error | time (s) | notes |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, unit, start, res, r_err, r_time in rows:
        for m, r in res.items():
            notes = {k: v for k, v in r.items() if k not in ("error", "time_s")}
            lines.append(f"| {name} | {start:.3g} {unit} | {m} | {r['error']:.4g} {unit} | {r['time_s']:.2f} | "
                         f"{notes if notes else ''} |")
        lines.append(f"| {name} | | **ratio** | ours/best anchor error **{r_err:.3g}** | ours/elastix time "
                     f"**{r_time:.3g}** | |")
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
