"""pyradiomics side of benchmarks/texture.py; runs in the benchmark-only env (benchmarks/_env).

Usage: benchmarks/_env/bin/python benchmarks/_texture_pyradiomics.py WORKLOAD.npz MODE [args] -> JSON on stdout
  MODE roi TEXTURE ROI   whole-ROI time per feature class (binCount 32) and all classes together
  MODE map TEXTURE N     voxel-based GLCM map (kernelRadius 2) over the first N voxels of the sphere
"""

from __future__ import annotations

import json
import logging
import sys
import time

import numpy as np
import SimpleITK as sitk
from radiomics import featureextractor

logging.getLogger("radiomics").setLevel(logging.ERROR)
CLASSES = ("shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm")


def _hwm_mb() -> float:
    """Peak RSS of this process (VmHWM; ru_maxrss would carry the parent's peak across exec)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _images(path: str, texture: str, roi: str, n_voxels: int | None = None):
    data = np.load(path)
    img = sitk.GetImageFromArray(data[texture])
    mask_arr = data[roi].astype(np.uint8)
    if n_voxels is not None:
        flat = np.flatnonzero(mask_arr)
        centre = flat[flat.size // 2 - n_voxels // 2: flat.size // 2 - n_voxels // 2 + n_voxels]
        mask_arr = np.zeros_like(mask_arr)
        mask_arr.flat[centre] = 1
    mask = sitk.GetImageFromArray(mask_arr)
    for im in (img, mask):
        im.SetSpacing((1.0, 1.0, 1.0))
    return img, mask, int(mask_arr.sum())


def main() -> None:
    path, mode = sys.argv[1], sys.argv[2]
    out: dict = {}
    if mode == "roi":
        texture, roi = sys.argv[3], sys.argv[4]
        img, mask, n = _images(path, texture, roi)
        out["n_voxels"] = n
        for cls in CLASSES:
            ex = featureextractor.RadiomicsFeatureExtractor(binCount=32)
            ex.disableAllFeatures()
            ex.enableFeatureClassByName(cls)
            t, c = time.perf_counter(), time.process_time()
            res = ex.execute(img, mask)
            out[cls] = time.perf_counter() - t
            out[f"{cls}_cpu"] = time.process_time() - c
            out[f"{cls}_n"] = sum(1 for k in res if k.startswith("original_"))
        ex = featureextractor.RadiomicsFeatureExtractor(binCount=32)
        ex.disableAllFeatures()
        for cls in CLASSES:
            ex.enableFeatureClassByName(cls)
        t, c = time.perf_counter(), time.process_time()
        ex.execute(img, mask)
        out["all"] = time.perf_counter() - t
        out["all_cpu"] = time.process_time() - c
    else:
        texture, n_req = sys.argv[3], int(sys.argv[4])
        img, mask, n = _images(path, texture, "sphere", n_req)
        ex = featureextractor.RadiomicsFeatureExtractor(binCount=32, kernelRadius=2, maskedKernel=False)
        ex.disableAllFeatures()
        ex.enableFeatureClassByName("glcm")
        t = time.perf_counter()
        ex.execute(img, mask, voxelBased=True)
        dt = time.perf_counter() - t
        out.update(n_voxels=n, seconds=dt, voxels_per_s=n / dt,
                   peak_rss_mb=_hwm_mb())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
