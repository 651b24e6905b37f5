"""Demo data for time: a short DCE-MRI of a mouse tumour with planted Ktrans, ve and vp maps.

:func:`write_dynamic` writes, into ``folder``:

* ``dce.nii.gz``: 40 frames of a 8 x 32 x 32 voxel volume (0.25 mm isotropic), contrast-agent concentration
  in mM in 6 s frames (mid-times 3..237 s), made with the extended Tofts model from the Parker population AIF (plasma,
  Hct 0.42, bolus arriving at 20 s), Gaussian noise SD 0.005 mM;
* ``dce.json``: its BIDS sidecar (``FrameTimesStart``, ``FrameDuration``), so the frames carry their times;
* ``dce_tumour.nii.gz``: the tumour (an ellipsoid) on the series' grid;
* ``dce_truth_ktrans.nii.gz``, ``dce_truth_ve.nii.gz``, ``dce_truth_vp.nii.gz``: the planted maps.

Inside the tumour Ktrans falls from 0.30 /min at the rim to 0.06 /min in the core and ve rises from 0.20 to
0.45; vp is 0.04. Outside (muscle): Ktrans 0.05 /min, ve 0.10, vp 0.01. The returned truth holds the planted
tumour medians, the AIF and the frame times.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["write_dynamic", "FILES", "FRAME_S", "N_FRAMES", "AIF_DELAY_S", "HEMATOCRIT"]

FILES = (
    "dce.nii.gz",
    "dce.json",
    "dce_tumour.nii.gz",
    "dce_truth_ktrans.nii.gz",
    "dce_truth_ve.nii.gz",
    "dce_truth_vp.nii.gz",
)
SHAPE = (8, 32, 32)
VOXEL_MM = 0.25
FRAME_S, N_FRAMES = 6.0, 40
AIF_DELAY_S, HEMATOCRIT, NOISE_MM = 20.0, 0.42, 0.005


def _nifti(arr: np.ndarray, path: Path) -> None:
    import nibabel as nib

    data = np.asarray(arr)
    data = data.transpose(*range(data.ndim)[::-1])  # (t, z, y, x) -> (x, y, z, t)
    aff = np.diag([-VOXEL_MM, -VOXEL_MM, VOXEL_MM, 1.0])  # LPS-aligned axes written as RAS
    img = nib.Nifti1Image(data, aff)
    img.header.set_xyzt_units("mm", "sec")
    img.set_sform(aff, code=1)
    img.set_qform(aff, code=1)
    nib.save(img, str(path))


def write_dynamic(folder: Path, seed: int = 0) -> dict[str, Any]:
    """Write the DCE demo files into ``folder`` and return the planted truth (JSON-able)."""
    from multiscale.analysis.kinetics import models, population_aif

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]].astype(float)
    r = np.sqrt(((z - 3.5) / 3.6) ** 2 + ((y - 15.5) / 11.0) ** 2 + ((x - 16.5) / 12.0) ** 2)
    tumour = r <= 1.0
    depth = np.clip(r, 0, 1)  # 0 at the centre, 1 at the rim
    ktrans = np.where(tumour, 0.06 + 0.24 * depth**2, 0.05)
    ve = np.where(tumour, 0.45 - 0.25 * depth, 0.10)
    vp = np.where(tumour, 0.04, 0.01)
    t = (np.arange(N_FRAMES) + 0.5) * FRAME_S  # frame mid-times
    cp = population_aif("parker", t, delay=AIF_DELAY_S, hematocrit=HEMATOCRIT)
    conc = models.etofts(t, cp, ktrans.ravel(), ve.ravel(), vp.ravel())  # (voxels, frames)
    conc = conc + rng.normal(0.0, NOISE_MM, conc.shape)
    series = conc.T.reshape((N_FRAMES,) + SHAPE).astype(np.float32)
    _nifti(series, folder / "dce.nii.gz")
    (folder / "dce.json").write_text(
        json.dumps(
            {
                "FrameTimesStart": (t - FRAME_S / 2).tolist(),
                "FrameDuration": [FRAME_S] * N_FRAMES,
                "Units": "mM",
                "ContrastBolusIngredient": "GADOLINIUM",
            },
            indent=1,
        )
    )
    _nifti(tumour.astype(np.uint8), folder / "dce_tumour.nii.gz")
    for name, m in (("ktrans", ktrans), ("ve", ve), ("vp", vp)):
        _nifti(m.astype(np.float32), folder / f"dce_truth_{name}.nii.gz")
    return {
        "model": "etofts",
        "aif": {"name": "parker", "delay_s": AIF_DELAY_S, "hematocrit": HEMATOCRIT},
        "frame_times_s": t.tolist(),
        "noise_sd_mM": NOISE_MM,
        "tumour_voxels": int(tumour.sum()),
        "tumour_ktrans_median_per_min": float(np.median(ktrans[tumour])),
        "tumour_ve_median": float(np.median(ve[tumour])),
        "tumour_vp": 0.04,
        "muscle": {"ktrans_per_min": 0.05, "ve": 0.10, "vp": 0.01},
    }
