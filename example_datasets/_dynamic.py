"""Demo data for time: a short DCE-MRI of a mouse tumour with planted Ktrans, ve and vp maps.

:func:`write_dynamic` writes, into ``folder``:

* ``dce.nii.gz``: 40 frames of a 8 x 32 x 32 voxel volume (0.25 mm isotropic), contrast-agent concentration
  in mM in 6 s frames (mid-times 3..237 s), made with the extended Tofts model from the Parker population AIF (plasma,
  Hct 0.42, bolus arriving at 20 s), Gaussian noise SD 0.005 mM;
* ``dce.json``: its BIDS sidecar (``FrameTimesStart``, ``FrameDuration``), so the frames carry their times;
* ``dce_tumour.nii.gz``: the tumour (an ellipsoid) on the series' grid;
* ``dce_truth.ome.zarr``: the planted maps as one image with channels ``ktrans`` (1/min), ``ve``, ``vp`` on the
  series' grid (the ``dce`` analysis takes them as ``truth_ktrans: dce_truth:ktrans``... and draws them beside
  the fitted maps);
* ``r2star_pre.nii.gz``, ``r2star_post.nii.gz``: R2* maps (1/s) before and 24 h after a SPION injection on the
  same grid, for the ``change`` analysis: dR2* = r2* [Fe] with r2* = ``R2STAR_RELAXIVITY`` /mM/s.

Inside the tumour Ktrans falls from 0.30 /min at the rim to 0.06 /min in the core and ve rises from 0.20 to
0.45; vp is 0.04. Outside (muscle): Ktrans 0.05 /min, ve 0.10, vp 0.01. Iron: 0.10 mM in the tumour's core
rising to 0.30 mM at its rim, none outside; R2* before 30 /s (SD 1 /s noise in both sessions). The returned
truth holds the planted tumour medians, the AIF, the frame times and the iron.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["write_dynamic", "FILES", "FRAME_S", "N_FRAMES", "AIF_DELAY_S", "HEMATOCRIT", "R2STAR_RELAXIVITY"]

FILES = (
    "dce.nii.gz",
    "dce.json",
    "dce_tumour.nii.gz",
    "dce_truth.ome.zarr",
    "r2star_pre.nii.gz",
    "r2star_post.nii.gz",
)
SHAPE = (8, 32, 32)
VOXEL_MM = 0.25
FRAME_S, N_FRAMES = 6.0, 40
AIF_DELAY_S, HEMATOCRIT, NOISE_MM = 20.0, 0.42, 0.005
#: r2* of the demo's SPION (/mM Fe /s): a stated demo value of the order reported for iron oxides at high field
R2STAR_RELAXIVITY, R2STAR_PRE, R2STAR_NOISE = 120.0, 30.0, 1.0


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


def _truth_zarr(folder: Path, maps: np.ndarray) -> None:
    """The planted maps (c = ktrans, ve, vp) as an OME-Zarr on exactly the grid of the NIfTI series."""
    from multiscale.image import like
    from multiscale.io import load, save

    grid = load(folder / "dce_tumour.nii.gz")  # the series' grid as the NIfTI loader reads it
    img = like(grid, maps, dims=("c", "z", "y", "x"), units="", description="planted DCE parameters (ktrans in 1/min)")
    img = img.assign_coords(c=["ktrans", "ve", "vp"])
    # provenance without the folder's absolute path, so the same seed gives the same bytes wherever it is written
    img.attrs["provenance"] = {"source": "dce_truth (planted by example_datasets/_dynamic.py)"}
    save(img, folder / "dce_truth.ome.zarr")


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
    _truth_zarr(folder, np.stack([ktrans, ve, vp]).astype(np.float32))
    iron = np.where(tumour, 0.10 + 0.20 * depth, 0.0)  # mM Fe
    pre = R2STAR_PRE + rng.normal(0.0, R2STAR_NOISE, SHAPE)
    post = R2STAR_PRE + R2STAR_RELAXIVITY * iron + rng.normal(0.0, R2STAR_NOISE, SHAPE)
    _nifti(pre.astype(np.float32), folder / "r2star_pre.nii.gz")
    _nifti(post.astype(np.float32), folder / "r2star_post.nii.gz")
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
        "r2star_relaxivity_per_mM_s": R2STAR_RELAXIVITY,
        "tumour_iron_mM_mean": float(iron[tumour].mean()),
        "tumour_delta_r2star_mean_per_s": float(R2STAR_RELAXIVITY * iron[tumour].mean()),
    }
