"""Benchmark of the example study generator: time and size at full size, and whether plain SimpleITK
registration recovers the ground-truth transforms.

    .venv/bin/python benchmarks/example_study.py [--repeats 3] [--seed 0]

Targets (issue 2): full size in under 30 s and under 20 MB. The anchor, measured in the same run, is
reading the generated study back with the reference readers (SimpleITK, tifffile, pyimzML): the ratio
says how many "reads" one generation costs. The registration check uses Mattes mutual information from a
geometric centring (no ground truth used), and reports the error of the recovered transform against the
ground truth at points of the tumour (PET) or of the section (MSI).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import tifffile

from example_datasets.generate import generate

OUT = Path(__file__).resolve().parent / "data" / "example_study"


def read_all(d: Path) -> None:
    from pyimzml.ImzMLParser import ImzMLParser

    for n in ("mri", "tumour_mask", "vessel_mask", "pet"):
        sitk.GetArrayFromImage(sitk.ReadImage(str(d / f"{n}.nii.gz")))
    tifffile.imread(d / "fluorescence.ome.tif")
    tifffile.imread(d / "section_mask.ome.tif")
    p = ImzMLParser(str(d / "msi.imzML"))
    for i in range(len(p.coordinates)):
        p.getspectrum(i)


def pet_to_mri_error(d: Path, gt: dict) -> tuple[float, float]:
    mri = sitk.Cast(sitk.ReadImage(str(d / "mri.nii.gz")), sitk.sitkFloat32)
    pet = sitk.ReadImage(str(d / "pet.nii.gz"))
    init = sitk.CenteredTransformInitializer(mri, pet, sitk.Euler3DTransform(),
                                             sitk.CenteredTransformInitializerFilter.GEOMETRY)
    R = sitk.ImageRegistrationMethod()
    R.SetMetricAsMattesMutualInformation(32)
    R.SetMetricSamplingStrategy(R.RANDOM)
    R.SetMetricSamplingPercentage(0.2, seed=1)
    R.SetInterpolator(sitk.sitkLinear)
    R.SetOptimizerAsRegularStepGradientDescent(1.0, 1e-4, 300, relaxationFactor=0.7)
    R.SetOptimizerScalesFromPhysicalShift()
    R.SetShrinkFactorsPerLevel([4, 2, 1])
    R.SetSmoothingSigmasPerLevel([1.0, 0.5, 0.0])
    R.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    R.SetInitialTransform(init, inPlace=False)
    tf = R.Execute(mri, pet)
    T = np.array(gt["transforms"]["pet_to_mri"]["matrix_4x4"])
    mask = sitk.ReadImage(str(d / "tumour_mask.nii.gz"))
    idx = np.argwhere(sitk.GetArrayFromImage(mask))[::50, ::-1]
    pts = np.array([mask.TransformIndexToPhysicalPoint([int(v) for v in i]) for i in idx])
    est = np.array([tf.TransformPoint(p.tolist()) for p in pts])
    err = np.linalg.norm(est - (pts @ T[:3, :3].T + T[:3, 3]), axis=1)
    return float(err.mean()), float(err.max())


def msi_to_fluorescence_error(d: Path, gt: dict) -> tuple[float, float]:
    from pyimzml.ImzMLParser import ImzMLParser

    F = tifffile.imread(d / "fluorescence.ome.tif").astype(np.float32)
    px = gt["grids"]["fluorescence"]["pixel_size_mm"]
    mp = gt["grids"]["msi"]["pixel_size_mm"]
    ny, nx = gt["grids"]["msi"]["shape_yx"]
    mz = gt["ions"]["haem b"]["mz"]
    p = ImzMLParser(str(d / "msi.imzML"))
    img = np.zeros((ny, nx), np.float32)
    for i, (x, y, *_) in enumerate(p.coordinates):
        m, it = p.getspectrum(i)
        img[y - 1, x - 1] = it[np.abs(m - mz) < 5e-6 * mz].sum()
    fixed = sitk.GetImageFromArray(F[0])
    fixed.SetSpacing((px, px))
    moving = sitk.GetImageFromArray(img)
    moving.SetSpacing((mp, mp))
    f = max(1, int(round(mp / px / 2)))
    fixed_s = sitk.Shrink(sitk.SmoothingRecursiveGaussian(fixed, mp / 2), [f, f])
    init = sitk.CenteredTransformInitializer(fixed_s, moving, sitk.AffineTransform(2),
                                             sitk.CenteredTransformInitializerFilter.MOMENTS)
    R = sitk.ImageRegistrationMethod()
    R.SetMetricAsMattesMutualInformation(32)
    R.SetMetricSamplingStrategy(R.RANDOM)
    R.SetMetricSamplingPercentage(0.5, seed=1)
    R.SetInterpolator(sitk.sitkLinear)
    R.SetOptimizerAsRegularStepGradientDescent(0.5, 1e-5, 500, relaxationFactor=0.7)
    R.SetOptimizerScalesFromPhysicalShift()
    R.SetShrinkFactorsPerLevel([2, 1])
    R.SetSmoothingSigmasPerLevel([1.0, 0.0])
    R.SetInitialTransform(init, inPlace=False)
    tf = R.Execute(fixed_s, moving)
    T = np.array(gt["transforms"]["msi_to_fluorescence"]["matrix_3x3"])
    yy, xx = np.mgrid[0:F.shape[1]:20, 0:F.shape[2]:20]
    pts = np.stack([xx.ravel() * px, yy.ravel() * px], 1)
    est = np.array([tf.TransformPoint(q.tolist()) for q in pts])
    err = np.linalg.norm(est - (pts @ T[:2, :2].T + T[:2, 2]), axis=1)
    return float(err.mean()), float(err.max())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    gen, read = [], []
    for _ in range(args.repeats):
        (OUT / "manifest.json").unlink(missing_ok=True)  # force a fresh generation (else it is skipped)
        t0 = time.perf_counter()
        d = generate(OUT, seed=args.seed, size="full", overwrite=True)
        gen.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        read_all(d)
        read.append(time.perf_counter() - t0)
    gt = json.loads((d / "ground_truth.json").read_text())
    size = sum(p.stat().st_size for p in d.iterdir())
    g, r = statistics.median(gen), statistics.median(read)
    print(f"full-size generation: median {g:.1f} s over {args.repeats} ({', '.join(f'{x:.1f}' for x in gen)}); "
          f"target 30 s -> {g / 30:.2f} of the budget")
    print(f"anchor, reading the study back (SimpleITK, tifffile, pyimzML): median {r:.1f} s; "
          f"generation / read = {g / r:.1f}")
    print(f"size on disk: {size / 1e6:.1f} MB; target 20 MB -> {size / 20e6:.2f} of the budget")
    for p in sorted(d.iterdir()):
        print(f"  {p.name:24s} {p.stat().st_size / 1e6:7.2f} MB")
    t0 = time.perf_counter()
    m, x = pet_to_mri_error(d, gt)
    print(f"PET->MRI rigid (Mattes MI, SimpleITK): error vs ground truth over the tumour mean {m:.3f} mm, "
          f"max {x:.3f} mm (PET voxel 0.8 mm), {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    m, x = msi_to_fluorescence_error(d, gt)
    print(f"MSI->fluorescence affine (haem vs vessels, Mattes MI): error mean {m:.4f} mm, max {x:.4f} mm "
          f"(MSI pixel {gt['grids']['msi']['pixel_size_mm']} mm), {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
